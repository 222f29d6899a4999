"""results.json: what one task's run produced, and its terminal summary.

Pure functions over the stage results; the pipeline writes the dict next to the model.
Metrics are fractions (0-1); ``delta_points`` is (after - before) x 100.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import asdict
from pathlib import Path
from typing import Any

__all__ = ["SCHEMA", "build", "gate_passed", "summary"]

SCHEMA = 1


def gate_passed(before: float, after: float, tolerance_points: float) -> bool:
    """The compressed model may lose at most ``tolerance_points`` (x100) of the metric."""
    return (before - after) * 100 <= tolerance_points + 1e-9


def build(
    cfg,
    built,
    compressed,
    before,
    after,
    durations: dict[str, float],
    bench,
    total_seconds: float,
    roles: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    from job.program import model_params
    from job.runtime import hardware, versions

    passed = gate_passed(before.score, after.score, cfg.Job.gate_tolerance)
    return {
        "schema": SCHEMA,
        "run_id": cfg.Job.run_id,
        "task": cfg.task,
        "strategy": cfg.strategy,
        "act_strategies": compressed.act_strategies,
        "status": "complete" if passed else "gated",
        "metric": before.metric,
        "before": before.values,
        "after": after.values,
        "delta_points": round((after.score - before.score) * 100, 4),
        "gate": {"tolerance": cfg.Job.gate_tolerance, "passed": passed},
        "model_name": model_name(cfg, built),
        "models": {
            "original": {
                "size_bytes": built.model.size_bytes(),
                "params": model_params(built.model),
                "precision": before.precision,
                "source": built.source,
            },
            "compressed": {
                "size_bytes": compressed.model.size_bytes(),
                "params": model_params(compressed.model),
                "precision": after.precision,
                "int8_ops": dict(after.int8_ops),  # ops the predictor ran in INT8, read from its optimized program
                "int8_scope": asdict(compressed.int8_scope) if compressed.int8_scope else None,
                "calibration": asdict(compressed.calibration) if compressed.calibration else None,  # what PTQ read
                "compress_seconds": round(compressed.seconds, 1),
            },
        },
        "evaluation": _evaluation(cfg, after, roles or {}),
        "durations": dict(durations),
        "total_seconds": round(total_seconds, 1),
        "patches": list(compressed.patches),
        "versions": versions(),
        "hardware": hardware(),
        "config": _without_url_credentials(cfg.to_dict()),
        "config_fingerprint": cfg.fingerprint(),
        "benchmark": [record for record in (bench.records if bench else [])],
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),  # noqa: UP017 - 3.10 image
    }


def _without_url_credentials(value: Any) -> Any:
    """The config as published: a ``user:password@`` in any URL (an endpoint, a model URI)
    is hidden, since results.json lands in a bucket others read."""
    from job.storage.scrub import scrub_url

    if isinstance(value, dict):
        return {key: _without_url_credentials(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_url_credentials(item) for item in value]
    return scrub_url(value) if isinstance(value, str) else value


def _evaluation(cfg, after, roles: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Where the gate was measured (and on what), beside the data that selected."""
    gate = roles.get("gate", {"split": "test"})
    if gate.get("examples") not in (None, after.examples):
        raise ValueError(f"the gate split has {gate['examples']} examples but the evaluation saw {after.examples}")
    return {
        "split": gate["split"],
        "examples": after.examples,
        "source": gate.get("source", ""),
        "selection": roles.get("selection", {}),
        "held_out": gate.get("held_out", ""),
        "runtime": "paddle-inference",
        "device": cfg.Job.device,
        "serving": "oneDNN, enable_mkldnn_int8() with no op set (as Taskflow)"
        if cfg.Job.device == "cpu"
        else "TensorRT",
    }


def model_name(cfg, built) -> str:
    """What the reports call the model: the teacher's shape, else the model folder's name."""
    if built.source != "given":
        return cfg.Teacher.shape
    return Path(cfg.Global.model_dir.rstrip("/")).name or cfg.Global.model_dir


def _fmt_seconds(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _gate_split(outcome: dict[str, Any]) -> str:
    evaluation = outcome.get("evaluation") or {}
    return f"{evaluation.get('split', 'test')} ({evaluation.get('examples', 0):,} examples)"


def summary(outcome: dict[str, Any], dest: str) -> str:
    """A short table for the terminal: metric, size and precision before and after."""
    before, after = outcome["before"], outcome["after"]
    models = outcome["models"]
    metric = outcome["metric"]
    keys = [metric] + [k for k in ("precision", "recall") if k in before]
    rows = [("", "original", "compressed")]
    for key in keys:
        rows.append((key, f"{before[key] * 100:.2f}", f"{after[key] * 100:.2f}"))
    rows.append(
        (
            "model size",
            f"{models['original']['size_bytes'] / 1e6:.2f} MB",
            f"{models['compressed']['size_bytes'] / 1e6:.2f} MB",
        )
    )
    if models["original"].get("params") and models["compressed"].get("params"):
        rows.append(("parameters", f"{models['original']['params']:,}", f"{models['compressed']['params']:,}"))
    int8_ops = sum((models["compressed"].get("int8_ops") or {}).values())
    served = models["compressed"]["precision"] + (f" ({int8_ops} INT8 ops)" if int8_ops else "")
    rows.append(("served as", models["original"]["precision"], served))
    for record in outcome.get("benchmark") or []:
        if record.get("padding") == "max" and record.get("latency_ms"):
            label = f"latency {record['runtime']} {record['precision']} ({record['model']})"
            rows.append((label, f"{record['latency_ms']['median']:.1f} ms", ""))
    calibration = models["compressed"].get("calibration")
    if calibration:
        rows.append(("PTQ calibration", "", f"{calibration['examples']:,} examples"))
    width = [max(len(r[i]) for r in rows) for i in range(3)]
    table = "\n".join(f"  {r[0]:<{width[0]}}  {r[1]:>{width[1]}}  {r[2]:>{width[2]}}" for r in rows)
    gate = outcome["gate"]
    verdict = "PASSED" if gate["passed"] else "FAILED"
    phases = ", ".join(f"{name} {_fmt_seconds(sec)}" for name, sec in outcome["durations"].items())
    return (
        f"\n== {outcome['task']} / {outcome['strategy']} ({'+'.join(outcome.get('act_strategies', []))}): {outcome['status']} ==\n"
        f"{table}\n"
        f"  {metric} change {outcome['delta_points']:+.2f} points on {_gate_split(outcome)}; accuracy gate (tolerance {gate['tolerance']:.2f}) {verdict}\n"
        f"  time {_fmt_seconds(outcome['total_seconds'])}: {phases}\n"
        f"  results: {dest}\n"
    )
