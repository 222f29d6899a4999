"""Selection: which compressed model of a task to deploy, by one documented rule (``RULE``).

``choose(task, run_id, candidates)`` is pure: it decides which candidate is eligible (and
says why each is not), picks the fastest eligible one and lists the Pareto set. Candidates
come from each strategy's ``results.json`` (``Candidate.from_result``) or, for a folder
that could not be read, with the status ``incomplete`` or ``unsafe`` (never eligible).
``Selection`` is ``selected.json`` (schema ``SCHEMA``); ``job.storage.selection`` reads the
published folders and publishes it.

Light dependencies only (stdlib and ``job.results``, no paddle): the launcher runs it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from job import tables
from job.results import Latency, TaskResult

__all__ = ["RULE", "SCHEMA", "STATUSES", "TIE", "Candidate", "Selection", "choose", "device_of"]

SCHEMA = 1
STATUSES = ("complete", "gated", "failed", "incomplete", "unsafe")
# Latencies within this fraction of the fastest eligible one are a tie, decided by score: a
# margin chosen (not measured) to be below what a median on a shared machine can resolve.
TIE = 0.005
RULE = (
    "eligible: published complete, passed the accuracy gate, and measured faster than its original on its serving "
    "device (speedup above 1); selected: the eligible model of lowest compressed latency, latencies within "
    f"{TIE:.1%} of the fastest tied and broken by the higher score, then by strategy name"
)


@dataclass(kw_only=True)
class Candidate:
    """One strategy of a task, with the figures the rule and the Pareto set read."""

    strategy: str
    status: str  # one of STATUSES: a results.json status, or what its folder was (incomplete, unsafe)
    eligible: bool = False  # set by choose()
    why: str = ""  # one line: why it is (not) eligible
    metric: str = ""
    score_points: float | None = None  # the compressed model's metric x 100
    original_points: float | None = None
    delta_points: float | None = None
    latency_ms: float | None = None  # the compressed model's median per batch
    original_latency_ms: float | None = None
    speedup: float | None = None  # original median / compressed median
    throughput: float | None = None  # the compressed model's examples per second
    size_bytes: int | None = None  # the compressed model's folder
    weight_bytes: int | None = None  # its weights as served
    pareto: bool = False  # set by choose()

    @classmethod
    def from_result(cls, result: TaskResult) -> Candidate:
        """The candidate a results.json makes (its status taken as written; ``choose`` judges it)."""
        latency = result.latency
        compressed = latency.compressed if latency else None
        original = latency.original if latency else None
        figures = result.models.compressed
        after, before = result.score("after"), result.score("before")
        status = result.status
        if status == "complete" and (result.gate is None or not result.gate.passed):
            status = "gated"  # a "complete" result without a passed gate is not trusted to have passed it
        return cls(
            strategy=result.strategy,
            status=status,
            why="" if status == result.status else "results.json says complete but records no passed gate",
            metric=result.metric,
            score_points=None if after is None else round(after * 100, 4),
            original_points=None if before is None else round(before * 100, 4),
            delta_points=result.delta_points,
            latency_ms=_positive(compressed.latency_ms) if compressed else None,
            original_latency_ms=_positive(original.latency_ms) if original else None,
            speedup=latency.speedup if latency else None,
            throughput=_positive(compressed.throughput) if compressed else None,
            size_bytes=figures.size_bytes if figures else None,
            weight_bytes=figures.weight_bytes if figures else None,
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any, where: str = "candidate") -> Candidate:
        candidate = _typed(cls, data, where)
        if candidate.status not in STATUSES:
            raise ValueError(f"{where}.status: {candidate.status!r} is not one of {', '.join(STATUSES)}")
        return candidate


@dataclass(kw_only=True)
class Selection:
    """One task's ``selected.json``: the choice, the rule, every candidate's figures.

    ``location``, ``refused`` and ``exit_code`` say what ``job.storage.selection`` did with
    it (where it was published, or why not); they are not written to ``selected.json``.
    """

    run_id: str
    task: str
    rule: str = RULE
    selected: str | None = None  # a strategy name; None when no candidate is eligible
    reason: str = ""  # one line
    device: str = ""  # where the latencies were measured (cpu, gpu)
    candidates: list[Candidate] = field(default_factory=list)
    pareto: list[str] = field(default_factory=list)
    location: str = field(default="", compare=False)
    refused: str = field(default="", compare=False)
    exit_code: int = field(default=0, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "run_id": self.run_id,
            "task": self.task,
            "rule": self.rule,
            "selected": self.selected,
            "reason": self.reason,
            "device": self.device,
            "candidates": [c.to_dict() for c in self.candidates],
            "pareto": list(self.pareto),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, ensure_ascii=False) + "\n"

    @classmethod
    def from_dict(cls, data: Any) -> Selection:
        """A selected.json object, type-checked: ``ValueError`` names the first bad key."""
        if not isinstance(data, dict):
            raise ValueError("selected.json: not a JSON object")
        if data.get("schema") != SCHEMA:
            raise ValueError(f"schema: {data.get('schema')!r} is not a selected.json schema this job reads ({SCHEMA})")
        body = {key: value for key, value in data.items() if key != "schema"}
        keys = {"run_id", "task", "rule", "selected", "reason", "device", "candidates", "pareto"}
        unknown = sorted(set(body) - keys)
        if unknown:
            raise ValueError(f"{unknown[0]}: not a key of selected.json schema {SCHEMA}")
        missing = sorted(keys - set(body))
        if missing:
            raise ValueError(f"{missing[0]}: missing")
        if not isinstance(body["candidates"], list):
            raise ValueError("candidates: expected a list")
        body["candidates"] = [Candidate.from_dict(c, f"candidates[{i}]") for i, c in enumerate(body["candidates"])]
        selection = _typed(cls, body, "", skip=("candidates", "location", "refused", "exit_code"))
        names = [c.strategy for c in selection.candidates]
        if len(set(names)) != len(names):
            raise ValueError("candidates: a strategy is listed twice")
        for i, c in enumerate(selection.candidates):
            negative = [k for k in ("size_bytes", "weight_bytes", "latency_ms") if (getattr(c, k) or 0) < 0]
            if negative:
                raise ValueError(f"candidates[{i}].{negative[0]}: negative")
        if selection.selected is not None and selection.selected not in names:
            raise ValueError(f"selected: {selection.selected!r} is not one of the candidates")
        if (
            selection.selected is not None
            and not next(c for c in selection.candidates if c.strategy == selection.selected).eligible
        ):
            raise ValueError(f"selected: {selection.selected!r} is not an eligible candidate")
        return selection

    def table(self) -> list[str]:
        """The candidates as plain-text columns: ``*`` marks the selected one, ``P`` the Pareto set."""
        rows = [("", "strategy", "status", "score", "delta", "latency ms", "original ms", "speedup", "size MB", "why")]
        for c in self.candidates:
            mark = ("*" if c.strategy == self.selected else "") + ("P" if c.pareto else "")
            rows.append(
                (
                    mark,
                    c.strategy,
                    c.status,
                    _fmt(c.score_points, ".2f"),
                    _fmt(c.delta_points, "+.2f"),
                    _fmt(c.latency_ms, ".1f"),
                    _fmt(c.original_latency_ms, ".1f"),
                    _fmt(c.speedup, ".2f", "x"),
                    _fmt(None if c.size_bytes is None else c.size_bytes / 1e6, ".2f"),
                    c.why,
                )
            )
        # metric names and strategies come from a shared bucket: shown escaped and bounded
        rows = [tuple(_shown(cell) for cell in row) for row in rows]
        return tables.text(rows, "<<<>>>>>><", indent="  ", rule=True)


def device_of(result: TaskResult) -> str:
    """The device a result's latency was measured on, else the one it was evaluated on."""
    if result.latency is not None:
        return result.latency.device
    return result.evaluation.device if result.evaluation else ""


