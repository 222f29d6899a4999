"""Selection: which compressed model of a task to deploy, and in which runtime, by one
documented rule (``RULE``).

A candidate is a (strategy, runtime, setting): each strategy's compressed model in each CPU
runtime its ``results.json`` measured it in (``TaskResult.runtimes``, schema 4), or, for a
result without runtime rows (schema <= 3, a GPU run), the one Paddle Inference candidate of
its ``latency`` (``candidates_of``). A folder that could not be read is one candidate with
the status ``incomplete`` or ``unsafe`` (never eligible). ``choose(task, run_id,
candidates)`` is pure: it decides which candidate is eligible (and says why each is not),
picks the fastest eligible one and lists the Pareto set. ``Selection`` is ``selected.json``
(schema ``SCHEMA``; schema 1, written before runtimes, is still read); ``job.storage.selection``
reads the published folders and publishes it.

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
from job.results import RUNTIME_STATUSES, Latency, RuntimeFigures, TaskResult

__all__ = [
    "PRECISIONS",
    "RULE",
    "RUNTIMES",
    "SCHEMA",
    "SETTINGS",
    "STATUSES",
    "TIE",
    "Candidate",
    "Selection",
    "candidates_of",
    "choose",
    "device_of",
]

SCHEMA = 2  # 2: a candidate per (strategy, runtime, setting); the choice names its runtime
_READS = (1, 2)
_ADDED_IN_2 = ("runtime", "setting", "precision")
# A candidate's status: a results.json status, what its folder was (incomplete, unsafe), or
# what its runtime row says when the result itself passed (refused, skipped).
STATUSES = ("complete", "gated", "failed", "incomplete", "unsafe", "refused", "skipped")
# The values a runtime row of results.json may name (it comes from a shared bucket): anything
# else refuses the result. In preference order for ties (the runtime Taskflow serves with first).
RUNTIMES = ("paddle-inference", "openvino")
SETTINGS = ("default", "f32")
PRECISIONS = ("", "fp32", "fp16", "bf16", "int8", "int8+bf16", "int8+fp16")
_ROW_STATUS = {"measured": "complete", "gated": "gated", "refused": "refused", "skipped": "skipped"}
# Latencies within this fraction of the fastest eligible one are a tie, decided by score: a
# margin chosen (not measured) to be below what a median on a shared machine can resolve.
TIE = 0.005
RULE = (
    "candidates: each strategy's compressed model in each runtime and setting its results.json measured it in "
    "(a result without runtime rows: one paddle-inference candidate from its latency); eligible: published "
    "complete, passed the accuracy gate, its runtime row measured (not gated, refused or skipped), and faster than "
    "the original as Paddle Inference serves it on the same device (speedup above 1); selected: the eligible "
    f"candidate of lowest latency, latencies within {TIE:.1%} of the fastest tied and broken by the higher score, "
    "then by strategy name, then runtime (paddle-inference first) and setting (default first)"
)


@dataclass(kw_only=True)
class Candidate:
    """One strategy of a task in one runtime and setting, with the figures the rule and the
    Pareto set read."""

    strategy: str
    status: str  # one of STATUSES: a results.json status, what its folder was, or what its runtime row says
    runtime: str = "paddle-inference"  # one of RUNTIMES
    setting: str = "default"  # one of SETTINGS
    precision: str = ""  # what ran (one of PRECISIONS); "" when not recorded
    eligible: bool = False  # set by choose()
    why: str = ""  # one line: why it is (not) eligible
    metric: str = ""
    score_points: float | None = None  # the compressed model's metric x 100
    original_points: float | None = None
    delta_points: float | None = None
    latency_ms: float | None = None  # the compressed model's median per batch in this runtime
    original_latency_ms: float | None = None  # the original's, as Paddle Inference serves it
    speedup: float | None = None  # original median (Paddle Inference) / this median
    throughput: float | None = None  # the compressed model's examples per second
    size_bytes: int | None = None  # the compressed model's folder
    weight_bytes: int | None = None  # its weights as served
    pareto: bool = False  # set by choose()

    @property
    def key(self) -> str:
        """``strategy/runtime/setting``: what names a candidate in the Pareto list."""
        return f"{self.strategy}/{self.runtime}/{self.setting}"

    @classmethod
    def from_result(cls, result: TaskResult) -> Candidate:
        """The Paddle Inference candidate of a result's ``latency`` (what a result without
        runtime rows makes; its status taken as written; ``choose`` judges it)."""
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
            precision=_checked_value(
                compressed.precision if compressed else (figures.precision if figures else ""),
                PRECISIONS,
                "latency.compressed.precision",
            ),
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any, where: str = "candidate", *, schema: int = SCHEMA) -> Candidate:
        if schema == 1 and isinstance(data, dict):  # before runtimes: Paddle Inference, precision not recorded
            data = {"runtime": RUNTIMES[0], "setting": SETTINGS[0], "precision": "", **data}
        candidate = _typed(cls, data, where)
        known_values = (("status", STATUSES), ("runtime", RUNTIMES), ("setting", SETTINGS), ("precision", PRECISIONS))
        for key, known in known_values:
            _checked_value(getattr(candidate, key), known, f"{where}.{key}")
        return candidate


def candidates_of(result: TaskResult) -> list[Candidate]:
    """The candidates of one strategy's result: one per runtime row of its compressed model
    (``TaskResult.runtimes``), and the Paddle Inference one of its ``latency`` unless a row
    is Paddle Inference's (``default``). A row's runtime, setting, precision and status must be known values
    (``ValueError`` names the key: the file comes from a shared bucket)."""
    base = Candidate.from_result(result)
    rows = []
    for i, row in enumerate(result.runtimes):
        where = f"runtimes[{i}]"
        _checked_value(row.model, ("original", "compressed"), f"{where}.model")
        for key, known in (("runtime", RUNTIMES), ("setting", SETTINGS), ("precision", PRECISIONS)):
            _checked_value(getattr(row, key), known, f"{where}.{key}")
        _checked_value(row.status, RUNTIME_STATUSES, f"{where}.status")
        if row.model == "compressed":
            rows.append(row)
    # Paddle Inference as Taskflow serves it is the result's ``latency``: a candidate even
    # when the runtime rows leave it out.
    candidates = [] if any((r.runtime, r.setting) == (RUNTIMES[0], SETTINGS[0]) for r in rows) else [base]
    for row in rows:
        timing = row.timing
        candidate = dataclasses.replace(
            base,
            runtime=row.runtime,
            setting=row.setting,
            precision=row.precision,
            score_points=row.score_points,
            delta_points=row.delta_points,
            latency_ms=_positive(timing.latency_ms) if timing else None,
            throughput=_positive(timing.throughput) if timing else None,
            speedup=row.speedup,
        )
        if base.status == "complete" and row.status != "measured":
            candidate.status = _ROW_STATUS[row.status]
            candidate.why = _row_why(row, result.metric)
        candidates.append(candidate)
    keys = [c.key for c in candidates]
    if len(set(keys)) != len(keys):
        raise ValueError("runtimes: a (runtime, setting) of the compressed model is listed twice")
    return candidates


def _row_why(row: RuntimeFigures, metric: str) -> str:
    where = f"{row.runtime} ({row.setting})"
    reason = f": {row.reason}" if row.reason else ""
    if row.status == "gated":
        lost = f" ({row.delta_points:+.2f} points of {metric})" if row.delta_points is not None else ""
        return f"gated: lost more than the gate in {where}{lost}{reason}"
    if row.status == "refused":
        return f"refused: {where} could not read or run the program{reason}"
    return f"skipped: not measured in {where}{reason}"


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
    runtime: str = ""  # the runtime to serve the selected model with (RUNTIMES); "" when none selected
    setting: str = ""  # and its setting (SETTINGS)
    precision: str = ""  # what ran in it (PRECISIONS)
    reason: str = ""  # one line
    device: str = ""  # where the latencies were measured (cpu, gpu)
    candidates: list[Candidate] = field(default_factory=list)
    pareto: list[str] = field(default_factory=list)
    location: str = field(default="", compare=False)
    refused: str = field(default="", compare=False)
    exit_code: int = field(default=0, compare=False)
    read_schema: int = field(default=SCHEMA, compare=False)  # the schema of the file it was read from

    @property
    def chosen(self) -> Candidate | None:
        """The selected candidate."""
        key = f"{self.selected}/{self.runtime}/{self.setting}"
        return next((c for c in self.candidates if c.key == key), None) if self.selected is not None else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "run_id": self.run_id,
            "task": self.task,
            "rule": self.rule,
            "selected": self.selected,
            "runtime": self.runtime,
            "setting": self.setting,
            "precision": self.precision,
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
        schema = data.get("schema")
        if schema not in _READS or isinstance(schema, bool):
            raise ValueError(f"schema: {schema!r} is not a selected.json schema this job reads {_READS}")
        body = {key: value for key, value in data.items() if key != "schema"}
        keys = {"run_id", "task", "rule", "selected", "reason", "device", "candidates", "pareto"}
        if schema >= 2:
            keys |= set(_ADDED_IN_2)
        unknown = sorted(set(body) - keys)
        if unknown:
            raise ValueError(f"{unknown[0]}: not a key of selected.json schema {schema}")
        missing = sorted(keys - set(body))
        if missing:
            raise ValueError(f"{missing[0]}: missing")
        if not isinstance(body["candidates"], list):
            raise ValueError("candidates: expected a list")
        body["candidates"] = [
            Candidate.from_dict(c, f"candidates[{i}]", schema=schema) for i, c in enumerate(body["candidates"])
        ]
        skip = ("candidates", "location", "refused", "exit_code", "read_schema")
        if schema == 1:  # before runtimes: a selected model was served by Paddle Inference
            named = body["selected"] is not None
            body["runtime"], body["setting"] = (RUNTIMES[0], SETTINGS[0]) if named else ("", "")
            body["precision"] = ""
        selection = _typed(cls, body, "", skip=skip)
        selection.read_schema = schema
        keys_seen = [c.key for c in selection.candidates]
        if len(set(keys_seen)) != len(keys_seen):
            raise ValueError("candidates: a (strategy, runtime, setting) is listed twice")
        for i, c in enumerate(selection.candidates):
            negative = [k for k in ("size_bytes", "weight_bytes", "latency_ms") if (getattr(c, k) or 0) < 0]
            if negative:
                raise ValueError(f"candidates[{i}].{negative[0]}: negative")
        if selection.selected is None:
            if any((selection.runtime, selection.setting, selection.precision)):
                raise ValueError("runtime: names a runtime while nothing is selected")
            return selection
        for key, known in (("runtime", RUNTIMES), ("setting", SETTINGS), ("precision", PRECISIONS)):
            _checked_value(getattr(selection, key), known, key)
        chosen = selection.chosen
        if chosen is None:
            raise ValueError(
                f"selected: {selection.selected!r} on {selection.runtime!r} ({selection.setting!r}) "
                "is not one of the candidates"
            )
        if not chosen.eligible:
            raise ValueError(f"selected: {selection.selected!r} is not an eligible candidate")
        if chosen.precision != selection.precision:
            raise ValueError(f"precision: {selection.precision!r} is not the selected candidate's")
        return selection

    def table(self) -> list[str]:
        """The candidates as plain-text columns: ``*`` marks the selected one, ``P`` the Pareto set."""
        rows = [
            (
                "",
                "strategy",
                "runtime",
                "setting",
                "precision",
                "status",
                "score",
                "delta",
                "latency ms",
                "original ms",
                "speedup",
                "size MB",
                "why",
            )
        ]
        chosen = self.chosen
        for c in self.candidates:
            mark = ("*" if c is chosen else "") + ("P" if c.pareto else "")
            rows.append(
                (
                    mark,
                    c.strategy,
                    c.runtime,
                    c.setting,
                    c.precision or "-",
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
        return tables.text(rows, "<<<<<<>>>>>><", indent="  ", rule=True)


def device_of(result: TaskResult) -> str:
    """The device a result's latency was measured on, else the one it was evaluated on."""
    if result.latency is not None:
        return result.latency.device
    return result.evaluation.device if result.evaluation else ""


