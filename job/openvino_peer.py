"""OpenVINO, the strongest CPU peer of the latency benchmark (optional: ``make bench``
installs ``requirements/extras/bench.txt``; the job itself never imports this).

* The FP32 model is the Paddle export itself: OpenVINO's Paddle frontend reads
  ``inference.pdmodel`` (``ov.Core().read_model``); nothing is converted on our side.
* INT8 is NNCF's post-training quantization with the transformer preset
  (``ModelType.TRANSFORMER``: linear layers and Q x K^T in INT8, softmax x V left in
  float), calibrated on real batches of the task; saved as OpenVINO IR.
* Precision: ``hint`` ``f32`` pins FP32 for whatever is not INT8; an empty hint leaves
  OpenVINO's default on this CPU (BF16 where the CPU has AVX-512 BF16 or AMX). The
  precision really used is read back from the compiled model.
* Shapes: the timed sessions reshape the model to each batch's static shape and compile
  once per shape (what a tuned OpenVINO deployment does); the accuracy sessions keep the
  dynamic shapes so that one compiled model serves every batch.

Imports ``openvino`` lazily: a benchmark worker of another runtime never loads it.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Session", "available", "quantize", "read", "refusal", "versions"]

log = logging.getLogger("job.openvino")


def available() -> tuple[bool, str]:
    """Whether openvino and nncf import here, and why not."""
    try:
        import nncf  # noqa: F401
        import openvino  # noqa: F401
    except ImportError as exc:
        return False, f"{exc.name or 'openvino'} is not installed (make bench installs requirements/extras/bench.txt into .venv)"
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
    return {"fake_quantize_nodes": fake_quantize, "calibration_batches": len(calibration), "calibration_examples": int(sum(len(next(iter(b.values()))) for b in calibration))}


class Session:
    """One OpenVINO model on CPU, called like the other runtimes' sessions: a batch of
    named arrays in, the outputs (copied out) back. ``static``: compile per input shape."""

    def __init__(self, source: str | Path, threads: int, hint: str = "", *, static: bool = True, perf_count: bool = False):
        import openvino as ov

        self.core = ov.Core()
        self.model = self.core.read_model(str(source))
        self.names = [i.get_any_name() for i in self.model.inputs]
        self.config: dict[str, Any] = {"INFERENCE_NUM_THREADS": int(threads), "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}
        if hint:
            self.config["INFERENCE_PRECISION_HINT"] = hint
        if perf_count:
            self.config["PERF_COUNT"] = True
        self.static = static
        self._requests: dict[tuple, Any] = {}
        self.inference_precision = ""
        self.last_request = None

    def _request(self, shape: tuple):
        key = shape if self.static else ()
        request = self._requests.get(key)
        if request is None:
            model = self.model
            if self.static:
                model = self.model.clone()
                model.reshape({name: list(shape) for name in self.names})
            compiled = self.core.compile_model(model, "CPU", self.config)
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
