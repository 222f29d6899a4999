"""Classification through the whole job: CLUE-format data, an ERNIE classifier built by
shape and trained, pruning + distillation + PTQ, accuracy through Paddle Inference."""

from __future__ import annotations

import json

import pytest
from jobrun import ROOT, run_job

CLS_TINY = ROOT / "tests" / "fixtures" / "configs" / "cls_tiny.yaml"
FIXTURES = ROOT / "tests" / "fixtures" / "clue"


def test_pair_tasks_encode_the_second_sentence_as_segment_one(tmp_path):
    from job.data import RawData, encode
    from job.data.clue import read_clue
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


TEXT_FIELDS = {"afqmc": ("sentence1", "sentence2"), "tnews": ("sentence",)}


def _grown(task: str, out, copies: int = 10):
    """The task's fixture records, each repeated ``copies`` times as distinct texts (a
    number appended), so the dev data can be held out in halves that both hold examples."""
    records = [json.loads(line) for line in (FIXTURES / task / "dev.json").read_text(encoding="utf-8").splitlines()]
    lines = []
    for copy in range(copies):
        for record in records:
            lines.append(
                json.dumps(
                    {**record, **{field: f"{record[field]}{copy}" for field in TEXT_FIELDS[task]}}, ensure_ascii=False
                )
            )
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


@pytest.mark.slow
@pytest.mark.parametrize("task", ["afqmc", "tnews"])
def test_tiny_classifier_compresses_end_to_end(task, tmp_path):
    data = _grown(task, tmp_path / "dev.json")
    done = run_job(
        "run", "--config", str(CLS_TINY),
        f"Global.task_name={task}", f"Global.train_data={data}", f"Global.dev_data={data}",
        f"Job.output={tmp_path / 'out'}", f"Job.cache_dir={tmp_path / 'cache'}",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    folder = tmp_path / "out" / "tiny" / task / "prune_ptq"
    results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    assert results["metric"] == "accuracy" and results["act_strategies"] == ["transformer_prune_dis", "ptq_hpo"]
    assert (
        results["models"]["compressed"]["precision"] == "int8"
        and results["models"]["compressed"]["int8_ops"].get("fc", 0) > 0
    )
    assert results["models"]["compressed"]["params"] < results["models"]["original"]["params"]
    # dev is the only labelled file: the gate ran on a held-out part of it, not on what ACT selected with.
    evaluation = results["evaluation"]
    lines = len(data.read_text(encoding="utf-8").splitlines())
    assert evaluation["split"] == "dev-holdout" and evaluation["selection"]["split"] == "dev"
    assert evaluation["examples"] + evaluation["selection"]["examples"] == lines and evaluation["examples"] > 0
    _loads_with_paddle_jit(folder)


def _loads_with_paddle_jit(folder) -> None:
    """``paddle.jit.load``, which PaddleNLP's Taskflow calls on every static model, in a fresh interpreter."""
    import subprocess
    import sys

    code = (
        "import zlib, paddle\n"
        f"layer = paddle.jit.load({str(folder / 'inference')!r})\n"
        "print(len(layer.program().global_block().ops))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert int(done.stdout.strip().splitlines()[-1]) > 0


@pytest.mark.slow
def test_classifier_output_scores_the_same_in_a_default_int8_predictor(tmp_path):
    """The offline sentiment task in CLUE format with no test file: a short-trained ERNIE
    classifier, PTQ, the gate on the held-out half of dev; then a Paddle Inference predictor
    configured as Taskflow configures one (not through the job's code) agrees with the
    job's accuracy on that same half."""
    from job.config import load_config
    from job.data.clue import build_sentiment
    from job.pipeline import prepare
    from lab.clients import default_int8_predictor, run_with

    data = tmp_path / "sentiment"
    build_sentiment(data, seed=42)
    overrides = [
        "Global.dataset=local", f"Global.train_data={data / 'train.json'}", f"Global.dev_data={data / 'dev.json'}",
        "Teacher.steps=300", "Teacher.eval_every=150", "Teacher.max_train_examples=6000", "Job.threads=2",
        f"Job.cache_dir={tmp_path / 'cache'}",
    ]  # fmt: skip
    config = ROOT / "configs" / "sentiment_demo.yaml"
    done = run_job(
        "run",
        "--config",
        str(config),
        *overrides,
        "Job.strategy=ptq",
        "QuantPost.batch_nums=4",
        "Job.gate_tolerance=2.0",
        f"Job.output={tmp_path / 'out'}",
        timeout=1500,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    folder = tmp_path / "out" / "sentiment-demo" / "sentiment" / "ptq"
    results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    assert results["before"]["accuracy"] > 0.7, "a classifier that learned something, or agreement means little"
    assert results["evaluation"]["split"] == "dev-holdout" and results["evaluation"]["examples"] > 500
    assert results["models"]["compressed"]["int8_ops"].get("fc", 0) > 0

    task = prepare(load_config(config, overrides), {}).task
    assert task.size("test") == results["evaluation"]["examples"]
    served = task.score("test", 32, run_with(default_int8_predictor(folder)))
    assert abs(served["accuracy"] - results["after"]["accuracy"]) * 100 <= 0.5, (
        served["accuracy"],
        results["after"]["accuracy"],
    )
    _loads_with_paddle_jit(folder)