def choose(task: str, run_id: str, candidates: list[Candidate], *, device: str = "") -> Selection:
    """The selection of ``task`` by ``RULE``: each candidate judged (``eligible``, ``why``),
    the fastest eligible one chosen, the Pareto set marked. Pure: the inputs are not changed."""
    judged = [_judge(c, device) for c in sorted(candidates, key=_order)]
    eligible = [c for c in judged if c.eligible]
    best, reason = None, _none_reason(judged)
    if eligible:
        fastest = min(c.latency_ms for c in eligible)  # eligible ones have a latency
        tied = [c for c in eligible if c.latency_ms <= fastest * (1 + TIE)]
        score = lambda c: -(c.score_points if c.score_points is not None else -math.inf)  # noqa: E731
        best = min(tied, key=lambda c: (score(c), *_order(c)))
        reason = (
            f"{best.strategy} served by {best.runtime} ({best.setting}, {best.precision or 'precision not recorded'}): "
            f"the fastest eligible model, {best.latency_ms:.1f} ms "
            f"({best.speedup:.2f}x faster than the original on paddle-inference{_on(device)}), "
            f"{best.metric} {_fmt(best.delta_points, '+.2f')} points"
        )
        others = [c.key for c in tied if c is not best]
        if others:
            reason += f"; tied within {TIE:.1%} with {', '.join(others)}, chosen by higher score, then name"
    pareto = _pareto(judged)
    for c in judged:
        c.pareto = c.key in pareto
    return Selection(
        run_id=run_id,
        task=task,
        selected=best.strategy if best else None,
        runtime=best.runtime if best else "",
        setting=best.setting if best else "",
        precision=best.precision if best else "",
        reason=reason,
        device=device,
        candidates=judged,
        pareto=[c.key for c in sorted((c for c in judged if c.pareto), key=lambda c: (c.latency_ms, *_order(c)))],
    )


