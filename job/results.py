"""results.json: the typed schema of what one task's run produced, how the pipeline builds
it from the stage results, and its terminal summary.

``TaskResult`` (with ``Models``, ``ModelFigures``, ``Evaluation``, ``Gate`` and
``Latency``) is the schema, version ``SCHEMA``: the pipeline writes ``to_json()``, the
report, the pull, ``select`` and the model card read files back through ``from_dict``,
which checks every key's type and raises a ``ValueError`` naming the bad key (results.json
files come from a shared bucket). Older schemas are read too: schema 1 (before per-model
splits and serving) takes defaults for every missing key, schema 2 for the keys schema 3
added (``ADDED_IN``).

Metrics are fractions (0-1); ``delta_points`` is (after - before) x 100. Benchmark records
stay the benchmark's own dicts (``job.benchmark`` owns their shape).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import types
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from job import tables

if TYPE_CHECKING:  # the types build() takes; importing them needs paddle
    from job.benchmark import BenchResult
    from job.compress.stage import CompressResult
    from job.config import JobConfig
    from job.evaluate import EvalResult
    from job.model import ModelResult

__all__ = [
    "ADDED_IN",
    "RUNTIME_STATUSES",
    "SCHEMA",
    "STATUSES",
    "CompressedFigures",
    "Evaluation",
    "Gate",
    "Latency",
    "ModelFigures",
    "Models",
    "OriginalFigures",
    "RuntimeFigures",
    "TaskResult",
    "Timing",
    "build",
    "gate_passed",
    "summary",
    "summary_row",
    "weight_bytes",
]

SCHEMA = 4  # 2: split, examples and serving per model; 3: latency, weight_bytes; 4: runtimes
STATUSES = ("complete", "gated", "failed")
_READS = (1, 2, 3, 4)
# Keys a later schema added: a file of an earlier schema may lack them (they take defaults).
ADDED_IN = {"latency": 3, "weight_bytes": 3, "runtimes": 4}
# What a row of ``TaskResult.runtimes`` says of its model in that runtime.
RUNTIME_STATUSES = ("measured", "gated", "refused", "skipped")
# The values each of a runtimes row's names may take (the file comes from a shared bucket).
_RUNTIME_VALUES = {
    "model": ("original", "compressed"),
    "runtime": ("paddle-inference", "openvino"),
    "setting": ("default", "f32"),
    "status": RUNTIME_STATUSES,
}


def gate_passed(before: float, after: float, tolerance_points: float) -> bool:
    """The compressed model may lose at most ``tolerance_points`` (x100) of the metric."""
    return (before - after) * 100 <= tolerance_points + 1e-9


# --------------------------------------------------------------------------------------
# The schema
# --------------------------------------------------------------------------------------


@dataclass(kw_only=True)
class ModelFigures:
    """One model as measured: size, weights, and the evaluation that scored it."""

    size_bytes: int | None = None
    params: int | None = None  # weights in the program (quantization scales left out)
    precision: str = ""  # fp32, fp16 or int8: what the predictor served
    split: str = ""  # the data it was scored on (test, dev-holdout...); "" in schema 1
    examples: int | None = None  # how many examples of it; None in schema 1
    serving: str = ""  # how Paddle Inference served it (``Serving.describe()``); "" in schema 1
    weight_bytes: int | None = None  # the weights' memory as the predictor serves them; None before schema 3


@dataclass(kw_only=True)
class OriginalFigures(ModelFigures):
    source: str = ""  # given, checkpoint, trained or cache


@dataclass(kw_only=True)
class CompressedFigures(ModelFigures):
    int8_ops: dict[str, int] = field(default_factory=dict)  # ops the predictor ran in INT8, from its optimized program
    int8_scope: dict[str, Any] | None = None  # job.compress.int8.RestrictResult
    calibration: dict[str, Any] | None = None  # what PTQ read (job.compress.stage.Calibration)
    compress_seconds: float | None = None

    def linear_weights_stored(self) -> tuple[int, int]:
        """(INT8 linear weights kept in float32, those stored as INT8), from ``int8_scope``
        (``folded`` and ``stored_int8`` of ``RestrictResult``); (0, 0) when not quantized."""
        scope = self.int8_scope or {}
        folded, stored = scope.get("folded"), scope.get("stored_int8")
        folded = folded if isinstance(folded, int) and folded > 0 else 0
        stored = stored if isinstance(stored, int) and stored > 0 else 0
        return max(folded - stored, 0), stored


@dataclass(kw_only=True)
class Models:
    original: OriginalFigures | None = None
    compressed: CompressedFigures | None = None  # None when the task failed before compressing


@dataclass(kw_only=True)
class Gate:
    tolerance: float = 1.0  # points the metric may lose
    passed: bool = False


@dataclass(kw_only=True)
class Evaluation:
    """Where the gate was measured, beside the data that selected (``data.RawData.roles``)."""

    split: str = "test"
    examples: int | None = None
    source: str = ""
    selection: dict[str, Any] = field(default_factory=dict)
    held_out: str = ""
    runtime: str = "paddle-inference"
    device: str = "cpu"


@dataclass(kw_only=True)
class Timing:
    """One model timed: a batch's median and p90 latency, and examples per second."""

    precision: str = ""  # as served: fp32, fp16 or int8
    latency_ms: float = 0.0  # median of the timed runs, per batch
    p90_ms: float = 0.0
    throughput: float = 0.0  # examples per second


