"""OpenVINO, the strongest CPU peer of the latency benchmark (optional: ``make bench``
installs ``requirements/extras/bench.txt``; the job itself never imports this module).

* The FP32 model is the Paddle export itself: OpenVINO's Paddle frontend reads
  ``inference.pdmodel`` (``ov.Core().read_model``); nothing is converted on our side.
* INT8 is NNCF's post-training quantization with the transformer preset
  (``ModelType.TRANSFORMER``: linear layers and Q x K^T in INT8, softmax x V left in
  float), calibrated on real batches of the task; saved as OpenVINO IR.
* Precision: ``hint`` ``f32`` pins FP32 for whatever is not INT8; an empty hint leaves
  OpenVINO's default on this CPU (BF16 where the CPU has AVX-512 BF16 or AMX). The
  precision really used is read back from the compiled model.
* Shapes: the latency rows reshape the model to the batch's static shape and compile once
  per shape (what a tuned OpenVINO deployment does); the padding rows and the accuracy
  sessions keep the dynamic shapes, so that one compiled model serves every batch shape.
* Rows (``peer``): ``OPENVINO_VARIANTS`` of the FP32 program on the latency batch, and
  our own quantized programs (the planned entry's ``quantized`` option; a refusal of its frontend is the
  row). The best NNCF INT8 and the default-precision FP32 run are also timed in the
  padding modes, on the same texts as Paddle's rows.

Imports ``openvino`` lazily: a benchmark worker of another runtime never loads it.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from job import cache
from job.benchmark.measure import WorkerError, dispatch
from job.benchmark.result import Context, best, failed, measure_into, skipped
from job.benchmark.session import OpTimes
from job.benchmark.spec import Measurement
from job.benchmark.workload import batches_digest, calibration_batches

if TYPE_CHECKING:
    from job.model import ModelFiles

__all__ = [
    "OPENVINO_VARIANTS",
    "OURS_VARIANTS",
    "Session",
    "available",
    "error_text",
    "int8_nodes",
    "nncf_int8",
    "peer",
    "quantize",
    "read",
    "refusal",
    "runtime_available",
    "versions",
]

log = logging.getLogger("job.openvino")

# OpenVINO rows: variant -> (precision, precision hint; "" is OpenVINO's default on this CPU).
OPENVINO_VARIANTS = {
    "f32": ("fp32", "f32"),
    "default": ("fp32", ""),
    "nncf-int8-f32": ("int8", "f32"),
    "nncf-int8-default": ("int8", ""),
}
# Our own quantized programs read by OpenVINO: variant -> precision hint, both settings a user has
# ("paddle-quantized": f32 for what is not INT8, as earlier records name it; then OpenVINO's default).
OURS_VARIANTS = {"paddle-quantized": "f32", "paddle-quantized-default": ""}
_CALIB = (16, 8)  # NNCF calibration: batches x examples, from the training split
_XML_NAME = "nncf-int8.xml"  # the NNCF INT8 IR in its folder (beside its .bin)


def available() -> tuple[bool, str]:
    """Whether openvino and nncf import here, and why not."""
    try:
        import nncf  # noqa: F401
        import openvino  # noqa: F401
    except ImportError as exc:
        return (
            False,
            f"{exc.name or 'openvino'} is not installed "
            "(bash scripts/setup.sh --openvino makes .venv-openvino with it; make bench runs there)",
        )
    return True, ""


def versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for dist in ("openvino", "nncf"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def read(source: str | Path):
    """An ``ov.Model`` from a Paddle program (``.pdmodel``) or OpenVINO IR (``.xml``)."""
    import openvino as ov

    return ov.Core().read_model(str(source))


def refusal(message: str) -> str:
    """The informative line of an OpenVINO exception (they run over many lines)."""
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    for line in lines:
        if "Fail to convert" in line or "not supported" in line.lower():
            return line[:300]
    return (lines[0] if lines else "unknown error")[:300]


error_text = refusal  # how a worker words an OpenVINO failure (job.benchmark.measure)


def quantize(source: str | Path, calibration: list[dict[str, np.ndarray]], out_xml: Path) -> dict[str, Any]:
    """NNCF INT8 of the model at ``source`` (transformer preset), calibrated on every batch
    of ``calibration``, saved as IR at ``out_xml``. Returns what was made."""
    import nncf
    import openvino as ov

    model = read(source)
    names = [i.get_any_name() for i in model.inputs]
    dataset = nncf.Dataset([{n: batch[n] for n in names} for batch in calibration])
    quantized = nncf.quantize(model, dataset, model_type=nncf.ModelType.TRANSFORMER, subset_size=len(calibration))
    out_xml.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(quantized, str(out_xml), compress_to_fp16=False)
    fake_quantize = sum(1 for op in quantized.get_ops() if op.get_type_name() == "FakeQuantize")
    return {
        "fake_quantize_nodes": fake_quantize,
        "calibration_batches": len(calibration),
        "calibration_examples": int(sum(len(next(iter(b.values()))) for b in calibration)),
    }


class Session:
    """One OpenVINO model on CPU, called like the other runtimes' sessions: a batch of
    named arrays in, the outputs (copied out) back. ``static``: compile per input shape."""

    def __init__(
        self, source: str | Path, threads: int, hint: str = "", *, static: bool = True, perf_count: bool = False
    ):
        import openvino as ov

        self.core = ov.Core()
        self.model = self.core.read_model(str(source))
        self.names = [i.get_any_name() for i in self.model.inputs]
        self.config: dict[str, Any] = {
            "INFERENCE_NUM_THREADS": int(threads),
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": 1,
        }
        if hint:
            self.config["INFERENCE_PRECISION_HINT"] = hint
        if perf_count:
            self.config["PERF_COUNT"] = True
        self.static = static
        self._requests: dict[tuple, Any] = {}
        self.inference_precision = ""
        self.last_request = None
        self.compiled = None  # the last compiled model (``int8_nodes``)

    def _request(self, shape: tuple):
        key = shape if self.static else ()
        request = self._requests.get(key)
        if request is None:
            model = self.model
            if self.static:
                model = self.model.clone()
                model.reshape({name: list(shape) for name in self.names})
            compiled = self.core.compile_model(model, "CPU", self.config)
            self.compiled = compiled
            # What the plugin chose for the ops that are not INT8 (bf16, f32), not what was asked.
            self.inference_precision = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
            request = compiled.create_infer_request()
            self._requests[key] = request
        return request

    def __call__(self, batch: dict[str, np.ndarray]) -> list[np.ndarray]:
        request = self._request(tuple(batch[self.names[0]].shape))
        request.infer({name: batch[name] for name in self.names})
        self.last_request = request
        return [request.get_output_tensor(i).data.copy() for i in range(len(request.model_outputs))]

    @classmethod
    def open(cls, spec: Measurement) -> Session:
        return cls(
            spec.source, spec.threads, spec.hint, static=not spec.dynamic_shapes, perf_count=spec.profile is not None
        )

    @staticmethod
    def versions() -> dict[str, str]:
        return versions()

    def facts(self) -> dict[str, Any]:
        return {
            "inference_precision": self.inference_precision,
            "shapes_compiled": "per batch shape" if self.static else "dynamic",
            "int8_nodes": int8_nodes(self.compiled) if self.compiled is not None else {},
        }

    def checks(self, batch: dict[str, np.ndarray], outputs: list[np.ndarray]) -> dict[str, Any]:
        return {}

    def profile(self, batch: dict[str, np.ndarray], runs: int) -> OpTimes:
        # OpenVINO reports the last inference of a request only: add up run by run.
        totals: Counter[str] = Counter()
        counts: Counter[str] = Counter()
        started = time.perf_counter()
        for _ in range(runs):
            self(batch)
            for op, (ms, nodes) in self.op_times().items():
                totals[op] += ms
                counts[op] += nodes
        return totals, counts, time.perf_counter() - started

    def op_times(self) -> dict[str, tuple[float, int]]:
        """Milliseconds and node count per op type of the last run (needs ``perf_count``),
        keyed by node type and the precision of the kernel that ran it (``FullyConnected i8``)."""
        totals: Counter[str] = Counter()
        counts: Counter[str] = Counter()
        if self.last_request is None:
            return {}
        for info in self.last_request.profiling_info:
            if info.status.name != "EXECUTED":
                continue
            kind = info.exec_type.rsplit("_", 1)[-1].lower() if "_" in info.exec_type else info.exec_type.lower()
            op = f"{info.node_type} {kind}".strip()
            totals[op] += info.real_time.total_seconds() * 1000.0
            counts[op] += 1
        return {op: (totals[op], counts[op]) for op in totals}


def nncf_job(spec: dict[str, Any]) -> dict[str, Any]:
    """Worker job: NNCF INT8 of ``spec['source']`` calibrated on ``spec['calibration']``."""
    with np.load(spec["calibration"]) as data:
        groups: dict[str, dict[str, np.ndarray]] = {}
        for key in data.files:
            group, name = key.split("/", 1)
            groups.setdefault(group, {})[name] = data[key]
    calibration = [groups[k] for k in sorted(groups)]
    started = time.perf_counter()
    info = quantize(spec["source"], calibration, Path(spec["out"]))
    return dict(info, made_in_s=round(time.perf_counter() - started, 1))


def nncf_ir(workdir: Path, name: str) -> Path:
    """Where ``nncf_int8`` keeps model ``name``'s NNCF INT8 IR (its ``.xml``) under ``workdir``."""
    return workdir / "openvino" / name / _XML_NAME


