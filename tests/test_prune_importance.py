"""``TransformerPrune.importance``: the loss whose gradients order heads and FFN neurons
before the transformer pruner cuts them (job/compress/importance.py).

PaddleSlim's pruner is built here on the tiny UIE teacher as ACT builds it: the inference
program and its patterns, and an evaluation DataLoader fed as the job's compression stage
feeds it (the model's inputs, then ``start_ids`` and ``end_ids``), from which PaddleSlim's
own ``_get_label_info`` picks the label. Its scores are read from ``compute_importance``.
Batches that differ in their gold starts only, or in their gold ends only, show which
labels a score reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

VOCAB, LENGTH, BATCH = 2138, 24, 8  # the tiny teacher's vocabulary (tests/configs/tiny.yaml's shape)
INPUTS = ("input_ids", "token_type_ids", "position_ids", "attention_mask")
LABELS = ("start_ids", "end_ids")


def _batch(start_shift: int, end_shift: int) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    starts = np.zeros((BATCH, LENGTH), dtype="float32")
    ends = np.zeros((BATCH, LENGTH), dtype="float32")
    for row in range(BATCH):
        begin = int(rng.integers(2, LENGTH - 12))
        starts[row, begin + start_shift] = 1.0
        ends[row, begin + 4 + end_shift] = 1.0
    return [
        rng.integers(1, VOCAB, size=(BATCH, LENGTH)).astype("int64"),
        np.zeros((BATCH, LENGTH), dtype="int64"),
        np.tile(np.arange(LENGTH, dtype="int64"), (BATCH, 1)),
        np.ones((BATCH, LENGTH), dtype="int64"),
        starts,
        ends,
    ]


def _loader(paddle, arrays: list[np.ndarray]):
    """One batch through a DataLoader with ``feed_list`` and ``return_list=False``, as
    ``job.compress.stage`` hands ACT its evaluation data."""
    feeds = [paddle.static.data(name=name, shape=[-1, -1], dtype="int64") for name in INPUTS]
    feeds += [paddle.static.data(name=name, shape=[-1, -1], dtype="float32") for name in LABELS]

    class One(paddle.io.Dataset):
        def __getitem__(self, index: int) -> int:
            return index

        def __len__(self) -> int:
            return 1

    return paddle.io.DataLoader(
        One(), batch_size=1, collate_fn=lambda _: arrays, feed_list=feeds, return_list=False, num_workers=0
    )


def pruner_scores(
    teacher: Path, importance: str, start_shift: int = 0, end_shift: int = 0, *, seeded: bool = True
) -> tuple[np.ndarray, list[np.ndarray], dict]:
    """Head and FFN-neuron scores of PaddleSlim's pruner on the teacher for one batch, and
    what its scoring program read: PaddleSlim's label, and its BCE ops. ``seeded``: the
    same dropout masks on every call (PaddleSlim scores with dropout on)."""
    from paddleslim.auto_compression.create_compressed_program import _get_label_info
    from paddleslim.auto_compression.transformer_pruner import TransformerPruner
    from paddleslim.common.patterns import get_patterns

    from job.compress import importance as scoring
    from job.compress import slim_patches
    from job.runtime import paddle

    scores: dict = {}
    compute = TransformerPruner.compute_importance

    def keep_scores(pruner, *args, **kwargs):
        program, heads, neurons = compute(pruner, *args, **kwargs)
        scores.update(heads=heads, neurons=neurons, bce=sum(op.type == "bce_loss" for op in program.global_block().ops))
        return program, heads, neurons

    paddle.enable_static()
    slim_patches.apply()  # as the job's compression stage does: the XShape outputs backward needs
    TransformerPruner.compute_importance = keep_scores
    try:
        with paddle.static.scope_guard(paddle.static.Scope()), scoring.scored(importance, LABELS, "float32"):
            exe = paddle.static.Executor(paddle.CPUPlace())
            program, _, fetches = paddle.static.load_inference_model(str(teacher / "inference"), exe)
            if seeded:
                paddle.seed(0)
                program.random_seed = 1
            patterns, _ = get_patterns(program)
            with paddle.static.program_guard(paddle.static.Program()):
                loader = _loader(paddle, _batch(start_shift, end_shift))
            label = _get_label_info(loader, list(INPUTS))
            TransformerPruner(exe, paddle.CPUPlace(), program, patterns, label, 0.75, fetches, loader)
    finally:
        TransformerPruner.compute_importance = compute
        slim_patches.remove()
        paddle.disable_static()
    scores["label"] = label["name"]
    return scores["heads"], scores["neurons"], scores


def _same(first, second) -> bool:
    (heads, neurons, _), (other_heads, other_neurons, _) = first, second
    return np.array_equal(heads, other_heads) and all(
        np.array_equal(a, b) for a, b in zip(neurons, other_neurons, strict=True)
    )


@pytest.fixture(scope="module")
def teacher(tiny) -> Path:
    (folder,) = (tiny["root"] / "cache" / "teachers").glob("uie-tiny-*")
    return folder


def test_paddleslims_score_pairs_the_start_output_with_the_gold_ends(teacher):
    """The control, and the fault ``task`` fixes: PaddleSlim's label is ``end_ids`` (the
    batch dict does not keep the feed order) against the start output, so moving the gold
    starts leaves every score as it was and moving the gold ends does not."""
    scored = pruner_scores(teacher, "paddleslim")
    assert scored[2]["label"] == "end_ids" and scored[2]["bce"] == 0
    assert _same(scored, pruner_scores(teacher, "paddleslim", start_shift=3))
    assert not _same(scored, pruner_scores(teacher, "paddleslim", end_shift=3))


def test_the_tasks_loss_scores_each_output_against_its_own_labels(teacher):
    """``importance: task``: one BCE per output, and both the gold starts and the gold ends
    move the scores (mutations: drop the end term of ``_span_loss``, or pair the start
    output with ``end_ids`` -> moving the starts changes nothing and this fails)."""
    scored = pruner_scores(teacher, "task")
    heads = scored[0]
    assert scored[2]["bce"] == 2
    assert heads.shape == (2, 4) and np.all(np.isfinite(heads)) and heads.sum() > 0
    assert not _same(scored, pruner_scores(teacher, "task", start_shift=3))
    assert not _same(scored, pruner_scores(teacher, "task", end_shift=3))


def test_the_tasks_scores_are_the_same_every_run_and_paddleslims_are_not(teacher):
    """PaddleSlim scores with dropout on, so the same data gives other scores (and another
    cut) on the next call; ``task`` scores with dropout off (mutation: leave the dropout
    probability alone -> the two task calls differ and this fails)."""
    assert not _same(
        pruner_scores(teacher, "paddleslim", seeded=False), pruner_scores(teacher, "paddleslim", seeded=False)
    )
    assert _same(pruner_scores(teacher, "task", seeded=False), pruner_scores(teacher, "task", seeded=False))


def test_classification_keeps_paddleslims_loss_unpatched():
    """Integer labels: PaddleSlim's softmax cross-entropy already is the task's loss; nothing
    is replaced (the pruner's functions are the same objects inside the context)."""
    from paddleslim.auto_compression import transformer_pruner as tp

    from job.compress import importance as scoring

    before = (tp.kl_div_op, tp.TransformerPruner._program_add_mask)
    with scoring.scored("task", ("labels",), "int64"):
        assert (tp.kl_div_op, tp.TransformerPruner._program_add_mask) == before
    with scoring.scored("task", ("start_ids", "end_ids"), "float32"):
        assert tp.kl_div_op is not before[0]
    assert (tp.kl_div_op, tp.TransformerPruner._program_add_mask) == before