@dataclass(kw_only=True)
class Latency:
    """The original and the compressed model timed on the device the job serves on, in
    one process, with the benchmark's own method, at the run's batch and length."""

    device: str = "cpu"  # cpu (oneDNN) or gpu (TensorRT)
    runtime: str = "paddle-inference"
    backend: str = ""  # onednn, tensorrt
    batch_size: int = 0
    seq_len: int = 0
    threads: int = 0
    warmup: int = 0
    repeats: int = 0
    hardware: str = ""  # the CPU (and GPU) it ran on, by name
    original: Timing | None = None
    compressed: Timing | None = None
    speedup: float | None = None  # original median / compressed median: above 1 is faster

    def faster(self) -> bool:
        """Whether the compressed model was measured faster than its original."""
        return self.speedup is not None and self.speedup > 1.0


@dataclass(kw_only=True)
class RuntimeFigures:
    """One published model served by one CPU runtime with one setting, measured by the job
    in the run: its score on the gate's split and its latency at the run's batch x length.

    ``runtime`` ``paddle-inference`` is the folder as Taskflow serves it (oneDNN at its
    defaults); ``openvino`` is the same folder read by OpenVINO's Paddle frontend, with
    ``setting`` ``default`` (OpenVINO's own choice for what is not INT8: BF16 where the CPU
    has it) or ``f32`` (FP32 pinned). ``status``: ``measured`` (scored within the gate and
    timed), ``gated`` (lost more than the gate in this runtime: not offered), ``refused``
    (the runtime could not read or run the program: ``reason`` says how), ``skipped`` (the
    runtime is not installed, or not measured on this device).
    """

    model: str = "compressed"  # original or compressed
    runtime: str = "paddle-inference"  # paddle-inference or openvino
    setting: str = "default"  # default, or f32 (OpenVINO's INFERENCE_PRECISION_HINT)
    precision: str = ""  # what ran, read back from the runtime: int8, fp32, int8+bf16, bf16
    status: str = "measured"  # one of RUNTIME_STATUSES
    reason: str = ""  # one line, for every status but measured
    score_points: float | None = None  # the metric x 100 on Evaluation.split
    delta_points: float | None = None  # score_points - the original's as Paddle Inference serves it (before)
    int8_ops: int | None = None  # ops the runtime ran in INT8
    timing: Timing | None = None  # None unless measured or gated
    speedup: float | None = None  # the original on Paddle Inference (latency.original) / this timing


