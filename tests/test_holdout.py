"""The gate is measured on data that chose nothing: where the test split would be the dev
split (CLUE's public test has no labels; ``local`` without ``test_data``), dev is held out
by text into a selection half and a gate half, and results.json says which is which."""

from __future__ import annotations

import json

import pytest

from job.config import load_config
from job.data import hold_out, read
from job.data.clue import read_clue
from job.data.uie import read_doccano


def _uie_file(tmp_path, sentences: int = 40):
    lines = []
    for i in range(sentences):
        # A long sentence (cut into pieces at max_seq_len 32) under two prompts each.
        content = f"第{i}号文件说北京" + "很" * 40 + "上海"
        for prompt in ("地名", "人名"):
            spans = (
                [{"text": "北京", "start": content.index("北京"), "end": content.index("北京") + 2}]
                if prompt == "地名"
                else []
            )
            lines.append(json.dumps({"content": content, "result_list": spans, "prompt": prompt}, ensure_ascii=False))
    path = tmp_path / "dev.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_uie_hold_out_keeps_every_sentence_on_one_side(tmp_path):
    data = read_doccano(_uie_file(tmp_path), 32)
    assert any("#" in e.where for e in data.examples), "the fixture must cut contents into pieces"
    selection, gate = hold_out(data, seed=42)
    assert len(selection.examples) + len(gate.examples) == len(data.examples)

    def sentence(example) -> int:  # two lines (prompts) per sentence, pieces share their line
        return (int(example.where.split("#")[0].rsplit(":", 1)[1]) - 1) // 2

    texts = {side: {sentence(e) for e in part.examples} for side, part in (("selection", selection), ("gate", gate))}
    assert texts["selection"] and texts["gate"] and not texts["selection"] & texts["gate"]
    assert 15 <= len(texts["gate"]) <= 25  # about half of the 40 sentences
    again = hold_out(data, seed=42)[1]
    assert [e.where for e in again.examples] == [e.where for e in gate.examples]
    assert [e.where for e in hold_out(data, seed=7)[1].examples] != [e.where for e in gate.examples]


def test_clue_hold_out_puts_duplicate_texts_on_one_side(tmp_path):
    rows = [{"sentence": f"句子{i % 10}", "label": "100", "label_desc": "news_story"} for i in range(30)]
    path = tmp_path / "dev.json"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    data = read_clue("tnews", path)
    selection, gate = hold_out(data, seed=42)
    assert not {e.text_a for e in selection.examples} & {e.text_a for e in gate.examples}
    assert len(selection.examples) + len(gate.examples) == 30 and len(gate.examples) % 3 == 0


def test_local_without_test_data_gates_on_a_held_out_half(tmp_path):
    dev = _uie_file(tmp_path)
    cfg = load_config(
        None,
        [
            "Global.task_name=uie",
            "Global.dataset=local",
            f"Global.train_data={dev}",
            f"Global.dev_data={dev}",
            "Global.max_seq_length=32",
        ],
    )
    raw = read(cfg, tmp_path)
    roles = raw.roles
    assert roles["gate"]["split"] == "dev-holdout" and roles["selection"]["split"] == "dev"
    assert roles["gate"]["examples"] == len(raw.splits["test"].examples) > 0
    assert roles["selection"]["examples"] == len(raw.splits["dev"].examples) > 0
    assert roles["gate"]["examples"] + roles["selection"]["examples"] == len(read_doccano(dev, 32).examples)
    assert raw.splits["dev"] is not raw.splits["test"]
    first_piece = {
        side: {e.content for e in raw.splits[side].examples if e.content.startswith("第")} for side in ("dev", "test")
    }
    assert first_piece["dev"] and first_piece["test"] and not first_piece["dev"] & first_piece["test"]


def test_a_real_test_split_is_used_as_is(tmp_path):
    dev = _uie_file(tmp_path)
    test = tmp_path / "test.txt"
    test.write_text(dev.read_text(encoding="utf-8").split("\n", 2)[0] + "\n", encoding="utf-8")
    cfg = load_config(
        None,
        [
            "Global.task_name=uie",
            "Global.dataset=local",
            f"Global.train_data={dev}",
            f"Global.dev_data={dev}",
            f"Global.test_data={test}",
            "Global.max_seq_length=32",
        ],
    )
    raw = read(cfg, tmp_path)
    assert raw.roles["gate"] == {"split": "test", "source": str(test), "examples": len(raw.splits["test"].examples)}
    assert raw.roles["selection"]["examples"] == len(read_doccano(dev, 32).examples)


def test_dev_too_small_to_hold_out_is_a_data_error(tmp_path):
    from job.errors import DataError

    dev = _uie_file(tmp_path, sentences=1)
    cfg = load_config(
        None,
        [
            "Global.task_name=uie",
            "Global.dataset=local",
            f"Global.train_data={dev}",
            f"Global.dev_data={dev}",
            "Global.max_seq_length=32",
        ],
    )
    with pytest.raises(DataError, match=r"too small to hold out a gate part; give Global\.test_data"):
        read(cfg, tmp_path)


def test_a_search_over_an_original_scoring_zero_on_dev_is_refused_first(monkeypatch):
    """PaddleSlim's PTQ search divides by the original's dev metric (a ZeroDivisionError in
    its first trial, raised as smac's 'First run crashed'): the job says so beforehand."""
    from types import SimpleNamespace

    from job import pipeline
    from job.errors import InputError

    calls = []

    def score(value):
        def fake(cfg, model, task, split="test", desc=""):
            calls.append(split)
            return SimpleNamespace(score=value, examples=2)

        return fake

    task = SimpleNamespace(metric="accuracy")
    hpo = load_config(
        None,
        [
            "Global.task_name=afqmc",
            "Global.dataset=local",
            "Global.train_data=t",
            "Global.dev_data=d",
            "Job.strategy=ptq_hpo",
        ],
    )
    monkeypatch.setattr(pipeline, "_evaluate", score(0.0))
    with pytest.raises(
        InputError,
        match=r"scores 0\.0000 \(accuracy\) on the 2 dev examples that select, and PaddleSlim's PTQ search divides",
    ):
        pipeline._check_search_can_run(hpo, SimpleNamespace(model=None), task)
    assert calls == ["dev"]
    monkeypatch.setattr(pipeline, "_evaluate", score(0.5))
    pipeline._check_search_can_run(hpo, SimpleNamespace(model=None), task)
    ptq = load_config(
        None,
        [
            "Global.task_name=afqmc",
            "Global.dataset=local",
            "Global.train_data=t",
            "Global.dev_data=d",
            "Job.strategy=ptq",
        ],
    )
    monkeypatch.setattr(pipeline, "_evaluate", score(0.0))
    calls.clear()
    pipeline._check_search_can_run(ptq, SimpleNamespace(model=None), task)
    assert calls == [], "no search, no check"