def choose(task: str, run_id: str, candidates: list[Candidate], *, device: str = "") -> Selection:
    """The selection of ``task`` by ``RULE``: each candidate judged (``eligible``, ``why``),
    the fastest eligible one chosen, the Pareto set marked. Pure: the inputs are not changed."""
    judged = [_judge(c, device) for c in sorted(candidates, key=lambda c: c.strategy)]
    eligible = [c for c in judged if c.eligible]
    selected, reason = None, _none_reason(judged)
    if eligible:
        fastest = min(c.latency_ms for c in eligible)  # eligible ones have a latency
        tied = [c for c in eligible if c.latency_ms <= fastest * (1 + TIE)]
        best = min(tied, key=lambda c: (-(c.score_points if c.score_points is not None else -math.inf), c.strategy))
        selected = best.strategy
        reason = (
            f"{best.strategy}: the fastest eligible model, {best.latency_ms:.1f} ms "
            f"({best.speedup:.2f}x faster than the original{_on(device)}), "
            f"{best.metric} {_fmt(best.delta_points, '+.2f')} points"
        )
        others = [c.strategy for c in tied if c is not best]
        if others:
            reason += f"; tied within {TIE:.1%} with {', '.join(others)}, chosen by higher score, then name"
    pareto = _pareto(judged)
    for c in judged:
        c.pareto = c.strategy in pareto
    return Selection(
        run_id=run_id,
        task=task,
        selected=selected,
        reason=reason,
        device=device,
        candidates=judged,
        pareto=[c.strategy for c in sorted((c for c in judged if c.pareto), key=lambda c: (c.latency_ms, c.strategy))],
    )


