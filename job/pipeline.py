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
from typing import Any

from job import machine, storage, tables
from job.config import JobConfig
from job.errors import ConfigError, ExitCode, GateError, InputError
from job.logs import phase

__all__ = ["Prepared", "cache_dir", "evaluate_only", "main", "prepare", "save_teacher"]

log = logging.getLogger("job")


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


def prepare(cfg: JobConfig, durations: dict[str, float], store: storage.Storage | None = None) -> Prepared:
    """Inputs, data, model and encoded task: what every command starts from."""
    from job import data, model
    from job.runtime import set_threads

    threads = set_threads(cfg.Job.threads)
    log.info("task %s, strategy %s, %d CPU threads", cfg.task, cfg.strategy, threads)
    cache = cache_dir(cfg)
    store = store or storage.Storage(cfg.Storage)
    with phase("inputs", durations):
        given_model, files = _pull_inputs(cfg, store, cache)
    with phase("data", durations):
        raw = data.read(cfg, cache, files)
    with phase("model", durations):
        built = model.run(cfg, raw, cache, given_model)
        log.info("model: %s", built.summary())
    with phase("encode", durations):
        tokenizer = built.tokenizer if built.tokenizer is not None else model.load_tokenizer(built.model.folder)
        task = data.encode(raw, tokenizer, cfg.Global.max_seq_length, skip_bad=cfg.Global.skip_bad_records)
    return Prepared(store, cache, built, task, raw.roles)


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


def main(cfg: JobConfig) -> int:
    """Compress, evaluate before and after, gate, benchmark, publish, summarise."""
    from job import compress, results

    started = time.perf_counter()
    durations: dict[str, float] = {}
    strategy = cfg.strategy
    if strategy == "none":
        return evaluate_only(cfg)
    dest = storage.task_prefix(cfg.Job.output, cfg.Job.run_id, cfg.task, strategy)
    store = storage.Storage(cfg.Storage)
    # The inputs' content is part of it: a changed model or data file at the same URI is
    # a new run, not an "already complete" skip.
    fingerprint = storage.run_fingerprint(store, cfg.fingerprint(), _input_uris(cfg))
    state = storage.completion_state(store, dest, fingerprint)
    if state == "complete" and not cfg.Job.force:
        log.info("%s is already complete for this config; nothing to do (use --force to redo it)", dest)
        print(f"already complete: {dest}")
        return 0
    if state == "config_changed" and not cfg.Job.force:
        raise ConfigError(
            f"{dest} holds a completed run made with a different config or different inputs; "
            "choose another Job.run_id, or --force to replace it"
        )

    prepared = prepare(cfg, durations, store)
    built, task = prepared.built, prepared.task
    with phase("evaluate original", durations):
        before = _evaluate(cfg, built.model, task, desc="original")
    _check_origin_metric(cfg, built, task)
    _check_search_can_run(cfg, built, task)
    with tempfile.TemporaryDirectory(prefix="act-job-", dir=os.environ.get("TMPDIR")) as tmp:
        workdir = Path(tmp)
        with phase("compress", durations):
            compressed = compress.run(cfg, built.model, task, workdir)
        with phase("evaluate compressed", durations):
            after = _evaluate(cfg, compressed.model, task, desc="compressed")
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
            total_seconds=time.perf_counter() - started,
            roles=prepared.roles,
        )
        _write_output(out, compressed.model, built.model, outcome)
        with phase("publish", durations):
            published = storage.publish(prepared.store, out, dest, fingerprint=fingerprint, status=outcome.status)
        log.info("published: %s", published.summary())
    print(results.summary(outcome, dest))
    if outcome.status != "complete":
        raise GateError(
            f"the compressed model changed {outcome.metric} by {outcome.delta_points:+.2f} points, "
            "beyond the tolerance of "
            f"{cfg.Job.gate_tolerance:.2f} (Job.gate_tolerance); results are in {dest} without _SUCCESS"
        )
    return int(ExitCode.OK)


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
