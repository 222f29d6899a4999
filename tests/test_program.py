"""``job.program``, the one reader and writer of Paddle program and parameter files: the facts
read from a program (against a program Paddle saved and a hand-built one), the parameter file
byte for byte against Paddle's own ``save_combine``/``load_combine``, and one-line errors for
files that are not what they should be."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from paddle_params import load_combine, save_combine

from job.errors import InputError

REPO = Path(__file__).resolve().parent.parent


def _saved_model(folder: Path) -> Path:
    """A small network saved by Paddle's own ``save_inference_model``: two inputs, an
    embedding [50, 16] and a linear layer [16, 4] + [4]."""
    from job.runtime import paddle

    paddle.enable_static()
    try:
        main, startup = paddle.static.Program(), paddle.static.Program()
        with paddle.static.program_guard(main, startup), paddle.utils.unique_name.guard():  # the same names each time
            ids = paddle.static.data("input_ids", [-1, 8], "int64")
            mask = paddle.static.data("attention_mask", [-1, 8], "float32")
            hidden = paddle.nn.Embedding(50, 16)(ids)
            out = paddle.nn.Linear(16, 4)(hidden) * paddle.unsqueeze(mask, -1)
        exe = paddle.static.Executor(paddle.CPUPlace())
        exe.run(startup)
        paddle.static.save_inference_model(str(folder / "inference"), [ids, mask], [out], exe, program=main)
    finally:
        paddle.disable_static()
    return folder / "inference.pdmodel"


def _arrays() -> dict:
    import numpy as np

    rng = np.random.default_rng(0)
    return {
        "emb": rng.standard_normal((5, 3)).astype(np.float32),
        "ids": rng.integers(-9, 9, (4,)).astype(np.int64),
        "q": rng.integers(-127, 128, (2, 3)).astype(np.int8),
        "scale": np.array([0.25], np.float32),
        "zp": np.zeros(3, np.int32),
        "wide": rng.standard_normal((2, 2)).astype(np.float64),
    }


def test_a_parameter_file_reads_and_writes_back_byte_for_byte(tmp_path):
    import numpy as np

    from job.program import read_params, write_params

    arrays = _arrays()
    source, copy = tmp_path / "a.pdiparams", tmp_path / "b.pdiparams"
    save_combine(source, arrays, lods={"ids": [[0, 1, 4]]})  # a LoD level too, as save_combine writes it
    tensors = read_params(source)
    assert len(tensors) == len(arrays)
    for tensor, (name, values) in zip(tensors, arrays.items(), strict=True):  # in file order
        assert list(tensor.desc.dims) == list(values.shape), name
        assert tensor.array().dtype == values.dtype and np.array_equal(tensor.array(), values), name
    assert tensors[1].lod != tensors[0].lod, "the LoD level is kept"
    write_params(copy, tensors)
    assert copy.read_bytes() == source.read_bytes()
    tensors[0].version = 7  # Paddle writes 0; whatever was read is written back
    write_params(copy, tensors)
    assert read_params(copy)[0].version == 7


def test_tensors_made_here_are_read_by_paddle_in_name_order(tmp_path):
    """``write_params`` given tensors by name writes them sorted, as the loader reads them,
    and Paddle's ``load_combine`` reads what ``ParamTensor.from_array`` made."""
    import numpy as np

    from job.program import ParamTensor, read_params, write_params

    arrays = _arrays()
    path = tmp_path / "made.pdiparams"
    write_params(path, {name: ParamTensor.from_array(arrays[name]) for name in reversed(arrays)})
    loaded = load_combine(path, sorted(arrays))
    for name, values in arrays.items():
        assert loaded[name].dtype == values.dtype and np.array_equal(loaded[name], values), name
    again = tmp_path / "paddle.pdiparams"
    save_combine(again, {name: arrays[name] for name in sorted(arrays)})
    assert again.read_bytes() == path.read_bytes(), "the same bytes as Paddle's own save_combine"
    assert [t.array().tolist() for t in read_params(path)] == [arrays[n].tolist() for n in sorted(arrays)]


