"""What a quantized program asks to run in INT8, and what a predictor really runs in INT8.

A program saved by ACT in the QDQ format carries ``quantize_linear``/``dequantize_linear``
pairs; every consumer that loads it (PaddleNLP's Taskflow, a Paddle Inference predictor
with ``enable_mkldnn()`` + ``enable_mkldnn_int8()`` at its defaults, TensorRT) takes those
pairs as the list of tensors to run in INT8. So the published program is the contract:
``restrict`` keeps the pairs only in front of the ops that stay accurate in INT8 and
removes the rest, and every consumer then serves the same thing the job measured.

The weights too: Paddle 2.6's oneDNN INT8 passes mis-scale ACT's per-channel linear
weights (``_per_tensor_weights`` says how), so ``restrict`` hands every linear weight to
them as a float32 weight behind a per-tensor pair (the slow tests hold the demo
teacher's PTQ within a point of FP32 through a default INT8 predictor; the probe record
under ``records/`` has the F1 of each scope).

Why not every tensor: the attention scores matmul Q x K^T in INT8 is what collapses the
accuracy (oneDNN ``fused_matmul``; a slow test expects the gate to fail scope 'all').
Its operands are right (Q at its own scale, 1/sqrt(d) as the matmul's
alpha, K^T's scale); the attention mask is not: Paddle fuses the mask add into the matmul
as ``ResidualData`` quantized to INT8 (scale 127/1e4, the mask's -1e4 sets the range),
and Paddle 2.6's fused_matmul kernel adds those raw INT8 values (masked scores came out
-128, not -1e4) and also appends a oneDNN ``sum`` post-op scaled 1/Scale_in_eltwise,
which adds whatever the output buffer held. Without that fusion the mask add runs in
INT8 at the same 1e4 range, a quantization step far larger than the scores' spread,
which erases them. So Q x K^T
stays in float; OpenVINO's NNCF transformer preset makes the opposite choice (Q x K^T in
INT8, probabilities x V in float) for its own kernels.

``served_int8_ops`` reads the optimized program a predictor wrote
(``Config.enable_save_optim_model``) and counts the ops oneDNN marked INT8, or the
TensorRT engines built in INT8, so that a row labelled ``int8`` is proven, not assumed.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from job.program import (
    ParamsMismatchError,
    ParamTensor,
    op_args,
    program_params,
    read_program,
    write_params,
    write_program,
)

__all__ = [
    "SCOPES",
    "Keeps",
    "RestrictResult",
    "Scope",
    "float32_linear_weight_bytes",
    "int8_weights",
    "restrict",
    "served_int8_ops",
    "weights_note",
]

log = logging.getLogger("job.compress.int8")


# Op types whose second input is a weight when it is persistable (or a dequantized weight).
_WEIGHT_OPS = ("matmul_v2", "matmul", "mul", "conv2d", "depthwise_conv2d", "conv2d_transpose")


@dataclass
class RestrictResult:
    scope: str
    kept: int  # activation quantize/dequantize pairs left in the program
    removed: int  # pairs removed
    rewired: int  # consumers moved from a dequantized tensor to its float original
    folded: int = 0  # per-channel linear weights made per-tensor (see _per_tensor_weights)
    stored_int8: int = 0  # of those, stored as INT8 with their scale (Job.weights: int8, see int8_weights)

    def summary(self) -> str:
        text = f"INT8 scope {self.scope}: kept {self.kept} activation quantize/dequantize pairs, removed {self.removed}"
        storage = f"{self.stored_int8} stored as INT8" if self.stored_int8 else "float32 storage"
        return text + (f"; {self.folded} per-channel linear weights made per-tensor ({storage})" if self.folded else "")


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
            source = (op_args(op.inputs).get("X") or [""])[0]
            return origin(source, depth + 1) if source else op.type
        return op.type

    return {name: origin(name) for name in made_by}


def _linear(op, weights: set[str], origins: dict[str, str]) -> bool:
    """A weight-bearing op: its second input is a weight (persistable or dequantized)."""
    if op.type not in _WEIGHT_OPS:
        return False
    inputs = op_args(op.inputs)
    second = (inputs.get("Y") or inputs.get("Filter") or [None])[0]
    return second in weights


def _probs_times_v(op, weights: set[str], origins: dict[str, str]) -> bool:
    """Attention's probabilities x V: a matmul whose first input comes from a softmax."""
    if op.type not in ("matmul_v2", "matmul"):
        return False
    first = (op_args(op.inputs).get("X") or [None])[0]
    return origins.get(first) == "softmax"


