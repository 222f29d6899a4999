"""The record of one UIE-base benchmark run (``python -m job lab bench_uie_base``): its targets,
the ratios measured side by side, and the README table generated from it.

One JSON document per run holds the hardware with its instruction sets, threads,
versions, every record of ``job.benchmark``, the accuracy of each served configuration on
the demo teacher, every ratio with PASS or MISS against its target (and the distance when
missed), and the op profiles of missed targets. The headline's pair is also timed again in
alternating rounds, each way a user loads it (``headline_side_by_side``); its ratio is the
lower of those ways', not the rows'. The README's latency table is
``render_table(record)``: a pure function of the record, so the table and the committed
record cannot disagree. Standard library only.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from job import tables

__all__ = [
    "ACCURACY_TOLERANCE",
    "SCHEMA",
    "TARGETS",
    "Target",
    "accuracy_key",
    "make_record",
    "ratios",
    "render_table",
    "side_by_side_text",
    "target_lines",
]

SCHEMA = 1
ACCURACY_TOLERANCE = 1.0  # F1 points an INT8 model may lose against its own FP32 model


@dataclass(frozen=True)
class Target:
    key: str
    description: str
    threshold: float  # the ratio must be at least this; with AMX, ``threshold_amx``
    threshold_amx: float | None = None
    tracked: bool = False  # a figure followed run to run, not a target: verdict TRACKED, never missed

    def wanted(self, hardware: dict[str, Any]) -> float:
        amx = any(flag.startswith("amx") for flag in hardware.get("isa") or [])
        return self.threshold_amx if amx and self.threshold_amx is not None else self.threshold


TARGETS = (
    Target(
        "headline",
        "the job's best CPU model served by its best runtime (within 1 F1 point of Paddle FP32 on the demo "
        "teacher) vs OpenVINO + NNCF INT8 on the original at its best precision (within 1 F1 point of "
        "OpenVINO FP32) (latency)",
        1.5,
    ),
    Target(
        "peer",
        "Paddle's best INT8 vs OpenVINO's best INT8, same network, "
        "both within 1 F1 point of their FP32 on the demo teacher (latency; tracked, not a target)",
        1.2,
        tracked=True,
    ),
    Target("peer_default", "Paddle's best INT8 vs OpenVINO at its default precision on this CPU (latency)", 1.0),
    Target("prune_ptq", "Paddle pruned + INT8 vs Paddle FP32 (latency; 4x without AMX, 6x with AMX)", 4.0, 6.0),
    Target(
        "padding",
        "padding to each batch's longest, original order, vs padding to max_seq_len, "
        "same texts (throughput, worst Paddle model)",
        1.5,
    ),
    Target("ptq", "Paddle PTQ INT8 vs Paddle FP32 (latency; earlier target)", 3.5),
    Target("ort_peer", "Paddle PTQ INT8 vs ONNX Runtime's best INT8 (latency; earlier target)", 1.3),
)

_PI = {"runtime": "paddle-inference", "padding": "max"}


def _find(records: list[dict[str, Any]], **match: Any) -> list[dict[str, Any]]:
    return [r for r in records if all(r.get(k) == v for k, v in match.items()) and r.get("latency_ms")]


def _median(record: dict[str, Any] | None) -> float | None:
    return record["latency_ms"]["median"] if record else None


def accuracy_key(record: dict[str, Any], int8_scope: str) -> str:
    """The name of a benchmark row's served configuration in the accuracy results."""
    bf16 = "-bf16" if record.get("variant") == "bf16" else ""
    if record["runtime"] == "paddle-inference":
        if record["precision"] != "int8":
            return "paddle-fp32" + bf16
        if record["model"] not in ("ptq", "ptq-pv"):
            # e.g. the pruned model: a network the demo teacher's accuracy run never built
            return f"paddle-{record['model']}-int8{bf16}"
        scope = "linear+pv" if record["model"] == "ptq-pv" else int8_scope
        return f"paddle-int8-{scope}{bf16}"
    if record["runtime"] == "openvino":
        # Our own programs handed to OpenVINO are named by model (ptq, ptq-all), its own by variant.
        if record.get("variant") == "paddle-quantized":
            return f"openvino-{record['model']}"
        if record.get("variant") == "paddle-quantized-default":
            return f"openvino-{record['model']}-default"
        return f"openvino-{record.get('variant')}"
    return f"{record['runtime']}-{record['precision']}"


