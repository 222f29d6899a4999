"""Classification through the whole job: CLUE-format data, an ERNIE classifier built by
shape and trained, pruning + distillation + PTQ, accuracy through Paddle Inference."""

from __future__ import annotations

import json

import pytest
from jobrun import ROOT, run_job

CLS_TINY = ROOT / "tests" / "fixtures" / "configs" / "cls_tiny.yaml"
FIXTURES = ROOT / "tests" / "fixtures" / "clue"


def test_pair_tasks_encode_the_second_sentence_as_segment_one(tmp_path):
    from job.clue import read_clue
    from job.data import RawData, encode
    from job.model import build_vocab, load_tokenizer, save_tokenizer

    data = read_clue("afqmc", FIXTURES / "afqmc" / "dev.json")
    texts = [e.text_a for e in data.examples] + [e.text_b for e in data.examples]
    save_tokenizer(build_vocab(texts), tmp_path)
    task = encode(RawData("afqmc", {"test": data}), load_tokenizer(tmp_path), 64)
    features = task.splits["test"]
    for example, ids, types in zip(data.examples, features.input_ids, features.token_type_ids, strict=True):
        assert len(ids) == len(example.text_a) + len(example.text_b) + 3  # characters + [CLS] [SEP] [SEP]
        assert types.tolist() == [0] * (len(example.text_a) + 2) + [1] * (len(example.text_b) + 1)
    assert features.labels.tolist() == [e.label for e in data.examples]


@pytest.mark.slow
@pytest.mark.parametrize("task", ["afqmc", "tnews"])
def test_tiny_classifier_compresses_end_to_end(task, tmp_path):
    data = FIXTURES / task / "dev.json"
    done = run_job(
        "run", "--config", str(CLS_TINY),
        f"Global.task_name={task}", f"Global.train_data={data}", f"Global.dev_data={data}",
        f"Job.output={tmp_path / 'out'}", f"Job.cache_dir={tmp_path / 'cache'}",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "out" / "tiny" / task / "prune_ptq" / "results.json").read_text(encoding="utf-8"))
    assert results["metric"] == "accuracy" and results["act_strategies"] == ["transformer_prune_dis", "ptq_hpo"]
    assert results["models"]["compressed"]["precision"] == "int8"
    assert results["models"]["compressed"]["params"] < results["models"]["original"]["params"]
    assert 0.0 <= results["after"]["accuracy"] <= 1.0
