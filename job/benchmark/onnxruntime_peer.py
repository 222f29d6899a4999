"""ONNX Runtime, a CPU peer: the FP32 Paddle model exported with paddle2onnx, timed at FP32
and at its best INT8 (``peer``), and its session (``Session``).

paddle2onnx 1.2.11 writes weights as ``Constant`` nodes, which ONNX Runtime's quantizer
and fusions skip, so they are turned into initializers first; then the transformer
fusions of ``onnxruntime.transformers.optimizer`` (opt_level 0, which needs no torch), and
INT8 by ``quantize_dynamic`` (per tensor and per channel) and by static quantization
calibrated on real batches (QDQ and QOperator, per channel, U8S8). Every variant is timed
the same way on the latency batch; the fastest FP32 and the fastest INT8 that load, run
and quantized something are reported, with every variant tried (``variants_tried``), and
the best INT8 is timed in the padding modes too. Picking the fastest of several noisy
timings favours the peer. Conversions are cached under the workdir (``job.cache``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from job import cache
from job.benchmark.measure import WorkerError, dispatch
from job.benchmark.result import Context, failed, measure_into
from job.benchmark.session import OpTimes
from job.benchmark.spec import Measurement, record_base
from job.benchmark.workload import batches_digest, calibration_batches

if TYPE_CHECKING:  # job.model imports paddle; ONNX Runtime workers must not load it
    from job.model import ModelFiles

__all__ = ["ONNX_VARIANTS", "Session", "candidates", "export_onnx", "peer"]

log = logging.getLogger("job.benchmark")

_CALIB_STRIDE = 2

# ONNX ops that show a model was quantized (dynamic, QOperator and QDQ forms).
_ORT_QUANT_OPS = {
    "DynamicQuantizeLinear",
    "DynamicQuantizeMatMul",
    "MatMulInteger",
    "MatMulIntegerToFloat",
    "QLinearMatMul",
    "QuantizeLinear",
    "DequantizeLinear",
    "QAttention",
    "QGemm",
}


class Session:
    """An ``onnxruntime.InferenceSession`` on CPU, sequential, ``threads`` intra-op threads."""

    def __init__(self, spec: Measurement, session):
        self.spec = spec
        self.session = session
        self.names = [i.name for i in session.get_inputs()]

    @classmethod
    def open(cls, spec: Measurement) -> Session:
        import onnxruntime as ort

        options = _ort_options(spec)
        if spec.profile:
            options.enable_profiling = True
            options.profile_file_prefix = str(Path(spec.workload).parent / "ort-profile")
        return cls(spec, ort.InferenceSession(spec.source, options, providers=["CPUExecutionProvider"]))

    def __call__(self, batch: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(None, {n: batch[n] for n in self.names})

    @staticmethod
    def versions() -> dict[str, str]:
        from importlib.metadata import version

        return {dist: version(dist) for dist in ("onnxruntime", "onnx", "paddle2onnx")}

    def facts(self) -> dict[str, Any]:
        return {}

    def checks(self, batch: dict[str, np.ndarray], outputs: list[np.ndarray]) -> dict[str, Any]:
        return {}

    def profile(self, batch: dict[str, np.ndarray], runs: int) -> OpTimes:
        totals: Counter[str] = Counter()
        counts: Counter[str] = Counter()
        started = time.perf_counter()
        for _ in range(runs):
            self(batch)
        wall = time.perf_counter() - started
        trace = Path(self.session.end_profiling())
        events = json.loads(trace.read_text(encoding="utf-8"))
        trace.unlink()
        # The session profiles from its creation: skip the warm-up runs.
        starts = sorted(e["ts"] for e in events if e.get("cat") == "Session" and e.get("name") == "model_run")
        cutoff = starts[-runs] if len(starts) >= runs else 0
        for event in events:
            if event.get("ts", 0) < cutoff:
                continue
            if event.get("cat") == "Node" and str(event.get("name", "")).endswith("_kernel_time"):
                op = event.get("args", {}).get("op_name", "?")
                totals[op] += float(event.get("dur", 0)) / 1000.0
                counts[op] += 1
        return totals, counts, wall


def peer(ctx: Context, model: ModelFiles, name: str) -> None:
    """ONNX Runtime's rows of the float model ``model`` (row name ``name``): every variant
    timed on the latency batch, the fastest per precision reported, the best INT8 also
    timed in the padding modes."""
    folder = ctx.workdir / "onnx" / name
    spec0 = ctx.base.replace(runtime="onnxruntime", model=name, device="cpu", backend="ort-cpu", paddings=("max",))
    calibration = calibration_batches(ctx.task, list(ctx.base.input_names))
    try:
        made = candidates(model, folder, calibration)
    except Exception as exc:  # paddle2onnx refuses some programs
        log.error("benchmark: ONNX export of %s failed: %s", model.folder, exc)
        for precision in ("fp32", "int8"):
            failed(ctx, spec0.replace(precision=precision), f"paddle2onnx export failed: {exc}")
        return
    tried: list[dict[str, Any]] = list(made["tried"])
    # Time every candidate at max padding; keep the fastest per precision.
    reference = None
    fastest: dict[str, tuple[float, Measurement, dict[str, Any]]] = {}
    for precision, variant, file_name, info in made["candidates"]:
        outputs = folder / f"{variant}.outputs.npz"
        spec = spec0.replace(
            precision=precision, variant=variant, source=str(folder / file_name), save_outputs=str(outputs)
        )
        log.info("benchmark: %s on onnxruntime %s", name, variant)
        try:
            out = dispatch(spec)
        except WorkerError as exc:
            log.warning("benchmark: ONNX Runtime variant %s failed to run: %s", variant, exc)
            tried.append({"variant": variant, "error": str(exc), **info})
            continue
        measured = out["measurements"][0]
        entry = {"variant": variant, "median_ms": round(measured["latency_ms"]["median"], 2), **info}
        got = _load_outputs(outputs)
        if precision == "fp32" and reference is None:
            reference = got
        elif reference is not None and got is not None:
            entry["max_abs_diff_vs_fp32"] = float(
                max(np.max(np.abs(a - b)) for a, b in zip(reference, got, strict=False))
            )
        tried.append(entry)
        if precision not in fastest or measured["latency_ms"]["median"] < fastest[precision][0]:
            fastest[precision] = (measured["latency_ms"]["median"], spec, measured)
    for precision in ("fp32", "int8"):
        variants = [t for t in tried if t["variant"].startswith(precision)]
        if precision not in fastest:
            why = (
                "no ONNX Runtime variant ran"
                if precision == "fp32"
                else "no INT8 variant could be made and run (see variants_tried)"
            )
            failed(ctx, spec0.replace(precision=precision), why, variants_tried=variants)
            continue
        _, spec, measured = fastest[precision]
        extra = {"variants_tried": variants, "export": "paddle2onnx, Constant weights moved to initializers"}
        record = dict(record_base(spec, ctx.env), **{k: v for k, v in measured.items() if k != "padding"}, **extra)
        ctx.result._specs.append((record, spec))
        ctx.result.records.append(record)
        log.info(
            "benchmark: onnxruntime best %s: %s, median %.1f ms",
            precision,
            spec.variant,
            measured["latency_ms"]["median"],
        )
        if precision == "int8" and ctx.text_paddings:
            # The best INT8 (chosen on the latency batch) in the padding modes, on the same texts as Paddle's rows.
            measure_into(
                ctx,
                spec.replace(paddings=ctx.text_paddings, save_outputs=""),
                {"chosen": "the best INT8 variant on the latency batch"},
            )


def candidates(model: ModelFiles, folder: Path, calibration: list[dict[str, np.ndarray]]) -> dict[str, Any]:
    """The ONNX files to time (export, fused graph, INT8 variants), made in ``folder`` or
    reused from it while their cache key holds: candidates as (precision, variant, file
    name, info), what failed to be made, and the file INT8 starts from."""
    from importlib.metadata import version

    code = cache.code_text(
        export_onnx, constants_to_initializers, _fuse, make_variant, Calibration, candidates, _convert
    )
    libraries = {dist: version(dist) for dist in ("paddle2onnx", "onnxruntime", "onnx")}
    key = cache.key(
        files=[model.program, model.params],
        code=code,
        versions=libraries,
        calibration=batches_digest(calibration),
        variants=ONNX_VARIANTS,
        shape=_model_shape(model),
    )
    built = cache.build_once(
        folder, key, lambda tmp: _convert(model, tmp, calibration), what="ONNX export and INT8 variants"
    )
    return built.info


def _convert(model: ModelFiles, folder: Path, calibration: list[dict[str, np.ndarray]]) -> dict[str, Any]:
    """``candidates``' build, in the (temporary) ``folder``."""
    fp32 = export_onnx(model, folder / "fp32.onnx")
    files: list[tuple[str, str, str, dict[str, Any]]] = [("fp32", "fp32", fp32.name, {})]
    heads, hidden = _model_shape(model)
    tried: list[dict[str, Any]] = []
    start_int8 = fp32
    try:
        fused, stats = _fuse(fp32, folder / "fp32-fused.onnx", heads, hidden)
        files.append(("fp32", "fp32-fused", fused.name, {"fusions": stats}))
        start_int8 = fused
    except Exception as exc:
        tried.append({"variant": "fp32-fused", "error": f"{exc.__class__.__name__}: {exc}"})
    int8_source = start_int8
    try:  # the pre-processing ONNX Runtime recommends before quantizing: shape inference, basic optimizations
        from onnxruntime.quantization.shape_inference import quant_pre_process

        with contextlib.redirect_stdout(sys.stderr):
            quant_pre_process(str(start_int8), str(folder / "int8-input.onnx"), auto_merge=True)
        int8_source = folder / "int8-input.onnx"
    except Exception as exc:
        log.warning("benchmark: ONNX Runtime quantization pre-processing failed (%s); quantizing without it", exc)
        tried.append({"variant": "int8-preprocess", "error": f"{exc.__class__.__name__}: {exc}"})
    for variant in ONNX_VARIANTS:
        target = folder / f"{variant}.onnx"
        started = time.perf_counter()
        try:
            with contextlib.redirect_stdout(sys.stderr):
                make_variant(variant, int8_source, target, calibration)
        except Exception as exc:
            log.warning("benchmark: ONNX Runtime variant %s could not be made: %s", variant, exc)
            tried.append({"variant": variant, "error": f"{exc.__class__.__name__}: {exc}"})
            continue
        ops = _onnx_ops(target)
        quant_nodes = sum(n for op, n in ops.items() if op in _ORT_QUANT_OPS)
        info = {"quantized_nodes": quant_nodes, "made_in_s": round(time.perf_counter() - started, 1)}
        if not quant_nodes:
            tried.append({"variant": variant, "error": "nothing was quantized", **info})
            continue
        files.append(("int8", variant, target.name, info))
    return {"candidates": files, "tried": tried, "int8_source": int8_source.name}