def _accurate(key: str, fp32_key: str, accuracy: dict[str, float]) -> tuple[bool | None, str]:
    """Whether ``key`` is within ACCURACY_TOLERANCE points of ``fp32_key`` (None: unknown)."""
    if key not in accuracy or fp32_key not in accuracy:
        return None, f"{key}: accuracy not measured"
    drop = accuracy[fp32_key] - accuracy[key]
    return (
        drop <= ACCURACY_TOLERANCE,
        f"{key} F1 {accuracy[key]:.2f} vs {fp32_key} {accuracy[fp32_key]:.2f} ({-drop:+.2f})",
    )


def shown_ratio(value: float, wanted: float) -> str:
    """``value`` with two decimals, or up to six when two would put the text on the other side of
    ``wanted`` than the value: a ratio just under its target gets the digits that show it is under,
    instead of reading as the target beside MISS."""
    for digits in (2, 3, 4, 5, 6):
        text = f"{value:.{digits}f}"
        if (float(text) >= wanted) == (value >= wanted):
            break
    return text


def _entry(
    target: Target,
    hardware: dict[str, Any],
    value: float | None,
    detail: str,
    condition: tuple[bool | None, str] | None = None,
) -> dict[str, Any]:
    wanted = target.wanted(hardware)
    entry: dict[str, Any] = {"description": target.description, "threshold": wanted, "value": value, "detail": detail}
    if value is None:
        entry["verdict"] = "n/a"
        return entry
    if target.tracked:
        entry["verdict"] = "TRACKED"
        if condition is not None:
            entry["accuracy"] = condition[1]
        return entry
    fast = value >= wanted
    entry["verdict"] = "PASS" if fast else "MISS"
    if not fast:
        needed = wanted / value - 1
        percent = f"{needed:.0%}" if needed >= 0.005 else f"{needed:.1%}"  # never "0% faster needed"
        entry["distance"] = f"{shown_ratio(value, wanted)}x where {wanted:.2f}x is wanted: {percent} faster needed"
    if condition is not None:
        ok, why = condition
        entry["accuracy"] = why
        if ok is None:
            entry["verdict"] = "MISS" if not fast else "n/a"
            entry["distance"] = (
                entry.get("distance", "") + ("; " if entry.get("distance") else "") + "accuracy condition not checked"
            )
        elif not ok:
            entry["verdict"] = "MISS"
            entry["distance"] = (
                entry.get("distance", "")
                + ("; " if entry.get("distance") else "")
                + "accuracy condition not met: "
                + why
            )
    return entry


def _label(r: dict[str, Any]) -> str:
    return f"{r['model']}{'/' + r['variant'] if r.get('variant') else ''} {_median(r):.1f} ms"


_OURS_ON_OPENVINO = ("paddle-quantized", "paddle-quantized-default")


