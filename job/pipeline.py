"""The job: load config -> pull inputs -> data -> model -> compress -> evaluate -> gate ->
benchmark -> publish. Each stage is a function of its module taking the typed config;
this module only sequences them, times them and reports."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from job import machine, storage, tables
from job.config import JobConfig
from job.errors import ConfigError, ExitCode, GateError, InputError, JobError
from job.logs import phase
from job.storage import staging
from job.storage.locations import escape  # job.terminal.escape once merged

__all__ = [
    "Outcome",
    "Prepared",
    "Todo",
    "cache_dir",
    "evaluate_only",
    "main",
    "prepare",
    "run_strategy",
    "save_teacher",
    "strategies_table",
]

if TYPE_CHECKING:  # importing them needs paddle
    from job.evaluate import EvalResult
    from job.model import ModelFiles
    from job.results import Latency, RuntimeFigures, TaskResult, Timing

log = logging.getLogger("job")

# The committed UIE-base record the strategies table points to when compression did not pay
# (a test holds that the file exists).
BENCH_RECORD = "records/bench-uie-base-2026-12-08-amd-epyc.json"


def cache_dir(cfg: JobConfig) -> Path:
    """Where built data, teachers and pulled inputs are kept between runs."""
    root = cfg.Job.cache_dir or os.environ.get("ACT_JOB_CACHE") or str(Path.home() / ".cache" / "act-job")
    path = Path(root).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _pull_inputs(cfg: JobConfig, store: storage.Storage, cache: Path) -> tuple[Path | None, dict[str, str] | None]:
    """Model folder and data files as local paths (s3:// inputs are fetched and verified)."""
    inputs = cache / "inputs"
    model = None
    if cfg.Global.model_dir:
        model = storage.fetch(store, cfg.Global.model_dir, inputs)
    files = None
    if cfg.Global.dataset == "local":
        from job.data import split_sources

        sources = split_sources(cfg.Global)
        fetched = {uri: str(storage.fetch(store, uri, inputs)) for uri in dict.fromkeys(sources.values())}
        files = {split: fetched[uri] for split, uri in sources.items()}
    return model, files


def _pull_teacher(cfg: JobConfig, store: storage.Storage, cache: Path) -> ModelFiles | None:
    """The distillation teacher when ``Distillation.teacher_model_dir`` names one (else ACT
    distils from the original): a local path or an s3:// folder, fetched and verified like
    the model, its files checked before any heavy work."""
    from job.compress import distillation_teacher

    if cfg.Distillation is None or not cfg.Distillation.teacher_model_dir:
        return None
    return distillation_teacher(cfg, storage.fetch(store, cfg.Distillation.teacher_model_dir, cache / "inputs"))


def _input_uris(cfg: JobConfig) -> list[str]:
    """Every input the results depend on, by URI (local path or s3://)."""
    uris = [cfg.Global.model_dir, cfg.Teacher.checkpoint]
    if cfg.Distillation is not None and cfg.Distillation.teacher_model_dir:
        uris.append(cfg.Distillation.teacher_model_dir)
    if cfg.Global.dataset == "local":
        from job.data import split_sources

        uris += list(split_sources(cfg.Global).values())
    return [uri for uri in uris if uri]


@dataclass
class Prepared:
    store: storage.Storage
    cache: Path
    built: Any  # model.ModelResult
    task: Any  # tasks.Task
    roles: dict[str, dict[str, Any]]  # which data selected, which data gates (data.RawData.roles)
    teacher: ModelFiles | None = None  # Distillation.teacher_model_dir, pulled and checked


def prepare(cfg: JobConfig, durations: dict[str, float], store: storage.Storage | None = None) -> Prepared:
    """Inputs, data, model and encoded task: what every command starts from."""
    from job import data, model
    from job.runtime import set_threads

    threads = set_threads(cfg.Job.threads)
    log.info("task %s, strategies %s, %d CPU threads", cfg.task, ", ".join(cfg.strategies), threads)
    cache = cache_dir(cfg)
    store = store or storage.Storage(cfg.Storage)
    with phase("inputs", durations):
        given_model, files = _pull_inputs(cfg, store, cache)
        teacher = _pull_teacher(cfg, store, cache)
    with phase("data", durations):
        raw = data.read(cfg, cache, files)
    with phase("model", durations):
        built = model.run(cfg, raw, cache, given_model)
        log.info("model: %s", built.summary())
    with phase("encode", durations):
        tokenizer = built.tokenizer if built.tokenizer is not None else model.load_tokenizer(built.model.folder)
        task = data.encode(raw, tokenizer, cfg.Global.max_seq_length, skip_bad=cfg.Global.skip_bad_records)
    return Prepared(store, cache, built, task, raw.roles, teacher)


def _evaluate(cfg: JobConfig, model, task, split: str = "test", desc: str = "evaluate"):
    """A model's metric through Paddle Inference, served as the config says."""
    from job import evaluate

    return evaluate.evaluate(model, task, split, serving=_serving(cfg), batch_size=cfg.Global.batch_size, desc=desc)


def _serving(cfg: JobConfig):
    """How the job serves a model (``job.evaluate.Serving``): the gate's evaluation and the benchmark's Paddle rows."""
    from job import evaluate

    return evaluate.Serving(device=cfg.Job.device, threads=cfg.Job.threads)


def evaluate_only(cfg: JobConfig) -> int:
    """``--eval``: the model's metric on the test split through Paddle Inference."""

    durations: dict[str, float] = {}
    prepared = prepare(cfg, durations)
    with phase("evaluate", durations):
        result = _evaluate(cfg, prepared.built.model, prepared.task)
    print(_metric_lines("model", result))
    return 0


def save_teacher(cfg: JobConfig, out: Path) -> int:
    """``python -m job teacher``: train the teacher and save it as a checkpoint folder."""

    if cfg.Global.model_dir or cfg.Teacher.checkpoint:
        raise ConfigError(f"{cfg.source}: Global.model_dir and Teacher.checkpoint must be empty to train a teacher")
    durations: dict[str, float] = {}
    prepared = prepare(cfg, durations)
    built, task = prepared.built, prepared.task
    checkpoint = built.model.folder / "checkpoint"
    if not checkpoint.is_dir():
        raise InputError(
            f"{built.model.folder}: the cached teacher has no checkpoint folder; clear the cache and retrain"
        )
    with phase("evaluate", durations):
        result = _evaluate(cfg, built.model, task)
    out.mkdir(parents=True, exist_ok=True)
    for path in checkpoint.iterdir():
        shutil.copy2(path, out / path.name)
    meta = json.loads((built.model.folder / "teacher.json").read_text(encoding="utf-8"))
    (out / "README.md").write_text(_teacher_readme(cfg, out, result, meta), encoding="utf-8")
    print(_metric_lines("teacher", result))
    print(f"saved teacher checkpoint to {out}")
    return 0


def _teacher_readme(cfg: JobConfig, out: Path, result, meta: dict) -> str:
    train = meta.get("train") or {}
    sums = (out / "SHA256SUMS").read_text(encoding="utf-8")
    rows = train.get("history", [])
    metrics = [key for key in (rows[0] if rows else {}) if key.startswith("dev_") and isinstance(rows[0][key], float)]
    headers = ["step", "loss", *(key.replace("_", " ") for key in metrics)]
    history = "\n".join(
        tables.markdown(
            headers,
            [[str(h["step"]), f"{h['loss']:.4f}", *(f"{h[key]:.4f}" for key in metrics)] for h in rows],
            ["---"] * len(headers),
        )
    )
    shown = ", ".join(f"{k} {v:.4f}" for k, v in result.values.items() if isinstance(v, float))
    return f"""# Teacher checkpoint: {cfg.Teacher.shape} on the task {cfg.task}

Trained by this project's long preset, reproducible with:

    python -m job teacher --config {cfg.source} --out {out}

Seed {cfg.Job.seed}; {meta.get("params", 0):,} parameters; {train.get("steps", 0)} steps in
{train.get("seconds", 0) / 60:.1f} minutes on {cfg.Job.threads or machine.cpu_count()} CPU thread(s); best dev
{result.metric} at step {train.get("best_step", 0)}.

Test split, through Paddle Inference (FP32), {result.examples} examples: {shown}.

{history}

SHA-256 of the files (also in SHA256SUMS):

```
{sums.strip()}
```
"""


def _metric_lines(label: str, result) -> str:
    shown = ", ".join(f"{k} {v * 100:.2f}" for k, v in result.values.items() if isinstance(v, float))
    return f"{label} ({result.precision}, {result.examples} test examples): {shown}"


@dataclass
class Todo:
    """One strategy of the run still to do: its own config, where it publishes, and the
    fingerprint its completed folder carries."""

    cfg: JobConfig
    dest: str
    fingerprint: str


@dataclass
class Outcome:
    """What became of one strategy: its result (None when it was already complete or
    crashed), and for a crash the one-line error and its exit code."""

    strategy: str
    dest: str
    result: Any = None  # results.TaskResult
    state: str = "complete"  # complete, gated, failed, or done (already complete: skipped)
    error: str = ""
    exit_code: int = 0


def main(cfg: JobConfig) -> int:
    """Prepare once (inputs, data, model, the original's evaluation and timing), then
    compress, evaluate, gate, time and publish each strategy in turn; summarise."""
    started = time.perf_counter()
    if cfg.strategies == ["none"]:
        return evaluate_only(cfg)
    store = storage.Storage(cfg.Storage)
    todo, outcomes = _plan(cfg, store)
    if not todo:
        return _select(cfg, store)
    durations: dict[str, float] = {}
    prepared = prepare(cfg, durations, store)
    from job.compress import check_distillation_nodes  # imports paddle, as prepare did

    for item in todo:
        check_distillation_nodes(item.cfg, prepared.built.model, prepared.teacher)
    with phase("evaluate original", durations):
        before = _evaluate(cfg, prepared.built.model, prepared.task, desc="original")
    _check_origin_metric(cfg, prepared.built, prepared.task)
    for item in todo:
        _check_search_can_run(item.cfg, prepared.built, prepared.task)
    original_timing = _time_original(cfg, prepared, durations)
    original_rows = _runtime_rows(
        cfg, prepared, durations, "original", prepared.built.model, before, original_timing, before
    )
    shared_seconds = time.perf_counter() - started
    for item in todo:
        try:
            result = run_strategy(
                item, prepared, before, original_timing, dict(durations), shared_seconds, original_rows
            )
        except Exception as exc:
            if len(cfg.strategies) == 1:
                raise  # one strategy: its errors are the run's, as before
            # One strategy's crash does not stop the next.
            code = exc.exit_code if isinstance(exc, JobError) else ExitCode.INTERNAL
            log.error("strategy %s failed: %s", item.cfg.strategy, _one_line(exc), exc_info=log.isEnabledFor(10))
            outcomes.append(Outcome(item.cfg.strategy, item.dest, None, "failed", _one_line(exc), int(code)))
            continue
        outcomes.append(Outcome(item.cfg.strategy, item.dest, result, result.status))
    _after_strategies(cfg, prepared, outcomes)
    return _exit_code(cfg, outcomes) or _select(cfg, store)


def _plan(cfg: JobConfig, store: storage.Storage) -> tuple[list[Todo], list[Outcome]]:
    """The strategies still to do, and those already complete for this config (skipped).
    A folder completed with another config is refused before any work (``ConfigError``)."""
    todo, done = [], []
    for name in cfg.strategies:
        one = cfg.for_strategy(name)
        dest = storage.task_prefix(cfg.Job.output, cfg.Job.run_id, cfg.task, name)
        # The inputs' content is part of it: a changed model or data file at the same URI is
        # a new run, not an "already complete" skip.
        fingerprint = storage.run_fingerprint(store, one.fingerprint(), _input_uris(one))
        state = storage.completion_state(store, dest, fingerprint)
        if state == "complete" and not cfg.Job.force:
            log.info("%s is already complete for this config; nothing to do (use --force to redo it)", dest)
            staging.clear(store, dest)  # a run killed between publish and its clear left it behind
            print(f"already complete: {dest}")
            done.append(Outcome(name, dest, None, "done"))
            continue
        if state == "config_changed" and not cfg.Job.force:
            raise ConfigError(
                f"{dest} holds a completed run made with a different config or different inputs; "
                "choose another Job.run_id, or --force to replace it"
            )
        todo.append(Todo(one, dest, fingerprint))
    return todo, done


def run_strategy(
    item: Todo,
    prepared: Prepared,
    before: EvalResult,
    original_timing: Timing | None,
    durations: dict[str, float],
    shared_seconds: float,
    original_rows: list[RuntimeFigures] | None = None,
) -> TaskResult:
    """One strategy: compress, evaluate, time, serve in the CPU runtimes, write and publish
    its folder, print its summary; returns its result, ``gated`` ones included (published
    without ``_SUCCESS``). ``durations`` and ``shared_seconds`` hold the preparation's share
    of its time; ``original_rows`` the original's rows in the runtimes (``job.serve``)."""
    from job import compress, results

    cfg, dest = item.cfg, item.dest
    started = time.perf_counter()
    built, task = prepared.built, prepared.task
    log.info("strategy %s -> %s", cfg.strategy, dest)
    with tempfile.TemporaryDirectory(prefix="act-job-", dir=os.environ.get("TMPDIR")) as tmp:
        workdir = Path(tmp)

        def compress_and_evaluate():
            with phase("compress", durations):
                compressed = compress.run(cfg, built.model, task, workdir, teacher=prepared.teacher)
            with phase("evaluate compressed", durations):
                return compressed, _evaluate(cfg, compressed.model, task, desc="compressed")

        # Staged in the output after an earlier run of the same fingerprint was interrupted.
        compressed, after = staging.compressed_or_run(
            prepared.store, dest, item.fingerprint, workdir, compress_and_evaluate, reuse=not cfg.Job.force
        )
        latency = None
        if cfg.Benchmark.quick:
            with phase("latency", durations):
                latency = _latency(cfg, prepared, original_timing, compressed.model)
        compressed_rows = _runtime_rows(
            cfg,
            prepared,
            durations,
            "compressed",
            compressed.model,
            after,
            original_timing,
            before,
            latency.compressed if latency else None,
        )
        bench = None
        if cfg.Benchmark.enabled:
            from job import benchmark

            with phase("benchmark", durations):
                bench_cfg = dataclasses.replace(cfg.Benchmark, device=cfg.Job.device)  # the device the gate measured on
                bench = benchmark.run(
                    bench_cfg, {"original": built.model, "compressed": compressed.model}, task, serving=_serving(cfg)
                )
        out = workdir / "out"
        outcome = results.build(
            cfg=cfg,
            built=built,
            compressed=compressed,
            before=before,
            after=after,
            durations=durations,
            bench=bench,
            total_seconds=shared_seconds + time.perf_counter() - started,
            roles=prepared.roles,
            latency=latency,
            runtimes=[*(original_rows or []), *compressed_rows],
        )
        _write_output(out, compressed.model, built.model, outcome)
        with phase("publish", durations):
            published = storage.publish(prepared.store, out, dest, fingerprint=item.fingerprint, status=outcome.status)
        log.info("published: %s", published.summary())
    try:
        staging.clear(prepared.store, dest)
    except JobError as exc:  # the result is published; what staging is left is invisible to pull
        log.warning("%s: staging not removed: %s", dest, exc)
    print(results.summary(outcome, dest))
    return outcome


def _time_original(cfg: JobConfig, prepared: Prepared, durations: dict[str, float]) -> Timing | None:
    """The original timed once per run, as served on Job.device, for every strategy's
    latency (a ``results.Timing``); None when ``Benchmark.quick`` is off or it could not
    be timed (the record's reason is logged)."""
    if not cfg.Benchmark.quick:
        return None
    from job.serve import timing_of

    with phase("latency original", durations):
        return timing_of(_quick_records(cfg, prepared, {"original": prepared.built.model})[0])


def _runtime_rows(
    cfg: JobConfig,
    prepared: Prepared,
    durations: dict[str, float],
    role: str,
    model: ModelFiles,
    evaluation: EvalResult,
    original_timing: Timing | None,
    before: EvalResult,
    timing: Timing | None = None,
) -> list[RuntimeFigures]:
    """``role``'s rows of results.json's ``runtimes`` (``job.serve``): Paddle Inference's
    from its evaluation and ``timing`` (the original's: ``original_timing``), then each CPU
    runtime's, scored on the gate's split and timed with the quick timing."""
    from job import serve

    if role == "original":
        timing = original_timing
    if not serve.settings(cfg):
        return serve.rows(cfg, prepared.task, role, model, evaluation, timing, before, original_timing, None)

    def time_entries(entries):
        return _quick_records(cfg, prepared, {role: model}, entries)

    with phase(f"runtimes {role}", durations):
        return serve.rows(
            cfg,
            prepared.task,
            role,
            model,
            evaluation,
            timing,
            before,
            original_timing,
            time_entries if cfg.Benchmark.quick else None,
        )


def _latency(cfg: JobConfig, prepared: Prepared, original: Timing | None, compressed_model: ModelFiles) -> Latency:
    """The compressed model timed like the original was: the ``results.Latency`` of both."""
    from job import results
    from job.serve import timing_of

    record = _quick_records(cfg, prepared, {"compressed": compressed_model})[0]
    timing = timing_of(record)
    speedup = None
    if timing is not None and original is not None and timing.latency_ms > 0:
        speedup = round(original.latency_ms / timing.latency_ms, 3)
    hardware = record.get("hardware") or {}
    return results.Latency(
        device=record["device"],
        runtime=record["runtime"],
        backend=record["backend"],
        batch_size=record["batch_size"],
        seq_len=int(record["seq_len"]),
        threads=record["threads"],
        warmup=record["warmup"],
        repeats=record["repeats"],
        hardware=", ".join(str(x) for x in (hardware.get("cpu"), hardware.get("gpu")) if x),
        original=original,
        compressed=timing,
        speedup=speedup,
    )


def _quick_records(
    cfg: JobConfig, prepared: Prepared, models: dict, entries: list | None = None
) -> list[dict[str, Any]]:
    """``job.benchmark``'s own method (fresh process, the latency batch of real test texts
    padded to the maximum, perf_counter around copy-in, run, copy-out) on the run's shape,
    with the quick warm-up and repeats: one record per model, served as the job serves it
    (or one per planned entry of ``entries``)."""
    from job import benchmark

    quick = dataclasses.replace(
        cfg.Benchmark,
        device=cfg.Job.device,
        batch_size=cfg.Global.batch_size,
        max_seq_len=cfg.Global.max_seq_length,
        threads=cfg.Job.threads,
        warmup=cfg.Benchmark.quick_warmup,
        repeats=cfg.Benchmark.quick_repeats,
        dynamic_padding=False,
        onnx_peer=False,
        precisions=["fp32", "fp16", "int8"],
    )
    plan = entries if entries is not None else [benchmark.Planned(name, padding=False) for name in models]
    return benchmark.run(quick, models, prepared.task, plan, serving=_serving(cfg)).records


def _after_strategies(cfg: JobConfig, prepared: Prepared, outcomes: list[Outcome]) -> None:
    """What follows the last strategy: the run's summary of every strategy."""
    print(strategies_table(cfg, outcomes))


def _select(cfg: JobConfig, store: storage.Storage) -> int:
    """A run of several strategies ends as the launcher's ``--watch`` does: ``select`` picks
    the task's model from every result under the run id (``job.select``) and publishes
    ``selected.json``; its exit code (2 when it refuses) is the run's."""
    if len(cfg.strategies) < 2:
        return int(ExitCode.OK)
    from job.storage.selection import print_selections, select_run

    with phase("select", {}):
        selections = select_run(store, cfg.Job.output, cfg.Job.run_id, [cfg.task])
    return print_selections(selections)


def strategies_table(cfg: JobConfig, outcomes: list[Outcome]) -> str:
    """One table of the run: the original, then each strategy's status, metric, latency,
    speedup and size as measured in this run; and whether compression paid here."""
    from job.results import summary_row

    rows = [("model", "status", "metric", "change", "latency", "speedup", "size", "weights")]
    first = next((o.result for o in outcomes if o.result is not None), None)
    if first is not None:
        rows.append(summary_row(first, "original"))
    for outcome in outcomes:
        if outcome.result is not None:
            rows.append(summary_row(outcome.result, "compressed"))
        else:
            rows.append((outcome.strategy, "already complete" if outcome.state == "done" else "failed", *[""] * 6))
    lines = [
        f"\n== {cfg.task}: {len(outcomes)} strateg{'y' if len(outcomes) == 1 else 'ies'} (run {cfg.Job.run_id}) =="
    ]
    lines += tables.text(rows, "<<>>>>>>", indent="  ", rule=True)
    lines += [f"  {o.strategy} failed: {escape(o.error)[:200]}" for o in outcomes if o.state == "failed"]
    timed = [o.result.latency for o in outcomes if o.result is not None and o.result.latency is not None]
    if first is not None and first.latency is not None:
        lat = first.latency
        lines.append(
            f"  latency: median per batch of {lat.batch_size} x {lat.seq_len} tokens, {lat.runtime} {lat.backend} on "
            f"{lat.device} ({lat.hardware}, {lat.threads} threads), {lat.warmup} warm-up + {lat.repeats} timed runs"
        )
    float_weights = [
        o.strategy
        for o in outcomes
        if o.result is not None
        and o.result.models.compressed is not None
        and o.result.models.compressed.linear_weights_stored()[0]
    ]
    if float_weights:
        lines.append(
            f"  {', '.join(float_weights)}: INT8 linear weights stored as float32 (Job.weights: float32, the default: "
            "INT8 storage is measured accurate in oneDNN and Taskflow but not through TensorRT; README, 'Why the INT8 "
            "folders keep float32 linear weights'), so the folder is not smaller; served weight memory is float32 "
            "either way (the weights column)"
        )
    if timed and not any(lat.faster() for lat in timed):
        lines.append(
            "  compression did not pay here: no compressed model was faster than the original on this device. "
            "On a small model fixed costs dominate; for a model where compute dominates (UIE-base, INT8 about 3x "
            f"faster on CPU) see {BENCH_RECORD}"
        )
    return "\n".join(lines) + "\n"


def _exit_code(cfg: JobConfig, outcomes: list[Outcome]) -> int:
    """One strategy: its gate's verdict as before (``GateError``). Several: the first
    crash's exit code; else 3 (GATE) when no strategy passed; else 0."""
    ran = [o for o in outcomes if o.state != "done"]
    if len(cfg.strategies) == 1 and ran and ran[0].state == "gated":
        result = ran[0].result
        raise GateError(
            f"the compressed model changed {result.metric} by {result.delta_points:+.2f} points, "
            "beyond the tolerance of "
            f"{cfg.Job.gate_tolerance:.2f} (Job.gate_tolerance); results are in {ran[0].dest} without _SUCCESS"
        )
    crashed = [o for o in ran if o.state == "failed"]
    if crashed:
        return crashed[0].exit_code
    if ran and not any(o.state in ("complete", "done") for o in outcomes):  # done: complete from before
        log.error("no strategy passed the accuracy gate (Job.gate_tolerance %.2f)", cfg.Job.gate_tolerance)
        return int(ExitCode.GATE)
    return int(ExitCode.OK)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return escape(f"{type(exc).__name__}: {text}" if not isinstance(exc, JobError) else text)[:300]


def _check_origin_metric(cfg: JobConfig, built, task) -> None:
    """TrainConfig.origin_metric, when set, must match the original model on dev (as ACT
    checks it, within 0.05) before any compression starts."""
    if cfg.TrainConfig is None or cfg.TrainConfig.origin_metric is None:
        return

    dev = _evaluate(cfg, built.model, task, "dev", desc="origin_metric check")
    expected = cfg.TrainConfig.origin_metric
    if abs(dev.score - expected) > 0.05:
        raise InputError(
            f"{cfg.source}: TrainConfig.origin_metric is {expected:.4f} but the original model scores {dev.score:.4f} "
            f"({task.metric}) on the dev data; check the data format and the model, or correct origin_metric"
        )
    log.info("origin_metric check passed: %.4f (expected %.4f)", dev.score, expected)


def _check_search_can_run(cfg: JobConfig, built, task) -> None:
    """PaddleSlim's PTQ search scores each trial relative to the original model's metric on
    the selection (dev) data and divides by it: an original scoring 0 there crashes the
    search in its first trial. Say so before compressing, in one line."""
    if "HyperParameterOptimization" not in cfg.act_sections():
        return
    dev = _evaluate(cfg, built.model, task, "dev", desc="search check")
    if dev.score <= 0:
        raise InputError(
            f"{cfg.source}: the original model scores {dev.score:.4f} ({task.metric}) "
            f"on the {dev.examples} dev examples that select, and PaddleSlim's PTQ search divides by that score; "
            "use more dev data or a trained model, or a strategy without HyperParameterOptimization"
        )


def _write_output(out: Path, compressed, original, outcome) -> None:
    """The folder published for a task: the compressed inference model with the files
    PaddleNLP's Taskflow needs beside it, and results.json."""
    from job.model import TOKENIZER_FILES

    out.mkdir(parents=True)
    shutil.copy2(compressed.program, out / "inference.pdmodel")
    shutil.copy2(compressed.params, out / "inference.pdiparams")
    for name in ("config.json", *TOKENIZER_FILES):
        if (original.folder / name).is_file():
            shutil.copy2(original.folder / name, out / name)
    (out / "results.json").write_text(outcome.to_json(), encoding="utf-8")  # a results.TaskResult
    from job import card  # MODEL.md: the model card, every figure from results.json

    (out / card.FILENAME).write_text(card.render(outcome), encoding="utf-8")