def _load_outputs(path: Path) -> list[np.ndarray] | None:
    if not path.is_file():
        return None
    with np.load(path) as data:
        return [data[k] for k in sorted(data.files, key=lambda k: int(k.split("_")[1]))]


def _ort_options(spec: Measurement):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = spec.threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return options


def export_onnx(model: ModelFiles, out_file: Path, opset: int = 13) -> Path:
    """paddle2onnx export of a float Paddle program, weights as graph initializers."""
    import onnx
    import paddle2onnx

    from job.evaluate import quiet_native_output

    out_file.parent.mkdir(parents=True, exist_ok=True)
    with quiet_native_output():
        raw = paddle2onnx.export(
            str(model.program),
            str(model.params),
            save_file=None,
            opset_version=opset,
            auto_upgrade_opset=True,
            verbose=False,
            enable_onnx_checker=True,
            deploy_backend="onnxruntime",
        )
    proto = onnx.load_from_string(raw)
    moved = constants_to_initializers(proto)
    log.info("benchmark: exported %s to ONNX (%d Constant nodes turned into initializers)", model.folder, moved)
    onnx.save(proto, str(out_file))
    return out_file


def constants_to_initializers(proto) -> int:
    """Move the main graph's ``Constant`` nodes that hold a tensor into initializers."""
    from onnx import numpy_helper

    graph = proto.graph
    keep, moved = [], 0
    for node in graph.node:
        if node.op_type == "Constant" and len(node.attribute) == 1 and node.attribute[0].name == "value":
            tensor = numpy_helper.to_array(node.attribute[0].t)
            graph.initializer.append(numpy_helper.from_array(tensor, node.output[0]))
            moved += 1
        else:
            keep.append(node)
    del graph.node[:]
    graph.node.extend(keep)
    return moved