def _judge(candidate: Candidate, device: str) -> Candidate:
    c = dataclasses.replace(candidate, eligible=False, pareto=False)
    if c.status == "incomplete":
        c.why = c.why or "incomplete: not published complete (still running, or its publishing broke)"
    elif c.status == "unsafe":
        c.why = c.why or "unsafe: its folder or results.json cannot be trusted"
    elif c.status == "failed":
        c.why = c.why or "failed: no compressed model"
    elif c.status == "gated":
        lost = f" ({c.delta_points:+.2f} points of {c.metric})" if c.delta_points is not None else ""
        c.why = c.why or f"gated: failed the accuracy gate{lost}"
    elif c.latency_ms is None or c.speedup is None:
        c.why = "no latency measured: cannot tell whether it is faster than the original"
    elif not Latency(speedup=c.speedup).faster():
        slower = "the same speed" if c.speedup == 1.0 else f"{1 / c.speedup:.2f}x slower" if c.speedup > 0 else "slower"
        c.why = f"not faster than the original: {slower}{_on(device)}"
    else:
        c.eligible = True
        c.why = f"eligible: passed the gate, {c.speedup:.2f}x faster{_on(device)}"
    return c


def _none_reason(judged: list[Candidate]) -> str:
    if not judged:
        return "no candidates"
    counts: dict[str, int] = {}
    for c in judged:
        kind = c.why.split(":", 1)[0]
        counts[kind] = counts.get(kind, 0) + 1
    return "no candidate is eligible: " + ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))


def _pareto(judged: list[Candidate]) -> set[str]:
    """Strategies not dominated on (score higher, latency lower, size smaller) among those with all three."""
    measured = [c for c in judged if None not in (c.score_points, c.latency_ms, c.size_bytes)]

    def dominates(a: Candidate, b: Candidate) -> bool:
        no_worse = a.score_points >= b.score_points and a.latency_ms <= b.latency_ms and a.size_bytes <= b.size_bytes
        better = a.score_points > b.score_points or a.latency_ms < b.latency_ms or a.size_bytes < b.size_bytes
        return no_worse and better

    return {c.strategy for c in measured if not any(dominates(o, c) for o in measured if o is not c)}


def _shown(cell: str, limit: int = 120) -> str:
    from job.storage.locations import escape  # light (stdlib): the one control-character escape

    text = escape(cell)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _on(device: str) -> str:
    return f" on {device}" if device else ""


def _positive(value: float | None) -> float | None:
    """A timing, or None when it was not measured (the schema's 0.0 default)."""
    return value if value is not None and value > 0 else None


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def _typed(cls: type, data: Any, where: str, skip: tuple[str, ...] = ()) -> Any:
    """``cls`` from a JSON object whose keys are exactly its fields (but ``skip``), each of its type."""
    if not isinstance(data, dict):
        raise ValueError(f"{where or cls.__name__}: expected an object")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.name not in skip]
    unknown = sorted(set(data) - set(names) - set(skip))
    if unknown:
        raise ValueError(f"{_join(where, unknown[0])}: not a key of selected.json schema {SCHEMA}")
    values = {}
    for name in names:
        if name not in data:
            raise ValueError(f"{_join(where, name)}: missing")
        values[name] = _checked(data[name], hints[name], _join(where, name))
    values.update({name: data[name] for name in skip if name in data})
    return cls(**values)


def _checked(value: Any, hint: Any, where: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (hint,) = [a for a in args if a is not type(None)]
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is list and isinstance(value, list):
        return [_checked(item, args[0], f"{where}[{i}]") for i, item in enumerate(value)]
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if hint is float and (is_int or isinstance(value, float)):
        if not math.isfinite(value):
            raise ValueError(f"{where}: not a finite number")
        return float(value)
    if (hint is int and is_int) or (hint in (str, bool) and isinstance(value, hint)):
        return value
    raise ValueError(f"{where}: expected {getattr(hint, '__name__', str(hint))}, got {type(value).__name__}")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
