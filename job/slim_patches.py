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
"""

from __future__ import annotations

import functools
import logging

__all__ = ["applied", "apply"]

log = logging.getLogger("job.compress")

_APPLIED: list[str] = []

# op type -> (output slot to re-add, dtype of the re-added variable or None for X's dtype)
_MISSING_OUTPUTS = {
    "dropout": ("Mask", "uint8"),
    "squeeze2": ("XShape", None),
    "reshape2": ("XShape", None),
}


def applied() -> tuple[str, ...]:
    return tuple(_APPLIED)


def _add_missing_outputs(program):
    """Re-add the training-only outputs that inference exports drop (patches 1 and 2)."""
    import paddle

    for block_index in range(program.num_blocks):
        block = program.block(block_index)
        for op in block.ops:
            spec = _MISSING_OUTPUTS.get(op.type)
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


def apply() -> None:
    """Install the patches (once per process)."""
    if _APPLIED:
        return
    from paddleslim.auto_compression import transformer_pruner
    from paddleslim.common import recover_program
    from paddleslim.dist import single_distiller

    original_recover = recover_program._recover_outputs_attr

    @functools.wraps(original_recover)
    def recover_outputs_attr(program):
        return _add_missing_outputs(original_recover(program))

    recover_program._recover_outputs_attr = recover_outputs_attr
    single_distiller._recover_outputs_attr = recover_outputs_attr
    _APPLIED.extend(["recover_outputs:dropout.Mask", "recover_outputs:squeeze2/reshape2.XShape"])

    original_mean = transformer_pruner.mean_op

    @functools.wraps(original_mean)
    def mean_op(block, inputs, axis=None, keepdim=False):
        if len(inputs.shape) == 0:
            return inputs
        return original_mean(block, inputs, axis=axis, keepdim=keepdim)

    transformer_pruner.mean_op = mean_op
    _APPLIED.append("transformer_pruner:scalar_mean")
    log.debug("PaddleSlim 2.6.0 patches applied: %s", ", ".join(_APPLIED))


def remove() -> None:
    """Undo ``apply`` (tests use this to show each patch is needed)."""
    if not _APPLIED:
        return
    from paddleslim.auto_compression import transformer_pruner
    from paddleslim.common import recover_program
    from paddleslim.dist import single_distiller

    recover_program._recover_outputs_attr = recover_program._recover_outputs_attr.__wrapped__
    single_distiller._recover_outputs_attr = recover_program._recover_outputs_attr
    transformer_pruner.mean_op = transformer_pruner.mean_op.__wrapped__
    _APPLIED.clear()


def drop_duplicate_output_scales(program_file) -> int:
    """Remove the in-place identity ``scale`` ops ACT's save leaves on a program's outputs.

    4. ACT loads an exported program, which already ends in ``save_infer_model/scale_N``
       ops, and saves it again with ``save_inference_model``, which appends one more
       ``scale`` per output writing the same variable in place. Paddle Inference runs it,
       but ``paddle.jit.load``, which PaddleNLP's Taskflow uses to recognise quantized
       models, fails on it (``'NoneType' object has no attribute 'dtype'``). An identity
       scale (scale 1, bias 0) whose input and output are the same variable does nothing,
       so it is dropped. Returns how many ops were removed.
    """
    from pathlib import Path

    from paddle.base.proto import framework_pb2

    path = Path(program_file)
    desc = framework_pb2.ProgramDesc()
    desc.ParseFromString(path.read_bytes())
    block = desc.blocks[0]
    doomed = []
    for index, op in enumerate(block.ops):
        if op.type != "scale":
            continue
        inputs = {v.parameter: list(v.arguments) for v in op.inputs}
        outputs = {v.parameter: list(v.arguments) for v in op.outputs}
        attrs = {a.name: a for a in op.attrs}
        identity = attrs.get("scale") is not None and attrs["scale"].f == 1.0 and (attrs.get("bias") is None or attrs["bias"].f == 0.0)
        if identity and inputs.get("X") == outputs.get("Out") and not inputs.get("ScaleTensor"):
            doomed.append(index)
    for index in reversed(doomed):
        del block.ops[index]
    if doomed:
        path.write_bytes(desc.SerializeToString())
    return len(doomed)
