"""Narrow fixes for PaddleSlim 2.6.0 (the newest release on PyPI) on programs exported by
Paddle 2.6. Each patch names its cause; ``apply()`` is idempotent and only touches the
functions named here. Tests in tests/test_compress.py run each strategy on an exported UIE
with and without the patch.

1. Dropout ``Mask``. ACT turns an inference program back into a training program
   (``recover_inference_program``); inference exports drop the outputs that only training
   needs, and 2.6.0 re-adds them for batch_norm, transpose2, flatten and unsqueeze2 but
   not for dropout. QAT or distillation on an exported transformer then fails with
   ``Incorrect setting for output(s) of operator "dropout", should set: [Mask]``.
   Fixed upstream after 2.6.0 in PaddleSlim commit cbc4d1d ("fix recover program on
   dropout op", paddleslim/common/recover_program.py). ``paddleslim.dist.single_distiller``
   imports ``_recover_outputs_attr`` by name, so the patch is installed in both modules.
2. ``XShape`` of squeeze2 and reshape2. Same function, same cause: building the gradient
   program for transformer pruning fails with ``Output XShape cannot be found in operator
   squeeze2`` (and reshape2). Not fixed upstream as of PaddleSlim's develop branch.
3. Importance loss of the transformer pruner. For float labels (UIE's start/end ids) the
   pruner's loss is ``kldiv_loss`` with ``reduction: mean``, already a 0-D scalar; the
   pruner then adds ``reduce_mean`` over it, whose gradient fails on 0-D tensors in
   Paddle >= 2.5 (``reduce_mean_grad`` rank error). The extra mean is skipped for 0-D
   inputs (the mean of a scalar is the scalar).
4. Post-training quantization after pruning. With several strategies in one ACT run
   (the reference example's default for CLUE: pruning + distillation, then PTQ),
   ``AutoCompression.single_strategy_compress`` quantizes ``self.updated_model_dir`` -
   the ORIGINAL model - instead of the previous strategy's output, so the "pruned +
   quantized" model comes out unpruned (same parameter count as the original). Still
   so on PaddleSlim's develop branch. For PTQ steps after the first, the previous
   strategy's folder is quantized instead, once its doubled output scales (5, below)
   are dropped: PTQ's graph conversion otherwise fails with "Generated graph shouldn't
   contain cycle".
"""

from __future__ import annotations

import functools
import logging
import os

from job import logs
from job.program import read_program, write_program

__all__ = ["applied", "apply"]

log = logging.getLogger("job.compress")

PATCHES = ("dropout_mask", "xshape", "scalar_mean", "ptq_after_prune")

_APPLIED: list[str] = []

# op type -> (output slot to re-add, dtype of the re-added variable or None for X's dtype)
_MISSING_OUTPUTS = {
    "dropout_mask": {"dropout": ("Mask", "uint8")},
    "xshape": {"squeeze2": ("XShape", None), "reshape2": ("XShape", None)},
}


def applied() -> tuple[str, ...]:
    return tuple(_APPLIED)


def _add_missing_outputs(program, patches: tuple[str, ...] = ("dropout_mask", "xshape")):
    """Re-add the training-only outputs that inference exports drop (patches 1 and 2)."""
    import paddle

    wanted = {}
    for name in patches:
        wanted.update(_MISSING_OUTPUTS.get(name, {}))
    for block_index in range(program.num_blocks):
        block = program.block(block_index)
        for op in block.ops:
            spec = wanted.get(op.type)
            if spec is None:
                continue
            slot, dtype = spec
            if slot in op.output_names and op.output(slot):
                continue
            source = block.var(op.input("X")[0])
            shape = tuple(source.shape) if slot == "Mask" else (0, *source.shape)
            var = block.create_var(
                name=paddle.utils.unique_name.generate_with_ignorable_key(f"{slot.lower()}.tmp"),
                dtype=dtype or source.dtype,
                type=paddle.framework.core.VarDesc.VarType.LOD_TENSOR,
                shape=shape,
                persistable=False,
                stop_gradient=True,
            )
            op.desc.set_output(slot, [var.name])
    return program


