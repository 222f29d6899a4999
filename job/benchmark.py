"""The benchmark stage: latency and throughput of inference models, as they are served.

What is measured (``run``):

* **Paddle Inference, CPU, oneDNN** (``device: cpu``): FP32 for float programs, INT8
  (``enable_mkldnn_int8``) for quantized programs. ``threads`` CPU threads (0: every core
  this process may use).
* **Paddle Inference, GPU, TensorRT** (``device: gpu``): FP32 and FP16 for float
  programs, INT8 for quantized ones, with dynamic shape ranges (batch 1..batch_size,
  sequence 1..max_seq_len, optimum at the benchmark shape). Without a CUDA build or a
  visible GPU every GPU measurement becomes a record with ``skipped`` set and no numbers.
* **ONNX Runtime, CPU** (``onnx_peer``): the FP32 Paddle model exported with paddle2onnx,
  at FP32 and at its best INT8. paddle2onnx 1.2.11 writes weights as ``Constant`` nodes,
  which ONNX Runtime's quantizer and fusions skip, so they are turned into initializers
  first; then the transformer fusions of ``onnxruntime.transformers.optimizer`` (opt_level
  0, which needs no torch), and INT8 by ``quantize_dynamic`` (per tensor and per channel)
  and by static quantization calibrated on real batches (QDQ and QOperator, per channel,
  U8S8). Every variant is timed the same way; the fastest FP32 and the fastest INT8 that
  load, run and quantized something are reported, with every variant tried
  (``variants_tried``). Picking the fastest of several noisy timings favours the peer.

* **OpenVINO, CPU** (``openvino=True``, optional package, ``job.openvino_peer``): the FP32
  Paddle program read directly by OpenVINO's Paddle frontend, compiled with the precision
  hint ``f32`` and with OpenVINO's default (BF16 where the CPU has it); NNCF INT8
  (transformer preset, calibrated on real training batches) at both hints; and OpenVINO
  handed our own quantized program (``openvino_quantized``), recorded with the refusal
  message when its frontend cannot read it. Compiled per static batch shape with
  ``INFERENCE_NUM_THREADS`` = threads, ``PERFORMANCE_HINT`` LATENCY, ``NUM_STREAMS`` 1.

Workloads (``padding``):

* ``max``: ``task.fixed_batch(batch_size, max_seq_len)``, real test examples padded to
  exactly ``max_seq_len`` (the reference example's batch 40, length 128): the latency
  figure every runtime is compared on.
* The padding comparison (``dynamic_padding``, Paddle models): one fixed sample of test
  texts (``TEXT_BATCHES`` x batch_size of them, spread evenly over the split and kept in
  split order) timed three ways, so that the three figures are of the same texts:
  ``to-max``: batches in the original order, each padded to ``max_seq_len``;
  ``to-longest``: the same batches, each padded to its longest text; ``bucketed``: the
  texts sorted by length, then batched and padded to each batch's longest. Padding to the
  longest is rounded up to a multiple of ``pad_multiple`` (16) and cut at
  ``max_seq_len``: rounding bounds the number of distinct shapes, which oneDNN caches
  primitives for (stated in the record). ``seq_len`` is the mean real length,
  ``padded_len_mean`` the mean padded length, ``texts`` how many texts one pass times.

Method: each measurement runs in a fresh subprocess (``isolate=True``, the default), so
runtimes do not share thread pools, caches or memory. Warm-up: ``warmup`` untimed runs of
the ``max`` batch, and one untimed pass over every batch of a padding mode (every shape
primed); then as many passes over the sample as ``repeats`` batches need (at least one).
Conversions (ONNX exports and quantized variants, NNCF INT8) are cached under the workdir
and reused only while their reuse key (``job.reuse``: input files' content, the code
that makes them, settings and library versions) is unchanged.
Each timed run is ``time.perf_counter`` around copying the inputs in, running, and copying
the outputs out: the same work for every runtime. ``latency_ms`` holds the median, p90,
p99 (linear interpolation; with few repeats p99 is close to the maximum) and mean per
batch; ``throughput`` is samples per second over all timed runs. ``peak_memory_mb`` is
the process's resident-set high-water mark (``VmHWM`` of /proc/self/status) reset by
writing ``5`` to /proc/self/clear_refs once the model is loaded: the model, the runtime
and everything the runs allocated (``peak_memory_method`` says when the reset was not
possible and the figure is the process-lifetime peak).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import reuse
from .config import BenchmarkConfig
from .machine import cpu_count

if TYPE_CHECKING:  # job.model imports paddle; ONNX Runtime workers must not load it
    from .model import ModelFiles

__all__ = ["OPENVINO_VARIANTS", "PAD_MULTIPLE", "TEXT_BATCHES", "TEXT_PADDINGS", "BenchResult", "export_onnx", "gpu_available", "prepare_peers", "run"]

log = logging.getLogger("job.benchmark")

PAD_MULTIPLE = 16
# The padding comparison times TEXT_BATCHES x batch_size texts (fewer when the test split is smaller).
TEXT_BATCHES = 10
TEXT_PADDINGS = ("to-max", "to-longest", "bucketed")
# OpenVINO rows: variant -> (precision, precision hint; "" is OpenVINO's default on this CPU).
OPENVINO_VARIANTS = {"f32": ("fp32", "f32"), "default": ("fp32", ""), "nncf-int8-f32": ("int8", "f32"), "nncf-int8-default": ("int8", "")}
_OPENVINO_CALIB = (16, 8)  # NNCF calibration: batches x examples, from the training split
_WORKER_TIMEOUT = 3600
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


# --------------------------------------------------------------------------------------
# Result
# --------------------------------------------------------------------------------------


@dataclass
class BenchResult:
    """Benchmark records (one dict per model, runtime, precision and padding)."""

    records: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    _specs: list[tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=list, repr=False)

    def find(self, **match: Any) -> list[dict[str, Any]]:
        """Records whose fields equal every ``match`` item."""
        return [r for r in self.records if all(r.get(k) == v for k, v in match.items())]

    def summary(self) -> str:
        """A plain-text table of every record, then the environment and notes."""
        header = ("model", "runtime", "backend", "precision", "variant", "padding", "batch", "seq", "threads", "median ms", "p90 ms", "p99 ms", "samples/s", "peak MB")
        rows = [header]
        for r in self.records:
            if r.get("latency_ms") is None:
                reason = r.get("skipped") or r.get("error") or "not measured"
                rows.append((r["model"], r["runtime"], r["backend"], r["precision"], r.get("variant", ""), r["padding"], str(r["batch_size"]), "-", str(r.get("threads", "-")), ("skipped: " if r.get("skipped") else "failed: ") + reason, "", "", "", ""))
                continue
            lat = r["latency_ms"]
            seq = f"{r['seq_len']:.0f}" if r["padding"] == "max" else f"{r['seq_len']:.1f}/{r['padded_len_mean']:.1f}"
            if r.get("inference_precision"):
                precision_shown = f"{r['precision']} ({r['inference_precision']})"
            else:
                precision_shown = r["precision"]
            rows.append((
                r["model"], r["runtime"], r["backend"], precision_shown, r.get("variant", ""), r["padding"], str(r["batch_size"]), seq, str(r["threads"]),
                f"{lat['median']:.1f}", f"{lat['p90']:.1f}", f"{lat['p99']:.1f}", f"{r['throughput']:.1f}", _fmt_mb(r.get("peak_memory_mb")),
            ))
        lines = _text_table(rows)
        first = next((r for r in self.records if r.get("hardware")), None)
        if first:
            hw, ver = first["hardware"], first.get("versions", {})
            lines.append("")
            lines.append(f"hardware: {hw.get('cpu')} ({hw.get('cores')} cores; {' '.join(hw.get('isa') or []) or 'ISA not recorded'}), GPU {hw.get('gpu') or 'none'}")
            lines.append("versions: " + ", ".join(f"{k} {v}" for k, v in ver.items()))
            measured = [r for r in self.records if r.get("latency_ms") is not None]
            if measured:
                lines.append(f"warm-up {measured[0]['warmup']} runs, {measured[0]['repeats']} timed runs per max-padding figure; padding comparison: seq = mean real / mean padded length of the same texts")
        for note in self.notes:
            lines.append(f"note: {note}")
        return "\n".join(lines)

    def profile(self, record: dict[str, Any], *, runs: int = 3, top: int = 10) -> list[dict[str, Any]]:
        """Time per op type of the measurement behind ``record`` (its ``max`` batch), from
        Paddle's profiler, ONNX Runtime's or OpenVINO's. Needs the run's workdir to still exist."""
        spec = next((s for r, s in self._specs if r is record), None)
        if spec is None:
            raise ValueError("no measurement behind this record (skipped, or from another run)")
        if not Path(spec["workload"]).is_file():
            raise ValueError(f"{spec['workload']}: the benchmark's workdir is gone; pass run(..., workdir=...) to keep it")
        profile_spec = dict(spec, paddings=["max"], profile={"runs": runs, "top": top}, isolate=True)
        return _dispatch(profile_spec)["profile"]

    def to_json(self) -> str:
        return json.dumps({"records": self.records, "notes": self.notes}, indent=1, ensure_ascii=False)


def _fmt_mb(value: Any) -> str:
    return f"{value:.0f}" if isinstance(value, (int, float)) else "-"


def _text_table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    out = []
    for index, row in enumerate(rows):
        out.append("  ".join(str(cell).ljust(widths[i]) if i < 6 else str(cell).rjust(widths[i]) for i, cell in enumerate(row)).rstrip())
        if index == 0:
            out.append("  ".join("-" * w for w in widths))
    return out


# --------------------------------------------------------------------------------------
# The stage
# --------------------------------------------------------------------------------------


def gpu_available() -> tuple[bool, str]:
    """Whether Paddle can run on a GPU here, and why not."""
    from .runtime import paddle

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


def run(
    cfg: BenchmarkConfig,
    models: dict[str, ModelFiles],
    task: Any,
    *,
    workdir: Path | None = None,
    isolate: bool = True,
    onnx_from: str | None = None,
    paddle_options: dict[str, Any] | None = None,
    paddle_variants: list[tuple[str, str, dict[str, Any]]] | None = None,
    notes: dict[str, str] | None = None,
    openvino: bool = False,
    openvino_quantized: dict[str, ModelFiles] | None = None,
) -> BenchResult:
    """Measure every model in ``models`` (name -> inference model folder) on ``task``'s
    test texts, as ``cfg`` says. ``workdir`` keeps the workloads and conversions (and
    lets ``BenchResult.profile`` run later); without it a temporary folder is used.
    ``onnx_from`` names the float model the ONNX and OpenVINO peers start from (default:
    the first float model). ``paddle_options`` tunes Paddle Inference (see
    ``_paddle_serving``). ``paddle_variants`` adds latency rows served otherwise than the
    job serves: (variant name, model name, serving options such as ``{"bf16": True}``).
    ``notes`` labels a model's records (``served_as``). ``openvino`` adds the OpenVINO peer;
    ``openvino_quantized`` (row name -> quantized model) hands our programs to it as well."""
    from .evaluate import is_quantized, program_inputs
    from .runtime import hardware, versions

    cfg.check()
    cfg = dataclasses.replace(cfg, device=cfg.device or "cpu")  # empty: follows Job.device, CPU when used alone
    threads = cfg.threads or cpu_count()
    notes = dict(notes or {})
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="act-bench-")))
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        env = {"hardware": hardware(), "versions": versions()}
        if openvino:
            from . import openvino_peer

            env["versions"].update(openvino_peer.versions())
        result = BenchResult([])
        quantized = {name: is_quantized(model) for name, model in models.items()}
        names_by_model = {name: program_inputs(model) for name, model in models.items()}
        input_names = next(iter(names_by_model.values())) if names_by_model else list(task.input_names)
        workload = _build_workload(cfg, task, input_names)
        workload_file = workdir / "workload.npz"
        _save_workload(workload, workload_file)
        shapes = len({next(iter(b.values())).shape for batches in workload["texts"].values() for b in batches}) + 1
        base = {
            "workload": str(workload_file),
            "threads": threads,
            "warmup": cfg.warmup,
            "repeats": cfg.repeats,
            "batch_size": cfg.batch_size,
            "max_seq_len": cfg.max_seq_len,
            "paddings": ["max", *TEXT_PADDINGS] if cfg.dynamic_padding else ["max"],
            "pad_multiple": PAD_MULTIPLE,
            "isolate": isolate,
            "cache_capacity": shapes,
            "paddle_options": dict(paddle_options or {}),
        }
        if cfg.device == "gpu":
            ok, why = gpu_available()
            if not ok:
                log.warning("benchmark: device gpu asked for, but %s; GPU (TensorRT) measurements are skipped, no figures are made up", why)
                result.notes.append(f"GPU measurements skipped: {why}")
        else:
            ok, why = True, ""
        backend = "tensorrt" if cfg.device == "gpu" else "onednn"
        for name, model in models.items():
            for precision in _precisions(cfg, quantized[name]):
                spec = dict(base, kind="paddle", model=name, runtime="paddle-inference", device=cfg.device, backend=backend, precision=precision, program=str(model.program), params=str(model.params), input_names=names_by_model[name])
                if cfg.device == "gpu" and not ok:
                    result.records.extend(_skipped(spec, why, env))
                    continue
                log.info("benchmark: %s on paddle-inference/%s %s", name, backend, precision)
                _measure_into(result, spec, env, {"served_as": notes[name]} if name in notes else None)
        for variant, name, options in paddle_variants or []:
            model = models[name]
            precision = "int8" if quantized[name] else "fp32"
            spec = dict(base, kind="paddle", model=name, variant=variant, runtime="paddle-inference", device=cfg.device, backend=backend, precision=precision, program=str(model.program), params=str(model.params), input_names=names_by_model[name], paddings=["max"], paddle_options=dict(base["paddle_options"], **options))
            extra = {"served_as": f"benchmark only: what a user gets only with a predictor configured this way ({', '.join(f'{k}={v}' for k, v in options.items())})"}
            if cfg.device == "gpu":
                result.records.extend(_skipped(spec, "serving variants are CPU (oneDNN) settings", env))
                continue
            log.info("benchmark: %s on paddle-inference/%s %s, variant %s", name, backend, precision, variant)
            _measure_into(result, spec, env, extra)
        peer_source = onnx_from or next((n for n in models if not quantized[n]), None)
        peer_base = dict(base, paddings=["max"])  # peers are compared on the latency batch
        for wanted, label, runtime in ((cfg.onnx_peer, "ONNX Runtime", "onnxruntime"), (openvino, "OpenVINO", "openvino")):
            if not wanted:
                continue
            if peer_source is None:
                note = f"{label} peer skipped: no float model to start from (the peer starts from the FP32 Paddle model)"
                log.warning("benchmark: %s", note)
                result.notes.append(note)
            elif cfg.device == "gpu":
                spec = dict(peer_base, kind=runtime, model=peer_source, runtime=runtime, device="gpu", backend="ort-cpu" if runtime == "onnxruntime" else "ov-cpu", input_names=names_by_model[peer_source])
                why_peer = f"the {label} peer runs on CPU only; compare it with a CPU benchmark"
                for precision in ("fp32", "int8"):
                    result.records.extend(_skipped(dict(spec, precision=precision), why_peer, env))
            elif runtime == "onnxruntime":
                _onnx_peer(result, models[peer_source], peer_source, task, workdir, dict(peer_base, input_names=names_by_model[peer_source]), env)
            else:
                _openvino_peer(result, models[peer_source], peer_source, dict(openvino_quantized or {}), task, workdir, dict(peer_base, input_names=names_by_model[peer_source]), env)
    return result


def _precisions(cfg: BenchmarkConfig, quantized: bool) -> list[str]:
    """The precisions a model is served in: INT8 for a quantized program; FP32 (and FP16
    on GPU) for a float one, as far as ``cfg.precisions`` asks for them."""
    if quantized:
        wanted = ["int8"]
    else:
        wanted = ["fp32", "fp16"] if cfg.device == "gpu" else ["fp32"]
    chosen = [p for p in wanted if p in cfg.precisions]
    if not chosen:
        log.info("benchmark: a %s program is served in %s, which Benchmark.precisions (%s) leaves out", "quantized" if quantized else "float", "/".join(wanted), ", ".join(cfg.precisions))
    left_out = [p for p in cfg.precisions if p not in wanted]
    for precision in left_out:
        if precision == "fp16" and cfg.device == "cpu":
            log.info("benchmark: fp16 is a GPU (TensorRT) precision; not measured on CPU")
    return chosen


def _record_base(spec: dict[str, Any], env: dict[str, Any], padding: str) -> dict[str, Any]:
    return {
        "model": spec["model"],
        "runtime": spec["runtime"],
        "device": spec["device"],
        "backend": spec["backend"],
        "precision": spec["precision"],
        "padding": padding,
        "batch_size": spec["batch_size"],
        "seq_len": spec["max_seq_len"],
        "threads": spec["threads"],
        "warmup": spec["warmup"],
        "repeats": spec["repeats"],
        "latency_ms": None,
        "throughput": None,
        "peak_memory_mb": None,
        **({"variant": spec["variant"]} if spec.get("variant") else {}),
        "hardware": env["hardware"],
        "versions": env["versions"],
    }


def _skipped(spec: dict[str, Any], why: str, env: dict[str, Any]) -> list[dict[str, Any]]:
    return [dict(_record_base(spec, env, "max"), skipped=why)]


def _measure_into(result: BenchResult, spec: dict[str, Any], env: dict[str, Any], extra: dict[str, Any] | None = None) -> None:
    """Run one measurement and append its records (an error record when it failed)."""
    try:
        out = _dispatch(spec)
    except _WorkerError as exc:
        log.error("benchmark: %s %s %s failed: %s", spec["model"], spec["runtime"], spec["precision"], exc)
        result.records.append(dict(_record_base(spec, env, "max"), error=str(exc), **(extra or {})))
        return
    for measured in out["measurements"]:
        record = _record_base(spec, env, measured.pop("padding"))
        record.update(measured)
        record.update(extra or {})
        result._specs.append((record, spec))
        result.records.append(record)
        lat = record["latency_ms"]
        log.info("benchmark: %s %s %s %s: median %.1f ms, %.1f samples/s", record["model"], record["runtime"], record["precision"], record["padding"], lat["median"], record["throughput"])


# --------------------------------------------------------------------------------------
# Workloads
# --------------------------------------------------------------------------------------


def _build_workload(cfg: BenchmarkConfig, task: Any, names: list[str]) -> dict[str, Any]:
    fixed = task.fixed_batch(cfg.batch_size, cfg.max_seq_len)
    missing = [n for n in names if n not in fixed]
    if missing:
        from .errors import InputError

        raise InputError(f"the model asks for inputs {missing} that task {task.name} does not provide")
    max_batch = {n: np.ascontiguousarray(fixed[n]) for n in names}
    texts: dict[str, list[dict[str, np.ndarray]]] = {mode: [] for mode in TEXT_PADDINGS}
    sample = np.zeros(0, dtype=np.int64)
    real = 0.0
    if cfg.dynamic_padding:
        lengths = np.asarray(task.lengths("test"))
        sample = _text_sample(len(lengths), TEXT_BATCHES * cfg.batch_size)
        real = float(np.minimum(lengths[sample], cfg.max_seq_len).mean()) if len(sample) else 0.0
        in_order = [sample[i : i + cfg.batch_size] for i in range(0, len(sample), cfg.batch_size)]
        by_length = sample[np.argsort(lengths[sample], kind="stable")]
        bucketed = [by_length[i : i + cfg.batch_size] for i in range(0, len(by_length), cfg.batch_size)]
        for mode, groups in (("to-max", in_order), ("to-longest", in_order), ("bucketed", bucketed)):
            for group in groups:
                if mode == "to-max":
                    width = cfg.max_seq_len
                else:
                    longest = min(int(lengths[group].max()), cfg.max_seq_len)
                    width = min(int(math.ceil(longest / PAD_MULTIPLE) * PAD_MULTIPLE), cfg.max_seq_len)
                batch = task.collate("test", group, pad_to=width)
                texts[mode].append({n: np.ascontiguousarray(batch[n][:, :width]) for n in names})
    return {"max": max_batch, "texts": texts, "sample": sample, "real_len": real}


def _text_sample(size: int, count: int) -> np.ndarray:
    """``count`` test indices spread evenly over a split of ``size``, in split order (the
    order requests would come in); every index when the split is smaller."""
    if size <= count:
        return np.arange(size, dtype=np.int64)
    return np.unique(np.linspace(0, size - 1, count).round().astype(np.int64))


def _save_workload(workload: dict[str, Any], path: Path) -> None:
    arrays = {f"max/{n}": a for n, a in workload["max"].items()}
    for mode, batches in workload["texts"].items():
        for i, batch in enumerate(batches):
            arrays.update({f"{mode}/{i:04d}/{n}": a for n, a in batch.items()})
    arrays["sample"] = np.asarray(workload["sample"], dtype=np.int64)
    arrays["real_len"] = np.asarray(workload["real_len"], dtype=np.float64)
    np.savez(path, **arrays)


def _load_workload(path: str) -> dict[str, Any]:
    with np.load(path) as data:
        out: dict[str, Any] = {"max": {}, "texts": {mode: {} for mode in TEXT_PADDINGS}, "sample": data["sample"], "real_len": float(data["real_len"])}
        for key in data.files:
            if key in ("sample", "real_len"):
                continue
            parts = key.split("/")
            if parts[0] == "max":
                out["max"][parts[1]] = data[key]
            else:
                out["texts"][parts[0]].setdefault(parts[1], {})[parts[2]] = data[key]
    out["texts"] = {mode: [groups[k] for k in sorted(groups)] for mode, groups in out["texts"].items()}
    return out


# --------------------------------------------------------------------------------------
# Measuring (in a worker subprocess, or here)
# --------------------------------------------------------------------------------------


class _WorkerError(RuntimeError):
    pass


def _dispatch(spec: dict[str, Any]) -> dict[str, Any]:
    """Run ``_measure(spec)`` in a fresh interpreter (or in this one)."""
    if not spec.get("isolate", True):
        try:
            return _nncf_job(spec) if spec.get("job") == "nncf-quantize" else _measure(spec)
        except Exception as exc:
            text = _ov_refusal(str(exc)) if spec.get("kind") == "openvino" else str(exc)
            raise _WorkerError(f"{exc.__class__.__name__}: {text}") from exc
    with tempfile.TemporaryDirectory(prefix="act-bench-worker-") as tmp:
        spec_file, out_file = Path(tmp) / "spec.json", Path(tmp) / "out.json"
        spec_file.write_text(json.dumps(spec), encoding="utf-8")
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env["OMP_NUM_THREADS"] = str(spec["threads"])
        env.setdefault("GLOG_minloglevel", "2")
        command = [sys.executable, "-m", "job.benchmark", "--worker", str(spec_file), str(out_file)]
        try:
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=_WORKER_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            raise _WorkerError(f"timed out after {_WORKER_TIMEOUT} s") from None
        if done.returncode != 0 or not out_file.is_file():
            tail = [line for line in (done.stderr or "").strip().splitlines() if line.strip()]
            log.debug("benchmark worker stderr:\n%s", done.stderr)
            raise _WorkerError(f"worker exited with {done.returncode}: {tail[-1] if tail else 'no output'}")
        out = json.loads(out_file.read_text(encoding="utf-8"))
        if "error" in out:
            log.debug("benchmark worker stderr:\n%s", done.stderr)
            raise _WorkerError(out["error"])
        return out


def _open(spec: dict[str, Any]):
    """The session of one measurement: a callable from a batch to the outputs."""
    if spec["kind"] == "paddle":
        return _open_paddle(spec)
    if spec["kind"] == "openvino":
        from .openvino_peer import Session

        return Session(spec["source"], spec["threads"], spec.get("hint", ""), perf_count=bool(spec.get("profile")))
    return _open_ort(spec)


def _measure(spec: dict[str, Any]) -> dict[str, Any]:
    work = _load_workload(spec["workload"])
    session = _open(spec)
    if spec.get("profile"):
        return {"profile": _profile(spec, session, work["max"])}
    measurements = []
    outputs_file = spec.get("save_outputs")
    max_out = None
    for padding in spec["paddings"]:
        if padding == "max":
            batches = [work["max"]]
            warm = [work["max"]] * spec["warmup"]
        else:
            batches = work["texts"].get(padding) or []
            if not batches:
                continue
            warm = list(batches) if spec["warmup"] else []
        reset = _reset_peak()
        for batch in warm:
            session(batch)
        passes = 1 if padding == "max" else max(1, math.ceil(spec["repeats"] / len(batches)))
        runs = spec["repeats"] if padding == "max" else passes * len(batches)
        times: list[float] = []
        samples = 0
        last = None
        for index in range(runs):
            batch = batches[index % len(batches)]
            started = time.perf_counter()
            out = session(batch)
            times.append(time.perf_counter() - started)
            samples += len(next(iter(batch.values())))
            last = out
        ms = np.asarray(times) * 1000.0
        measured = {
            "padding": padding,
            "latency_ms": {"median": float(np.median(ms)), "p90": float(np.percentile(ms, 90)), "p99": float(np.percentile(ms, 99)), "mean": float(ms.mean())},
            "throughput": samples / float(np.sum(times)),
            "peak_memory_mb": _peak_mb(),
            "peak_memory_method": "VmHWM reset after model load" if reset else "VmHWM of the process lifetime",
            "timed_runs": runs,
            "worker_pid": os.getpid(),  # shows which process measured (isolate: one per measurement)
        }
        if padding == "max":
            measured["seq_len"] = int(work["max"]["input_ids"].shape[1]) if "input_ids" in work["max"] else spec["max_seq_len"]
            max_out = last
            if outputs_file and last is not None:
                np.savez(outputs_file, *[np.asarray(o) for o in last])
        else:
            widths = [int(next(iter(b.values())).shape[1]) for b in batches]
            sizes = [len(next(iter(b.values()))) for b in batches]
            measured.update(
                seq_len=work["real_len"],
                padded_len_mean=float(np.average(widths, weights=sizes)),
                pad_multiple=spec["pad_multiple"] if padding != "to-max" else None,
                texts=int(sum(sizes)),
                batches=len(batches),
                passes=passes,
                shapes=sorted({f"{s}x{w}" for s, w in zip(sizes, widths, strict=True)}),
                warmup=len(warm),
                repeats=passes,
            )
        if spec["precision"] == "int8" and spec["kind"] == "paddle":
            measured["int8_ops"] = dict(session.int8_ops)
        if spec["kind"] == "openvino":
            measured["inference_precision"] = session.inference_precision
        measurements.append(measured)
    if spec["kind"] == "paddle" and spec["precision"] == "int8" and spec["device"] == "cpu" and max_out is not None:
        check = _int8_check(spec, work["max"], max_out)
        for measured in measurements:
            if measured["padding"] == "max":
                measured["int8_check"] = check
    return {"measurements": measurements}


def _int8_check(spec: dict[str, Any], batch: dict[str, np.ndarray], int8_out: list[np.ndarray]) -> dict[str, Any]:
    """How far the INT8 kernels' outputs are from the quantized program itself, run in
    FP32 (quantize/dequantize simulated): an INT8 figure is only worth something if the
    INT8 run computes what the program says. Made after the timed runs and the memory
    reading, so it changes neither."""
    try:
        reference = _open_paddle(dict(spec, precision="fp32"))(batch)
    except Exception as exc:  # the check must not lose the measurement
        return {"error": f"{exc.__class__.__name__}: {exc}"}
    diffs = [np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) for a, b in zip(int8_out, reference, strict=False)]
    return {
        "reference": "the quantized program run in FP32 (QDQ simulated), same max-padding batch",
        "mean_abs_diff": float(np.mean([d.mean() for d in diffs])),
        "max_abs_diff": float(max(d.max() for d in diffs)),
    }


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _peak_mb() -> float | None:
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# -- Paddle Inference ---------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _bench_serving():
    """``job.evaluate.Serving`` plus settings the job does not serve with, for benchmark-only
    rows: ``bf16`` adds ``enable_mkldnn_bfloat16()`` (oneDNN BF16 for the float ops, on
    CPUs with AVX-512 BF16 or AMX). Defined lazily: evaluate imports paddle."""
    from .evaluate import Serving

    @dataclass(frozen=True)
    class BenchServing(Serving):
        bf16: bool = False

        def config(self, model):
            config = super().config(model)
            if self.bf16 and self.device == "cpu":
                config.enable_mkldnn_bfloat16()
            return config

    return BenchServing


def _paddle_serving(spec: dict[str, Any]):
    """The model and serving settings of one measurement: those evaluation uses
    (``job.evaluate.Serving``), with ``paddle_options`` overriding its fields (and the
    benchmark-only ``bf16``)."""
    from .evaluate import Serving
    from .model import ModelFiles

    program, params = Path(spec["program"]), Path(spec["params"])
    model = ModelFiles(program.parent, program.name, params.name)
    options = {key: tuple(value) if isinstance(value, list) else value for key, value in spec.get("paddle_options", {}).items()}
    serving_class = _bench_serving() if "bf16" in options else Serving
    return model, serving_class(
        device=spec["device"],
        precision=spec["precision"],
        threads=spec["threads"],
        cache_capacity=int(spec.get("cache_capacity", 1)),
        input_names=tuple(spec["input_names"]),
        max_batch_size=spec["batch_size"],
        max_seq_len=spec["max_seq_len"],
        **options,
    )


def _paddle_config(spec: dict[str, Any]):
    """The ``paddle.inference.Config`` of one measurement."""
    model, serving = _paddle_serving(spec)
    return serving.config(model)


def _open_paddle(spec: dict[str, Any]):
    from .evaluate import create_predictor
    from .runtime import set_threads

    if spec["device"] == "cpu":
        set_threads(spec["threads"])
    model, serving = _paddle_serving(spec)
    predictor, _, int8_ops = create_predictor(model, serving, serving.precision)
    inputs = {name: predictor.get_input_handle(name) for name in predictor.get_input_names()}
    outputs = [predictor.get_output_handle(name) for name in predictor.get_output_names()]

    def call(batch: dict[str, np.ndarray]) -> list[np.ndarray]:
        for name, handle in inputs.items():
            handle.copy_from_cpu(batch[name])
        predictor.run()
        return [handle.copy_to_cpu() for handle in outputs]

    call.predictor = predictor  # type: ignore[attr-defined]
    call.int8_ops = int8_ops  # type: ignore[attr-defined]
    return call


# -- ONNX Runtime -------------------------------------------------------------------------


def _ort_options(spec: dict[str, Any]):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = spec["threads"]
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return options


def _open_ort(spec: dict[str, Any]):
    import onnxruntime as ort

    options = _ort_options(spec)
    if spec.get("profile"):
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(spec["workload"]).parent / "ort-profile")
    session = ort.InferenceSession(spec["onnx"], options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]

    def call(batch: dict[str, np.ndarray]) -> list[np.ndarray]:
        return session.run(None, {n: batch[n] for n in names})

    call.session = session  # type: ignore[attr-defined]
    return call


# -- Profiles ------------------------------------------------------------------------------


def _profile(spec: dict[str, Any], session, batch: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Milliseconds per run spent in each op type, largest first."""
    runs, top = spec["profile"]["runs"], spec["profile"]["top"]
    for _ in range(max(1, spec["warmup"])):
        session(batch)
    totals: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    if spec["kind"] == "paddle":
        import paddle.profiler as profiler

        trace = Path(spec["workload"]).parent / f"paddle-profile-{os.getpid()}.json"
        prof = profiler.Profiler(targets=[profiler.ProfilerTarget.CPU], on_trace_ready=lambda prof: None)  # no ./profiler_log
        prof.start()
        started = time.perf_counter()
        for _ in range(runs):
            session(batch)
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
    elif spec["kind"] == "openvino":
        # OpenVINO reports the last inference of a request only: add up run by run.
        started = time.perf_counter()
        for _ in range(runs):
            session(batch)
            for op, (ms, nodes) in session.op_times().items():
                totals[op] += ms
                counts[op] += nodes
        wall = time.perf_counter() - started
    else:
        started = time.perf_counter()
        for _ in range(runs):
            session(batch)
        wall = time.perf_counter() - started
        trace = Path(session.session.end_profiling())
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
    wall_ms = wall * 1000.0 / runs
    rows = []
    for op, total in totals.most_common(top):
        rows.append({"op": op, "ms_per_run": total / runs, "calls_per_run": counts[op] / runs, "share": total / runs / wall_ms if wall_ms else 0.0})
    rows.append({"op": "(wall time per run)", "ms_per_run": wall_ms, "calls_per_run": 0, "share": 1.0})
    return rows


