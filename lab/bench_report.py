"""What ``python -m job lab bench_uie_base`` prints beside its table: the accuracy of each
served configuration, the INT8 checks, the peers' variants, and the op profiles of the rows
behind each missed target."""

from __future__ import annotations

__all__ = ["accuracy_lines", "check_lines", "peer_lines", "profile_lines", "profiles"]


def accuracy_lines(accuracy: dict) -> list[str]:
    if not accuracy:
        return ["", "accuracy on the demo teacher: not measured (--no-accuracy)"]
    lines = [
        "",
        (
            f"accuracy on {accuracy['model']}, {accuracy['split']} split ({accuracy['examples']} examples), "
            f"F1 points; calibration: {accuracy['calibration']}"
            + (
                f" (reused from the cache: measured by the run that built it, in {accuracy['seconds']:.0f} s)"
                if accuracy.get("reused") and accuracy.get("seconds") is not None
                else ""
            )
            + ":"
        ),
    ]
    lines += [f"  {name:<28} {score:6.2f}" for name, score in accuracy["f1"].items()]
    lines += [f"  note: {note}" for note in accuracy.get("notes", [])]
    return lines


def check_lines(result) -> list[str]:
    """Whether each INT8 run computes what its program says (see job.benchmark.paddle_inference.Session.checks)."""
    lines = ["", "INT8 outputs against the quantized program run in FP32 (QDQ simulated), max-padding batch:"]
    for record in result.find(runtime="paddle-inference", precision="int8", padding="max"):
        check = record.get("int8_check") or {}
        name = record["model"] + (f"/{record['variant']}" if record.get("variant") else "")
        ops = ", ".join(f"{k} {v}" for k, v in (record.get("int8_ops") or {}).items())
        if "mean_abs_diff" in check:
            lines.append(
                f"  {name:<14} mean abs diff {check['mean_abs_diff']:.4f}, max {check['max_abs_diff']:.4f}; "
                f"INT8 ops: {ops}"
            )
        else:
            lines.append(f"  {name:<14} not checked: {check.get('error', 'no check')}; INT8 ops: {ops}")
    return lines if len(lines) > 2 else []


def peer_lines(result) -> list[str]:
    lines = []
    for record in result.find(runtime="openvino", padding="max"):
        if record.get("error") or record.get("skipped"):
            lines += [
                "",
                (
                    f"OpenVINO {record.get('variant')}: {'failed' if record.get('error') else 'skipped'}: "
                    f"{record.get('error') or record.get('skipped')}"
                ),
            ]
    for record in result.find(runtime="onnxruntime", padding="max"):
        tried = record.get("variants_tried") or []
        if not tried:
            continue
        lines.append("")
        lines.append(f"ONNX Runtime {record['precision']} variants tried (winner: {record.get('variant', 'none')}):")
        for entry in tried:
            if "error" in entry:
                lines.append(f"  {entry['variant']:<36} failed: {entry['error'][:120]}")
            else:
                extra = ", ".join(f"{k} {v}" for k, v in entry.items() if k not in ("variant", "median_ms"))
                lines.append(f"  {entry['variant']:<36} {entry['median_ms']:9.1f} ms  {extra}")
    return lines


def profiles(result, missed: list[str], scope: str, f1: dict[str, float] | None = None) -> dict[str, list[dict]]:
    """Op profiles of the rows behind each missed target (their max-padding batch);
    ``f1``: the accuracy results (F1 by ``bench_record.accuracy_key``) the headline chose its rows by."""
    from lab import bench_record

    pi = {"runtime": "paddle-inference", "padding": "max"}

    def best(**match):
        rows = [r for r in result.find(**match) if r.get("latency_ms")]
        return min(rows, key=lambda r: r["latency_ms"]["median"], default=None)

    ours = min(
        (r for r in result.find(precision="int8", **pi) if r["model"] in ("ptq", "ptq-pv") and r.get("latency_ms")),
        key=lambda r: r["latency_ms"]["median"],
        default=None,
    )
    sides = bench_record.headline_sides(result.records, f1 or {}, scope)
    picks = {
        "headline": [
            ("ours (headline)", sides["ours"]["chosen"]),
            ("OpenVINO NNCF INT8 (headline)", sides["peer"]["chosen"]),
        ],
        "peer": [
            ("Paddle best INT8", ours),
            (
                "OpenVINO best INT8",
                min(
                    (
                        r
                        for r in result.find(runtime="openvino", precision="int8", padding="max")
                        if r.get("latency_ms") and r.get("variant", "").startswith("nncf")
                    ),
                    key=lambda r: r["latency_ms"]["median"],
                    default=None,
                ),
            ),
        ],
        "peer_default": [
            ("Paddle best INT8", ours),
            ("OpenVINO default precision", best(runtime="openvino", variant="default", padding="max")),
        ],
        "prune_ptq": [
            ("Paddle FP32", best(model="fp32", variant=None, **pi)),
            ("Paddle pruned+INT8", best(model="prune_ptq", variant=None, **pi)),
        ],
        "ptq": [
            ("Paddle FP32", best(model="fp32", variant=None, **pi)),
            ("Paddle PTQ INT8", best(model="ptq", variant=None, **pi)),
        ],
        "ort_peer": [
            ("ONNX Runtime INT8", best(runtime="onnxruntime", precision="int8", padding="max")),
            ("Paddle PTQ INT8", best(model="ptq", variant=None, **pi)),
        ],
    }
    out: dict[str, list[dict]] = {}
    for key in missed:
        for label, record in picks.get(key, []):
            if record is None or label in out:
                continue
            try:
                rows = result.profile(record, runs=3, top=8)
            except Exception as exc:  # a profiler failure must not lose the benchmark
                rows = [{"op": f"profile failed: {exc}", "ms_per_run": 0.0, "calls_per_run": 0, "share": 0.0}]
            out[label] = [dict(row, row=bench_record.accuracy_key(record, scope)) for row in rows]
    return out


def profile_lines(profiles: dict[str, list[dict]], missed: list[str]) -> list[str]:
    if not missed:
        return []
    lines = ["", "## where the time goes (missed targets: " + ", ".join(missed) + ")"]
    if "padding" in missed:
        lines.append("padding: the gain is bounded by max_seq_len / mean padded length (see the padding rows)")
    for label, rows in profiles.items():
        lines += ["", f"{label} (op type, ms per batch, calls per batch, share of the profiled wall time):"]
        for row in rows:
            lines.append(
                f"  {row['op']:<40} {row['ms_per_run']:9.1f} ms  {row['calls_per_run']:6.0f}  {row['share']:6.1%}"
            )
    return lines
