"""Paddle's own writer and reader of combined parameter files (``save_combine`` and
``load_combine`` run in a static program): the reference the tests hold ``job.program``
and ``job.compress.int8`` to."""

from __future__ import annotations

from pathlib import Path


def save_combine(path: Path, arrays: dict, lods: dict | None = None) -> None:
    """``arrays`` written by Paddle's ``save_combine`` in the order given, with LoD
    ``lods[name]`` where given."""
    from job.runtime import paddle

    paddle.enable_static()
    try:
        program, scope = paddle.static.Program(), paddle.static.Scope()
        block = program.global_block()
        for name, values in arrays.items():
            block.create_var(name=name, shape=values.shape, dtype=str(values.dtype), persistable=True)
            tensor = scope.var(name).get_tensor()
            tensor.set(values, paddle.CPUPlace())
            if lods and name in lods:
                tensor.set_lod(lods[name])
        raw = block.create_var(name="saved_params", type=paddle.base.core.VarDesc.VarType.RAW)
        block.append_op(
            type="save_combine",
            inputs={"X": [block.var(n) for n in arrays]},
            outputs={"Y": raw},
            attrs={"file_path": str(path), "overwrite": True},
        )
        paddle.static.Executor(paddle.CPUPlace()).run(program, scope=scope)
    finally:
        paddle.disable_static()


def load_combine(path: Path, names: list[str]) -> dict:
    """The tensors of a parameter file as Paddle's ``load_combine`` reads them."""
    import numpy as np

    from job.runtime import paddle

    paddle.enable_static()
    try:
        program, scope = paddle.static.Program(), paddle.static.Scope()
        block = program.global_block()
        for name in names:
            block.create_var(name=name, persistable=True)
        block.append_op(
            type="load_combine",
            inputs={},
            outputs={"Out": [block.var(n) for n in names]},
            attrs={"file_path": str(path)},
        )
        paddle.static.Executor(paddle.CPUPlace()).run(program, scope=scope)
        return {n: np.array(scope.find_var(n).get_tensor()) for n in names}
    finally:
        paddle.disable_static()