@dataclass(kw_only=True)
class TaskResult:
    """One task's results.json (``to_dict`` adds ``schema``)."""

    run_id: str = ""
    task: str = ""
    strategy: str = ""
    act_strategies: list[str] = field(default_factory=list)
    status: str = "complete"  # one of STATUSES
    metric: str = ""
    before: dict[str, int | float] | None = None
    after: dict[str, int | float] | None = None  # None when the task failed
    delta_points: float | None = None
    gate: Gate | None = None
    model_name: str = ""
    models: Models = field(default_factory=Models)
    evaluation: Evaluation | None = None
    durations: dict[str, float] = field(default_factory=dict)
    total_seconds: float | None = None
    patches: list[str] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    hardware: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    config_fingerprint: str = ""
    benchmark: list[dict[str, Any]] = field(default_factory=list)  # job.benchmark's records, as they are
    latency: Latency | None = None  # None: not measured (Benchmark.enabled false, a failed task, schema < 3)
    runtimes: list[RuntimeFigures] = field(default_factory=list)  # CPU runtimes (Benchmark.runtimes); schema 4
    created: str = ""
    error: str = ""  # why a failed task failed

    def score(self, which: str) -> float | None:
        """The metric of ``before`` or ``after`` as a 0-1 fraction, or None if not recorded."""
        values = self.before if which == "before" else self.after
        value = (values or {}).get(self.metric)
        return None if value is None else float(value)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, **asdict(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, ensure_ascii=False) + "\n"

    @classmethod
    def from_dict(cls, data: Any) -> TaskResult:
        """A results.json object, type-checked: ``ValueError`` names the first bad key.
        Schema 2 must hold every key and no other; schema 1 (or none) takes defaults for
        missing keys and ignores unknown ones (older writers)."""
        if not isinstance(data, dict):
            raise ValueError(f"not a JSON object but {_kind(data)}")
        schema = data.get("schema", 1)
        if not _is_int(schema) or schema not in _READS:
            raise ValueError(f"schema: {schema!r} is not a results.json schema this job reads ({_READS})")
        body = {key: value for key, value in data.items() if key != "schema"}
        if schema == 1 and not body.get("model_name"):
            body["model_name"] = _v1_model_name(body)
        result = _object(cls, body, "", strict=schema >= 2, schema=schema)
        for key in ("task", "strategy"):
            if not getattr(result, key):
                raise ValueError(f"{key}: missing or empty")
        if result.status not in STATUSES:
            raise ValueError(f"status: {result.status!r} is not one of {', '.join(STATUSES)}")
        for i, row in enumerate(result.runtimes):
            for key, known in _RUNTIME_VALUES.items():
                if getattr(row, key) not in known:
                    raise ValueError(f"runtimes[{i}].{key}: {getattr(row, key)!r} is not one of {', '.join(known)}")
        return result


def _v1_model_name(data: dict[str, Any]) -> str:
    """Schema 1 files written before ``model_name``: the model folder's name, else the teacher's shape."""
    config = data.get("config") if isinstance(data.get("config"), dict) else {}
    model_dir = (config.get("Global") or {}).get("model_dir") if isinstance(config.get("Global"), dict) else ""
    if isinstance(model_dir, str) and model_dir.rstrip("/"):
        return model_dir.rstrip("/").rsplit("/", 1)[-1]
    shape = (config.get("Teacher") or {}).get("shape") if isinstance(config.get("Teacher"), dict) else None
    return shape if isinstance(shape, str) and shape else "unknown model"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _kind(value: Any) -> str:
    names = {bool: "a boolean", int: "a number", float: "a number", str: "text", list: "a list", dict: "an object"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _object(cls: type, data: Any, path: str, *, strict: bool, schema: int) -> Any:
    """``cls`` (a dataclass of this schema) from a JSON object, each field checked; a key
    added after the file's ``schema`` may be missing."""
    if not isinstance(data, dict):
        raise ValueError(f"{path or 'results.json'}: expected an object, got {_kind(data)}")
    if strict:
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"{_join(path, unknown[0])}: not a key of results.json schema {SCHEMA}")
    hints = typing.get_type_hints(cls)
    values = {}
    for item in dataclasses.fields(cls):
        where = _join(path, item.name)
        if item.name not in data:
            if strict and ADDED_IN.get(item.name, 0) <= schema:
                raise ValueError(f"{where}: missing")
            continue
        values[item.name] = _value(data[item.name], hints[item.name], where, strict=strict, schema=schema)
    return cls(**values)