def test_the_facts_of_a_program_paddle_saved(tmp_path):
    import numpy as np

    from job.model import ModelFiles
    from job.program import is_quantized, model_params, param_names, program_inputs, program_ops, program_params

    program = _saved_model(tmp_path)
    model = ModelFiles(tmp_path)
    assert program_inputs(model) == program_inputs(program) == ["input_ids", "attention_mask"]
    ops = program_ops(model)
    assert (ops["feed"], ops["fetch"], ops["lookup_table_v2"], ops["matmul_v2"]) == (2, 1, 1, 1)
    assert not is_quantized(model)
    assert param_names(model) == ["embedding_0.w_0", "linear_0.b_0", "linear_0.w_0"], "not feed or fetch"
    assert model_params(model) == 50 * 16 + 16 * 4 + 4
    params = program_params(model, model.params)
    assert list(params) == param_names(model)
    assert [list(t.desc.dims) for t in params.values()] == [[50, 16], [4], [16, 4]]
    assert all(t.array().dtype == np.float32 for t in params.values())


def _program(path: Path, ops: list[tuple[str, dict, dict, dict]], variables: dict[str, tuple[int, list[int], bool]]):
    """A hand-built program: ``ops`` as (type, inputs, outputs, int attributes), each
    variable as (VarType type, dims, persistable); a ``while`` op's sub-block holds one
    ``relu``."""
    from job.runtime import paddle

    framework_pb2 = paddle.base.proto.framework_pb2
    desc = framework_pb2.ProgramDesc()
    block = desc.blocks.add()
    block.idx, block.parent_idx = 0, -1
    for name, (kind, dims, persistable) in variables.items():
        var = block.vars.add()
        var.name, var.persistable = name, persistable
        var.type.type = kind
        var.type.lod_tensor.tensor.data_type = framework_pb2.VarType.FP32
        var.type.lod_tensor.tensor.dims.extend(dims)
    for op_type, ins, outs, attrs in ops:
        op = block.ops.add()
        op.type = op_type
        for slot, args in ins.items():
            op.inputs.add(parameter=slot, arguments=args)
        for slot, args in outs.items():
            op.outputs.add(parameter=slot, arguments=args)
        for name, value in attrs.items():
            op.attrs.add(name=name, type=framework_pb2.AttrType.INT, i=value)
    sub = desc.blocks.add()
    sub.idx, sub.parent_idx = 1, 0
    sub.ops.add(type="relu")
    path.write_bytes(desc.SerializeToString())
    return path


_LOD, _FEED, _FETCH = 7, 9, 10  # framework.proto VarType.Type
_VARIABLES = {
    "feed": (_FEED, [], True),
    "fetch": (_FETCH, [], True),
    "a": (_LOD, [-1, 4], False),
    "b": (_LOD, [-1, 4], False),
    "w": (_LOD, [4, 3], True),
    "w@scale": (_LOD, [3], True),
    "w@zero_point": (_LOD, [3], True),
    "out": (_LOD, [-1, 3], False),
}
_FLOAT_OPS = [
    ("feed", {"X": ["feed"]}, {"Out": ["b"]}, {"col": 1}),  # the second input comes first
    ("feed", {"X": ["feed"]}, {"Out": ["a"]}, {"col": 0}),
    ("elementwise_add", {"X": ["a"], "Y": ["b"]}, {"Out": ["a"]}, {}),
    ("matmul_v2", {"X": ["a"], "Y": ["w"]}, {"Out": ["out"]}, {}),
    ("while", {"X": ["out"]}, {"Out": ["out"]}, {}),
    ("fetch", {"X": ["out"]}, {"Out": ["fetch"]}, {"col": 0}),
]


def test_ops_inputs_and_params_of_a_hand_built_program(tmp_path):
    from job.program import model_params, param_names, program_inputs, program_ops

    program = _program(tmp_path / "inference.pdmodel", _FLOAT_OPS, _VARIABLES)
    assert program_inputs(program) == ["a", "b"], "in feed column order, not op order"
    assert program_ops(program) == {
        "feed": 2,
        "elementwise_add": 1,
        "matmul_v2": 1,
        "while": 1,
        "fetch": 1,
        "relu": 1,  # ops of every block
    }
    assert param_names(program) == ["w", "w@scale", "w@zero_point"], "sorted; feed and fetch are not saved"
    assert model_params(program) == 12, "the weight only: no scale, zero point, feed or fetch"


