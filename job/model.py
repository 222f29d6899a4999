"""Models: UIE built by named shape, trained on CPU, exported as PaddleNLP exports it.

The export has the input signature of PaddleNLP's own UIE export (``input_ids``,
``token_type_ids``, ``position_ids``, ``attention_mask``, int64 ``[batch, seq]``) and the
files its ``Taskflow`` loads: ``inference.pdmodel``, ``inference.pdiparams``,
``config.json``, ``vocab.txt``, ``tokenizer_config.json``, ``special_tokens_map.json``.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from job.cache import build_once, code_text, versions
from job.cache import key as cache_key
from job.config import TeacherConfig
from job.data.tasks import CLASSIFIER_INPUTS, UIE_INPUTS, Task
from job.errors import InputError
from job.logs import progress
from job.runtime import paddle
from job.storage import hash_file as _hash_file

__all__ = [
    "SHAPES",
    "TOKENIZER_FILES",
    "ModelShape",
    "TrainResult",
    "build_uie",
    "build_vocab",
    "check_model_dir",
    "count_params",
    "evaluate_dygraph",
    "export_model",
    "export_uie",
    "load_tokenizer",
    "save_tokenizer",
    "train_model",
]

log = logging.getLogger("job.model")

SPECIAL_TOKENS = ["[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]"]
# The tokenizer files saved beside a model (with its config.json).
TOKENIZER_FILES = ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json")


@dataclass(frozen=True)
class ModelShape:
    layers: int
    hidden: int
    heads: int
    intermediate: int
    max_positions: int = 2048


# ERNIE 3.0 shapes behind PaddleNLP's UIE and classifier checkpoints. "uie-pico" follows
# ERNIE 3.0 Tiny pico (3 layers, 128 hidden) with 4 heads, small enough to ship as the
# demo teacher; "uie-tiny" and "ernie-tiny" are test shapes. Head counts are multiples of
# 4 so that a 0.25 pruning ratio removes whole heads.
SHAPES: dict[str, ModelShape] = {
    "uie-base": ModelShape(12, 768, 12, 3072),
    "uie-medium": ModelShape(6, 768, 12, 3072),
    "uie-mini": ModelShape(6, 384, 12, 1536),
    "uie-micro": ModelShape(4, 384, 12, 1536),
    "uie-nano": ModelShape(4, 312, 12, 1248),
    "uie-pico": ModelShape(3, 128, 4, 512, 512),
    "uie-tiny": ModelShape(2, 64, 4, 256, 512),
    "ernie-pico": ModelShape(3, 128, 4, 512, 512),
    "ernie-3.0-medium": ModelShape(6, 768, 12, 3072),
    "ppminilm-6l-768h": ModelShape(6, 768, 12, 3072, 512),
    "ernie-tiny": ModelShape(2, 64, 4, 256, 512),
}


def build_vocab(texts: Iterable[str], min_freq: int = 1) -> list[str]:
    """A character vocabulary: CJK characters as tokens; other characters also as
    ``##x`` pieces so that WordPiece splits any Latin, digit or symbol run into characters.

    ``min_freq`` applies to CJK characters only: an unknown CJK character becomes one
    [UNK], but one unknown character in a non-CJK run would turn the whole run into a
    single [UNK] and blur span boundaries, so every non-CJK character seen is kept, plus
    printable ASCII, full-width forms and circled numbers.
    """
    counts = Counter(ch.lower() for text in texts for ch in text if not ch.isspace())
    for code in (*range(0x21, 0x7F), *range(0xFF01, 0xFF5F), *range(0x2460, 0x2474)):
        counts.setdefault(chr(code).lower(), 0)
    vocab = list(SPECIAL_TOKENS)
    for ch, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        if ch in SPECIAL_TOKENS or (_is_cjk(ch) and n < min_freq):
            continue
        vocab.append(ch)
        if not _is_cjk(ch):
            vocab.append("##" + ch)
    return vocab


def _is_cjk(ch: str) -> bool:
    cp = ord(ch)
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2FA1F
        or 0xF900 <= cp <= 0xFAFF
        or 0x2F800 <= cp <= 0x2FA1F
    )


def save_tokenizer(vocab: list[str], out_dir: Path) -> None:
    """Write vocab.txt, tokenizer_config.json and special_tokens_map.json."""
    from paddlenlp.transformers import ErnieTokenizer

    out_dir.mkdir(parents=True, exist_ok=True)
    vocab_file = out_dir / "vocab.txt"
    vocab_file.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = ErnieTokenizer(str(vocab_file))
    tokenizer.save_pretrained(str(out_dir))


def load_tokenizer(model_dir: Path):
    """The tokenizer saved beside a model (as PaddleNLP's AutoTokenizer reads it)."""
    from paddlenlp.transformers import AutoTokenizer

    if not (model_dir / "vocab.txt").is_file() and not (model_dir / "tokenizer_config.json").is_file():
        raise InputError(f"{model_dir}: no tokenizer files (vocab.txt, tokenizer_config.json) beside the model")
    return AutoTokenizer.from_pretrained(str(model_dir))


def _ernie_config(shape: ModelShape, vocab_size: int, **extra):
    from paddlenlp.transformers import ErnieConfig

    return ErnieConfig(
        vocab_size=vocab_size,
        hidden_size=shape.hidden,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        intermediate_size=shape.intermediate,
        hidden_act="gelu",
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        max_position_embeddings=shape.max_positions,
        type_vocab_size=4,
        task_type_vocab_size=3,
        use_task_id=True,
        pad_token_id=0,
        **extra,
    )


def build_uie(shape_name: str, vocab_size: int, seed: int = 42):
    """A randomly initialised UIE of a named shape."""
    from paddlenlp.transformers import UIE

    if shape_name not in SHAPES:
        raise InputError(f"unknown model shape {shape_name!r}; known: {', '.join(SHAPES)}")
    paddle.seed(seed)
    config = _ernie_config(SHAPES[shape_name], vocab_size)
    config.architectures = ["UIE"]
    return UIE(config)


def build_classifier(shape_name: str, vocab_size: int, num_labels: int, seed: int = 42):
    """A randomly initialised ERNIE sequence classifier of a named shape."""
    from paddlenlp.transformers import ErnieForSequenceClassification

    if shape_name not in SHAPES:
        raise InputError(f"unknown model shape {shape_name!r}; known: {', '.join(SHAPES)}")
    paddle.seed(seed)
    config = _ernie_config(SHAPES[shape_name], vocab_size, num_labels=num_labels)
    config.architectures = ["ErnieForSequenceClassification"]
    return ErnieForSequenceClassification(config)


def count_params(model) -> int:
    return int(sum(np.prod(p.shape) for p in model.parameters()))


# --------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------


@dataclass
class TrainResult:
    steps: int
    seconds: float
    best_dev_metric: float
    best_step: int
    history: list[dict[str, float]]
    stopped_by_budget: bool = False


def evaluate_dygraph(model, task: Task, split: str = "dev", batch_size: int = 64) -> dict[str, float]:
    """The task's metric during training (dygraph; the deployed model is measured through
    Paddle Inference by job.evaluate)."""

    def outputs(batch):
        out = model(*(paddle.to_tensor(batch[k]) for k in task.input_names))
        return [o.numpy() for o in (out if isinstance(out, (tuple, list)) else [out])]

    model.eval()
    with paddle.no_grad():
        values = task.score(split, batch_size, outputs)
    model.train()
    return values


def uie_loss(positive_weight: float):
    """Weighted BCE on start and end probabilities. Positive positions are rare (a few
    per sentence, none for most prompts); unweighted, the model learns to predict no span."""

    def loss(outputs, batch, inputs):
        start_prob, end_prob = outputs
        mask = inputs[3].astype("float32")
        total = _weighted_bce(start_prob, paddle.to_tensor(batch["start_ids"]), mask, positive_weight)
        return total + _weighted_bce(end_prob, paddle.to_tensor(batch["end_ids"]), mask, positive_weight)

    return loss


def classification_loss(outputs, batch, inputs):
    logits = outputs[0] if isinstance(outputs, (tuple, list)) else outputs
    return paddle.nn.functional.cross_entropy(logits, paddle.to_tensor(batch["labels"]))


def train_model(model, task: Task, cfg: TeacherConfig, loss_fn, seed: int = 42) -> TrainResult:
    """Train with AdamW, linear warm-up then decay, gradient clipping; evaluate the task's
    metric on dev every ``eval_every`` steps and keep the best weights."""
    from paddlenlp.transformers import LinearDecayWithWarmup

    model.train()
    schedule = LinearDecayWithWarmup(cfg.learning_rate, cfg.steps, cfg.warmup_ratio)
    no_decay = {p.name for n, p in model.named_parameters() if "bias" in n or "norm" in n}
    optimizer = paddle.optimizer.AdamW(
        learning_rate=schedule,
        parameters=model.parameters(),
        weight_decay=cfg.weight_decay,
        apply_decay_param_fun=lambda name: name not in no_decay,
        grad_clip=paddle.nn.ClipGradByGlobalNorm(1.0),
    )
    history: list[dict[str, float]] = []
    best_metric, best_step, best_state = -1.0, 0, None
    start_time = time.perf_counter()
    budget = cfg.time_budget_minutes * 60 if cfg.time_budget_minutes else math.inf
    step, epoch, stopped = 0, 0, False
    running = []
    bar = progress(total=cfg.steps, desc="train teacher", unit="step")
    while step < cfg.steps and not stopped:
        for batch in task.batches("train", cfg.batch_size, shuffle=True, seed=seed + epoch):
            inputs = [paddle.to_tensor(batch[k]) for k in task.input_names]
            loss = loss_fn(model(*inputs), batch, inputs)
            loss.backward()
            optimizer.step()
            schedule.step()
            optimizer.clear_grad()
            step += 1
            running.append(float(loss))
            bar.update(1)
            if step % 20 == 0:
                bar.set_postfix(
                    {"loss": f"{np.mean(running[-50:]):.4f}", f"best dev {task.metric}": f"{max(best_metric, 0):.3f}"},
                    refresh=False,
                )
            out_of_time = time.perf_counter() - start_time > budget
            if step % cfg.eval_every == 0 or step == cfg.steps or out_of_time:
                values = evaluate_dygraph(model, task)
                history.append(
                    {
                        "step": step,
                        "loss": float(np.mean(running[-50:])),
                        **{f"dev_{k}": float(v) for k, v in values.items()},
                    }
                )
                shown = ", ".join(f"{k} {v:.4f}" for k, v in values.items() if isinstance(v, float))
                log.info("step %d: loss %.4f, dev %s", step, history[-1]["loss"], shown)
                if values[task.metric] > best_metric:
                    best_metric, best_step = values[task.metric], step
                    best_state = copy.deepcopy(model.state_dict())
            if out_of_time:
                log.info("time budget of %.1f min reached at step %d", cfg.time_budget_minutes, step)
                stopped = True
            if step >= cfg.steps or stopped:
                break
        epoch += 1
    bar.close()
    if best_state is not None:
        model.set_state_dict(best_state)
    model.eval()
    return TrainResult(step, time.perf_counter() - start_time, best_metric, best_step, history, stopped)


def _weighted_bce(prob, label, mask, positive_weight: float):
    weight = mask * (1.0 + (positive_weight - 1.0) * label)
    loss = paddle.nn.functional.binary_cross_entropy(prob, label, weight=weight, reduction="sum")
    return loss / paddle.clip(mask.sum(), min=1.0)


# --------------------------------------------------------------------------------------
# Export and model folders
# --------------------------------------------------------------------------------------


def _write_model_meta(model, vocab_dir: Path, out_dir: Path) -> None:
    """config.json (with ``architectures``) and the tokenizer files from ``vocab_dir``."""
    config = model.config.to_dict()
    config["architectures"] = [type(model).__name__]
    (out_dir / "config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    for name in TOKENIZER_FILES:
        target = out_dir / name
        if (vocab_dir / name).resolve() != target.resolve():
            target.write_bytes((vocab_dir / name).read_bytes())


def export_model(model, vocab_dir: Path, out_dir: Path) -> Path:
    """Save a static inference model with the input signature PaddleNLP's own exports use
    (UIE: four inputs; sequence classification: input_ids and token_type_ids), plus the
    config and tokenizer files its Taskflow and AutoTokenizer read."""
    out_dir.mkdir(parents=True, exist_ok=True)
    model.eval()
    names = UIE_INPUTS if type(model).__name__ == "UIE" else CLASSIFIER_INPUTS
    specs = [paddle.static.InputSpec(shape=[None, None], dtype="int64", name=name) for name in names]
    static = paddle.jit.to_static(model, input_spec=specs)
    paddle.jit.save(static, str(out_dir / "inference"))
    for leftover in out_dir.glob("inference.pdiparams.info"):
        leftover.unlink()
    _write_model_meta(model, vocab_dir, out_dir)
    return out_dir


@dataclass(frozen=True)
class ModelFiles:
    """An inference model folder and its two file names."""

    folder: Path
    model_filename: str = "inference.pdmodel"
    params_filename: str = "inference.pdiparams"

    @property
    def program(self) -> Path:
        return self.folder / self.model_filename

    @property
    def params(self) -> Path:
        return self.folder / self.params_filename

    def check(self) -> ModelFiles:
        check_model_dir(self.folder, self.model_filename, self.params_filename)
        return self

    def size_bytes(self) -> int:
        return self.program.stat().st_size + self.params.stat().st_size


def export_uie(model, vocab_dir: Path, out_dir: Path) -> Path:
    """``export_model`` of a UIE: PaddleNLP's UIE signature (the four inputs Taskflow feeds)."""
    return export_model(model, vocab_dir, out_dir)


def check_model_dir(
    model_dir: Path, model_filename: str = "inference.pdmodel", params_filename: str = "inference.pdiparams"
) -> None:
    """A usable inference model folder, or an InputError naming what is missing."""
    if not model_dir.exists():
        raise InputError(f"{model_dir}: model folder not found")
    if not model_dir.is_dir():
        raise InputError(f"{model_dir}: not a folder (expected an inference model folder)")
    missing = [name for name in (model_filename, params_filename) if not (model_dir / name).is_file()]
    if missing:
        what = "its parameters" if missing == [params_filename] else ", ".join(missing)
        raise InputError(f"{model_dir}: model folder without {what} ({', '.join(missing)} missing)")
    if (model_dir / params_filename).stat().st_size == 0:
        raise InputError(f"{model_dir}: {params_filename} is empty")


# --------------------------------------------------------------------------------------
# The model stage: the model to compress, given or built
# --------------------------------------------------------------------------------------


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

    job_dir = Path(__file__).resolve().parent
    reader = "uie.py" if cfg.task == "uie" else "clue.py"
    code = code_text(
        __file__,
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


def save_checkpoint(model, vocab_dir: Path, out_dir: Path, train_result: TrainResult | None, cfg) -> Path:
    """A dygraph checkpoint: weights, config, tokenizer, training log and checksums."""
    import dataclasses

    out_dir.mkdir(parents=True, exist_ok=True)
    paddle.save(model.state_dict(), str(out_dir / "model_state.pdparams"))
    _write_model_meta(model, vocab_dir, out_dir)
    log_record = {
        "teacher": dataclasses.asdict(cfg.Teacher),
        "seed": cfg.Job.seed,
        "train": dataclasses_asdict(train_result),
    }
    (out_dir / "train_log.json").write_text(
        json.dumps(log_record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    sums = []
    for path in sorted(out_dir.iterdir()):
        if path.is_file() and path.name != "SHA256SUMS":
            sums.append(f"{_hash_file(path).sha256}  {path.name}")
    (out_dir / "SHA256SUMS").write_text("\n".join(sums) + "\n", encoding="utf-8")
    return out_dir


def load_checkpoint(folder: Path):
    """A UIE (or classifier) rebuilt from ``save_checkpoint``'s folder, checksums verified."""
    sums_file = folder / "SHA256SUMS"
    if not (folder / "model_state.pdparams").is_file():
        raise InputError(f"{folder}: not a teacher checkpoint (model_state.pdparams missing)")
    if sums_file.is_file():
        for line in sums_file.read_text(encoding="utf-8").splitlines():
            digest, _, name = line.partition("  ")
            target = folder / name
            if name in ("train_log.json", "README.md"):
                continue
            if not target.is_file() or _hash_file(target).sha256 != digest:
                raise InputError(f"{target}: checksum does not match {sums_file}")
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    from paddlenlp.transformers import UIE, ErnieConfig, ErnieForSequenceClassification

    architecture = (config.get("architectures") or ["UIE"])[0]
    cls = UIE if architecture == "UIE" else ErnieForSequenceClassification
    model = cls(ErnieConfig(**config))
    model.set_state_dict(paddle.load(str(folder / "model_state.pdparams")))
    model.eval()
    return model