def _value(value: Any, hint: Any, path: str, *, strict: bool, schema: int) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        others = [a for a in args if a is not type(None)]
        if len(others) == 1:  # X | None: X's own message names the bad key inside
            return _value(value, others[0], path, strict=strict, schema=schema)
        for arg in others:
            try:
                return _value(value, arg, path, strict=strict, schema=schema)
            except ValueError:
                continue
        raise ValueError(f"{path}: expected {_expected(hint)}, got {_kind(value)}")
    if dataclasses.is_dataclass(hint):
        return _object(hint, value, path, strict=strict, schema=schema)
    if origin is list:
        if not isinstance(value, list):
            raise ValueError(f"{path}: expected a list, got {_kind(value)}")
        return [_value(item, args[0], f"{path}[{i}]", strict=strict, schema=schema) for i, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{path}: expected an object, got {_kind(value)}")
        return {
            key: _value(item, args[1], _join(path, key), strict=strict, schema=schema) for key, item in value.items()
        }
    if hint is float and (_is_int(value) or isinstance(value, float)):
        return float(value)
    if (hint is int and _is_int(value)) or (hint in (str, bool) and isinstance(value, hint)):
        return value
    raise ValueError(f"{path}: expected {_expected(hint)}, got {_kind(value)}")


def _expected(hint: Any) -> str:
    args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    if float in args:  # an int is a number too
        args = [a for a in args if a is not int]
    names = {int: "an integer", float: "a number", str: "text", bool: "a boolean"}
    return " or ".join(dict.fromkeys(names.get(a, getattr(a, "__name__", "an object")) for a in args))


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


# --------------------------------------------------------------------------------------
# Built by the pipeline
# --------------------------------------------------------------------------------------


def build(
    *,
    cfg: JobConfig,
    built: ModelResult,
    compressed: CompressResult,
    before: EvalResult,
    after: EvalResult,
    durations: dict[str, float],
    bench: BenchResult | None,
    total_seconds: float,
    roles: dict[str, dict[str, Any]] | None = None,
    latency: Latency | None = None,
    runtimes: list[RuntimeFigures] | None = None,
) -> TaskResult:
    """The task's result from the stage results. ``ValueError`` (an internal error) when the
    original and the compressed model were not scored on the same split and examples, or
    the gate's data is not what the evaluation saw."""
    from job.program import model_params
    from job.runtime import hardware, versions

    roles = roles or {}
    if (before.split, before.examples) != (after.split, after.examples):
        raise ValueError(
            f"the original was scored on {before.split} ({before.examples} examples) but the compressed model on "
            f"{after.split} ({after.examples} examples): the gate compares like with like only"
        )
    gate = roles.get("gate", {"split": "test"})
    if gate.get("examples") not in (None, after.examples):
        raise ValueError(f"the gate split has {gate['examples']} examples but the evaluation saw {after.examples}")
    passed = gate_passed(before.score, after.score, cfg.Job.gate_tolerance)
    return TaskResult(
        run_id=cfg.Job.run_id,
        task=cfg.task,
        strategy=cfg.strategy,
        act_strategies=list(compressed.act_strategies),
        status="complete" if passed else "gated",
        metric=before.metric,
        before=dict(before.values),
        after=dict(after.values),
        delta_points=round((after.score - before.score) * 100, 4),
        gate=Gate(tolerance=float(cfg.Job.gate_tolerance), passed=passed),
        model_name=model_name(cfg, built),
        models=Models(
            original=OriginalFigures(
                size_bytes=built.model.size_bytes(),
                params=model_params(built.model),
                **_measured(before, roles),
                weight_bytes=weight_bytes(built.model),
                source=built.source,
            ),
            compressed=CompressedFigures(
                size_bytes=compressed.model.size_bytes(),
                params=model_params(compressed.model),
                **_measured(after, roles),
                weight_bytes=weight_bytes(compressed.model),
                int8_ops=dict(after.int8_ops),
                int8_scope=asdict(compressed.int8_scope) if compressed.int8_scope else None,
                calibration=asdict(compressed.calibration) if compressed.calibration else None,
                compress_seconds=round(compressed.seconds, 1),
            ),
        ),
        evaluation=Evaluation(
            split=gate["split"],
            examples=after.examples,
            source=gate.get("source", ""),
            selection=dict(roles.get("selection", {})),
            held_out=gate.get("held_out", ""),
            device=cfg.Job.device,
        ),
        durations=dict(durations),
        total_seconds=round(total_seconds, 1),
        patches=list(compressed.patches),
        versions=versions(),
        hardware=hardware(),
        config=_without_url_credentials(cfg.to_dict()),
        config_fingerprint=cfg.fingerprint(),
        benchmark=list(bench.records if bench else []),
        latency=latency,
        runtimes=list(runtimes or []),
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),  # noqa: UP017 - 3.10 image
    )


