"""PTQ calibrates on a bounded, fixed sample of the training split (``QuantPost.batch_nums``,
default 10 batches), not on the whole split: the plan per strategy, and a real ACT PTQ run
that reads exactly that sample on both of the hist algorithm's passes."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest

from job.config import DEFAULT_CALIBRATION_BATCHES, load_config

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "configs" / "uie_demo.yaml"
TRAIN_EXAMPLES = 175_000  # about the demo's training split: 5,481 batches of 32


def plan(*overrides: str, train: int = TRAIN_EXAMPLES):
    from job.compress import calibration

    cfg = load_config(DEMO, list(overrides))
    return calibration(cfg, train)


def test_ptq_calibrates_on_a_bounded_sample_by_default():
    calib = plan("Job.strategy=ptq")
    assert calib.batches == DEFAULT_CALIBRATION_BATCHES == 10
    assert calib.examples == 10 * 32 and calib.fixed
    assert "320 training examples" in calib.describe()


def test_calibration_size_is_a_setting_and_null_means_the_whole_split():
    assert plan("Job.strategy=ptq", "QuantPost.batch_nums=3").examples == 96
    whole = plan("Job.strategy=ptq", "QuantPost.batch_nums=null")
    assert whole.batches == 0 and whole.examples == TRAIN_EXAMPLES
    # never more batches than the split has
    assert plan("Job.strategy=ptq", "QuantPost.batch_nums=50", train=100).examples == 100


def test_the_search_reads_up_to_the_top_of_its_range_and_training_strategies_share_the_loader():
    hpo = plan("Job.strategy=ptq_hpo", "HyperParameterOptimization.batch_num=[2,7]")
    assert (hpo.batches, hpo.fixed) == (7, True)
    after_pruning = plan("Job.strategy=prune_ptq")
    assert after_pruning.batches == 10 and not after_pruning.fixed  # ACT calibrates from the training loader
    assert plan("Job.strategy=qat_dis") is None and plan("Job.strategy=prune_dis") is None


@pytest.fixture(scope="module")
def tiny_ptq(tmp_path_factory):
    """A tiny exported UIE compressed by job.compress.run (strategy ptq, hist, 2 batches of
    8) with a task that records every training example ACT's calibration reads."""
    from job import compress
    from job.data.tasks import UIETask
    from job.data.uie import UIEData, UIEExample, encode
    from job.model import ModelFiles, build_uie, build_vocab, export_uie, load_tokenizer, save_tokenizer

    text = "新华社北京一月一日电国家主席江泽民在人民大会堂发表新年讲话回顾过去一年的成就"
    root = tmp_path_factory.mktemp("calibration")
    save_tokenizer(build_vocab([text, "人名", "地名"]), root / "tokenizer")
    tokenizer = load_tokenizer(root / "tokenizer")

    def examples(count: int) -> UIEData:
        return UIEData([UIEExample(text[: 4 + i % 30], ("人名", "地名")[i % 2], (), f"x:{i}") for i in range(count)])

    splits = {split: encode(examples(n), tokenizer, 48) for split, n in (("train", 64), ("dev", 8), ("test", 8))}
    read: collections.Counter[int] = collections.Counter()

    class CountingTask(UIETask):
        def collate(self, split, indices, pad_to=0):
            if split == "train":
                read.update(int(i) for i in indices)
            return super().collate(split, indices, pad_to)

    task = CountingTask(splits)
    fp32 = ModelFiles(
        export_uie(build_uie("uie-tiny", len(tokenizer.vocab), seed=1), root / "tokenizer", root / "fp32")
    ).check()
    config = root / "ptq.yaml"
    config.write_text(
        "Global: {task_name: uie, dataset: embedded, batch_size: 8, max_seq_length: 48}\n"
        "QuantPost: {batch_nums: 2, algo: hist, onnx_format: true}\n"
        "Job: {strategy: ptq, threads: 1}\n",
        encoding="utf-8",
    )
    (root / "ptq").mkdir()
    result = compress.run(load_config(config), fp32, task, root / "ptq")
    return result, read


def test_ptq_reads_the_same_bounded_sample_on_every_pass(tiny_ptq):
    result, read = tiny_ptq
    assert result.calibration == compress_calibration(batches=2, batch_size=8, fixed=True, examples=16)
    # hist makes two passes (ranges, then histograms; ACT also reads the loader once when it
    # starts): every pass over the same 16 examples
    assert len(read) == 16, f"calibration read {len(read)} distinct training examples"
    passes = set(read.values())
    assert len(passes) == 1 and passes.pop() >= 2, read


def compress_calibration(**values):
    from job.compress import Calibration

    return Calibration(**values)