class Calibration:
    """ONNX Runtime's CalibrationDataReader over real batches. ``set_range`` serves
    ``CalibStridedMinMax``, which merges the ranges of a few batches at a time (the
    memory-bounded path: ``CalibMaxIntermediateOutputs`` of the pinned onnxruntime drops the
    data it collected instead of merging it)."""

    def __init__(self, batches: list[dict[str, np.ndarray]]):
        self.batches = batches
        self.position, self.end = 0, len(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.position >= self.end:
            return None
        self.position += 1
        return self.batches[self.position - 1]

    def rewind(self) -> None:
        self.position, self.end = 0, len(self.batches)

    def __len__(self) -> int:
        return len(self.batches)

    def set_range(self, start_index: int, end_index: int) -> None:
        self.position, self.end = start_index, min(end_index, len(self.batches))


# Every INT8 recipe tried: name -> (starts from the fused graph, how).
ONNX_VARIANTS = (
    "int8-dynamic",
    "int8-dynamic-per-channel",
    "int8-static-qdq-per-channel",
    "int8-static-qoperator-per-channel",
)


def make_variant(name: str, source: Path, out: Path, calibration: list[dict[str, np.ndarray]]) -> Path:
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, quantize_static

    extra = {"DefaultTensorType": onnx.TensorProto.FLOAT}
    if name.startswith("int8-dynamic"):
        quantize_dynamic(
            str(source),
            str(out),
            per_channel=name.endswith("per-channel"),
            weight_type=QuantType.QInt8,
            extra_options=dict(extra, MatMulConstBOnly=True),
        )
        return out
    fmt = QuantFormat.QDQ if "-qdq" in name else QuantFormat.QOperator
    quantize_static(
        str(source),
        str(out),
        Calibration(calibration),
        quant_format=fmt,
        op_types_to_quantize=["MatMul"],
        per_channel=True,
        activation_type=QuantType.QUInt8,  # U8S8: the fast path of VNNI
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
        extra_options=dict(extra, CalibStridedMinMax=_CALIB_STRIDE) if len(calibration) % _CALIB_STRIDE == 0 else extra,
    )
    return out


def _fuse(source: Path, out: Path, heads: int, hidden: int) -> tuple[Path, dict[str, int]]:
    """ONNX Runtime's transformer fusions (opt_level 0: Python fusions only, no torch)."""
    from onnxruntime.transformers import optimizer

    with contextlib.redirect_stdout(sys.stderr):
        model = optimizer.optimize_model(
            str(source), model_type="bert", num_heads=heads, hidden_size=hidden, opt_level=0, only_onnxruntime=False
        )
    fused = {k: v for k, v in model.get_fused_operator_statistics().items() if v}
    model.save_model_to_file(str(out))
    return out, fused


def _onnx_ops(path: Path) -> Counter[str]:
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return Counter(node.op_type for node in proto.graph.node)


def _model_shape(model: ModelFiles) -> tuple[int, int]:
    try:
        config = json.loads((model.folder / "config.json").read_text(encoding="utf-8"))
        return int(config.get("num_attention_heads", 0)), int(config.get("hidden_size", 0))
    except (OSError, ValueError):
        return 0, 0