def weight_bytes(model: Any) -> int:
    """Bytes of the weights a model's predictor loads: the data of every tensor of its
    parameter file, in the type the file stores it (float32, or int8 where weights are
    stored quantized), read by ``job.program.read_params`` (headers left out). INT8-stored
    weights count four bytes each: predictors dequantize them to float32 when they load."""
    from job.program import read_params

    return sum(len(t.data) * (4 if t.numpy_dtype == "i1" else 1) for t in read_params(model.params))


def _measured(result: EvalResult, roles: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A model's evaluation figures: the precision and serving its predictor used, and the
    data it scored, named as the data stage names its role (test may be dev-holdout)."""
    role = {"test": "gate", "dev": "selection"}.get(result.split)
    split = roles.get(role, {}).get("split", result.split) if role else result.split
    return {"precision": result.precision, "split": split, "examples": result.examples, "serving": result.serving}


def _without_url_credentials(value: Any) -> Any:
    """The config as published: a ``user:password@`` in any URL (an endpoint, a model URI)
    is hidden, since results.json lands in a bucket others read."""
    from job.storage.scrub import scrub_url

    if isinstance(value, dict):
        return {key: _without_url_credentials(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_url_credentials(item) for item in value]
    return scrub_url(value) if isinstance(value, str) else value


def model_name(cfg: JobConfig, built: ModelResult) -> str:
    """What the reports call the model: the teacher's shape, else the model folder's name."""
    if built.source != "given":
        return cfg.Teacher.shape
    return Path(cfg.Global.model_dir.rstrip("/")).name or cfg.Global.model_dir


# --------------------------------------------------------------------------------------
# The terminal summary
# --------------------------------------------------------------------------------------


def _fmt_seconds(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def summary(result: TaskResult, dest: str) -> str:
    """A short table for the terminal: metric, size and precision before and after."""
    before, after = result.before or {}, result.after or {}
    original, compressed = result.models.original, result.models.compressed
    if original is None or compressed is None or result.gate is None or result.evaluation is None:
        raise ValueError("summary() is for a task that ran to the gate (both models measured)")
    keys = [result.metric] + [k for k in ("precision", "recall") if k in before]
    rows = [("", "original", "compressed")]
    for key in keys:
        rows.append((key, f"{before[key] * 100:.2f}", f"{after[key] * 100:.2f}"))
    rows.append(("model size", _mb(original.size_bytes or 0), _mb(compressed.size_bytes or 0)))
    if original.params and compressed.params:
        rows.append(("parameters", f"{original.params:,}", f"{compressed.params:,}"))
    int8_ops = sum(compressed.int8_ops.values())
    rows.append(
        ("served as", original.precision, compressed.precision + (f" ({int8_ops} INT8 ops)" if int8_ops else ""))
    )
    if original.weight_bytes is not None and compressed.weight_bytes is not None:
        rows.append(("weight memory", _mb(original.weight_bytes), _mb(compressed.weight_bytes)))
    lat = result.latency
    if lat is not None:
        timings = (lat.original, lat.compressed)
        shape = f"latency ({lat.batch_size} x {lat.seq_len}, {lat.device})"
        rows.append((shape, *(f"{t.latency_ms:.1f} ms" if t else "not measured" for t in timings)))
        rows.append(("throughput", *(f"{t.throughput:.1f} /s" if t else "not measured" for t in timings)))
        rows.append(("speedup", "", "not measured" if lat.speedup is None else f"{lat.speedup:.2f}x"))
    for record in result.benchmark:
        if record.get("padding") == "max" and record.get("latency_ms"):
            label = f"latency {record['runtime']} {record['precision']} ({record['model']})"
            rows.append((label, f"{record['latency_ms']['median']:.1f} ms", ""))
    if compressed.calibration:
        rows.append(("PTQ calibration", "", f"{compressed.calibration['examples']:,} examples"))
    table = "\n".join(tables.text(rows, "<>>", indent="  "))
    verdict = "PASSED" if result.gate.passed else "FAILED"
    if lat is not None and lat.speedup is not None and not lat.faster():
        table += f"\n  not faster than the original on {lat.device} ({lat.hardware})"
    table += "".join(f"\n{line}" for line in runtime_lines(result))
    phases = ", ".join(f"{name} {_fmt_seconds(sec)}" for name, sec in result.durations.items())
    measured = f"{result.evaluation.split} ({result.evaluation.examples or 0:,} examples)"
    return (
        f"\n== {result.task} / {result.strategy} ({'+'.join(result.act_strategies)}): {result.status} ==\n"
        f"{table}\n"
        f"  {result.metric} change {result.delta_points or 0:+.2f} points on {measured}; "
        f"accuracy gate (tolerance {result.gate.tolerance:.2f}) {verdict}\n"
        f"  time {_fmt_seconds(result.total_seconds or 0)}: {phases}\n"
        f"  results: {dest}\n"
    )


def runtime_lines(result: TaskResult) -> list[str]:
    """The ``runtimes`` rows as a terminal table: each model in each CPU runtime, its score,
    change against the original as Paddle serves it, latency and speedup; why not, when not."""
    from job.terminal import escape

    if not result.runtimes:
        return []
    header = ("model", "runtime", "ran as", result.metric, "change", "latency", "speedup", "status")
    rows = [header]
    for row in result.runtimes:
        where = (
            row.runtime
            if row.setting == "default" and row.runtime == "paddle-inference"
            else (f"{row.runtime} ({row.setting})")
        )
        timing = row.timing
        rows.append(
            (
                row.model,
                where,
                row.precision or "-",
                "-" if row.score_points is None else f"{row.score_points:.2f}",
                "-" if row.delta_points is None else f"{row.delta_points:+.2f}",
                f"{timing.latency_ms:.1f} ms" if timing else "-",
                f"{row.speedup:.2f}x" if row.speedup is not None else "-",
                row.status if row.status == "measured" else f"{row.status}: {escape(row.reason, 80)}",
            )
        )
    lat = result.latency
    if not any(row.timing for row in result.runtimes):  # not timed (Benchmark.quick off): scores only
        rows = [(*row[:5], row[7]) for row in rows]
        return ["  served in each CPU runtime (same split):", *tables.text(rows, "<<<>><", indent="    ", rule=True)]
    shape = f" at {lat.batch_size} x {lat.seq_len}" if lat else ""
    return [
        f"  served in each CPU runtime (same split; latency per batch{shape}; speedup against the original as "
        "Paddle Inference serves it):",
        *tables.text(rows, "<<<>>>><", indent="    ", rule=True),
    ]


def _mb(size: int) -> str:
    return f"{size / 1e6:.2f} MB"


def summary_row(result: TaskResult, which: str) -> tuple[str, ...]:
    """One row of a run's table of strategies (``job.pipeline.strategies_table``) for the
    ``original`` or the ``compressed`` model of ``result``: name, status, metric, change
    in points, median latency, speedup, folder size, weight memory."""
    figures = result.models.original if which == "original" else result.models.compressed
    lat = result.latency
    timing = None if lat is None else (lat.original if which == "original" else lat.compressed)
    score = result.score("before" if which == "original" else "after")
    if which == "original":
        name, status, change, speedup = f"original ({result.model_name})", "", "", ""
    else:
        name, status = result.strategy, result.status
        change = "" if result.delta_points is None else f"{result.delta_points:+.2f}"
        speedup = "" if lat is None or lat.speedup is None else f"{lat.speedup:.2f}x"
    return (
        name,
        status,
        "" if score is None else f"{result.metric} {score * 100:.2f}",
        change,
        "" if timing is None else f"{timing.latency_ms:.1f} ms {timing.precision}",
        speedup,
        "" if figures is None or figures.size_bytes is None else _mb(figures.size_bytes),
        "" if figures is None or figures.weight_bytes is None else _mb(figures.weight_bytes),
    )