# What a scope's predicate is asked: (op, weights, origins), an ``OpDesc``, the names of the
# weight tensors (persistable, or dequantized from one) and variable -> the type of the op
# that made it, looked through ``_PASS_THROUGH`` ops (``_origins``).
Keeps = Callable[[Any, set[str], dict[str, str]], bool]


@dataclass(frozen=True)
class Scope:
    """Which ops a restricted program serves in INT8: the inputs of the ops ``keeps``
    accepts keep their quantize/dequantize pairs. The job's named scopes (``SCOPES``,
    ``Job.int8_scope``) are built from it; experiments build their own with ``also``."""

    name: str
    """What the results and the logs call the scope."""
    keeps: Keeps

    def also(self, name: str, keeps: Keeps) -> Scope:
        """This scope plus the ops ``keeps`` accepts, named ``name``."""
        return Scope(name, lambda op, weights, origins: self.keeps(op, weights, origins) or keeps(op, weights, origins))


_LINEAR = Scope("linear", _linear)
# Job.int8_scope's values (job.config.INT8_SCOPES), as scopes.
SCOPES: dict[str, Scope] = {
    "linear": _LINEAR,
    "linear+pv": _LINEAR.also("linear+pv", _probs_times_v),
    "all": Scope("all", lambda op, weights, origins: True),
}


def _bindings(block) -> list[dict[str, int]]:
    """For each op, each input name -> the index of the op that wrote it last before (-1:
    a feed or a parameter). PaddleSlim's PTQ writes one quantize/dequantize pair per
    consumer under the same variable names, so names alone do not say which pair an op
    reads; positions do."""
    last: dict[str, int] = {}
    bound = []
    for index, op in enumerate(block.ops):
        bound.append({name: last.get(name, -1) for names in op_args(op.inputs).values() for name in names})
        for names in op_args(op.outputs).values():
            for name in names:
                last[name] = index
    return bound


