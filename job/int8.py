"""What a quantized program asks to run in INT8, and what a predictor really runs in INT8.

A program saved by ACT in the QDQ format carries ``quantize_linear``/``dequantize_linear``
pairs; every consumer that loads it (PaddleNLP's Taskflow, a Paddle Inference predictor
with ``enable_mkldnn()`` + ``enable_mkldnn_int8()`` at its defaults, TensorRT) takes those
pairs as the list of tensors to run in INT8. So the published program is the contract:
``restrict`` keeps the pairs only in front of the ops that stay accurate in INT8 and
removes the rest, and every consumer then serves the same thing the job measured.

Why not everything: measured on the demo teacher after PTQ (test F1 81.91 with INT8 on
the linear layers), oneDNN INT8 on every tensor PTQ marked gave F1 4.99; the linear
layers plus attention's probabilities x V matmul (softmax output times V) 81.27; the
attention scores matmul Q x K^T in INT8 is what collapses it (oneDNN ``fused_matmul``;
all six attention matmuls in INT8 gave 2.73, the nine adds 81.72). Note that OpenVINO's NNCF transformer preset makes the
opposite choice (Q x K^T in INT8, probabilities x V in float) for its own kernels.

``served_int8_ops`` reads the optimized program a predictor wrote
(``Config.enable_save_optim_model``) and counts the ops oneDNN marked INT8, or the
TensorRT engines built in INT8, so that a row labelled ``int8`` is proven, not assumed.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from .config import INT8_SCOPES

__all__ = ["RestrictResult", "restrict", "served_int8_ops"]

log = logging.getLogger("job.int8")


# Op types whose second input is a weight when it is persistable (or a dequantized weight).
_WEIGHT_OPS = ("matmul_v2", "matmul", "mul", "conv2d", "depthwise_conv2d", "conv2d_transpose")


@dataclass
class RestrictResult:
    scope: str
    kept: int  # activation quantize/dequantize pairs left in the program
    removed: int  # pairs removed
    rewired: int  # consumers moved from a dequantized tensor to its float original

    def summary(self) -> str:
        return f"INT8 scope {self.scope}: kept {self.kept} activation quantize/dequantize pairs, removed {self.removed}"


def _args(params) -> dict[str, list[str]]:
    return {v.parameter: list(v.arguments) for v in params}


# Ops that pass a tensor on unchanged in value for this purpose (quantization simulation,
# inference-time dropout, reshapes): looked through to find where a tensor comes from.
_PASS_THROUGH = ("quantize_linear", "dequantize_linear", "dropout", "reshape2", "transpose2", "scale")


def _origins(block) -> dict[str, str]:
    """Variable -> the type of the op that made it, looking through ``_PASS_THROUGH`` ops
    (so the input of probabilities x V, behind dropout and a QDQ pair, traces to softmax)."""
    made_by = {name: op for op in block.ops for v in op.outputs for name in v.arguments}

    def origin(name: str, depth: int = 0) -> str:
        op = made_by.get(name)
        if op is None:
            return ""
        if op.type in _PASS_THROUGH and depth < 16:
            source = (_args(op.inputs).get("X") or [""])[0]
            return origin(source, depth + 1) if source else op.type
        return op.type

    return {name: origin(name) for name in made_by}


def _keeps_int8(op, weights: set[str], produced_by: dict[str, str], scope: str) -> bool:
    """Whether ``op`` is served in INT8 under ``scope`` (so its inputs keep their pairs)."""
    if scope == "all":
        return True
    if op.type not in _WEIGHT_OPS:
        return False
    inputs = _args(op.inputs)
    second = (inputs.get("Y") or inputs.get("Filter") or [None])[0]
    if second in weights:
        return True
    if scope == "linear+pv" and op.type in ("matmul_v2", "matmul"):
        first = (inputs.get("X") or [None])[0]
        return produced_by.get(first) == "softmax"
    return False


def _bindings(block) -> list[dict[str, int]]:
    """For each op, each input name -> the index of the op that wrote it last before (-1:
    a feed or a parameter). PaddleSlim's PTQ writes one quantize/dequantize pair per
    consumer under the same variable names, so names alone do not say which pair an op
    reads; positions do."""
    last: dict[str, int] = {}
    bound = []
    for index, op in enumerate(block.ops):
        bound.append({name: last.get(name, -1) for names in _args(op.inputs).values() for name in names})
        for names in _args(op.outputs).values():
            for name in names:
                last[name] = index
    return bound


def restrict(program_file: str | Path, scope: str = "linear") -> RestrictResult:
    """Keep activation quantize/dequantize pairs only in front of the ops ``scope`` serves
    in INT8 ('linear': weight-bearing ops; 'linear+pv': also matmuls whose first input
    comes from a softmax, i.e. probabilities x V; 'all': leave the program as it is);
    consumers of a removed pair read the float tensor instead. Weight pairs are
    untouched. Rewrites ``program_file`` in place (parameters are unchanged: the scale
    variables stay declared, so the combined parameter file still matches)."""
    if scope not in INT8_SCOPES:
        raise ValueError(f"unknown INT8 scope {scope!r}; choose one of {', '.join(INT8_SCOPES)}")
    from paddle.base.proto import framework_pb2

    path = Path(program_file)
    desc = framework_pb2.ProgramDesc()
    desc.ParseFromString(path.read_bytes())
    block = desc.blocks[0]
    persistable = {v.name for v in block.vars if v.persistable}
    # Dequantized weights count as weights (QDQ programs dequantize them in the graph).
    weights = set(persistable)
    for op in block.ops:
        if op.type == "dequantize_linear" and _args(op.inputs)["X"][0] in persistable:
            weights.add(_args(op.outputs)["Y"][0])
    produced_by = _origins(block)
    bound = _bindings(block)
    readers: dict[int, list[int]] = {}  # producer index -> indices of the ops reading its output
    for index, inputs in enumerate(bound):
        for producer in set(inputs.values()):
            if producer >= 0:
                readers.setdefault(producer, []).append(index)

    doomed: set[int] = set()
    kept = removed = rewired = 0
    for index, op in enumerate(block.ops):
        if op.type != "quantize_linear" or _args(op.inputs)["X"][0] in persistable:
            continue
        source = _args(op.inputs)["X"][0]
        dequants = readers.get(index, [])
        if len(dequants) != 1 or block.ops[dequants[0]].type != "dequantize_linear":
            continue
        dequant = dequants[0]
        dequantized = _args(block.ops[dequant].outputs)["Y"][0]
        users = readers.get(dequant, [])
        moved = [u for u in users if not _keeps_int8(block.ops[u], weights, produced_by, scope)]
        for user in moved:
            for var in block.ops[user].inputs:
                for k, name in enumerate(var.arguments):
                    if name == dequantized and bound[user].get(name) == dequant:
                        var.arguments[k] = source
        rewired += len(moved)
        if len(moved) == len(users):
            doomed.update((index, dequant))
            removed += 1
        else:
            kept += 1
    if scope != "all" and any(op.type.startswith("fake_") and "quantize" in op.type for op in block.ops):
        # The older format fuses quantize and dequantize into one op; only QDQ pairs are restricted.
        log.warning("%s uses the older fake-quant format (onnx_format: false): Job.int8_scope applies to QDQ pairs only, the rest is published as ACT saved it", path)
    for index in sorted(doomed, reverse=True):
        del block.ops[index]
    if doomed or rewired:
        path.write_bytes(desc.SerializeToString())
    result = RestrictResult(scope, kept, removed, rewired)
    log.info("%s: %s", path, result.summary())
    return result


def served_int8_ops(optimized_program: str | Path) -> Counter[str]:
    """Ops a predictor runs in INT8, by type, read from the optimized program it saved:
    oneDNN ops marked ``mkldnn_data_type: int8`` (the quantize pass resets the mark to
    float32 where it could not quantize), and TensorRT engines built with INT8 enabled."""
    from paddle.base.proto import framework_pb2

    desc = framework_pb2.ProgramDesc()
    desc.ParseFromString(Path(optimized_program).read_bytes())
    counts: Counter[str] = Counter()
    for block in desc.blocks:
        for op in block.ops:
            attrs = {a.name: a for a in op.attrs}
            if "mkldnn_data_type" in attrs and attrs["mkldnn_data_type"].s == "int8":
                counts[op.type] += 1
            elif op.type == "tensorrt_engine" and "enable_int8" in attrs and attrs["enable_int8"].b:
                counts[op.type] += 1
    return counts