def headline_sides(
    records: list[dict[str, Any]], accuracy: dict[str, float], int8_scope: str
) -> dict[str, dict[str, Any]]:
    """The two sides of the headline, each the fastest latency row (pad to max) among its
    candidates that are within ACCURACY_TOLERANCE F1 points of their reference on the demo teacher:

    * ``ours``: a compressed model the job publishes (Paddle Inference as Taskflow serves it, no
      benchmark-only variant; or the same folder read by OpenVINO at f32 or its default), against
      Paddle FP32 (``paddle-fp32``), the original as the job serves it;
    * ``peer``: OpenVINO + NNCF INT8 of the original (each precision setting), against OpenVINO FP32.

    Per side: ``chosen`` (the row or None), ``accuracy`` (its line), ``excluded`` (why each
    other candidate is not chosen when it was not for speed)."""
    ours = [
        r
        for r in _find(records, padding="max")
        if r["model"] != "fp32"
        and (
            (r["runtime"] == "paddle-inference" and r["precision"] == "int8" and not r.get("variant"))
            or (r["runtime"] == "openvino" and r.get("variant") in _OURS_ON_OPENVINO)
        )
    ]
    peer = [
        r
        for r in _find(records, runtime="openvino", model="fp32", padding="max")
        if str(r.get("variant", "")).startswith("nncf")
    ]
    sides = {}
    for side, candidates, reference in (("ours", ours, "paddle-fp32"), ("peer", peer, "openvino-f32")):
        accurate, excluded = [], []
        for r in candidates:
            ok, why = _accurate(accuracy_key(r, int8_scope), reference, accuracy)
            (accurate if ok else excluded).append((r, why))
        chosen = min(accurate, key=lambda pair: _median(pair[0]), default=None)
        sides[side] = {
            "chosen": chosen[0] if chosen else None,
            "accuracy": chosen[1] if chosen else "",
            "excluded": [f"{_label(r)}: {why}" for r, why in excluded],
            "candidates": len(candidates),
        }
    return sides


# How the side-by-side timing loaded each side (``lab.headline_check.SHAPES``), as the detail names it.
_SHAPES_TEXT = {"dynamic": "shapes dynamic (the model card's code)", "static": "reshaped to the batch"}


def side_by_side_text(side_by_side: dict[str, Any]) -> str:
    """The detail of a headline timed side by side: per way of loading, both medians and their ratio."""
    modes = side_by_side["modes"]
    return f"side by side, {side_by_side['rounds']} alternating rounds: " + "; ".join(
        f"{_SHAPES_TEXT.get(name, name)} {m['peer_ms']:.1f} / {m['ours_ms']:.1f} ms = {m['ratio']:.3f}x "
        f"(rounds' middle half {m['round_ratios']['q1']:.2f}-{m['round_ratios']['q3']:.2f}x)"
        for name, m in modes.items()
    )


def _headline(
    target: Target,
    hardware: dict[str, Any],
    records: list[dict[str, Any]],
    accuracy: dict[str, float],
    scope: str,
    side_by_side: dict[str, Any] | None = None,
) -> dict[str, Any]:
    sides = headline_sides(records, accuracy, scope)
    ours, peer = sides["ours"]["chosen"], sides["peer"]["chosen"]
    if ours and peer:
        detail = f"OpenVINO NNCF INT8 {_label(peer)} / ours {ours['runtime']} {_label(ours)}"
        value = _median(peer) / _median(ours)
        if side_by_side and side_by_side.get("modes"):
            # The pair timed again in alternating rounds, each way a user loads it: the headline holds
            # only as far as the worse way does (the rows alone, minutes apart, move with the machine).
            detail = f"{side_by_side_text(side_by_side)}. Rows, one after another: {detail} = {value:.3f}x"
            value = min(float(m["ratio"]) for m in side_by_side["modes"].values())
        entry = _entry(
            target,
            hardware,
            value,
            detail,
            (True, f"ours {sides['ours']['accuracy']}; peer {sides['peer']['accuracy']}"),
        )
    else:
        missing = [
            f"{name}: {'no row measured' if not sides[key]['candidates'] else 'no candidate within 1 F1 point'}"
            for key, name in (("ours", "ours"), ("peer", "OpenVINO NNCF INT8"))
            if not sides[key]["chosen"]
        ]
        entry = _entry(target, hardware, None, "; ".join(missing))
        if all(sides[key]["candidates"] for key in sides):  # measured, but nothing within the accuracy condition
            entry["verdict"] = "MISS"
            entry["distance"] = "accuracy condition not met: " + "; ".join(missing)
    excluded = [f"{key}: {line}" for key in ("ours", "peer") for line in sides[key]["excluded"]]
    if excluded:
        entry["excluded"] = excluded
    return entry


