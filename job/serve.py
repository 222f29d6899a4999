"""The CPU runtimes stage: each model the job publishes for CPU, read from its folder by
each runtime of ``Benchmark.cpu_runtimes`` (OpenVINO's Paddle frontend at its default
precision, and with FP32 pinned for the float ops), scored on the gate's split and timed like
Paddle Inference's row: the rows of results.json's ``runtimes`` (``job.results.RuntimeFigures``),
after Paddle Inference's own, which come from the gate's evaluation and the quick timing (not
measured twice).

A runtime that cannot read or run the program is a ``refused`` row with its reason, and the
run goes on; one that loses more than ``Job.gate_tolerance`` against the original as Paddle
serves it is ``gated`` (not timed: not offered for that model); without the optional extra
(requirements/extras/openvino.txt) the rows are ``skipped``. openvino is imported only when a
row is measured; on Job.device gpu there are no rows (OpenVINO serves on CPU here).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from job.config import CPU_RUNTIMES, JobConfig
from job.logs import progress
from job.results import RuntimeFigures, Timing, gate_passed

if TYPE_CHECKING:
    from job.benchmark import Planned
    from job.evaluate import EvalResult
    from job.model import ModelFiles

__all__ = ["OpenVinoScore", "plan", "rows", "score_openvino", "settings", "timing_of"]

log = logging.getLogger("job.serve")

# A benchmark plan's OpenVINO rows of a published folder carry this variant (job.benchmark.stage).
SERVED = "served"


def settings(cfg: JobConfig) -> list[tuple[str, str]]:
    """(runtime, setting) of every row besides Paddle Inference's, as the config asks; none on GPU."""
    if cfg.Job.device != "cpu":
        return []
    return [CPU_RUNTIMES[name] for name in cfg.Benchmark.cpu_runtimes]


def hint_of(setting: str) -> str:
    """OpenVINO's INFERENCE_PRECISION_HINT for a row's setting ("" leaves OpenVINO's default)."""
    return "" if setting == "default" else setting


def plan(name: str, wanted: list[tuple[str, str]]) -> list[Planned]:
    """The quick timing's entries of model ``name`` in the runtimes ``wanted``."""
    from job.benchmark import Planned

    return [
        Planned(name, runtime, variant=SERVED, options={"hint": hint_of(setting)}, padding=False)
        for runtime, setting in wanted
    ]


@dataclass
class OpenVinoScore:
    """A model scored by OpenVINO with one setting: its metric values, or why it was refused."""

    setting: str
    values: dict[str, float] = field(default_factory=dict)
    precision: str = ""  # what ran: int8, int8+bf16, fp32, bf16
    int8_ops: int = 0  # nodes the CPU plugin ran in INT8
    refused: str = ""  # one line: why OpenVINO could not read or run it


def score_openvino(
    model: ModelFiles, task: Any, split: str, batch_size: int, threads: int, setting: str
) -> OpenVinoScore:
    """``task``'s metric on ``split`` with the model's folder read by OpenVINO (one model
    compiled with dynamic shapes, so every batch of the split runs as it comes)."""
    from job.benchmark import openvino_peer

    hint = hint_of(setting)
    total = (task.size(split) + batch_size - 1) // batch_size
    bar = functools.partial(progress, total=total, desc=f"openvino {setting}", unit="batch")
    try:
        session = openvino_peer.Session(model.program, threads, hint, static=False)
        values = task.score(split, batch_size, session, wrap=bar)
    except (RuntimeError, ValueError, KeyError) as exc:  # the frontend or the plugin refused the program
        return OpenVinoScore(setting, refused=openvino_peer.refusal(f"{type(exc).__name__}: {exc}"))
    nodes = sum(openvino_peer.int8_nodes(session.compiled).values()) if session.compiled is not None else 0
    return OpenVinoScore(setting, dict(values), _precision(nodes, session.inference_precision), nodes)


def _precision(int8_nodes: int, inference_precision: str) -> str:
    """What a row ran: int8 (with the float ops' precision when not FP32), else the float precision."""
    floats = "bf16" if inference_precision == "bf16" else "fp16" if inference_precision == "f16" else "fp32"
    if int8_nodes:
        return "int8" if floats == "fp32" else f"int8+{floats}"
    return floats