def apply(patches: tuple[str, ...] = PATCHES) -> None:
    """Install the named patches (all by default); undoes any earlier set first."""
    from paddleslim.auto_compression import transformer_pruner
    from paddleslim.common import recover_program
    from paddleslim.dist import single_distiller

    # Not a fix of PaddleSlim's results, but applied at the same moment (before ACT runs):
    # its progress bars would otherwise fill a pod's log with redraws.
    logs.route_library_bars()
    unknown = set(patches) - set(PATCHES)
    if unknown:
        raise ValueError(f"unknown patches {sorted(unknown)}; known: {PATCHES}")
    if tuple(_APPLIED) == tuple(patches):
        return
    remove()
    recover = tuple(p for p in patches if p in _MISSING_OUTPUTS)
    if recover:
        original_recover = recover_program._recover_outputs_attr

        @functools.wraps(original_recover)
        def recover_outputs_attr(program):
            return _add_missing_outputs(original_recover(program), recover)

        recover_program._recover_outputs_attr = recover_outputs_attr
        single_distiller._recover_outputs_attr = recover_outputs_attr
    if "scalar_mean" in patches:
        original_mean = transformer_pruner.mean_op

        @functools.wraps(original_mean)
        def mean_op(block, inputs, axis=None, keepdim=False):
            if len(inputs.shape) == 0:
                return inputs
            return original_mean(block, inputs, axis=axis, keepdim=keepdim)

        transformer_pruner.mean_op = mean_op
    if "ptq_after_prune" in patches:
        from paddleslim.auto_compression.compressor import AutoCompression

        original_single = AutoCompression.single_strategy_compress

        @functools.wraps(original_single)
        def single_strategy_compress(self, strategy, config, strategy_idx, train_config):
            if strategy_idx == 0 or strategy not in ("quant_post", "ptq_hpo"):
                return original_single(self, strategy, config, strategy_idx, train_config)
            saved = self.updated_model_dir
            self.updated_model_dir = os.path.join(self.tmp_dir, f"strategy_{strategy_idx}")
            # The previous strategy's save doubled the output scales in place (see
            # drop_duplicate_output_scales); PTQ's graph pass rejects that as a cycle.
            drop_duplicate_output_scales(os.path.join(self.updated_model_dir, self.model_filename))
            try:
                return original_single(self, strategy, config, strategy_idx, train_config)
            finally:
                self.updated_model_dir = saved

        AutoCompression.single_strategy_compress = single_strategy_compress
    _APPLIED.extend(patches)
    log.debug("PaddleSlim 2.6.0 patches applied: %s", ", ".join(_APPLIED))


def remove() -> None:
    """Undo ``apply`` (the tests use this to show that each patch is needed)."""
    from paddleslim.auto_compression import transformer_pruner
    from paddleslim.common import recover_program
    from paddleslim.dist import single_distiller

    while hasattr(recover_program._recover_outputs_attr, "__wrapped__"):
        recover_program._recover_outputs_attr = recover_program._recover_outputs_attr.__wrapped__
    single_distiller._recover_outputs_attr = recover_program._recover_outputs_attr
    while hasattr(transformer_pruner.mean_op, "__wrapped__"):
        transformer_pruner.mean_op = transformer_pruner.mean_op.__wrapped__
    from paddleslim.auto_compression.compressor import AutoCompression

    while hasattr(AutoCompression.single_strategy_compress, "__wrapped__"):
        AutoCompression.single_strategy_compress = AutoCompression.single_strategy_compress.__wrapped__
    _APPLIED.clear()


def drop_duplicate_output_scales(program_file) -> int:
    """Remove the identity ``scale`` ops ACT's save stacks on a program's outputs.

    5. ACT loads an exported program, which already ends in ``save_infer_model/scale_N``
       ops, and saves it again with ``save_inference_model``, which appends one more
       ``scale`` per output: writing the same variable in place, or (after a second save,
       as pruning then PTQ does) a new ``save_infer_model/scale_N.tmp_1`` fed by the first.
       Paddle Inference runs either, but ``paddle.jit.load``, which PaddleNLP's Taskflow
       calls on every static model, removes every ``save_infer_model/scale_*`` variable
       and then looks the outputs up among them (``'NoneType' object has no attribute
       'dtype'``). An identity scale (scale 1, bias 0) reading another saved output does
       nothing, so it is dropped and its readers read its input. Returns how many ops
       were removed.
    """
    desc = read_program(program_file)
    block = desc.blocks[0]
    saved = "save_infer_model/scale_"
    doomed = []
    renamed: dict[str, str] = {}
    for index, op in enumerate(block.ops):
        for var in op.inputs:
            for k, name in enumerate(var.arguments):
                if name in renamed:
                    var.arguments[k] = renamed[name]
        if op.type != "scale":
            continue
        inputs = {v.parameter: list(v.arguments) for v in op.inputs}
        outputs = {v.parameter: list(v.arguments) for v in op.outputs}
        attrs = {a.name: a for a in op.attrs}
        identity = (
            attrs.get("scale") is not None
            and attrs["scale"].f == 1.0
            and (attrs.get("bias") is None or attrs["bias"].f == 0.0)
        )
        source, target = (inputs.get("X") or [""])[0], (outputs.get("Out") or [""])[0]
        if identity and not inputs.get("ScaleTensor") and source.startswith(saved) and target.startswith(saved):
            doomed.append(index)
            if target != source:
                renamed[target] = source
    for index in reversed(doomed):
        del block.ops[index]
    if doomed:
        write_program(program_file, desc)
    return len(doomed)