def nncf_int8(
    model: ModelFiles, name: str, task: Any, workdir: Path, input_names: list[str], threads: int, isolate: bool = True
) -> tuple[Path, dict[str, Any]]:
    """NNCF INT8 of ``model`` as OpenVINO IR under workdir/openvino/NAME, made in a worker
    or reused under its cache key (``job.cache``); and what was made (``error`` when it failed)."""
    xml = nncf_ir(workdir, name)
    folder = xml.parent
    count, size = _CALIB
    calibration = calibration_batches(task, input_names, count=count, size=size, split="train")
    key = cache.key(
        files=[model.program, model.params],
        code=cache.code_text(quantize, nncf_job, _nncf_build),
        versions=versions(),
        calibration=batches_digest(calibration),
    )
    try:
        built = cache.build_once(
            folder,
            key,
            lambda tmp: _nncf_build(model, name, tmp, calibration, threads, isolate),
            what="NNCF INT8",
        )
    except WorkerError as exc:
        log.error("benchmark: NNCF quantization failed: %s", exc)
        return xml, {"error": f"NNCF quantization failed: {exc}"}
    return xml, built.info


def _nncf_build(
    model: ModelFiles, name: str, folder: Path, calibration: list[dict[str, np.ndarray]], threads: int, isolate: bool
) -> dict[str, Any]:
    """``nncf_int8``'s build, in the (temporary) ``folder``: the calibration batches saved,
    then NNCF in a worker; what the worker made."""
    count, size = _CALIB
    calibration_file = folder / "calibration.npz"
    np.savez(calibration_file, **{f"{i:04d}/{n}": a for i, batch in enumerate(calibration) for n, a in batch.items()})
    log.info("benchmark: NNCF INT8 of %s (transformer preset, %d calibration batches of %d)", name, count, size)
    return dispatch(
        "nncf-quantize",
        {"source": str(model.program), "calibration": str(calibration_file), "out": str(folder / _XML_NAME)},
        threads=threads,
        isolate=isolate,
    )


