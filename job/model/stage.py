"""The model stage: the model to compress, given (``Global.model_dir``) or a teacher built
from a checkpoint or trained on the task's data, kept in the artifact cache."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from job.cache import build_once, code_text, versions
from job.cache import key as cache_key
from job.model.build import (
    SHAPES,
    build_classifier,
    build_uie,
    build_vocab,
    count_params,
    export_model,
    load_checkpoint,
    load_tokenizer,
    save_checkpoint,
    save_tokenizer,
)
from job.model.files import TOKENIZER_FILES, ModelFiles
from job.model.train import TrainResult, classification_loss, train_model, uie_loss

__all__ = ["ModelResult", "run", "teacher_key"]

log = logging.getLogger("job.model")


@dataclass
class ModelResult:
    model: ModelFiles
    source: str  # "given", "checkpoint", "trained" or "cache"
    params: int | None = None
    train: TrainResult | None = None
    log_file: Path | None = None
    tokenizer: Any = field(default=None, repr=False)  # loaded already (a given model's), else None

    def summary(self) -> str:
        extra = f", {self.params:,} parameters" if self.params else ""
        return f"{self.model.folder} ({self.source}{extra})"


def teacher_key(cfg, raw) -> str:
    """Cache key of a built teacher: everything its weights and its export depend on (the
    data, the teacher settings, the seed, the checkpoint, the code that reads, encodes,
    trains and exports, and the versions of Paddle and PaddleNLP)."""
    import dataclasses

    job_dir = Path(__file__).resolve().parents[1]
    reader = "uie.py" if cfg.task == "uie" else "clue.py"
    code = code_text(
        *sorted((job_dir / "model").glob("*.py")),
        *(job_dir / "data" / name for name in ("stage.py", "tasks.py", "metrics.py", "lines.py", reader)),
        job_dir / "runtime.py",
    )
    data = [Path(path) for split, path in sorted(raw.files.items()) if split in ("train", "dev")]
    checkpoint = Path(cfg.Teacher.checkpoint) if cfg.Teacher.checkpoint else None
    weights = (
        [checkpoint / name for name in ("model_state.pdparams", "config.json", *TOKENIZER_FILES)] if checkpoint else []
    )
    return cache_key(
        files=[path for path in (*data, *weights) if path.is_file()],
        code=code,
        task=cfg.task,
        teacher=dataclasses.asdict(cfg.Teacher),
        shape=dataclasses.asdict(SHAPES[cfg.Teacher.shape]) if cfg.Teacher.shape in SHAPES else cfg.Teacher.shape,
        max_seq_length=cfg.Global.max_seq_length,
        seed=cfg.Job.seed,
        # Data that is not a local file (the CLUE hub's splits) is named by its source.
        sources={split: path for split, path in raw.files.items() if not Path(path).is_file()},
        versions=versions("paddlepaddle", "paddlepaddle-gpu", "paddlenlp"),
    )


def run(cfg, raw, cache: Path, given: Path | None = None) -> ModelResult:
    """The model to compress: ``given`` (Global.model_dir, already pulled), else the
    teacher from ``Teacher.checkpoint``, else a teacher trained on the task's data.
    Built teachers are kept in the cache (``job.cache.build_once``) and reused while
    ``teacher_key`` holds."""
    if given is not None:
        files = ModelFiles(given, cfg.Global.model_filename, cfg.Global.params_filename).check()
        tokenizer = load_tokenizer(given)  # fails early if the tokenizer files are missing
        return ModelResult(files, "given", tokenizer=tokenizer)
    key = teacher_key(cfg, raw)
    folder = cache / "teachers" / f"{cfg.Teacher.shape}-{key[:16]}"
    trained: list[TrainResult | None] = []  # the training result of a build made in this run

    def build(tmp: Path) -> dict[str, Any]:
        vocab_dir = tmp / "tokenizer"
        if cfg.Teacher.checkpoint:
            checkpoint = Path(cfg.Teacher.checkpoint)
            model = load_checkpoint(checkpoint)
            vocab_dir = checkpoint
            source, train_result = "checkpoint", None
            log.info("teacher from checkpoint %s", checkpoint)
        else:
            model, train_result = _train_teacher(cfg, raw, vocab_dir)
            source = "trained"
            save_checkpoint(model, vocab_dir, tmp / "checkpoint", train_result, cfg)
        export_model(model, vocab_dir, tmp)
        params = count_params(model)
        meta = {
            "source": source,
            "params": params,
            "shape": cfg.Teacher.shape,
            "train": dataclasses_asdict(train_result),
        }
        (tmp / "teacher.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        trained.append(train_result)
        return {"source": source, "params": params}

    built = build_once(folder, key, build, what=f"teacher {cfg.Teacher.shape}")
    files = ModelFiles(folder).check()
    if built.reused:
        return ModelResult(files, "cache", built.info.get("params"))
    return ModelResult(files, built.info["source"], built.info["params"], trained[0])


def _train_teacher(cfg, raw, vocab_dir: Path):
    """Vocabulary from the training texts, then a model of Teacher.shape trained on them."""
    from job.data import encode

    train_examples = raw.splits["train"].examples
    if cfg.task == "uie":
        # Each sentence appears once per prompt: count characters over distinct texts.
        texts = {e.content for e in train_examples} | {e.prompt for e in train_examples}
    else:
        texts = {e.text_a for e in train_examples} | {e.text_b for e in train_examples if e.text_b}
    save_tokenizer(build_vocab(sorted(texts), cfg.Teacher.vocab_min_freq), vocab_dir)
    tokenizer = load_tokenizer(vocab_dir)
    task = encode(
        _subset(raw, cfg.Teacher.max_train_examples, cfg.Job.seed),
        tokenizer,
        cfg.Global.max_seq_length,
        skip_bad=cfg.Global.skip_bad_records,
    )
    if cfg.task == "uie":
        task.splits["train"] = _drop_negatives(task.splits["train"], cfg.Teacher.negative_keep, cfg.Job.seed)
        model = build_uie(cfg.Teacher.shape, len(tokenizer.vocab), seed=cfg.Job.seed)
        loss = uie_loss(cfg.Teacher.positive_weight)
    else:
        model = build_classifier(cfg.Teacher.shape, len(tokenizer.vocab), task.num_labels, seed=cfg.Job.seed)
        loss = classification_loss
    log.info(
        "training teacher %s (%s parameters) on %d examples, %d steps",
        cfg.Teacher.shape,
        f"{count_params(model):,}",
        task.size("train"),
        cfg.Teacher.steps,
    )
    return model, train_model(model, task, cfg.Teacher, loss, seed=cfg.Job.seed)


def dataclasses_asdict(value) -> dict | None:
    import dataclasses

    return dataclasses.asdict(value) if value is not None else None


def _subset(raw, limit: int, seed: int):
    """At most ``limit`` training examples (0: all), drawn with a fixed seed."""
    if not limit or len(raw.splits["train"].examples) <= limit:
        return raw
    import dataclasses
    import random

    train = raw.splits["train"]
    picked = sorted(random.Random(seed).sample(range(len(train.examples)), limit))
    splits = dict(raw.splits)
    splits["train"] = dataclasses.replace(train, examples=[train.examples[i] for i in picked])
    return dataclasses.replace(raw, splits=splits)


def _drop_negatives(features, keep: float, seed: int):
    """Keep every example with a span and a seeded ``keep`` fraction of the others."""
    if keep >= 1.0:
        return features
    rng = np.random.default_rng(seed)
    chosen = [i for i in range(len(features)) if len(features.start_positions[i]) or rng.random() < keep]
    log.info(
        "training on %d of %d examples (all with spans, %.0f%% of those without)",
        len(chosen),
        len(features),
        keep * 100,
    )
    return features.select(chosen)