def _per_tensor_weights(desc, params: Path) -> int:
    """Re-express every per-channel linear weight (a ``dequantize_linear`` along
    ``quant_axis`` feeding matmul/mul) as a float32 weight behind a per-tensor
    ``quantize_linear``/``dequantize_linear`` pair. Returns how many.

    Two bugs of Paddle 2.6's oneDNN INT8 passes (every predictor with
    ``enable_mkldnn_int8()``, Taskflow's included) make ACT's per-channel weights wrong:

    - ``quant_dequant_mkldnn_pass`` (``ConvertFromINT8ToFP32``) picks the axis to
      dequantize along from the length of the scale vector, not from ``quant_axis``: a
      scale as long as dim 0 is applied along dim 0 (the conv filter layout). A linear
      weight is [in, out], quantized per output column, so square ones (attention's Q, K,
      V and output projections) get each row scaled by the wrong column's scale.
    - ``compute_propagate_scales_mkldnn_pass`` then computes the fc weight scales itself
      (``ComputeVarScales`` with axis 0): ``GetScales`` takes the maximum of contiguous
      runs of ``in`` values, the columns of an [out, in] layout, while the fc kernel reads
      the weight as [in, out] and applies the scales per output column. Every fc with more
      than one output gets scales of the wrong elements: some columns saturate, others
      lose precision.

    The second pass keeps a scale that the first one recorded for the weight, and the
    first records one only from a per-tensor ``quantize_linear`` reading the weight. So
    the weight is stored dequantized (exactly as ``quant_axis`` says, float32) and read
    through a per-tensor pair whose scale is its absolute maximum: oneDNN then quantizes
    it with that one scale, and every other consumer (FP32 Paddle, OpenVINO) computes the
    same per-tensor INT8 weight (tests/test_int8_scope.py builds square and non-square
    per-channel weights and checks the served result). Costs: these weights are stored in
    float32 (four times their INT8 size), and INT8 weights per tensor instead of per output
    column."""
    if not params.is_file():
        return 0
    block = desc.blocks[0]
    persistable = {v.name: v for v in block.vars if v.persistable}
    readers: dict[str, list] = {}
    for op in block.ops:
        for names in op_args(op.inputs).values():
            for name in names:
                readers.setdefault(name, []).append(op)
    linear = ("matmul_v2", "matmul", "mul")
    candidates = []
    for op in block.ops:
        if op.type != "dequantize_linear":
            continue
        inputs = op_args(op.inputs)
        weight, scale = inputs["X"][0], (inputs.get("Scale") or [""])[0]
        if weight not in persistable or scale not in persistable or len(readers.get(weight, [])) != 1:
            continue
        users = readers.get(op_args(op.outputs)["Y"][0], [])
        dims = list(persistable[weight].type.lod_tensor.tensor.dims)
        attrs = {a.name: a for a in op.attrs}
        axis = attrs["quant_axis"].i if "quant_axis" in attrs else -1
        if len(dims) == 2 and axis in (0, 1) and users and all(u.type in linear for u in users):
            candidates.append((op, weight, scale, axis, attrs["bit_length"].i if "bit_length" in attrs else 8))
    if not candidates:
        return 0
    import numpy as np

    try:
        entries = program_params(desc, params)
    except ParamsMismatchError as exc:  # (a file that is no parameter file at all raises InputError)
        log.warning(
            "%s; per-channel weights left as ACT saved them (oneDNN INT8 scales them wrongly)", str(exc).rstrip(".")
        )
        return 0

    def add(name, data_type, values):
        var = block.vars.add()
        var.name, var.persistable = name, values is not None
        var.type.type = 7  # LOD_TENSOR
        var.type.lod_tensor.tensor.data_type = data_type
        var.type.lod_tensor.tensor.dims.extend(
            [1] if values is not None else list(persistable[weight].type.lod_tensor.tensor.dims)
        )
        if values is not None:
            entries[name] = ParamTensor.from_array(values)

    done, before = 0, {}
    for op, weight, scale, axis, bits in candidates:
        if entries[weight].numpy_dtype is None or entries[scale].numpy_dtype is None:
            continue
        values = entries[weight].array().astype(np.float64)
        scales = entries[scale].array().astype(np.float64).reshape(-1)
        if scales.size < 2 or scales.size != values.shape[axis]:
            continue
        shape = [1, 1]
        shape[axis] = scales.size
        dequantized = (values * scales.reshape(shape) / float((1 << (bits - 1)) - 1)).astype(np.float32)
        limit = float(np.abs(dequantized).max())
        if not limit > 0:
            continue
        entries[weight].desc.data_type = 5  # FP32
        entries[weight].data = dequantized.tobytes()
        persistable[weight].type.lod_tensor.tensor.data_type = 5
        tensor_scale, zero_point, quantized = (
            f"{weight}@tensor_scale",
            f"{weight}@tensor_zero_point",
            f"{weight}.tensor_quantized",
        )
        add(tensor_scale, 5, np.array([limit], np.float32))
        add(zero_point, 2, np.zeros(1, np.int32))
        add(quantized, 5, None)
        # The dequantize op becomes the pair's second half; the first goes in front of it.
        del op.inputs[:]
        op.inputs.add(parameter="X", arguments=[quantized])
        op.inputs.add(parameter="Scale", arguments=[tensor_scale])
        op.inputs.add(parameter="ZeroPoint", arguments=[zero_point])
        for attr in op.attrs:
            if attr.name == "quant_axis":
                attr.i = -1
        first = type(op)()
        first.CopyFrom(op)
        first.type = "quantize_linear"
        first.inputs[0].arguments[0] = weight
        del first.outputs[:]
        first.outputs.add(parameter="Y", arguments=[quantized])
        before[op_args(op.outputs)["Y"][0]] = first
        done += 1
    if done:
        ops = []
        for op in block.ops:
            if op.type == "dequantize_linear" and op_args(op.outputs)["Y"][0] in before:
                ops.append(before[op_args(op.outputs)["Y"][0]])
            copy = type(op)()
            copy.CopyFrom(op)
            ops.append(copy)
        del block.ops[:]
        block.ops.extend(ops)
        write_params(params, entries)  # sorted by name, as the loader reads them
    return done