def peer(ctx: Context, model: ModelFiles, name: str, ours: dict[str, ModelFiles]) -> None:
    """OpenVINO's rows: ``OPENVINO_VARIANTS`` of the float model ``model`` (row name
    ``name``) and our quantized programs ``ours`` (row name -> model) at each ``OURS_VARIANTS``
    hint on the latency batch;
    then the best NNCF INT8 and the default-precision run in the padding modes."""
    spec0 = ctx.base.replace(runtime="openvino", model=name, device="cpu", backend="ov-cpu", paddings=("max",))
    rows: list[tuple[Measurement, dict[str, Any]]] = []
    for variant, (precision, hint) in OPENVINO_VARIANTS.items():
        rows.append(
            (
                spec0.replace(precision=precision, variant=variant, hint=hint, source=str(model.program)),
                {"hint": hint or "default", "source": "the FP32 Paddle program, read by OpenVINO's Paddle frontend"},
            )
        )
    for ours_name, ours_model in ours.items():
        for variant, hint in OURS_VARIANTS.items():
            rows.append(
                (
                    spec0.replace(
                        model=ours_name,
                        precision="int8",
                        variant=variant,
                        hint=hint,
                        source=str(ours_model.program),
                    ),
                    {
                        "hint": hint or "default",
                        "source": "our quantized Paddle program, read by OpenVINO's Paddle frontend",
                    },
                )
            )
    ok, why = available()
    if not ok:
        for spec, extra in rows:
            skipped(ctx, spec, why, **extra)
        log.warning("benchmark: OpenVINO peer skipped: %s", why)
        return
    xml, made = nncf_int8(
        model, name, ctx.task, ctx.workdir, list(ctx.base.input_names), ctx.base.threads, ctx.base.isolate
    )
    timed: dict[str, tuple[Measurement, dict[str, Any], list[dict[str, Any]]]] = {}
    for spec, extra in rows:
        if spec.variant.startswith("nncf"):
            if "error" in made:
                failed(ctx, spec, made["error"], **extra)
                continue
            spec = spec.replace(source=str(xml))
            extra = dict(extra, source="NNCF INT8 (ModelType.TRANSFORMER) of the FP32 Paddle program", nncf=made)
        log.info("benchmark: %s on openvino %s", spec.model, spec.variant)
        records = measure_into(ctx, spec, extra)
        if spec.model == name:
            timed[spec.variant] = (spec, extra, records)
    if not ctx.text_paddings:
        return
    int8 = best([r for v, (_, _, records) in timed.items() if v.startswith("nncf") for r in records])
    for variant in (int8["variant"] if int8 else None, "default"):
        if variant in timed:
            spec, extra, _ = timed[variant]
            chosen = (
                "the faster NNCF INT8 hint on the latency batch"
                if variant != "default"
                else "OpenVINO's default precision"
            )
            measure_into(ctx, spec.replace(paddings=ctx.text_paddings, dynamic_shapes=True), dict(extra, chosen=chosen))


# --------------------------------------------------------------------------------------
# The job's own serving in OpenVINO (job.serve): the optional extra is openvino alone
# --------------------------------------------------------------------------------------


def runtime_available() -> tuple[bool, str]:
    """Whether openvino imports here (the job's extra; NNCF is the benchmark's), and why not."""
    try:
        import openvino  # noqa: F401
    except ImportError:
        return (
            False,
            "openvino is not installed (the job's optional extra: requirements/extras/openvino.txt; "
            "the CPU image has it)",
        )
    return True, ""


# Node types of the compiled (runtime) model that hold a layer's weights or its matrix product.
_INT8_CAPABLE = ("FullyConnected", "MatMul", "Convolution")


def int8_nodes(compiled) -> dict[str, int]:
    """Nodes of a compiled model that the CPU plugin runs in INT8, by layer type: its
    runtime model's ``runtimePrecision`` (i8 or u8) for the layer types of ``_INT8_CAPABLE``."""
    counts: Counter[str] = Counter()
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        if "layerType" not in info or "runtimePrecision" not in info:
            continue
        kind = info["layerType"].astype(str)
        if kind in _INT8_CAPABLE and info["runtimePrecision"].astype(str) in ("i8", "u8"):
            counts[kind] += 1
    return dict(counts)