# --------------------------------------------------------------------------------------
# The ONNX Runtime peer
# --------------------------------------------------------------------------------------


def export_onnx(model: ModelFiles, out_file: Path, opset: int = 13) -> Path:
    """paddle2onnx export of a float Paddle program, weights as graph initializers."""
    import onnx
    import paddle2onnx

    from .evaluate import quiet_native_output

    out_file.parent.mkdir(parents=True, exist_ok=True)
    with quiet_native_output():
        raw = paddle2onnx.export(str(model.program), str(model.params), save_file=None, opset_version=opset, auto_upgrade_opset=True, verbose=False, enable_onnx_checker=True, deploy_backend="onnxruntime")
    proto = onnx.load_from_string(raw)
    moved = _constants_to_initializers(proto)
    log.info("benchmark: exported %s to ONNX (%d Constant nodes turned into initializers)", model.folder, moved)
    onnx.save(proto, str(out_file))
    return out_file


def _constants_to_initializers(proto) -> int:
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


class _Calibration:
    """ONNX Runtime's CalibrationDataReader over real batches. ``set_range`` serves
    ``CalibStridedMinMax``, which merges the ranges of a few batches at a time (the
    memory-bounded path: ``CalibMaxIntermediateOutputs`` of onnxruntime 1.20 drops the
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


def _make_variant(name: str, source: Path, out: Path, calibration: list[dict[str, np.ndarray]]) -> Path:
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, quantize_static

    extra = {"DefaultTensorType": onnx.TensorProto.FLOAT}
    if name.startswith("int8-dynamic"):
        quantize_dynamic(str(source), str(out), per_channel=name.endswith("per-channel"), weight_type=QuantType.QInt8, extra_options=dict(extra, MatMulConstBOnly=True))
        return out
    fmt = QuantFormat.QDQ if "-qdq" in name else QuantFormat.QOperator
    quantize_static(
        str(source),
        str(out),
        _Calibration(calibration),
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
        model = optimizer.optimize_model(str(source), model_type="bert", num_heads=heads, hidden_size=hidden, opt_level=0, only_onnxruntime=False)
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


def _calibration_batches(task: Any, names: list[str], count: int = 8, size: int = 8, split: str = "") -> list[dict[str, np.ndarray]]:
    splits = getattr(task, "splits", {})
    if split not in splits:
        split = "dev" if "dev" in splits else "test"
    out = []
    for batch in task.batches(split, size, shuffle=True, seed=0):
        out.append({n: np.ascontiguousarray(batch[n]) for n in names})
        if len(out) >= count:
            break
    return out


def _onnx_peer(result: BenchResult, model: ModelFiles, name: str, task: Any, workdir: Path, base: dict[str, Any], env: dict[str, Any]) -> None:
    folder = workdir / "onnx" / name
    spec0 = dict(base, kind="ort", model=name, runtime="onnxruntime", device="cpu", backend="ort-cpu")
    calibration = _calibration_batches(task, base["input_names"])
    try:
        made = _onnx_candidates(model, folder, calibration)
    except Exception as exc:  # paddle2onnx refuses some programs
        log.error("benchmark: ONNX export of %s failed: %s", model.folder, exc)
        for precision in ("fp32", "int8"):
            result.records.append(dict(_record_base(dict(spec0, precision=precision), env, "max"), error=f"paddle2onnx export failed: {exc}"))
        return
    tried: list[dict[str, Any]] = list(made["tried"])
    int8_source = folder / made["int8_source"]
    # Time every candidate at max padding; keep the fastest per precision.
    reference = None
    best: dict[str, tuple[float, dict[str, Any], dict[str, Any]]] = {}
    for precision, variant, file_name, info in made["candidates"]:
        path = folder / file_name
        outputs = folder / f"{variant}.outputs.npz"
        spec = dict(spec0, precision=precision, variant=variant, onnx=str(path), paddings=["max"], save_outputs=str(outputs), source=str(int8_source if precision == "int8" else path))
        log.info("benchmark: %s on onnxruntime %s", name, variant)
        try:
            out = _dispatch(spec)
        except _WorkerError as exc:
            log.warning("benchmark: ONNX Runtime variant %s failed to run: %s", variant, exc)
            tried.append({"variant": variant, "error": str(exc), **info})
            continue
        measured = out["measurements"][0]
        entry = {"variant": variant, "median_ms": round(measured["latency_ms"]["median"], 2), **info}
        got = _load_outputs(outputs)
        if precision == "fp32" and reference is None:
            reference = got
        elif reference is not None and got is not None:
            entry["max_abs_diff_vs_fp32"] = float(max(np.max(np.abs(a - b)) for a, b in zip(reference, got, strict=False)))
        tried.append(entry)
        if precision not in best or measured["latency_ms"]["median"] < best[precision][0]:
            best[precision] = (measured["latency_ms"]["median"], spec, measured)
    for precision in ("fp32", "int8"):
        if precision not in best:
            why = "no ONNX Runtime variant ran" if precision == "fp32" else "no INT8 variant could be made and run (see variants_tried)"
            result.records.append(dict(_record_base(dict(spec0, precision=precision), env, "max"), error=why, variants_tried=[t for t in tried if _is_precision(t["variant"], precision)]))
            continue
        _, spec, measured = best[precision]
        extra = {"variants_tried": [t for t in tried if _is_precision(t["variant"], precision)], "export": "paddle2onnx, Constant weights moved to initializers"}
        record = dict(_record_base(spec, env, "max"), **{k: v for k, v in measured.items() if k != "padding"}, **extra)
        result._specs.append((record, spec))
        result.records.append(record)
        log.info("benchmark: onnxruntime best %s: %s, median %.1f ms", precision, spec["variant"], measured["latency_ms"]["median"])


def _onnx_candidates(model: ModelFiles, folder: Path, calibration: list[dict[str, np.ndarray]]) -> dict[str, Any]:
    """The ONNX files to time (export, fused graph, INT8 variants), made in ``folder`` or
    reused from it while their reuse key holds: candidates as (precision, variant, file
    name, info), what failed to be made, and the file INT8 starts from."""
    from importlib.metadata import version

    code = reuse.code_text(export_onnx, _constants_to_initializers, _fuse, _make_variant, _Calibration, _onnx_candidates)
    libraries = {dist: version(dist) for dist in ("paddle2onnx", "onnxruntime", "onnx")}
    key = reuse.key(files=[model.program, model.params], code=code, versions=libraries, calibration=_batches_digest(calibration), variants=ONNX_VARIANTS, shape=_model_shape(model))
    if reuse.fresh(folder, key, "ONNX export and INT8 variants"):
        return json.loads((folder / reuse.MARKER).read_text(encoding="utf-8"))["made"]
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    fp32 = export_onnx(model, folder / "fp32.onnx")
    candidates: list[tuple[str, str, str, dict[str, Any]]] = [("fp32", "fp32", fp32.name, {})]
    heads, hidden = _model_shape(model)
    tried: list[dict[str, Any]] = []
    start_int8 = fp32
    try:
        fused, stats = _fuse(fp32, folder / "fp32-fused.onnx", heads, hidden)
        candidates.append(("fp32", "fp32-fused", fused.name, {"fusions": stats}))
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
                _make_variant(variant, int8_source, target, calibration)
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
        candidates.append(("int8", variant, target.name, info))
    made = {"candidates": candidates, "tried": tried, "int8_source": int8_source.name}
    reuse.mark(folder, key, made=made)
    return made


def _is_precision(variant: str, precision: str) -> bool:
    return variant.startswith(precision)


def _load_outputs(path: Path) -> list[np.ndarray] | None:
    if not path.is_file():
        return None
    with np.load(path) as data:
        return [data[k] for k in sorted(data.files, key=lambda k: int(k.split("_")[1]))]


# --------------------------------------------------------------------------------------
# The OpenVINO peer (job.openvino_peer; optional package)
# --------------------------------------------------------------------------------------


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (lines[0] if lines else "")[:300]


def _ov_refusal(text: str) -> str:
    from .openvino_peer import refusal

    return refusal(text)


def _nncf_job(spec: dict[str, Any]) -> dict[str, Any]:
    """Worker job: NNCF INT8 of ``spec['source']`` calibrated on ``spec['calibration']``."""
    from .openvino_peer import quantize

    with np.load(spec["calibration"]) as data:
        groups: dict[str, dict[str, np.ndarray]] = {}
        for key in data.files:
            group, name = key.split("/", 1)
            groups.setdefault(group, {})[name] = data[key]
    calibration = [groups[k] for k in sorted(groups)]
    started = time.perf_counter()
    info = quantize(spec["source"], calibration, Path(spec["out"]))
    return dict(info, made_in_s=round(time.perf_counter() - started, 1))


def _batches_digest(batches: list[dict[str, np.ndarray]]) -> str:
    import hashlib

    sha = hashlib.sha256()
    for batch in batches:
        for name in sorted(batch):
            sha.update(name.encode())
            sha.update(np.ascontiguousarray(batch[name]).tobytes())
    return sha.hexdigest()


def _nncf_int8(model: ModelFiles, name: str, task: Any, workdir: Path, input_names: list[str], threads: int, isolate: bool = True) -> tuple[Path, dict[str, Any]]:
    """NNCF INT8 of ``model`` as OpenVINO IR under workdir/openvino/NAME, made in a worker
    or reused under its reuse key; and what was made (``error`` when it failed)."""
    from . import openvino_peer

    folder = workdir / "openvino" / name
    xml = folder / "nncf-int8.xml"
    count, size = _OPENVINO_CALIB
    calibration = _calibration_batches(task, input_names, count=count, size=size, split="train")
    key = reuse.key(files=[model.program, model.params], code=reuse.code_text(openvino_peer.quantize, _nncf_job), versions=openvino_peer.versions(), calibration=_batches_digest(calibration))
    if reuse.fresh(folder, key, "NNCF INT8"):
        return xml, json.loads((folder / reuse.MARKER).read_text(encoding="utf-8")).get("made", {})
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    calibration_file = folder / "calibration.npz"
    np.savez(calibration_file, **{f"{i:04d}/{n}": a for i, batch in enumerate(calibration) for n, a in batch.items()})
    log.info("benchmark: NNCF INT8 of %s (transformer preset, %d calibration batches of %d)", name, count, size)
    try:
        made = _dispatch({"job": "nncf-quantize", "source": str(model.program), "calibration": str(calibration_file), "out": str(xml), "threads": threads, "isolate": isolate})
    except _WorkerError as exc:
        log.error("benchmark: NNCF quantization failed: %s", exc)
        return xml, {"error": f"NNCF quantization failed: {exc}"}
    reuse.mark(folder, key, made=made)
    return xml, made


def prepare_peers(model: ModelFiles, name: str, task: Any, workdir: Path, *, threads: int, onnx: bool = True, openvino: bool = True) -> None:
    """Make (or find by reuse key) the peers' conversions of the float model ``model``
    under ``workdir``, as ``run`` would, without measuring anything."""
    from .evaluate import program_inputs

    names = program_inputs(model)
    if onnx:
        _onnx_candidates(model, workdir / "onnx" / name, _calibration_batches(task, names))
    if openvino:
        from . import openvino_peer

        if openvino_peer.available()[0]:
            _nncf_int8(model, name, task, workdir, names, threads)


def _openvino_peer(result: BenchResult, model: ModelFiles, name: str, ours: dict[str, ModelFiles], task: Any, workdir: Path, base: dict[str, Any], env: dict[str, Any]) -> None:
    from . import openvino_peer

    spec0 = dict(base, kind="openvino", model=name, runtime="openvino", device="cpu", backend="ov-cpu")
    rows: list[tuple[dict[str, Any], dict[str, Any]]] = []
    ok, why = openvino_peer.available()
    for variant, (precision, hint) in OPENVINO_VARIANTS.items():
        rows.append((dict(spec0, precision=precision, variant=variant, hint=hint, source=str(model.program)), {"hint": hint or "default", "source": "the FP32 Paddle program, read by OpenVINO's Paddle frontend"}))
    for ours_name, ours_model in ours.items():
        rows.append((dict(spec0, model=ours_name, precision="int8", variant="paddle-quantized", hint="f32", source=str(ours_model.program)), {"hint": "f32", "source": "our quantized Paddle program, read by OpenVINO's Paddle frontend"}))
    if not ok:
        for spec, extra in rows:
            result.records.append(dict(_record_base(spec, env, "max"), skipped=why, **extra))
        log.warning("benchmark: OpenVINO peer skipped: %s", why)
        return
    xml, made = _nncf_int8(model, name, task, workdir, base["input_names"], base["threads"], base["isolate"])
    for spec, extra in rows:
        if spec["variant"].startswith("nncf"):
            if "error" in made:
                result.records.append(dict(_record_base(spec, env, "max"), error=made["error"], **extra))
                continue
            spec = dict(spec, source=str(xml))
            extra = dict(extra, source="NNCF INT8 (ModelType.TRANSFORMER) of the FP32 Paddle program", nncf=made)
        log.info("benchmark: %s on openvino %s", spec["model"], spec["variant"])
        _measure_into(result, spec, env, extra)


# --------------------------------------------------------------------------------------
# Worker entry point: python -m job.benchmark --worker SPEC OUT
# --------------------------------------------------------------------------------------


def _worker(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] != "--worker":
        print("usage: python -m job.benchmark --worker SPEC.json OUT.json (internal)", file=sys.stderr)
        return 2
    spec = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    if spec.get("kind") == "paddle":
        from .runtime import paddle  # noqa: F401 - zlib before paddle, see job.runtime
    try:
        out = _nncf_job(spec) if spec.get("job") == "nncf-quantize" else _measure(spec)
    except Exception as exc:  # the parent records the failure as the row
        import traceback

        traceback.print_exc()
        message = exc.__class__.__name__ + ": " + (_first_line(str(exc)) if spec.get("kind") != "openvino" else _ov_refusal(str(exc)))
        out = {"error": message}
    tmp = Path(argv[2]).with_suffix(".tmp")
    tmp.write_text(json.dumps(out), encoding="utf-8")
    shutil.move(str(tmp), argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(_worker(sys.argv[1:]))
