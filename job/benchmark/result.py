"""The benchmark's result (one record per model, runtime, precision and padding) and how
measurements become records: ``Context`` is what a runtime's rows are made with.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from job import tables
from job.benchmark.measure import WorkerError, dispatch
from job.benchmark.spec import Measurement, Profile, record_base

__all__ = ["BenchResult", "Context", "best", "failed", "measure_into", "skipped"]

log = logging.getLogger("job.benchmark")


@dataclass
class BenchResult:
    """Benchmark records (one dict per model, runtime, precision and padding)."""

    records: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    _specs: list[tuple[dict[str, Any], Measurement]] = field(default_factory=list, repr=False)

    def find(self, **match: Any) -> list[dict[str, Any]]:
        """Records whose fields equal every ``match`` item."""
        return [r for r in self.records if all(r.get(k) == v for k, v in match.items())]

    def summary(self) -> str:
        """A plain-text table of every record, then the environment and notes."""
        header = (
            "model",
            "runtime",
            "backend",
            "precision",
            "variant",
            "padding",
            "batch",
            "seq",
            "threads",
            "median ms",
            "p90 ms",
            "p99 ms",
            "samples/s",
            "peak MB",
        )
        rows = [header]
        for r in self.records:
            if r.get("latency_ms") is None:
                reason = r.get("skipped") or r.get("error") or "not measured"
                rows.append(
                    (
                        r["model"],
                        r["runtime"],
                        r["backend"],
                        r["precision"],
                        r.get("variant", ""),
                        r["padding"],
                        str(r["batch_size"]),
                        "-",
                        str(r.get("threads", "-")),
                        ("skipped: " if r.get("skipped") else "failed: ") + reason,
                        "",
                        "",
                        "",
                        "",
                    )
                )
                continue
            lat = r["latency_ms"]
            seq = f"{r['seq_len']:.0f}" if r["padding"] == "max" else f"{r['seq_len']:.1f}/{r['padded_len_mean']:.1f}"
            if r.get("inference_precision"):
                precision_shown = f"{r['precision']} ({r['inference_precision']})"
            else:
                precision_shown = r["precision"]
            rows.append(
                (
                    r["model"],
                    r["runtime"],
                    r["backend"],
                    precision_shown,
                    r.get("variant", ""),
                    r["padding"],
                    str(r["batch_size"]),
                    seq,
                    str(r["threads"]),
                    f"{lat['median']:.1f}",
                    f"{lat['p90']:.1f}",
                    f"{lat['p99']:.1f}",
                    f"{r['throughput']:.1f}",
                    _fmt_mb(r.get("peak_memory_mb")),
                )
            )
        lines = tables.text(
            [[str(cell) for cell in row] for row in rows], "<<<<<<" + ">" * (len(rows[0]) - 6), rule=True
        )
        first = next((r for r in self.records if r.get("hardware")), None)
        if first:
            hw, ver = first["hardware"], first.get("versions", {})
            lines.append("")
            lines.append(
                f"hardware: {hw.get('cpu')} ({hw.get('cores')} cores; "
                f"{' '.join(hw.get('isa') or []) or 'ISA not recorded'}), GPU {hw.get('gpu') or 'none'}"
            )
            lines.append("versions: " + ", ".join(f"{k} {v}" for k, v in ver.items()))
            measured = [r for r in self.records if r.get("latency_ms") is not None]
            if measured:
                lines.append(
                    f"warm-up {measured[0]['warmup']} runs, {measured[0]['repeats']} timed runs "
                    "per max-padding figure; padding comparison: seq = mean real / mean padded length of the same texts"
                )
        for note in self.notes:
            lines.append(f"note: {note}")
        return "\n".join(lines)

    def profile(self, record: dict[str, Any], *, runs: int = 3, top: int = 10) -> list[dict[str, Any]]:
        """Time per op type of the measurement behind ``record`` (its ``max`` batch), from
        Paddle's profiler, ONNX Runtime's or OpenVINO's. Needs the run's workdir to still exist."""
        spec = next((s for r, s in self._specs if r is record), None)
        if spec is None:
            raise ValueError("no measurement behind this record (skipped, or from another run)")
        if not Path(spec.workload).is_file():
            raise ValueError(f"{spec.workload}: the benchmark's workdir is gone; pass run(..., workdir=...) to keep it")
        return dispatch(spec.replace(paddings=("max",), profile=Profile(runs, top), isolate=True, save_outputs=""))[
            "profile"
        ]

    def to_json(self) -> str:
        return json.dumps({"records": self.records, "notes": self.notes}, indent=1, ensure_ascii=False)


def _fmt_mb(value: Any) -> str:
    return f"{value:.0f}" if isinstance(value, (int, float)) else "-"


@dataclass
class Context:
    """What a runtime's rows are made with: the result they go into, the environment every
    record carries, the spec every measurement starts from (workload, threads, warm-up,
    repeats, shape), the folder for conversions, the task (calibration data), and the
    padding modes the peers' best rows are also timed in (empty: no padding comparison)."""

    result: BenchResult
    env: dict[str, Any]
    base: Measurement
    workdir: Path
    task: Any
    text_paddings: tuple[str, ...] = ()


def skipped(ctx: Context, spec: Measurement, why: str, **extra: Any) -> dict[str, Any]:
    record = dict(record_base(spec, ctx.env), skipped=why, **extra)
    ctx.result.records.append(record)
    return record


def failed(ctx: Context, spec: Measurement, why: str, **extra: Any) -> dict[str, Any]:
    record = dict(record_base(spec, ctx.env), error=why, **extra)
    ctx.result.records.append(record)
    return record


def measure_into(ctx: Context, spec: Measurement, extra: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Run one measurement and append its records (an error record when it failed)."""
    try:
        out = dispatch(spec)
    except WorkerError as exc:
        log.error("benchmark: %s %s %s failed: %s", spec.model, spec.runtime, spec.precision, exc)
        return [failed(ctx, spec, str(exc), **(extra or {}))]
    records = []
    for measured in out["measurements"]:
        record = record_base(spec, ctx.env, measured.pop("padding"))
        record.update(measured)
        record.update(extra or {})
        ctx.result._specs.append((record, spec))
        ctx.result.records.append(record)
        records.append(record)
        lat = record["latency_ms"]
        log.info(
            "benchmark: %s %s %s%s %s: median %.1f ms, %.1f samples/s",
            record["model"],
            record["runtime"],
            record["precision"],
            f" {spec.variant}" if spec.variant else "",
            record["padding"],
            lat["median"],
            record["throughput"],
        )
    return records


def best(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The measured record with the lowest median latency."""
    return min((r for r in records if r.get("latency_ms")), key=lambda r: r["latency_ms"]["median"], default=None)
