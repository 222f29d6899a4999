"""Evaluation through Paddle Inference, at the precision the model will be served in.

A quantized program (QDQ ``quantize_linear`` ops, or the older ``fake_*`` ops) runs with
oneDNN INT8 on CPU or TensorRT INT8 on GPU; a float program runs in FP32. On CPU the
predictor is configured exactly as PaddleNLP's Taskflow configures it for a quantized
model (``enable_mkldnn()`` then ``enable_mkldnn_int8()`` with no op set), so what the job
measures is what a user who loads the folder gets; which ops run in INT8 is decided by
the program itself (``job.compress.int8.restrict``). Every INT8 predictor reports how many ops it
really runs in INT8 (``job.compress.int8.served_int8_ops``); none is an error, not a row labelled
int8. The accuracy gate is decided here, not on ACT's simulated-quantization program.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from job.data.tasks import Task
from job.errors import InputError, JobError
from job.logs import progress
from job.machine import cpu_count
from job.model import ModelFiles
from job.program import is_quantized, program_inputs
from job.runtime import paddle

__all__ = [
    "EvalResult",
    "ModelFiles",
    "NoInt8Error",
    "Serving",
    "create_predictor",
    "evaluate",
    "run_batch",
]

log = logging.getLogger("job.evaluate")


@dataclass
class EvalResult:
    metric: str
    values: dict[str, float]
    examples: int
    precision: str
    seconds: float
    int8_ops: dict[str, int] = dataclasses.field(default_factory=dict)  # ops the predictor ran in INT8, by type
    split: str = ""  # the task split scored (test, dev)
    serving: str = ""  # how the predictor served the model (``Serving.describe()``)

    @property
    def score(self) -> float:
        return float(self.values[self.metric])


@dataclass(frozen=True)
class Serving:
    """How Paddle Inference serves a model: the one place its ``Config`` is built, shared
    by evaluation (which decides the accuracy gate) and the latency benchmark."""

    device: str = "cpu"
    precision: str = "fp32"  # fp32, fp16 (GPU), int8
    threads: int = 0  # CPU threads; 0: every core
    cache_capacity: int = 16  # oneDNN primitive cache entries (one per input shape)
    ir_optim: bool = True
    memory_optim: bool = True
    delete_passes: tuple[str, ...] = ()
    # TensorRT (GPU): dynamic shape ranges from 1 x 1 up to these, per input
    input_names: tuple[str, ...] = ()
    max_batch_size: int = 64
    max_seq_len: int = 512
    trt_workspace_mb: int = 1024
    trt_min_subgraph: int = 5

    def config(self, model: ModelFiles):
        from paddle import inference

        config = inference.Config(str(model.program), str(model.params))
        config.switch_ir_optim(self.ir_optim)
        if self.memory_optim:
            config.enable_memory_optim()
        config.disable_glog_info()
        if self.device == "gpu":
            if not paddle.is_compiled_with_cuda():
                raise InputError("device gpu asked for, but this paddle build has no CUDA")
            config.enable_use_gpu(256, 0)
            modes = {
                "fp32": inference.PrecisionType.Float32,
                "fp16": inference.PrecisionType.Half,
                "int8": inference.PrecisionType.Int8,
            }
            config.enable_tensorrt_engine(
                workspace_size=self.trt_workspace_mb << 20,
                max_batch_size=self.max_batch_size,
                min_subgraph_size=self.trt_min_subgraph,
                precision_mode=modes[self.precision],
                use_static=False,
                use_calib_mode=False,  # INT8 only for quantized programs: their scales are in the program
            )
            names = self.input_names or tuple(program_inputs(model))
            low = {n: [1, 1] for n in names}
            high = {n: [self.max_batch_size, self.max_seq_len] for n in names}
            config.set_trt_dynamic_shape_info(low, high, dict(high))
        else:
            if self.precision == "fp16":
                raise InputError("fp16 runs on GPU (TensorRT) only; use fp32 or int8 on CPU")
            config.disable_gpu()
            config.set_cpu_math_library_num_threads(self.threads or cpu_count())
            config.enable_mkldnn()
            config.set_mkldnn_cache_capacity(max(1, self.cache_capacity))
            if self.precision == "int8":
                # No op set: every type oneDNN supports, as Taskflow does; the program says which tensors.
                config.enable_mkldnn_int8()
        for name in self.delete_passes:
            config.delete_pass(name)
        return config

    def describe(self) -> str:
        """How ``config()`` serves a model, in one line for results.json: the precision and
        how it is enabled (from the same fields ``config()`` reads)."""
        precision = self.precision.upper()
        if self.device == "gpu":
            how = " (scales from the quantized program, no calibration)" if self.precision == "int8" else ""
            return f"TensorRT {precision}{how}"
        if self.precision == "int8":
            text = "INT8 oneDNN: enable_mkldnn() then enable_mkldnn_int8() with no op set (as Taskflow)"
        else:
            text = f"{precision} oneDNN: enable_mkldnn() (as Taskflow)"
        return text


class NoInt8Error(JobError):
    """A quantized program that the predictor runs without a single INT8 op."""


def create_predictor(
    model: ModelFiles,
    serving: Serving | None = None,
    precision: str = "auto",
    *,
    configure: Callable[[Any], None] | None = None,
):
    """A Paddle Inference predictor served as ``serving`` says, at ``precision``: auto
    (INT8 for quantized programs), fp32, fp16 (GPU) or int8; ``configure``, when given, is
    called with the Paddle ``Config`` before the predictor is built (settings the job never
    serves with, e.g. the benchmark's BF16 option). Returns the predictor, the
    precision used and, for INT8, the ops it runs in INT8 by type (from the optimized
    program it saves); an INT8 predictor with none raises ``NoInt8Error``."""
    import tempfile

    from paddle import inference

    from job.compress.int8 import served_int8_ops

    model.check()
    if precision == "auto":
        precision = "int8" if is_quantized(model) else "fp32"
    serving = dataclasses.replace(serving or Serving(), precision=precision)
    config = serving.config(model)
    if configure is not None:
        configure(config)
    int8_ops: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="act-job-optim-") as optimized:
        if precision == "int8":
            config.enable_save_optim_model(True)
            config.set_optim_cache_dir(optimized)
        with quiet_native_output():
            predictor = inference.create_predictor(config)
        if precision == "int8":
            saved = Path(optimized) / "_optimized.pdmodel"
            int8_ops = dict(sorted(served_int8_ops(saved).items())) if saved.is_file() else {}
    if precision == "int8":
        if not int8_ops:
            raise NoInt8Error(
                f"{model.folder}: served as int8 on {serving.device}, "
                "but the predictor runs no op in INT8 (is the program quantized for this device?)"
            )
        log.info(
            "%s: %d ops run in INT8 (%s)",
            model.folder,
            sum(int8_ops.values()),
            ", ".join(f"{k} {v}" for k, v in int8_ops.items()),
        )
    return predictor, precision, int8_ops


@contextlib.contextmanager
def quiet_native_output():
    """Paddle's C++ optimisation passes print to the process's stdout/stderr directly
    (``---  quantized 7 ops``...), past Python's logging. Capture those file descriptors
    while a predictor is built and pass the text to the debug log."""
    if log.isEnabledFor(logging.DEBUG):
        yield
        return
    import sys
    import tempfile

    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile(mode="w+b") as sink:
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
        sink.seek(0)
        text = sink.read().decode("utf-8", "replace")
    for line in text.splitlines():
        log.debug("paddle: %s", line)


def run_batch(predictor, batch: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Feed the inputs the program asks for (by name) and return its outputs."""
    for name in predictor.get_input_names():
        if name not in batch:
            raise InputError(
                f"the model asks for an input named {name!r}, which this task does not provide "
                f"(have: {', '.join(sorted(batch))})"
            )
        predictor.get_input_handle(name).copy_from_cpu(np.ascontiguousarray(batch[name]))
    predictor.run()
    return [predictor.get_output_handle(name).copy_to_cpu() for name in predictor.get_output_names()]


def evaluate(
    model: ModelFiles,
    task: Task,
    split: str = "test",
    *,
    serving: Serving | None = None,
    precision: str = "auto",
    batch_size: int = 32,
    desc: str = "evaluate",
) -> EvalResult:
    """The task's metric on one split, through Paddle Inference served as ``serving``
    says (its precision decided by the program unless ``precision`` is given)."""
    predictor, used, int8_ops = create_predictor(model, serving, precision)
    served = dataclasses.replace(serving or Serving(), precision=used)  # as create_predictor configured it
    started = time.perf_counter()
    total = (task.size(split) + batch_size - 1) // batch_size
    bar = functools.partial(progress, total=total, desc=f"{desc} ({used})", unit="batch")
    try:
        values = task.score(split, batch_size, functools.partial(run_batch, predictor), wrap=bar)
    except ValueError as exc:  # outputs of the wrong form for this task
        raise InputError(f"{model.folder}: {exc}") from None
    seconds = time.perf_counter() - started
    shown = ", ".join(f"{k} {v:.4f}" for k, v in values.items() if isinstance(v, float))
    log.info(
        "%s (%s, %s split, %d examples): %s in %.1f s", model.folder, used, split, task.size(split), shown, seconds
    )
    return EvalResult(task.metric, values, task.size(split), used, seconds, int8_ops, split, served.describe())
