"""UIE data: doccano JSONL in, token-level features out.

Input lines are what PaddleNLP's doccano conversion writes::

    {"content": "...", "result_list": [{"text": "...", "start": 3, "end": 6}], "prompt": "人名"}

Content longer than the model's window is cut into pieces the way PaddleNLP's UIE reader
does (``max_seq_len - len(prompt) - 3`` characters per piece, the cut moved back so that
no span is split), then ``[CLS] prompt [SEP] content [SEP]`` is tokenized and each span's
characters are mapped to token positions through the tokenizer's offset mapping.

Unlike the upstream reader, a span that does not fit (outside its content, text that does
not match the content, a span longer than a window, characters the tokenizer drops) is an
error naming ``file:line``, or is skipped and counted when ``skip_bad`` is set: never a
silently shifted label.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from job.data.lines import utf8_lines
from job.errors import DataError

__all__ = ["Span", "UIEData", "UIEExample", "UIEFeatures", "encode", "read_doccano", "split_long"]

log = logging.getLogger("job.data")

Span = tuple[int, int]  # character [start, end) in content


@dataclass(frozen=True)
class UIEExample:
    content: str
    prompt: str
    spans: tuple[Span, ...]
    where: str  # "file:line" (and "#piece" for cut content)


@dataclass
class UIEData:
    examples: list[UIEExample]
    skipped: int = 0
    skipped_reasons: dict[str, int] = field(default_factory=dict)
    source: str = ""

    def summary(self) -> str:
        spans = sum(len(e.spans) for e in self.examples)
        extra = f", {self.skipped} bad records skipped ({dict(self.skipped_reasons)})" if self.skipped else ""
        return f"{self.source}: {len(self.examples)} examples, {spans} spans{extra}"


@dataclass
class UIEFeatures:
    """Token ids and labels of examples, unpadded (batching pads)."""

    input_ids: list[np.ndarray]
    start_positions: list[np.ndarray]  # token indices where a span starts
    end_positions: list[np.ndarray]
    token_type_ids: list[np.ndarray]
    where: list[str]

    def __len__(self) -> int:
        return len(self.input_ids)

    def lengths(self) -> np.ndarray:
        return np.array([len(ids) for ids in self.input_ids])

    def select(self, indices: list[int]) -> UIEFeatures:
        return UIEFeatures(
            *(
                [getattr(self, name)[i] for i in indices]
                for name in ("input_ids", "start_positions", "end_positions", "token_type_ids", "where")
            )
        )


class _BadRecord(ValueError):
    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def read_doccano(path: str | Path, max_seq_len: int, *, skip_bad: bool = False, limit: int = 0) -> UIEData:
    """Read and validate a doccano JSONL file; cut long content into windows."""
    path = Path(path)
    data = UIEData(examples=[], source=str(path))
    reasons: Counter[str] = Counter()
    for lineno, line in utf8_lines(path):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            content, prompt, spans = _parse_record(line)
            _check_prompt_fits(prompt, max_seq_len, where)
            pieces = split_long(content, prompt, spans, max_seq_len)
        except _BadRecord as exc:
            if not skip_bad:
                raise DataError(f"{where}: {exc}") from None
            reasons[exc.reason] += 1
            continue
        for index, (piece, piece_spans) in enumerate(pieces):
            tag = where if len(pieces) == 1 else f"{where}#{index}"
            data.examples.append(UIEExample(piece, prompt, tuple(piece_spans), tag))
        if limit and len(data.examples) >= limit:
            break
    data.skipped = sum(reasons.values())
    data.skipped_reasons = dict(reasons)
    if not data.examples:
        raise DataError(f"{path}: no usable examples (empty data set)")
    if data.skipped:
        log.warning("%s: skipped %d bad records: %s", path, data.skipped, dict(reasons))
    return data


def _check_prompt_fits(prompt: str, max_seq_len: int, where: str) -> None:
    # [CLS] prompt [SEP] content [SEP]: at least one content character must fit.
    if max_seq_len <= len(prompt) + 3:
        raise DataError(
            f"{where}: max_seq_len {max_seq_len} is too small for the prompt {prompt!r} "
            f"({len(prompt)} characters + 3 special tokens); raise Global.max_seq_length"
        )


def _parse_record(line: str) -> tuple[str, str, list[Span]]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise _BadRecord("bad_json", f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(record, dict):
        raise _BadRecord("bad_json", "a record must be a JSON object")
    content, prompt, result_list = record.get("content"), record.get("prompt"), record.get("result_list")
    for name, value, kind in (("content", content, str), ("prompt", prompt, str), ("result_list", result_list, list)):
        if value is None:
            raise _BadRecord("missing_field", f"missing field {name!r}")
        if not isinstance(value, kind):
            raise _BadRecord("wrong_type", f"field {name!r} must be a {'string' if kind is str else 'list'}")
    if not prompt:
        raise _BadRecord("empty_prompt", "the prompt is empty")
    if not content:
        raise _BadRecord("empty_content", "the content is empty")
    spans = []
    for i, item in enumerate(result_list):
        if not isinstance(item, dict):
            raise _BadRecord("wrong_type", f"result_list[{i}] must be an object")
        start, end = item.get("start"), item.get("end")
        if not (isinstance(start, int) and isinstance(end, int)) or isinstance(start, bool) or isinstance(end, bool):
            raise _BadRecord("wrong_type", f"result_list[{i}] needs integer 'start' and 'end'")
        if not 0 <= start < end <= len(content):
            raise _BadRecord(
                "span_outside",
                f"result_list[{i}] span [{start}, {end}) lies outside its content of {len(content)} characters",
            )
        text = item.get("text")
        if text is not None and content[start:end] != text:
            raise _BadRecord(
                "span_mismatch",
                f"result_list[{i}] text {text!r} differs from content[{start}:{end}] = {content[start:end]!r}",
            )
        spans.append((start, end))
    return content, prompt, sorted(set(spans))


def split_long(content: str, prompt: str, spans: list[Span], max_seq_len: int) -> list[tuple[str, list[Span]]]:
    """Cut content into windows of ``max_seq_len - len(prompt) - 3`` characters.

    As PaddleNLP's UIE reader does, a cut that would fall inside a span moves back to
    that span's start; spans are re-based to their window.
    """
    window = max_seq_len - len(prompt) - 3
    if len(content) <= window:
        return [(content, list(spans))]
    for start, end in spans:
        if end - start > window:
            raise _BadRecord(
                "span_too_long",
                f"span [{start}, {end}) is longer than the {window} characters that fit beside the prompt; "
                "raise Global.max_seq_length",
            )
    pieces = []
    offset = 0
    while offset < len(content):
        cut = min(offset + window, len(content))
        for start, end in spans:
            if start < cut < end:
                cut = start
                break
        if cut <= offset:  # cannot happen after the length check; guard against a loop
            raise _BadRecord("span_too_long", f"cannot cut content around span at {offset}")
        inside = [(s - offset, e - offset) for s, e in spans if offset <= s and e <= cut]
        pieces.append((content[offset:cut], inside))
        offset = cut
    return pieces


def encode(data: UIEData, tokenizer: Any, max_seq_len: int, *, skip_bad: bool = False) -> UIEFeatures:
    """Tokenize ``[CLS] prompt [SEP] content [SEP]`` and map spans to token positions.

    Content and prompts repeat across examples (every sentence gets every prompt), so each
    distinct text is tokenized once and the pair is assembled the way the tokenizer's pair
    encoding does (checked against it in the tests).
    """
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    cache: dict[str, tuple[list[int], list[tuple[int, int]]]] = {}

    def tokens_of(text: str) -> tuple[list[int], list[tuple[int, int]]]:
        if text not in cache:
            encoded = tokenizer(
                text=text,
                add_special_tokens=False,
                return_offsets_mapping=True,
                return_token_type_ids=False,
                return_attention_mask=False,
            )
            cache[text] = (encoded["input_ids"], [tuple(o) for o in encoded["offset_mapping"]])
        return cache[text]

    features = UIEFeatures([], [], [], [], [])
    skipped: Counter[str] = Counter()
    for example in data.examples:
        prompt_ids, _ = tokens_of(example.prompt)
        content_ids, offsets = tokens_of(example.content)
        head = 2 + len(prompt_ids)  # [CLS] prompt [SEP]
        if head + len(content_ids) + 1 > max_seq_len:
            problem = f"needs {head + len(content_ids) + 1} tokens, more than max_seq_len {max_seq_len}"
            if not skip_bad:
                raise DataError(f"{example.where}: {problem}")
            skipped["too_many_tokens"] += 1
            continue
        try:
            starts, ends = _map_spans(example, offsets, head)
        except _BadRecord as exc:
            if not skip_bad:
                raise DataError(f"{example.where}: {exc}") from None
            skipped[exc.reason] += 1
            continue
        ids = np.array([cls_id, *prompt_ids, sep_id, *content_ids, sep_id], dtype=np.int64)
        types = np.zeros(len(ids), dtype=np.int64)
        types[head:] = 1
        features.input_ids.append(ids)
        features.token_type_ids.append(types)
        features.start_positions.append(np.array(starts, dtype=np.int64))
        features.end_positions.append(np.array(ends, dtype=np.int64))
        features.where.append(example.where)
    if skipped:
        log.warning("%s: skipped %d examples while tokenizing: %s", data.source, sum(skipped.values()), dict(skipped))
    if not len(features):
        raise DataError(f"{data.source}: no usable examples after tokenization")
    return features


def _map_spans(example: UIEExample, offsets: list[tuple[int, int]], head: int) -> tuple[list[int], list[int]]:
    """Character spans -> token positions: the token holding the first and last character."""
    starts, ends = [], []
    for start, end in example.spans:
        first = _token_at(offsets, start)
        last = _token_at(offsets, end - 1)
        if first is None or last is None:
            raise _BadRecord(
                "span_untokenizable",
                f"span {example.content[start:end]!r} at [{start}, {end}) "
                "starts or ends on characters the tokenizer drops",
            )
        if offsets[first][0] != start or offsets[last][1] != end:
            token_text = example.content[offsets[first][0] : offsets[last][1]]
            raise _BadRecord(
                "span_inside_token",
                f"span {example.content[start:end]!r} at [{start}, {end}) "
                f"does not start and end on token boundaries (the tokens cover {token_text!r})",
            )
        starts.append(head + first)
        ends.append(head + last)
    return starts, ends


def _token_at(offsets: list[tuple[int, int]], char: int) -> int | None:
    # Offsets are sorted; binary search for the token covering `char`.
    lo, hi = 0, len(offsets) - 1
    while lo <= hi:
        mid = (lo + hi) // 2
        start, end = offsets[mid]
        if char < start:
            hi = mid - 1
        elif char >= end:
            lo = mid + 1
        else:
            return mid
    return None