def ratios(
    records: list[dict[str, Any]],
    accuracy: dict[str, float],
    hardware: dict[str, Any],
    int8_scope: str,
    side_by_side: dict[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """Every target's ratio from one run's records: value, threshold, verdict, detail
    and, when missed, the distance. ``accuracy``: F1 (points) by ``accuracy_key``.
    ``side_by_side``: the headline pair timed in alternating rounds (``lab.headline_check.time_pair``:
    ``rounds`` and ``modes``); the headline is then the lower of its ways' ratios, not the rows'."""
    targets = {t.key: t for t in TARGETS}
    out: dict[str, dict[str, Any]] = {
        "headline": _headline(targets["headline"], hardware, records, accuracy, int8_scope, side_by_side)
    }
    fp32 = next(iter(_find(records, model="fp32", variant=None, **_PI)), None)
    ptq = next(iter(_find(records, model="ptq", variant=None, **_PI)), None)
    pruned = next(iter(_find(records, model="prune_ptq", variant=None, **_PI)), None)
    # Paddle's INT8 rows of the same network as the peer's (the PTQ program, any scope or serving variant).
    ours = [r for r in _find(records, precision="int8", **_PI) if r["model"] in ("ptq", "ptq-pv")]
    best_ours = min(ours, key=_median, default=None)
    # OpenVINO's own INT8 (NNCF); our programs run by OpenVINO are not the peer's quantization.
    ov_int8 = min(
        (
            r
            for r in _find(records, runtime="openvino", precision="int8", padding="max")
            if str(r.get("variant", "")).startswith("nncf")
        ),
        key=_median,
        default=None,
    )
    ov_default = next(iter(_find(records, runtime="openvino", variant="default", padding="max")), None)
    ort_int8 = next(iter(_find(records, runtime="onnxruntime", precision="int8", padding="max")), None)

    label = _label
    if best_ours and ov_int8:
        ours_ok = _accurate(
            accuracy_key(best_ours, int8_scope), accuracy_key(fp32, int8_scope) if fp32 else "paddle-fp32", accuracy
        )
        peer_ok = _accurate(accuracy_key(ov_int8, int8_scope), "openvino-f32", accuracy)
        both = (
            None if ours_ok[0] is None or peer_ok[0] is None else ours_ok[0] and peer_ok[0],
            f"Paddle {ours_ok[1]}; OpenVINO {peer_ok[1]}",
        )
        out["peer"] = _entry(
            targets["peer"],
            hardware,
            _median(ov_int8) / _median(best_ours),
            f"OpenVINO {label(ov_int8)} / Paddle {label(best_ours)}",
            both,
        )
    else:
        out["peer"] = _entry(targets["peer"], hardware, None, "not measured")
    if best_ours and ov_default:
        out["peer_default"] = _entry(
            targets["peer_default"],
            hardware,
            _median(ov_default) / _median(best_ours),
            f"OpenVINO default ({ov_default.get('inference_precision') or '?'}) {_median(ov_default):.1f} ms "
            f"/ Paddle {label(best_ours)}",
        )
    else:
        out["peer_default"] = _entry(targets["peer_default"], hardware, None, "not measured")
    out["prune_ptq"] = _entry(
        targets["prune_ptq"],
        hardware,
        _median(fp32) / _median(pruned) if fp32 and pruned else None,
        f"{_median(fp32) or 0:.1f} ms / {_median(pruned) or 0:.1f} ms",
    )
    out["ptq"] = _entry(
        targets["ptq"],
        hardware,
        _median(fp32) / _median(ptq) if fp32 and ptq else None,
        f"{_median(fp32) or 0:.1f} ms / {_median(ptq) or 0:.1f} ms",
    )
    out["ort_peer"] = _entry(
        targets["ort_peer"],
        hardware,
        _median(ort_int8) / _median(ptq) if ort_int8 and ptq else None,
        f"{_median(ort_int8) or 0:.1f} ms / {_median(ptq) or 0:.1f} ms",
    )
    gains = []
    for model in ("fp32", "ptq", "ptq-pv", "prune_ptq"):
        longest = next(iter(_find(records, model=model, runtime="paddle-inference", padding="to-longest")), None)
        padded = next(iter(_find(records, model=model, runtime="paddle-inference", padding="to-max")), None)
        if longest and padded and longest.get("texts") == padded.get("texts"):
            gains.append((longest["throughput"] / padded["throughput"], model))
    if gains:
        worst = min(gains)
        out["padding"] = _entry(
            targets["padding"],
            hardware,
            worst[0],
            "; ".join(f"{model} {gain:.2f}x" for gain, model in gains) + f" (worst: {worst[1]})",
        )
    else:
        out["padding"] = _entry(targets["padding"], hardware, None, "not measured")
    return out


def make_record(
    *,
    records: list[dict[str, Any]],
    notes: list[str],
    hardware: dict[str, Any],
    versions: dict[str, str],
    threads: int,
    settings: dict[str, Any],
    int8_scope: str,
    params: dict[str, int],
    accuracy: dict[str, Any],
    profiles: dict[str, list[dict[str, Any]]],
    phases: dict[str, float],
    command: str,
    quick: bool,
    compression: dict[str, dict[str, Any]] | None = None,
    side_by_side: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON record of one run (see the module docstring). ``compression``: per strategy,
    ``seconds`` of the ``job.compress.run`` that built the model, ``reused`` (true when this
    run took it from the cache, built by an earlier run) and ``act_strategies``.
    ``side_by_side``: the headline pair's alternating rounds (``ratios``), kept as ``headline_side_by_side``."""
    scores = accuracy.get("f1", {}) if accuracy else {}
    extra = {"headline_side_by_side": side_by_side} if side_by_side else {}
    return {
        "schema": SCHEMA,
        "what": "UIE-base-shaped latency benchmark (python -m job lab bench_uie_base)",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": command,
        "quick": quick,
        "hardware": hardware,
        "threads": threads,
        "versions": versions,
        "settings": settings,
        "int8_scope": int8_scope,
        "params": params,
        "compression": dict(compression or {}),
        "accuracy": accuracy,
        "targets": ratios(records, scores, hardware, int8_scope, side_by_side),
        **extra,
        "records": records,
        "profiles": profiles,
        "notes": notes,
        "phases": phases,
    }


def target_lines(record: dict[str, Any]) -> list[str]:
    """PASS / MISS lines of a record's targets, with the distance of each miss."""
    lines = []
    for key, entry in record["targets"].items():
        value = entry.get("value")
        shown = "   -  " if value is None else f"{shown_ratio(value, entry['threshold']):>5}x"
        lines.append(
            f"{entry['verdict']:<4}  {shown} (target >= {entry['threshold']}x)  [{key}] "
            f"{entry['description']}: {entry['detail']}"
        )
        if entry.get("accuracy"):
            lines.append(f"        accuracy: {entry['accuracy']}")
        if entry.get("distance"):
            lines.append(f"        missed by: {entry['distance']}")
        lines += [f"        not chosen: {line}" for line in entry.get("excluded", [])]
    return lines


_LEFT = ["---"]  # left-aligned columns, as the README has always shown them
_RUNTIME = {"paddle-inference": "Paddle Inference, oneDNN", "onnxruntime": "ONNX Runtime", "openvino": "OpenVINO"}


def _compression_lines(record: dict[str, Any]) -> list[str]:
    """The compression time of each strategy: the run that built the model (maybe an
    earlier one, whose model this run reused from the cache)."""
    compression = record.get("compression") or {}
    if not compression:
        return []
    lines = [
        "",
        f"Compression time (job.compress.run, {record['threads']} threads, on the machine that built the model):",
        "",
    ]
    rows = []
    for strategy, entry in compression.items():
        seconds = entry.get("seconds")
        shown = "–" if seconds is None else f"{seconds:.0f}"
        where = "reused from the cache (seconds of the run that built it)" if entry.get("reused") else "built"
        rows.append([strategy, " + ".join(entry.get("act_strategies") or []) or "–", shown, where])
    return lines + tables.markdown(["strategy", "ACT steps", "seconds", "in this run"], rows, _LEFT * 4)


def _model_name(model: str, compression: dict[str, Any]) -> str:
    names = {"fp32": "FP32", "ptq": "PTQ", "ptq-pv": "PTQ, INT8 scope linear+pv", "prune_ptq": "prune 0.25 + PTQ"}
    entry = compression.get(model) or {}
    ratio, ffn = entry.get("pruned_ratio"), entry.get("ffn_pruned_ratio")
    if ratio is None:
        return names.get(model, model)
    scored = " (task-scored)" if entry.get("importance") == "task" else ""
    return f"prune {ratio:.2f}, FFN {ffn:.2f}{scored} + PTQ" if ffn is not None else f"prune {ratio:.2f}{scored} + PTQ"


def _row_label(r: dict[str, Any], params: dict[str, int], compression: dict[str, Any] | None = None) -> str:
    label = _model_name(r["model"], compression or {})
    if r["runtime"] == "openvino":
        label = {
            "f32": "FP32 program",
            "default": "FP32 program, default precision",
            "nncf-int8-f32": "NNCF INT8",
            "nncf-int8-default": "NNCF INT8, default precision",
        }.get(r.get("variant"), r.get("variant", ""))
        if r.get("variant") in _OURS_ON_OPENVINO:
            label = (
                "our PTQ program, INT8 scope all (unrestricted)"
                if r["model"] == "ptq-all"
                else "our published PTQ program"
                if r["model"] == "ptq"
                else f"our published {_model_name(r['model'], compression or {})} program"
            )
            if r["variant"] == "paddle-quantized-default":
                label += ", default precision"
    elif r["runtime"] == "onnxruntime":
        label = f"{r.get('variant', '')} (best of its variants)"
    elif r.get("variant"):
        label += f" + {r['variant']} (benchmark only)"
    if (
        r["runtime"] == "paddle-inference"
        and r["model"] in params
        and not r.get("variant")
        and (r["model"] == "fp32" or r["model"].startswith("prune"))
    ):
        label += f" ({params[r['model']] / 1e6:.1f} M params)"
    return label


def _precision(r: dict[str, Any]) -> str:
    text = r["precision"].upper()
    if r.get("inference_precision") and r["inference_precision"] not in ("f32", "float32"):
        text += (
            f" ({r['inference_precision']} for the rest)"
            if r["precision"] == "int8"
            else f" → {r['inference_precision']}"
        )
    if r.get("variant") == "bf16":
        text += " + BF16"
    return text


def render_table(record: dict[str, Any]) -> str:
    """The README's latency table (Markdown) and its ratio lines, from a run's record."""
    hw, s = record["hardware"], record["settings"]
    isa = ", ".join(hw.get("isa") or []) or "instruction sets not recorded"
    records = record["records"]
    f1 = (record.get("accuracy") or {}).get("f1", {})
    lines = [
        f"One run ({record['date'][:10]}, {'quick shape' if record.get('quick') else 'full'}) "
        f"on {hw.get('cpu')} ({hw.get('cores')} cores; {isa}); "
        f"{s['shape']} (random weights), batch {s['batch_size']}, sequence {s['seq_len']}, "
        f"{record['threads']} threads, {s['warmup']} warm-up and {s['repeats']} timed runs; "
        f"INT8 scope of the published programs: {record['int8_scope']}.",
        "",
    ]
    latency_table = []
    order = {"paddle-inference": 0, "openvino": 1, "onnxruntime": 2}
    latency_rows = [r for r in records if r.get("padding") == "max"]
    latency_rows.sort(key=lambda r: order.get(r["runtime"], 9))
    for r in latency_rows:
        key = accuracy_key(r, record["int8_scope"])
        score = f"{f1[key]:.2f}" if key in f1 else "–"
        if r.get("latency_ms"):
            lat = r["latency_ms"]
            figures = [f"{lat['median']:.1f}", f"{lat['p99']:.1f}", f"{r['throughput']:.1f}"]
        else:
            reason = (r.get("error") or r.get("skipped") or "not measured").replace("|", "/")
            figures = [f"{'failed' if r.get('error') else 'skipped'}: {reason[:160]}", "", ""]
        runtime = _RUNTIME.get(r["runtime"], r["runtime"])
        if r["runtime"] != "paddle-inference":
            runtime += f" {record['versions'].get(r['runtime'], '')}".rstrip()
        latency_table.append(
            [_row_label(r, record["params"], record.get("compression")), runtime, _precision(r), *figures, score]
        )
    headers = ["model", "runtime", "precision", "pad to max: median ms", "p99 ms", "samples/s", "demo teacher F1"]
    lines += tables.markdown(headers, latency_table, _LEFT * len(headers))
    lines += _compression_lines(record)
    padding = [r for r in records if r.get("padding") in ("to-max", "to-longest", "bucketed") and r.get("latency_ms")]
    if padding:
        first = padding[0]
        lines += [
            "",
            f"Padding, on the same {first['texts']} test texts ({first['batches']} batches of up to "
            f"{s['batch_size']}; mean real length {first['seq_len']:.1f} tokens), samples/s:",
            "",
        ]
        padding_table = []
        # One line per served configuration: Paddle's models, and each peer's best rows
        # (same model name, other runtime).
        keys = sorted(
            dict.fromkeys((r["runtime"], r["model"], r.get("variant")) for r in padding),
            key=lambda k: order.get(k[0], 9),
        )
        for runtime, model, variant in keys:
            by = {
                r["padding"]: r
                for r in padding
                if (r["runtime"], r["model"], r.get("variant")) == (runtime, model, variant)
            }
            cells = [
                f"{by[m]['throughput']:.1f} (pad {by[m]['padded_len_mean']:.1f})" if m in by else "–"
                for m in ("to-max", "to-longest", "bucketed")
            ]
            gain = (
                f"{by['to-longest']['throughput'] / by['to-max']['throughput']:.2f}×"
                if "to-longest" in by and "to-max" in by
                else "–"
            )
            sample = next(iter(by.values()))
            label = _row_label(sample, {}, record.get("compression"))
            if runtime == "openvino" and sample.get("inference_precision"):
                label += f", {sample['inference_precision']}"
            padding_table.append([label, _RUNTIME.get(runtime, runtime), *cells, gain])
        headers = [
            "model",
            "runtime",
            "padded to max",
            "to each batch's longest, original order",
            "length-bucketed",
            "longest / max",
        ]
        lines += tables.markdown(headers, padding_table, _LEFT * len(headers))
    lines += ["", "Targets (issue 13):" if "headline" not in record["targets"] else "Targets (issues 13 and 21):", ""]
    for key, entry in record["targets"].items():
        value = "–" if entry.get("value") is None else f"{shown_ratio(entry['value'], entry['threshold'])}×"
        extra = f" Missed by: {entry['distance']}." if entry.get("distance") else ""
        if key == "headline" and entry.get("accuracy"):
            extra = f" Accuracy (demo teacher): {entry['accuracy']}.{extra}"
        lines.append(
            f"- **{entry['verdict']}** {value} (≥ {entry['threshold']}×) "
            f"{entry['description']}: {entry['detail']}.{extra}"
        )
    return "\n".join(lines) + "\n"
