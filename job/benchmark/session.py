"""One small protocol for every runtime the benchmark times, and the registry of them.

A runtime is one module of this package holding a ``Session`` class: adding a peer is
adding a file and a line to ``RUNTIMES``. The measurement loop (``job.benchmark.measure``)
knows nothing else about a runtime. Modules are imported only when a measurement of
their runtime runs, so a worker never loads another runtime's packages.
"""

from __future__ import annotations

import importlib
from collections import Counter
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np

    from job.benchmark.spec import Measurement

__all__ = ["RUNTIMES", "OpTimes", "Session", "session_class"]

# Runtime name (a record's ``runtime``) -> the module holding its ``Session``.
RUNTIMES = {
    "paddle-inference": "job.benchmark.paddle_inference",
    "onnxruntime": "job.benchmark.onnxruntime_peer",
    "openvino": "job.benchmark.openvino_peer",
}

# A profile: milliseconds and calls per op type over the profiled runs, and their wall seconds.
OpTimes = tuple[Counter, Counter, float]


class Session(Protocol):
    """An opened model: a batch of named arrays in, its outputs (copied out) back."""

    @classmethod
    def open(cls, spec: Measurement) -> Session:
        """Load ``spec.source`` as ``spec`` says (threads, precision, runtime options)."""

    def __call__(self, batch: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run one batch: copy the inputs in, run, copy the outputs out."""

    @staticmethod
    def versions() -> dict[str, str]:
        """The versions of the runtime's packages, for every record."""

    def facts(self) -> dict[str, Any]:
        """Fields this session adds to each of its records (INT8 ops, precision used)."""

    def checks(self, batch: dict[str, np.ndarray], outputs: list[np.ndarray]) -> dict[str, Any]:
        """Fields added to the max-padding record after the timed runs (e.g. an INT8 check)."""

    def profile(self, batch: dict[str, np.ndarray], runs: int) -> OpTimes:
        """Run ``batch`` ``runs`` times under the runtime's profiler (NotImplementedError: cannot)."""


def session_class(runtime: str) -> type[Session]:
    """The ``Session`` class of a runtime, importing its module now."""
    if runtime not in RUNTIMES:
        raise ValueError(f"no benchmark runtime named {runtime!r} (have: {', '.join(RUNTIMES)})")
    return importlib.import_module(RUNTIMES[runtime]).Session