@pytest.mark.parametrize(
    ("op_type", "quantized"),
    [
        ("quantize_linear", True),
        ("dequantize_linear", True),
        ("fake_quantize_dequantize_moving_average_abs_max", True),
        ("fake_channel_wise_dequantize_max_abs", True),
        ("scale", False),
    ],
)
def test_is_quantized_knows_the_qdq_and_the_fake_quant_formats(tmp_path, op_type, quantized):
    from job.program import is_quantized, program_desc

    marked = ("x", {"X": ["w"], "Scale": ["w@scale"]}, {"Y": ["w"]}, {})
    ops = [*_FLOAT_OPS[:3], (op_type, *marked[1:]), *_FLOAT_OPS[3:]]
    program = _program(tmp_path / "inference.pdmodel", ops, _VARIABLES)
    assert is_quantized(program) is quantized
    assert is_quantized(program_desc(program)) is quantized, "a parsed program too"


def _bad_files(folder: Path) -> dict[str, Path]:
    program = _saved_model(folder)
    raw = program.read_bytes()
    cases = {
        "text": b"not really a program",
        "truncated": raw[: len(raw) // 2],
        "empty": b"",
        "params": (folder / "inference.pdiparams").read_bytes(),  # the other file of the folder
    }
    out = {}
    for name, data in cases.items():
        out[name] = folder / f"{name}.pdmodel"
        out[name].write_bytes(data)
    out["missing"] = folder / "missing.pdmodel"
    return out


def test_a_file_that_is_not_a_program_is_a_one_line_input_error(tmp_path):
    from job.program import is_quantized, program_desc, program_inputs, read_program

    for name, path in _bad_files(tmp_path).items():
        for read in (read_program, program_desc, program_inputs, is_quantized):
            with pytest.raises(InputError) as caught:
                read(path)
            message = str(caught.value)
            assert message.startswith(f"{path}: "), (name, message)
            assert "\n" not in message, (name, message)
            assert ("cannot read" if name == "missing" else "not a Paddle program file") in message, (name, message)


def test_a_broken_parameter_file_is_an_input_error_and_a_mismatched_one_says_so(tmp_path):
    from job.program import ParamsMismatchError, program_params, read_params

    program = _saved_model(tmp_path)
    params = tmp_path / "inference.pdiparams"
    raw = params.read_bytes()
    broken = tmp_path / "broken.pdiparams"
    for data in (raw[:-1], raw[:20], raw + b"\0" * 5):  # short data, a cut description, trailing bytes
        broken.write_bytes(data)
        with pytest.raises(InputError, match=f"^{re.escape(str(broken))}: not a Paddle parameter file") as caught:
            read_params(broken)
        assert not isinstance(caught.value, ParamsMismatchError)
    other = tmp_path / "other.pdiparams"
    save_combine(other, {k: v for k, v in _arrays().items() if k in ("emb", "scale", "zp")})
    with pytest.raises(
        ParamsMismatchError,
        match=r"the tensor read as embedding_0\.w_0 has shape \[5, 3\], the program declares \[50, 16\]",
    ):
        program_params(program, other)
    save_combine(other, {"emb": _arrays()["emb"]})
    with pytest.raises(ParamsMismatchError, match="1 tensors, but the program declares 3 parameters"):
        program_params(program, other)


def test_write_program_replaces_the_file_whole_and_the_cache_follows(tmp_path, monkeypatch):
    from job.program import program_desc, program_ops, read_program, write_program

    program = _program(tmp_path / "inference.pdmodel", _FLOAT_OPS, _VARIABLES)
    os.chmod(program, 0o640)
    first = program_desc(program)
    assert program_desc(program) is first, "cached while the file is unchanged"
    desc = read_program(program)
    assert desc is not first, "a fresh copy to change"
    del desc.blocks[0].ops[2]  # the add
    write_program(program, desc)
    assert "elementwise_add" not in program_ops(program)
    assert "elementwise_add" in program_ops(first), "the cached copy was not changed in place"
    assert program.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inference.pdmodel"], "no temporary file left"

    before = program.read_bytes()

    def fail(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="No space left"):
        write_program(program, read_program(_program(tmp_path / "other.pdmodel", _FLOAT_OPS[:2], _VARIABLES)))
    assert program.read_bytes() == before, "a failed write leaves the old program"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inference.pdmodel", "other.pdmodel"]


def test_importing_job_program_imports_no_paddle_or_numpy():
    probe = (
        "import json, sys, job.program; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('paddle', 'numpy'))))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout) == []
