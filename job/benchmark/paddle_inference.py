"""Paddle Inference: the rows of the models the job publishes, served as evaluation serves
them. The session takes the same ``job.evaluate.Serving`` evaluation takes (the one place
a Paddle ``Config`` is built): oneDNN FP32 / INT8 on CPU, TensorRT on GPU. Settings the job
never serves with are options of the measurement, applied on top (``Measurement.bf16``).

paddle is imported inside the functions: ``job.benchmark`` itself stays light.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from job.benchmark.session import OpTimes
from job.benchmark.spec import Measurement
from job.config import BenchmarkConfig

__all__ = ["BACKENDS", "Session", "enable_bf16", "gpu_available", "model_files", "precisions"]

log = logging.getLogger("job.benchmark")

BACKENDS = {"cpu": "onednn", "gpu": "tensorrt"}


def gpu_available() -> tuple[bool, str]:
    """Whether Paddle can run on a GPU here, and why not."""
    from job.runtime import paddle

    if not paddle.is_compiled_with_cuda():
        return False, "this paddlepaddle build has no CUDA (install paddlepaddle-gpu on a GPU machine)"
    try:
        count = paddle.device.cuda.device_count()
    except Exception as exc:  # driver trouble
        return False, f"no usable GPU ({exc.__class__.__name__}: {exc})"
    if count < 1:
        return False, "no GPU visible to this process"
    try:
        trt = tuple(paddle.inference.get_trt_compile_version())
    except AttributeError:  # older builds
        trt = (1,)
    if not any(trt):
        return False, "this paddle build was compiled without TensorRT"
    return True, ""


def precisions(cfg: BenchmarkConfig, quantized: bool) -> list[str]:
    """The precisions a model is served in: INT8 for a quantized program; FP32 (and FP16
    on GPU) for a float one, as far as ``cfg.precisions`` asks for them."""
    if quantized:
        wanted = ["int8"]
    else:
        wanted = ["fp32", "fp16"] if cfg.device == "gpu" else ["fp32"]
    chosen = [p for p in wanted if p in cfg.precisions]
    if not chosen:
        log.info(
            "benchmark: a %s program is served in %s, which Benchmark.precisions (%s) leaves out",
            "quantized" if quantized else "float",
            "/".join(wanted),
            ", ".join(cfg.precisions),
        )
    for precision in cfg.precisions:
        if precision not in wanted and precision == "fp16" and cfg.device == "cpu":
            log.info("benchmark: fp16 is a GPU (TensorRT) precision; not measured on CPU")
    return chosen


def enable_bf16(config) -> None:
    """oneDNN BF16 for the float ops of a Paddle ``Config`` (``Measurement.bf16``; a
    ``job.evaluate.create_predictor`` ``configure`` hook)."""
    config.enable_mkldnn_bfloat16()


def model_files(spec: Measurement):
    """The ``ModelFiles`` of a Paddle measurement."""
    from job.model import ModelFiles

    program, params = Path(spec.source), Path(spec.params)
    return ModelFiles(program.parent, program.name, params.name)


class Session:
    """A Paddle Inference predictor built by ``job.evaluate.create_predictor`` from the
    spec's ``Serving`` at the spec's precision (with BF16 when the spec asks for it)."""

    def __init__(self, spec: Measurement, predictor, int8_ops: dict[str, int]):
        self.spec = spec
        self.predictor = predictor
        self.int8_ops = int8_ops
        self._inputs = {name: predictor.get_input_handle(name) for name in predictor.get_input_names()}
        self._outputs = [predictor.get_output_handle(name) for name in predictor.get_output_names()]

    @classmethod
    def open(cls, spec: Measurement) -> Session:
        from job.evaluate import create_predictor
        from job.runtime import set_threads

        if spec.device == "cpu":
            set_threads(spec.threads)
        configure = enable_bf16 if spec.bf16 else None
        predictor, _, int8_ops = create_predictor(model_files(spec), spec.serving, spec.precision, configure=configure)
        return cls(spec, predictor, int8_ops)

    def __call__(self, batch: dict[str, np.ndarray]) -> list[np.ndarray]:
        for name, handle in self._inputs.items():
            handle.copy_from_cpu(batch[name])
        self.predictor.run()
        return [handle.copy_to_cpu() for handle in self._outputs]

    @staticmethod
    def versions() -> dict[str, str]:
        from job.runtime import versions

        return versions()

    def facts(self) -> dict[str, Any]:
        return {"int8_ops": dict(self.int8_ops)} if self.spec.precision == "int8" else {}

    def checks(self, batch: dict[str, np.ndarray], outputs: list[np.ndarray]) -> dict[str, Any]:
        """How far the INT8 kernels' outputs are from the quantized program itself, run in
        FP32 (quantize/dequantize simulated): an INT8 figure is only worth something if the
        INT8 run computes what the program says. Made after the timed runs and the memory
        reading, so it changes neither."""
        if self.spec.precision != "int8" or self.spec.device != "cpu":
            return {}
        try:
            reference = Session.open(self.spec.replace(precision="fp32"))(batch)
        except Exception as exc:  # the check must not lose the measurement
            return {"int8_check": {"error": f"{exc.__class__.__name__}: {exc}"}}
        diffs = [
            np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))
            for a, b in zip(outputs, reference, strict=False)
        ]
        return {
            "int8_check": {
                "reference": "the quantized program run in FP32 (QDQ simulated), same max-padding batch",
                "mean_abs_diff": float(np.mean([d.mean() for d in diffs])),
                "max_abs_diff": float(max(d.max() for d in diffs)),
            }
        }

    def profile(self, batch: dict[str, np.ndarray], runs: int) -> OpTimes:
        import paddle.profiler as profiler

        totals: Counter[str] = Counter()
        counts: Counter[str] = Counter()
        trace = Path(self.spec.workload).parent / f"paddle-profile-{os.getpid()}.json"
        prof = profiler.Profiler(
            targets=[profiler.ProfilerTarget.CPU], on_trace_ready=lambda prof: None
        )  # no ./profiler_log
        prof.start()
        started = time.perf_counter()
        for _ in range(runs):
            self(batch)
            prof.step()
        wall = time.perf_counter() - started
        prof.stop()
        prof.export(str(trace), format="json")
        events = json.loads(trace.read_text(encoding="utf-8"))
        trace.unlink()
        for event in events.get("traceEvents", []):
            if event.get("cat") == "Operator":
                op = str(event["name"]).split("[", 1)[0]
                totals[op] += float(event.get("dur", 0)) / 1000.0
                counts[op] += 1
        return totals, counts, wall
