"""``job.compress.int8.int8_weights`` and ``weights_note`` on the hand-built per-channel
program of tests/test_int8_scope.py after ``restrict``: INT8 storage shrinks the parameter
file, keeps the values oneDNN serves, and is what the note measures."""

from __future__ import annotations

import numpy as np
from paddle_params import load_combine
from test_int8_scope import _ops, _weight_program

_NEW = ["sq@tensor_scale", "sq@tensor_zero_point", "wide@tensor_scale", "wide@tensor_zero_point"]


def _restricted(folder):
    from job.compress.int8 import restrict

    program, arrays = _weight_program(folder)
    assert restrict(program, "linear").folded == 2
    return program, arrays


def _store(program, hint: str) -> int:
    from job.compress.int8 import int8_weights
    from job.program import read_program, write_program

    desc = read_program(program)
    stored = int8_weights(desc, program.with_suffix(".pdiparams"), hint)
    write_program(program, desc)
    return stored


def test_int8_storage_shrinks_the_params_and_keeps_the_served_values(tmp_path):
    program, arrays = _restricted(tmp_path)
    params = program.with_suffix(".pdiparams")
    before_bytes = params.stat().st_size
    floats = load_combine(params, sorted([*arrays, *_NEW]))

    assert _store(program, hint="quantize") == 2
    assert params.stat().st_size == before_bytes - 3 * (16 + 32), "one byte per weight instead of four"
    after = load_combine(params, sorted([*arrays, *_NEW]))
    for weight in ("sq", "wide"):
        limit = float(floats[f"{weight}@tensor_scale"][0])
        assert after[weight].dtype == np.int8
        # what oneDNN's fc quantizes the float weight to at that per-tensor scale
        np.testing.assert_array_equal(after[weight], np.rint(floats[weight].astype(np.float64) / limit * 127))
        np.testing.assert_allclose(after[weight] / 127.0 * limit, floats[weight], atol=limit / 254 + 1e-7)
    ops = _ops(program)
    dequants = [inputs["X"] for kind, inputs in ops if kind == "dequantize_linear"]
    assert ["sq"] in dequants and ["wide"] in dequants, "the dequantize reads the INT8 weight itself"
    hints = [inputs["X"] for kind, inputs in ops if kind == "quantize_linear"]
    assert ["sq"] in hints and ["wide"] in hints, "the scale hint stays"
    assert _store(program, hint="quantize") == 0, "INT8 weights are not stored again"


def test_without_the_hint_the_quantize_op_on_the_weight_goes(tmp_path):
    program, _ = _restricted(tmp_path)
    assert _store(program, hint="none") == 2
    hints = [inputs["X"] for kind, inputs in _ops(program) if kind == "quantize_linear"]
    assert hints == [["x"]], "only the activation's quantize is left"


def test_the_note_gives_the_float32_weight_bytes_and_the_file_size(tmp_path):
    from job.compress.int8 import float32_linear_weight_bytes, weights_note

    program, _ = _restricted(tmp_path)
    linear, total = float32_linear_weight_bytes(program)
    assert linear == 4 * (16 + 32) and total == program.with_suffix(".pdiparams").stat().st_size
    assert "float32" in weights_note(program) and "probe_int8_weights" in weights_note(program)
    _store(program, hint="quantize")
    assert float32_linear_weight_bytes(program)[0] == 0
    assert weights_note(program) == "", "nothing to explain once the weights are INT8"


def test_the_assign_hint_carries_the_scale_on_an_in_place_assign(tmp_path):
    program, arrays = _restricted(tmp_path)
    floats = load_combine(program.with_suffix(".pdiparams"), sorted([*arrays, *_NEW]))
    assert _store(program, hint="assign") == 2
    from job.program import read_program

    assigns = {
        op.inputs[0].arguments[0]: (op.outputs[0].arguments[0], {a.name: a.f for a in op.attrs})
        for op in read_program(program).blocks[0].ops
        if op.type == "assign"
    }
    for weight in ("sq", "wide"):
        out, attrs = assigns[weight]
        assert out == weight, "in place: the fc reads the weight under its own name"
        assert attrs["out_threshold"] == float(floats[f"{weight}@tensor_scale"][0])
    assert [k for k, _ in _ops(program)].count("quantize_linear") == 1, "only the activation's"


def test_job_weights_int8_makes_restrict_store_them_and_served_memory_stays_float32(tmp_path):
    """Job.weights: int8 goes through restrict (the stage's one call); results count the
    served weight memory as float32 (predictors dequantize INT8 weights when they load)."""
    from types import SimpleNamespace

    from job.compress.int8 import restrict
    from job.results import weight_bytes

    float_dir, int8_dir = tmp_path / "f", tmp_path / "i"
    float_dir.mkdir(), int8_dir.mkdir()
    program_f, _ = _weight_program(float_dir)
    program_i, _ = _weight_program(int8_dir)
    assert restrict(program_f, "linear").stored_int8 == 0
    result = restrict(program_i, "linear", weight_storage="int8")
    assert result.folded == 2 and result.stored_int8 == 2 and "2 stored as INT8" in result.summary()
    assert program_i.with_suffix(".pdiparams").stat().st_size < program_f.with_suffix(".pdiparams").stat().st_size
    assert [kind for kind, _ in _ops(program_i)].count("assign") == 2
    served = [weight_bytes(SimpleNamespace(params=p.with_suffix(".pdiparams"))) for p in (program_f, program_i)]
    assert served[0] == served[1]


def test_job_weights_is_checked():
    import pytest

    from job.config import JobSection

    JobSection(weights="int8").check()
    with pytest.raises(ValueError, match="float32"):
        JobSection(weights="int4").check()
