"""FFN width pruned apart from the heads (``TransformerPrune.ffn_pruned_ratio``).

PaddleSlim 2.6's ``TransformerPruner`` orders each layer's heads and FFN neurons by their
importance (gradients of a head mask and of the FFN weights on the dev data), then keeps
the first ``1 - pruned_ratio`` of both. The FFN holds two thirds of a layer's linear work
(two ``hidden x 4 hidden`` matrices against four ``hidden x hidden`` ones), and its neurons
need not be worth what the heads are, so the job can cut it by its own ratio: for the
compression, the pruner's ``prune`` (the cut, after the ordering) is replaced by one that
gives the FFN weights their own width. The ordering, and every other step of ACT's, stay
PaddleSlim's.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

__all__ = ["pruned"]

log = logging.getLogger("job.compress")


@contextlib.contextmanager
def pruned(ffn_pruned_ratio: float | None) -> Iterator[None]:
    """While inside, PaddleSlim's transformer pruner keeps ``1 - ffn_pruned_ratio`` of each
    FFN's neurons (the heads keep ``pruned_ratio``'s share); None changes nothing."""
    if ffn_pruned_ratio is None:
        yield
        return
    from paddleslim.auto_compression.transformer_pruner import TransformerPruner

    original = TransformerPruner.prune
    TransformerPruner.prune = lambda pruner: _prune(pruner, 1.0 - ffn_pruned_ratio)
    try:
        yield
    finally:
        TransformerPruner.prune = original


def _prune(pruner, ffn_keep: float):
    """The cut of ``TransformerPruner.prune`` with two widths: the attention weights'
    (``pruner.width_mult``, whole heads) and the FFN's (``ffn_keep``)."""
    head_keep = pruner.width_mult
    if pruner.input_mask_op is not None and pruner.input_mask_op.type == "stack":
        pruner._update_input_mask_inputs(pruner.inference_program, pruner.input_mask_op, head_keep)
    ratios: dict[str, list[float]] = {}
    for weights, keep in ((pruner.mha_weight, head_keep), (pruner.ffn_weight, ffn_keep)):
        for part in weights.values():
            # P1 weights widen to the pruned dimension (columns), P2 weights read from it (rows).
            ratios.update({name: [1.0, keep] for name in part["P1"]})
            ratios.update({name: [keep, 1.0] for name in part["P2"]})
            for op in part.get("reshape_op", []):
                shape = list(op.attr("shape"))
                axis = {3: -1, 4: -2, 5: -2}.get(len(shape))
                if axis is None:
                    raise IndexError(f"reshape to {shape}: not a head split PaddleSlim's pruner knows")
                shape[axis] = int(shape[axis] * keep)
                op.set_attr("shape", shape)
    log.info(
        "transformer pruning: heads keep %.0f%%, FFN neurons keep %.0f%% (TransformerPrune.ffn_pruned_ratio)",
        100 * head_keep,
        100 * ffn_keep,
    )
    return pruner._prune_transformer(pruner.scope, pruner.places, pruner.graph, ratios)
