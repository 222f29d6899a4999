"""How the transformer pruner scores heads and FFN neurons (``TransformerPrune.importance``).

PaddleSlim 2.6's ``TransformerPruner`` orders each layer's heads and FFN neurons by the
gradient of a loss on the dev data before it cuts them. It builds that loss from the
program's first output and the first label it finds in a batch of the evaluation loader:
softmax cross-entropy for integer labels (a classifier's logits against its class: the
task's own loss), and for float labels its ``kldiv_loss`` op, which reads its input as
log-probabilities. For UIE the first output is the start probabilities, and the first label
of a batch is ``end_ids``: Paddle's DataLoader hands the batch over as a dict whose keys do
not keep the feed order. So PaddleSlim scores UIE by how much a weight raises the start
probability at gold *ends*; the gold starts, and every position that is not a gold end, do
not count.

PaddleSlim also scores in training mode, dropout on, so two runs on the same data cut
different heads and neurons.

``importance: task`` scores UIE with its own training loss instead: binary cross-entropy of
the start probabilities against the gold starts plus the end probabilities against the gold
ends, with dropout off in the scoring program (the model as it serves; the same cut every
run). The ordering, the cut and everything after it stay PaddleSlim's, and training keeps
its dropout. For classification ``task`` and ``paddleslim`` are the same loss, so nothing is
patched.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

__all__ = ["scored"]

log = logging.getLogger("job.compress")


@contextlib.contextmanager
def scored(importance: str, label_names: tuple[str, ...], label_dtype: str) -> Iterator[None]:
    """While inside, the transformer pruner scores with ``importance``'s loss (see the
    module). ``label_names``/``label_dtype``: the task's; only float span labels (UIE's
    start and end) change anything."""
    if importance == "paddleslim" or label_dtype != "float32":
        yield
        return
    if len(label_names) != 2:
        raise ValueError(f"importance 'task' scores start and end spans; labels {label_names} are not two")
    from paddleslim.auto_compression import transformer_pruner as tp

    outputs: list[str] = []
    add_mask, kl_div = tp.TransformerPruner._program_add_mask, tp.kl_div_op

    def add_mask_keeping_outputs(pruner, program, patterns, layer_num, head_num, label_info, fetch_targets):
        outputs[:] = [target.name for target in fetch_targets]
        # ``program`` is the pruner's own clone for scoring (``reorder``): dropout off there
        # scores the model as it serves, and the same data gives the same cut every run.
        for op in program.global_block().ops:
            if op.type == "dropout":
                op._set_attr("dropout_prob", 0.0)
        return add_mask(pruner, program, patterns, layer_num, head_num, label_info, fetch_targets)

    def span_loss(block, logits, labels):
        return _span_loss(tp, block, logits, labels, outputs, label_names)

    tp.TransformerPruner._program_add_mask = add_mask_keeping_outputs
    tp.kl_div_op = span_loss
    log.info(
        "transformer pruning scores heads and FFN neurons by the task's loss: binary cross-entropy of "
        "the start and end outputs against the gold spans (TransformerPrune.importance=task)"
    )
    try:
        yield
    finally:
        tp.TransformerPruner._program_add_mask, tp.kl_div_op = add_mask, kl_div


def _span_loss(tp, block, start_probs, fed_labels, outputs: list[str], label_names: tuple[str, ...]):
    """BCE(start output, start labels) + BCE(end output, end labels), appended to ``block``.
    PaddleSlim fed one label (``fed_labels``, whichever its batch dict listed first); the
    other gets a feed of its own."""
    import paddle

    if fed_labels.name not in label_names or len(outputs) != 2 or outputs[0] != start_probs.name:
        raise RuntimeError(
            f"transformer pruner: expected outputs (start, end) and a label among {label_names}, "
            f"got outputs {outputs} and label {fed_labels.name!r}"
        )
    labels = {fed_labels.name: fed_labels}
    for name in label_names:
        if name not in labels:
            labels[name] = block.create_var(
                name=name, shape=fed_labels.shape, dtype=fed_labels.dtype, persistable=False
            )
            # feed columns are 0..n-1 in the order the feed ops were added; this one takes the next.
            tp.feed_op(block, tp._feed_op_num(block.program), labels[name])
    start_name, end_name = label_names
    with paddle.static.program_guard(block.program):
        bce = paddle.nn.functional.binary_cross_entropy
        return bce(start_probs, labels[start_name]) + bce(block.var(outputs[1]), labels[end_name])
