"""Compression: PaddleSlim's AutoCompression driven by the typed config, and what the
published program runs in INT8.

* ``stage``: the compression stage (ACT's sections from the strategy, the data loaders,
  calibration); its public names are re-exported here;
* ``int8``: the INT8 scope of a quantized program and the ops a predictor really runs
  in INT8;
* ``ffn_width``: the FFN width pruned by its own ratio (``TransformerPrune.ffn_pruned_ratio``);
* ``importance``: the loss the pruner scores heads and neurons by (``TransformerPrune.importance``);
* ``slim_patches``: narrow fixes for PaddleSlim 2.6.0, each naming its cause.
"""

from job.compress.stage import (
    Calibration,
    CompressResult,
    act_config,
    calibration,
    check_distillation_nodes,
    distillation_teacher,
    run,
)

__all__ = [
    "Calibration",
    "CompressResult",
    "act_config",
    "calibration",
    "check_distillation_nodes",
    "distillation_teacher",
    "run",
]
