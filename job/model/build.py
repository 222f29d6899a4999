"""Models by named shape: vocabularies and tokenizers, UIE and classifiers built with
PaddleNLP, exported as PaddleNLP exports them, and dygraph checkpoints.

The export has the input signature of PaddleNLP's own UIE export (``input_ids``,
``token_type_ids``, ``position_ids``, ``attention_mask``, int64 ``[batch, seq]``) and the
files its ``Taskflow`` loads: ``inference.pdmodel``, ``inference.pdiparams``,
``config.json``, ``vocab.txt``, ``tokenizer_config.json``, ``special_tokens_map.json``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from job.data.tasks import CLASSIFIER_INPUTS, UIE_INPUTS
from job.errors import InputError
from job.model.files import TOKENIZER_FILES
from job.runtime import paddle
from job.storage import hash_file as _hash_file

if TYPE_CHECKING:
    from job.model.train import TrainResult

__all__ = [
    "SHAPES",
    "SPECIAL_TOKENS",
    "ModelShape",
    "build_classifier",
    "build_uie",
    "build_vocab",
    "count_params",
    "export_model",
    "export_uie",
    "load_checkpoint",
    "load_tokenizer",
    "save_checkpoint",
    "save_tokenizer",
]

SPECIAL_TOKENS = ["[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]"]


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


def export_uie(model, vocab_dir: Path, out_dir: Path) -> Path:
    """``export_model`` of a UIE: PaddleNLP's UIE signature (the four inputs Taskflow feeds)."""
    return export_model(model, vocab_dir, out_dir)


def save_checkpoint(model, vocab_dir: Path, out_dir: Path, train_result: TrainResult | None, cfg) -> Path:
    """A dygraph checkpoint: weights, config, tokenizer, training log and checksums."""
    import dataclasses

    out_dir.mkdir(parents=True, exist_ok=True)
    paddle.save(model.state_dict(), str(out_dir / "model_state.pdparams"))
    _write_model_meta(model, vocab_dir, out_dir)
    log_record = {
        "teacher": dataclasses.asdict(cfg.Teacher),
        "seed": cfg.Job.seed,
        "train": dataclasses.asdict(train_result) if train_result is not None else None,
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
