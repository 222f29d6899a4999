"""What one measurement is: a typed, frozen spec that crosses into the worker process as
JSON (``to_json`` / ``from_json``), and the record every measurement's rows start from.

Standard library only: the ONNX Runtime and OpenVINO workers read it without paddle. The
Paddle session's ``serving`` is a ``job.evaluate.Serving``; it travels as its fields and
is rebuilt (importing ``job.evaluate``, hence paddle) only in a Paddle worker.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

__all__ = ["Measurement", "Profile", "record_base"]


@dataclass(frozen=True)
class Profile:
    """Profile op types instead of timing: ``runs`` profiled runs, the ``top`` op types."""

    runs: int = 3
    top: int = 10


@dataclass(frozen=True)
class Measurement:
    """One model on one runtime, timed on one workload in each of ``paddings``."""

    runtime: str
    """Session registry key (``job.benchmark.session.RUNTIMES``): paddle-inference, onnxruntime, openvino."""
    model: str
    """Row name of the model (``fp32``, ``ptq``...)."""
    precision: str
    """fp32, fp16 (GPU) or int8: what the row is labelled and, for Paddle, how it is served."""
    source: str
    """The file the session opens: a Paddle program, an ONNX file or an OpenVINO model."""
    workload: str
    """The ``.npz`` of batches (``job.benchmark.workload``)."""
    input_names: tuple[str, ...]
    threads: int
    warmup: int
    repeats: int
    batch_size: int
    max_seq_len: int
    device: str = "cpu"
    backend: str = ""
    """onednn, tensorrt, ort-cpu, ov-cpu."""
    variant: str = ""
    """Which of a runtime's ways to serve the model (empty: the job's own)."""
    paddings: tuple[str, ...] = ("max",)
    pad_multiple: int = 16
    isolate: bool = True
    """Measure in a fresh interpreter (``job.benchmark.measure.dispatch``)."""
    save_outputs: str = ""
    """Where to save the outputs of the last max-padding run (``.npz``), if anywhere."""
    profile: Profile | None = None
    params: str = ""
    """Paddle: the parameters file beside ``source``."""
    serving: Any = None
    """Paddle: the ``job.evaluate.Serving`` the predictor is built from (evaluation's own)."""
    hint: str = ""
    """OpenVINO: ``INFERENCE_PRECISION_HINT`` (empty: OpenVINO's default on this CPU)."""
    dynamic_shapes: bool = False
    """OpenVINO: one model compiled with dynamic shapes (else one per batch shape)."""

    def replace(self, **changes: Any) -> Measurement:
        return dataclasses.replace(self, **changes)

    def to_json(self) -> str:
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        fields["profile"] = dataclasses.asdict(self.profile) if self.profile else None
        fields["serving"] = dataclasses.asdict(self.serving) if self.serving is not None else None
        return json.dumps(fields)

    @classmethod
    def from_json(cls, text: str) -> Measurement:
        fields = json.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(fields) - known
        if unknown:
            raise ValueError(f"Measurement: unknown fields {sorted(unknown)}")
        for name in ("input_names", "paddings"):
            fields[name] = tuple(fields[name])
        if fields.get("profile"):
            fields["profile"] = Profile(**fields["profile"])
        if fields.get("serving") is not None:
            from job.evaluate import Serving  # imports paddle: Paddle workers only

            fields["serving"] = Serving(
                **{k: tuple(v) if isinstance(v, list) else v for k, v in fields["serving"].items()}
            )
        return cls(**fields)


def record_base(spec: Measurement, env: dict[str, Any], padding: str = "max") -> dict[str, Any]:
    """The fields every row of ``spec`` carries, with no figures yet."""
    return {
        "model": spec.model,
        "runtime": spec.runtime,
        "device": spec.device,
        "backend": spec.backend,
        "precision": spec.precision,
        "padding": padding,
        "batch_size": spec.batch_size,
        "seq_len": spec.max_seq_len,
        "threads": spec.threads,
        "warmup": spec.warmup,
        "repeats": spec.repeats,
        "latency_ms": None,
        "throughput": None,
        "peak_memory_mb": None,
        **({"variant": spec.variant} if spec.variant else {}),
        "hardware": env["hardware"],
        "versions": env["versions"],
    }
