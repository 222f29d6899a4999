"""What one measurement is: a typed, frozen spec that crosses into the worker process as
JSON (``to_json`` / ``from_json``), and the record every measurement's rows start from;
and what a benchmark plan is made of (``Planned``: one model on one runtime, which
``job.benchmark.run`` turns into measurements).

Standard library only: the ONNX Runtime and OpenVINO workers read it without paddle. The
Paddle session's ``serving`` is a ``job.evaluate.Serving``; it travels as its fields and
is rebuilt (importing ``job.evaluate``, hence paddle) only in a Paddle worker.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PLANNED_OPTIONS", "Measurement", "Planned", "Profile", "record_base"]

# The runtime options a planned entry may carry, per runtime (``Planned.options``).
PLANNED_OPTIONS: dict[str, tuple[str, ...]] = {
    "paddle-inference": ("bf16",),
    "onnxruntime": (),
    "openvino": ("quantized", "hint"),
}


@dataclass(frozen=True)
class Planned:
    """One entry of a benchmark plan: a model of ``run``'s ``models`` on one runtime.

    The job plans its own rows (``job.benchmark.plan``); an experiment extends the list
    with rows served otherwise (a ``variant`` with runtime ``options``) or with more peers.
    """

    model: str
    """Name in ``run``'s models. A peer starts from it (a float model); empty for a peer
    with no float model to start from (``run`` notes the peer as skipped)."""
    runtime: str = "paddle-inference"
    """Session registry key (``job.benchmark.session.RUNTIMES``)."""
    precision: str = ""
    """Paddle: fp32, fp16 (GPU) or int8; empty: INT8 for a quantized program, else FP32.
    Peers: empty (they time their own variants)."""
    variant: str = ""
    """Paddle: a row served otherwise than the job serves it, named in its records'
    ``variant`` (CPU only; on GPU the row is recorded as skipped)."""
    options: Mapping[str, Any] = field(default_factory=dict)
    """Runtime options (``PLANNED_OPTIONS``). Paddle: ``bf16`` (oneDNN BF16 for the float
    ops, ``enable_mkldnn_bfloat16()``). OpenVINO: ``quantized``, names of quantized models in
    ``run``'s models handed to OpenVINO as they are (``variant`` paddle-quantized); with
    ``variant`` ``served``, the model's own folder read by OpenVINO with ``hint`` (its
    INFERENCE_PRECISION_HINT, "" the default): the job's serving rows (``job.serve``)."""
    label: str = ""
    """``served_as`` of the entry's records: how a user gets this row, when not as the job serves it."""
    padding: bool = True
    """Paddle: also timed in the padding comparison (``Benchmark.dynamic_padding``)."""

    def check(self) -> None:
        """Refuse options the runtime does not take (a plan is built by code: ValueError)."""
        allowed = PLANNED_OPTIONS.get(self.runtime)
        if allowed is None:
            raise ValueError(f"planned {self.model!r}: no benchmark runtime named {self.runtime!r}")
        unknown = sorted(set(self.options) - set(allowed))
        if unknown:
            raise ValueError(
                f"planned {self.model!r} on {self.runtime}: unknown options {unknown} "
                f"(takes: {', '.join(allowed) or 'none'})"
            )


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
    bf16: bool = False
    """Paddle: oneDNN BF16 for the float ops (``enable_mkldnn_bfloat16()``, CPUs with AVX-512
    BF16 or AMX). Taskflow does not enable it, so the job never plans it; rows with it are
    labelled as served otherwise than the job serves."""

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