def _order(c: Candidate) -> tuple[str, int, int]:
    """Name order: strategy, then runtime and setting in preference order (unknown ones last)."""
    rank = lambda value, known: known.index(value) if value in known else len(known)  # noqa: E731
    return c.strategy, rank(c.runtime, RUNTIMES), rank(c.setting, SETTINGS)


def _judge(candidate: Candidate, device: str) -> Candidate:
    c = dataclasses.replace(candidate, eligible=False, pareto=False)
    if c.status == "incomplete":
        c.why = c.why or "incomplete: not published complete (still running, or its publishing broke)"
    elif c.status == "unsafe":
        c.why = c.why or "unsafe: its folder or results.json cannot be trusted"
    elif c.status == "failed":
        c.why = c.why or "failed: no compressed model"
    elif c.status in ("refused", "skipped"):
        c.why = c.why or f"{c.status}: in {c.runtime} ({c.setting})"
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
    """Candidate keys not dominated on (score higher, latency lower, size smaller) among those with all three."""
    measured = [c for c in judged if None not in (c.score_points, c.latency_ms, c.size_bytes)]

    def dominates(a: Candidate, b: Candidate) -> bool:
        no_worse = a.score_points >= b.score_points and a.latency_ms <= b.latency_ms and a.size_bytes <= b.size_bytes
        better = a.score_points > b.score_points or a.latency_ms < b.latency_ms or a.size_bytes < b.size_bytes
        return no_worse and better

    return {c.key for c in measured if not any(dominates(o, c) for o in measured if o is not c)}


def _shown(cell: str, limit: int = 120) -> str:
    from job.storage.locations import escape  # light (stdlib): the one control-character escape

    text = escape(cell)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _on(device: str) -> str:
    return f" on {device}" if device else ""


def _positive(value: float | None) -> float | None:
    """A timing, or None when it was not measured (the schema's 0.0 default)."""
    return value if value is not None and value > 0 else None


def _checked_value(value: Any, known: tuple[str, ...], where: str) -> Any:
    """``value`` when it is one of ``known``, else ``ValueError`` naming ``where`` (values come from a bucket)."""
    if value not in known:
        from job.storage.locations import escape

        shown = escape(repr(value))[:80] if isinstance(value, str) else type(value).__name__
        raise ValueError(f"{where}: {shown} is not one of {', '.join(k or '(empty)' for k in known)}")
    return value


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
        raise ValueError(f"{_join(where, unknown[0])}: not a key of a selected.json candidate")
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
