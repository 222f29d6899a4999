"""``job.int8.restrict`` on a hand-built QDQ program shaped like one attention block: which
quantize/dequantize pairs each scope keeps, and that consumers are rewired, not broken."""

from __future__ import annotations

import pytest

# name -> (type, inputs, outputs); the weight "w" and the scales are persistable.
_OPS = [
    ("quantize_linear", {"X": ["x"], "Scale": ["x@scale"], "ZeroPoint": ["x@zp"]}, {"Y": ["x.q"]}),
    ("dequantize_linear", {"X": ["x.q"], "Scale": ["x@scale"], "ZeroPoint": ["x@zp"]}, {"Y": ["x.dq"]}),
    ("dequantize_linear", {"X": ["w"], "Scale": ["w@scale"], "ZeroPoint": ["w@zp"]}, {"Y": ["w.dq"]}),
    ("matmul_v2", {"X": ["x.dq"], "Y": ["w.dq"]}, {"Out": ["q"]}),  # a linear layer
    ("elementwise_add", {"X": ["x.dq"], "Y": ["q"]}, {"Out": ["res"]}),  # a residual reading the same pair
    ("quantize_linear", {"X": ["q"], "Scale": ["q@scale"], "ZeroPoint": ["q@zp"]}, {"Y": ["q.q"]}),
    ("dequantize_linear", {"X": ["q.q"], "Scale": ["q@scale"], "ZeroPoint": ["q@zp"]}, {"Y": ["q.dq"]}),
    ("matmul_v2", {"X": ["q.dq"], "Y": ["q.dq"]}, {"Out": ["scores"]}),  # Q x K^T
    ("softmax", {"X": ["scores"]}, {"Out": ["probs"]}),
    ("quantize_linear", {"X": ["probs"], "Scale": ["p@scale"], "ZeroPoint": ["p@zp"]}, {"Y": ["probs.q"]}),
    ("dequantize_linear", {"X": ["probs.q"], "Scale": ["p@scale"], "ZeroPoint": ["p@zp"]}, {"Y": ["probs.dq"]}),
    ("matmul_v2", {"X": ["probs.dq"], "Y": ["q.dq"]}, {"Out": ["ctx"]}),  # softmax x V
    # PTQ writes one pair per consumer under the same names: a second pair on x for an add
    ("quantize_linear", {"X": ["x"], "Scale": ["x@scale"], "ZeroPoint": ["x@zp"]}, {"Y": ["x.q"]}),
    ("dequantize_linear", {"X": ["x.q"], "Scale": ["x@scale"], "ZeroPoint": ["x@zp"]}, {"Y": ["x.dq"]}),
    ("elementwise_add", {"X": ["x.dq"], "Y": ["ctx"]}, {"Out": ["out"]}),
]
_PERSISTABLE = {"w", "x@scale", "x@zp", "w@scale", "w@zp", "q@scale", "q@zp", "p@scale", "p@zp"}


def _program(path):
    from paddle.base.proto import framework_pb2

    desc = framework_pb2.ProgramDesc()
    block = desc.blocks.add()
    block.idx, block.parent_idx = 0, -1
    names = {n for _, ins, outs in _OPS for args in (*ins.values(), *outs.values()) for n in args}
    for name in sorted(names):
        var = block.vars.add()
        var.name, var.persistable = name, name in _PERSISTABLE
        var.type.type = framework_pb2.VarType.LOD_TENSOR
    for op_type, ins, outs in _OPS:
        op = block.ops.add()
        op.type = op_type
        for slot, args in ins.items():
            op.inputs.add(parameter=slot, arguments=args)
        for slot, args in outs.items():
            op.outputs.add(parameter=slot, arguments=args)
    path.write_bytes(desc.SerializeToString())
    return path


def _ops(path) -> list[tuple[str, dict[str, list[str]]]]:
    from paddle.base.proto import framework_pb2

    desc = framework_pb2.ProgramDesc()
    desc.ParseFromString(path.read_bytes())
    return [(op.type, {v.parameter: list(v.arguments) for v in op.inputs}) for op in desc.blocks[0].ops]


def _consumer(ops, op_type: str, index: int = 0) -> dict[str, list[str]]:
    return [inputs for kind, inputs in ops if kind == op_type][index]


def test_linear_keeps_only_the_pairs_in_front_of_weights(tmp_path):
    from job.int8 import restrict

    program = _program(tmp_path / "inference.pdmodel")
    result = restrict(program, "linear")
    ops = _ops(program)
    assert (result.kept, result.removed) == (1, 3)
    assert _consumer(ops, "matmul_v2", 0) == {"X": ["x.dq"], "Y": ["w.dq"]}, "the linear layer keeps its INT8 input"
    assert _consumer(ops, "elementwise_add") == {"X": ["x"], "Y": ["q"]}, "the residual reads the float tensor"
    assert _consumer(ops, "matmul_v2", 1) == {"X": ["q"], "Y": ["q"]}
    assert _consumer(ops, "matmul_v2", 2) == {"X": ["probs"], "Y": ["q"]}
    assert _consumer(ops, "elementwise_add", 1) == {"X": ["x"], "Y": ["ctx"]}, "the second pair of the same name goes too"
    assert [t for t, _ in ops].count("quantize_linear") == 1
    assert [t for t, _ in ops].count("dequantize_linear") == 2  # the kept pair's and the weight's


def test_linear_plus_pv_also_keeps_probabilities_times_v(tmp_path):
    from job.int8 import restrict

    program = _program(tmp_path / "inference.pdmodel")
    result = restrict(program, "linear+pv")
    ops = _ops(program)
    assert (result.kept, result.removed) == (3, 1)
    # probabilities x V: its first input, behind a QDQ pair, traces back to softmax
    assert _consumer(ops, "matmul_v2", 2) == {"X": ["probs.dq"], "Y": ["q.dq"]}
    # Q x K^T keeps float inputs for its own sake, but the pair on q stays for the matmul above
    assert _consumer(ops, "matmul_v2", 1) == {"X": ["q"], "Y": ["q"]}


def test_all_leaves_the_program_as_act_saved_it(tmp_path):
    from job.int8 import restrict

    program = _program(tmp_path / "inference.pdmodel")
    before = program.read_bytes()
    result = restrict(program, "all")
    assert (result.kept, result.removed, result.rewired) == (4, 0, 0)
    assert program.read_bytes() == before


def test_an_unknown_scope_is_refused(tmp_path):
    from job.int8 import restrict

    with pytest.raises(ValueError, match="unknown INT8 scope 'fc'"):
        restrict(_program(tmp_path / "inference.pdmodel"), "fc")