WEIGHT_HINTS = ("quantize", "assign", "none")


def int8_weights(desc, params: Path, hint: str = "quantize") -> int:
    """Store every float32 linear weight that sits behind a per-tensor pair (what
    ``_per_tensor_weights`` writes) as INT8 with its scale: the weight becomes
    ``round(w / scale * 127)`` in INT8 and the pair's ``dequantize_linear`` reads it
    directly, so the parameter file holds one byte per weight instead of four. Returns how many.

    Why the values do not move: oneDNN quantizes the float weight with that same per-tensor
    scale when the predictor loads (``quant_dequant_mkldnn_pass`` dequantizes an INT8 weight
    as ``q / 127 * scale`` and the fc kernel quantizes it back at the same scale), so the
    INT8 values it serves are these, if oneDNN is told the weight's scale (``hint``):

    - ``quantize``: keeps the pair's ``quantize_linear`` on the weight, its output unused
      (``quant_dequant_mkldnn_pass`` reads its scale, ``CollectInputScalesFromQuantize``);
      a predictor without oneDNN INT8 must then run it on INT8 data and has no kernel;
    - ``assign``: an in-place ``assign`` of the weight carrying ``out_threshold`` (the same
      pass reads it, ``CollectOutputScalesFromAttr``), which every predictor can run;
    - ``none``: no hint; ``compute_propagate_scales_mkldnn_pass`` then computes the fc
      weight scales itself, wrongly (see ``_per_tensor_weights``).

    Changes ``desc`` in place and rewrites ``params``."""
    import numpy as np

    if hint not in WEIGHT_HINTS:
        raise ValueError(f"unknown weight scale hint {hint!r}; choose one of {', '.join(WEIGHT_HINTS)}")

    if not params.is_file():
        return 0
    block = desc.blocks[0]
    variables = {v.name: v for v in block.vars}
    persistable = {name for name, v in variables.items() if v.persistable}
    readers: dict[str, list] = {}
    for op in block.ops:
        for names in op_args(op.inputs).values():
            for name in names:
                readers.setdefault(name, []).append(op)
    pairs = []  # (quantize op, dequantize op, weight, scale)
    for op in block.ops:
        if op.type != "quantize_linear":
            continue
        inputs, attrs = op_args(op.inputs), {a.name: a for a in op.attrs}
        weight, scale = inputs["X"][0], (inputs.get("Scale") or [""])[0]
        if weight not in persistable or scale not in persistable:
            continue
        if ("quant_axis" in attrs and attrs["quant_axis"].i != -1) or (
            "bit_length" in attrs and attrs["bit_length"].i != 8
        ):
            continue
        quantized = op_args(op.outputs)["Y"][0]
        dequants = readers.get(quantized, [])
        if len(dequants) != 1 or dequants[0].type != "dequantize_linear" or len(readers.get(weight, [])) != 1:
            continue
        pairs.append((op, dequants[0], weight, scale))
    if not pairs:
        return 0
    try:
        entries = program_params(desc, params)
    except ParamsMismatchError as exc:
        log.warning("%s; linear weights left in float32", str(exc).rstrip("."))
        return 0
    done = 0
    for quantize, dequantize, weight, scale in pairs:
        if entries[weight].numpy_dtype != "<f4" or entries[scale].numpy_dtype != "<f4":
            continue
        limit = float(entries[scale].array().reshape(-1)[0])
        if not limit > 0:
            continue
        values = entries[weight].array().astype(np.float64)
        stored = np.clip(np.rint(values / limit * 127.0), -127, 127).astype(np.int8)
        entries[weight].desc.data_type = 21  # INT8
        entries[weight].data = stored.tobytes()
        variables[weight].type.lod_tensor.tensor.data_type = 21
        for var in dequantize.inputs:
            if var.parameter == "X":
                var.arguments[:] = [weight]
        if hint == "none":
            block.ops.remove(quantize)
        elif hint == "assign":
            quantize.type = "assign"
            del quantize.inputs[:], quantize.outputs[:], quantize.attrs[:]
            quantize.inputs.add(parameter="X", arguments=[weight])
            quantize.outputs.add(parameter="Out", arguments=[weight])
            quantize.attrs.add(name="out_threshold", type=1, f=limit)  # AttrType FLOAT
        done += 1
    if done:
        write_params(params, entries)
    return done


