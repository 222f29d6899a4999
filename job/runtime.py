"""The one place that imports Paddle, in the order that keeps it from crashing.

Paddle 2.6 ships its own zlib symbols; importing it before another zlib user (scipy,
gzip readers) crashed with ``zlib.error ... inconsistent stream state`` or a segfault in
``inflateReset2``. Importing the system ``zlib`` module first avoids the clash.
Modules that need paddle do ``from .runtime import paddle``; the light modules (config,
storage, render, report) never import this one.
"""

from __future__ import annotations

import os
import platform
import zlib  # noqa: F401 - must precede the first `import paddle`, see above

os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("FLAGS_enable_pir_api", "0")

import paddle

from job import machine

__all__ = ["hardware", "paddle", "set_threads", "versions"]


def set_threads(threads: int) -> int:
    """Use ``threads`` CPU threads for Paddle (0: every core). Returns the count used."""
    count = threads or machine.cpu_count()
    paddle.set_device("cpu") if not paddle.is_compiled_with_cuda() else None
    try:
        paddle.framework.core.set_num_threads(count)
    except AttributeError:  # older builds
        pass
    return count


def versions() -> dict[str, str]:
    """Versions of the packages that decide results, for results.json."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("paddlepaddle", "paddlepaddle-gpu", "paddleslim", "paddlenlp", "numpy", "paddle2onnx", "onnxruntime"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    from job import __version__

    out["act-job"] = __version__
    return out


def hardware() -> dict[str, object]:
    """What the figures were measured on: ``job.machine.cpu_facts()`` and the GPU."""
    gpu = None
    if paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0:
        gpu = paddle.device.cuda.get_device_name(0)
    return {**machine.cpu_facts(), "gpu": gpu}