def timing_of(record: dict[str, Any]) -> Timing | None:
    """A benchmark record's figures as a ``results.Timing`` (None: not measured, logged)."""
    if not record.get("latency_ms"):
        log.warning(
            "latency of %s on %s not measured: %s",
            record["model"],
            record["runtime"],
            record.get("skipped") or record.get("error"),
        )
        return None
    return Timing(
        precision=record["precision"],
        latency_ms=round(record["latency_ms"]["median"], 3),
        p90_ms=round(record["latency_ms"]["p90"], 3),
        throughput=round(record["throughput"], 3),
    )


def _speedup(original: Timing | None, timing: Timing | None) -> float | None:
    if original is None or timing is None or timing.latency_ms <= 0:
        return None
    return round(original.latency_ms / timing.latency_ms, 3)


def rows(
    cfg: JobConfig,
    task: Any,
    role: str,
    model: ModelFiles,
    evaluation: EvalResult,
    timing: Timing | None,
    before: EvalResult,
    original_timing: Timing | None,
    time_entries: Callable[[list[Planned]], list[dict[str, Any]]] | None,
) -> list[RuntimeFigures]:
    """``role``'s rows (original or compressed): Paddle Inference's from its evaluation and
    timing, then each CPU runtime's of ``settings(cfg)``, scored here and timed through
    ``time_entries`` (the quick timing of a plan; None: not timed, Benchmark.quick off)."""
    tolerance = cfg.Job.gate_tolerance
    paddle = RuntimeFigures(
        model=role,
        runtime="paddle-inference",
        setting="default",
        precision=evaluation.precision,
        status="measured" if gate_passed(before.score, evaluation.score, tolerance) else "gated",
        score_points=round(evaluation.score * 100, 4),
        delta_points=round((evaluation.score - before.score) * 100, 4),
        int8_ops=sum(evaluation.int8_ops.values()),
        timing=timing,
        speedup=_speedup(original_timing, timing),
    )
    if paddle.status == "gated":
        paddle.reason = f"lost more than the gate's {tolerance:g} points"
    out = [paddle]
    wanted = settings(cfg)
    if not wanted:
        return out
    from job.benchmark import openvino_peer

    ok, why = openvino_peer.runtime_available()
    if not ok:
        log.warning("%s: OpenVINO rows skipped: %s", role, why)
        return out + [
            RuntimeFigures(model=role, runtime=runtime, setting=setting, status="skipped", reason=why)
            for runtime, setting in wanted
        ]
    from job.machine import cpu_count

    threads = cfg.Job.threads or cpu_count()
    scored = {
        setting: score_openvino(model, task, evaluation.split, cfg.Global.batch_size, threads, setting)
        for _, setting in wanted
    }
    offered: list[tuple[str, str]] = []
    made: dict[str, RuntimeFigures] = {}
    for runtime, setting in wanted:
        score = scored[setting]
        row = RuntimeFigures(model=role, runtime=runtime, setting=setting)
        if score.refused:
            row.status, row.reason = "refused", score.refused
            log.warning("%s on openvino (%s): refused: %s", role, setting, score.refused)
        else:
            value = float(score.values[task.metric])
            row.precision, row.int8_ops = score.precision, score.int8_ops
            row.score_points = round(value * 100, 4)
            row.delta_points = round((value - before.score) * 100, 4)
            if gate_passed(before.score, value, tolerance):
                offered.append((runtime, setting))
            else:
                row.status, row.reason = "gated", f"lost more than the gate's {tolerance:g} points in this runtime"
            log.info(
                "%s on openvino (%s, ran %s, %d INT8 nodes): %s %.2f (%+.2f points)",
                role,
                setting,
                score.precision,
                score.int8_ops,
                task.metric,
                row.score_points,
                row.delta_points,
            )
        made[setting] = row
        out.append(row)
    if offered and time_entries is not None:
        for record in time_entries(plan(role, offered)):
            setting = record.get("hint") or "default"
            row = made.get(setting)
            if row is None:
                continue
            row.timing = timing_of(record)
            if row.timing is not None:
                row.timing.precision = row.precision
            row.speedup = _speedup(original_timing, row.timing)
    return out