def float32_linear_weight_bytes(program_file: str | Path, params_file: str | Path | None = None) -> tuple[int, int]:
    """(bytes of float32 linear weights behind a per-tensor pair, bytes of the parameter
    file): what the folder would save by storing those weights in INT8 is three quarters
    of the first."""
    path = Path(program_file)
    params = Path(params_file) if params_file is not None else path.with_suffix(".pdiparams")
    desc = read_program(path)
    persistable = {v.name for v in desc.blocks[0].vars if v.persistable}
    weights = {
        op_args(op.inputs)["X"][0]
        for op in desc.blocks[0].ops
        if op.type == "quantize_linear" and op_args(op.inputs)["X"][0] in persistable
    }
    entries = program_params(desc, params)
    linear = sum(len(entries[name].data) for name in weights if entries[name].numpy_dtype == "<f4")
    return linear, params.stat().st_size


def weights_note(program_file: str | Path, params_file: str | Path | None = None) -> str:
    """One sentence for the summary and the model card: why the INT8 folder keeps float32
    linear weights, with its sizes; the measurement is the probe record it names."""
    linear, total = float32_linear_weight_bytes(program_file, params_file)
    if not linear:
        return ""
    return (
        f"Linear weights are stored in float32 ({linear / 1e6:.2f} MB of the {total / 1e6:.2f} MB parameter file; "
        f"INT8 storage would save {0.75 * linear / 1e6:.2f} MB): Paddle 2.6's oneDNN INT8 mis-scales INT8-stored "
        "weights unless a hint op gives their scale, and the hint the job could publish (an in-place assign) is "
        "measured on the demo teacher only, not through TensorRT (python -m job lab probe_int8_weights, "
        "records/probe-int8-weights-*.json); "
        f"served weight memory is float32 either way ({linear / 1e6:.2f} MB for these weights), since the predictor "
        "dequantizes INT8 weights when it loads."
    )


def restrict(
    program_file: str | Path,
    scope: str | Scope = "linear",
    params_file: str | Path | None = None,
    weight_storage: str = "float32",
) -> RestrictResult:
    """Keep activation quantize/dequantize pairs only in front of the ops ``scope`` serves
    in INT8 ('linear': weight-bearing ops; 'linear+pv': also matmuls whose first input
    comes from a softmax, i.e. probabilities x V; 'all': every pair ACT wrote); consumers
    of a removed pair read the float tensor instead. In every scope, per-channel linear
    weights become float32 weights behind a per-tensor pair (``_per_tensor_weights``:
    Paddle's oneDNN INT8 passes scale per-channel ones wrongly). Rewrites ``program_file`` and its parameter file
    (``params_file``, default: the program's name with ``.pdiparams``) in place; the scale
    variables stay declared, so the two still match. ``weight_storage`` ``int8`` (``Job.weights``)
    then stores those linear weights as INT8 (``int8_weights``, the ``assign`` hint).
    ``scope`` is a name of ``SCOPES`` or a
    ``Scope`` of one's own (experiments, e.g. the lab's attention probe; not a published setting)."""
    if isinstance(scope, str):
        if scope not in SCOPES:
            raise ValueError(f"unknown INT8 scope {scope!r}; choose one of {', '.join(SCOPES)}")
        scope = SCOPES[scope]
    path = Path(program_file)
    desc = read_program(path)
    block = desc.blocks[0]
    persistable = {v.name for v in block.vars if v.persistable}
    # Dequantized weights count as weights (QDQ programs dequantize them in the graph).
    # (directly, or through the per-tensor pair _per_tensor_weights puts on a float weight).
    weights = set(persistable)
    quantized_weights = {
        op_args(op.outputs)["Y"][0]
        for op in block.ops
        if op.type == "quantize_linear" and op_args(op.inputs)["X"][0] in persistable
    }
    for op in block.ops:
        if op.type == "dequantize_linear" and op_args(op.inputs)["X"][0] in persistable | quantized_weights:
            weights.add(op_args(op.outputs)["Y"][0])
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
        if op.type != "quantize_linear" or op_args(op.inputs)["X"][0] in persistable:
            continue
        source = op_args(op.inputs)["X"][0]
        dequants = readers.get(index, [])
        if len(dequants) != 1 or block.ops[dequants[0]].type != "dequantize_linear":
            continue
        dequant = dequants[0]
        dequantized = op_args(block.ops[dequant].outputs)["Y"][0]
        users = readers.get(dequant, [])
        moved = [u for u in users if not scope.keeps(block.ops[u], weights, produced_by)]
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
    if scope.name != "all" and any(op.type.startswith("fake_") and "quantize" in op.type for op in block.ops):
        # The older format fuses quantize and dequantize into one op; only QDQ pairs are restricted.
        log.warning(
            "%s uses the older fake-quant format (onnx_format: false): "
            "Job.int8_scope applies to QDQ pairs only, the rest is published as ACT saved it",
            path,
        )
    for index in sorted(doomed, reverse=True):
        del block.ops[index]
    params = Path(params_file) if params_file is not None else path.with_suffix(".pdiparams")
    folded = _per_tensor_weights(desc, params)
    # Job.weights: int8 stores them with their scale and the in-place assign hint, the one
    # variant every predictor runs (lab probe_int8_weights); float32 keeps them as they are.
    if doomed or rewired or folded:
        write_program(path, desc)
    stored = 0
    if weight_storage == "int8":  # on the program as written: the per-tensor pairs are its ops now
        desc = read_program(path)
        stored = int8_weights(desc, params, hint="assign")
        if stored:
            write_program(path, desc)
    result = RestrictResult(scope.name, kept, removed, rewired, folded, stored)
    log.info("%s: %s", path, result.summary())
    return result


def served_int8_ops(optimized_program: str | Path) -> Counter[str]:
    """Ops a predictor runs in INT8, by type, read from the optimized program it saved:
    oneDNN ops marked ``mkldnn_data_type: int8`` (the quantize pass resets the mark to
    float32 where it could not quantize), and TensorRT engines built with INT8 enabled."""
    desc = read_program(optimized_program)
    counts: Counter[str] = Counter()
    for block in desc.blocks:
        for op in block.ops:
            attrs = {a.name: a for a in op.attrs}
            if "mkldnn_data_type" in attrs and attrs["mkldnn_data_type"].s == "int8":
                counts[op.type] += 1
            elif op.type == "tensorrt_engine" and "enable_int8" in attrs and attrs["enable_int8"].b:
                counts[op.type] += 1
    return counts
