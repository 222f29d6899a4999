"""The benchmark stage: ``run`` measures every model on Paddle Inference and, when asked,
on the ONNX Runtime and OpenVINO peers; ``prepare_peers`` makes the peers' conversions."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from job.benchmark import onnxruntime_peer, openvino_peer, paddle_inference
from job.benchmark.result import BenchResult, Context, measure_into, skipped
from job.benchmark.spec import Measurement
from job.benchmark.workload import (
    PAD_MULTIPLE,
    TEXT_PADDINGS,
    build_workload,
    calibration_batches,
    save_workload,
    shape_count,
)
from job.config import BenchmarkConfig
from job.machine import cpu_count

if TYPE_CHECKING:
    from job.evaluate import Serving
    from job.model import ModelFiles

__all__ = ["prepare_peers", "run"]

log = logging.getLogger("job.benchmark")


def run(
    cfg: BenchmarkConfig,
    models: dict[str, ModelFiles],
    task: Any,
    *,
    workdir: Path | None = None,
    isolate: bool = True,
    onnx_from: str | None = None,
    serving: Serving | None = None,
    paddle_variants: list[tuple[str, str, dict[str, Any]]] | None = None,
    notes: dict[str, str] | None = None,
    openvino: bool = False,
    openvino_quantized: dict[str, ModelFiles] | None = None,
) -> BenchResult:
    """Measure every model in ``models`` (name -> inference model folder) on ``task``'s
    test texts, as ``cfg`` says. ``workdir`` keeps the workloads and conversions (and
    lets ``BenchResult.profile`` run later); without it a temporary folder is used.
    ``onnx_from`` names the float model the ONNX and OpenVINO peers start from (default:
    the first float model). ``serving`` is the ``job.evaluate.Serving`` evaluation serves
    with (default: ``Serving()``): every Paddle row is served with it, its device,
    precision, threads, oneDNN cache and TensorRT shape range set from ``cfg`` and the
    workload. ``paddle_variants`` adds latency rows served otherwise than the job serves:
    (variant name, model name, ``Serving`` fields such as ``{"benchmark_bf16": True}``). ``notes`` labels a model's records (``served_as``).
    ``openvino`` adds the OpenVINO peer; ``openvino_quantized`` (row name -> quantized
    model) hands our programs to it as well."""
    from job.evaluate import Serving
    from job.program import is_quantized, program_inputs
    from job.runtime import hardware, versions

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
            env["versions"].update(openvino_peer.versions())
        quantized = {name: is_quantized(model) for name, model in models.items()}
        names_by_model = {name: tuple(program_inputs(model)) for name, model in models.items()}
        input_names = next(iter(names_by_model.values())) if names_by_model else tuple(task.input_names)
        workload = build_workload(cfg, task, list(input_names))
        workload_file = workdir / "workload.npz"
        save_workload(workload, workload_file)
        text_paddings = TEXT_PADDINGS if cfg.dynamic_padding else ()
        base = Measurement(
            runtime="",
            model="",
            precision="",
            source="",
            workload=str(workload_file),
            input_names=input_names,
            threads=threads,
            warmup=cfg.warmup,
            repeats=cfg.repeats,
            batch_size=cfg.batch_size,
            max_seq_len=cfg.max_seq_len,
            device=cfg.device,
            paddings=("max",),
            pad_multiple=PAD_MULTIPLE,
            isolate=isolate,
        )
        ctx = Context(BenchResult([]), env, base, workdir, task, text_paddings)
        if cfg.device == "gpu":
            ok, why = paddle_inference.gpu_available()
            if not ok:
                log.warning(
                    "benchmark: device gpu asked for, but %s; GPU (TensorRT) measurements are skipped, no figures are made up",
                    why,
                )
                ctx.result.notes.append(f"GPU measurements skipped: {why}")
        else:
            ok, why = True, ""
        backend = paddle_inference.BACKENDS[cfg.device]

        def paddle_spec(name: str, precision: str, **fields: Any) -> Measurement:
            model = models[name]
            served = dataclasses.replace(
                serving or Serving(),
                device=cfg.device,
                precision=precision,
                threads=threads,
                cache_capacity=shape_count(workload),
                input_names=names_by_model[name],
                max_batch_size=cfg.batch_size,
                max_seq_len=cfg.max_seq_len,
                **fields,
            )
            return base.replace(
                runtime="paddle-inference",
                model=name,
                backend=backend,
                precision=precision,
                source=str(model.program),
                params=str(model.params),
                input_names=names_by_model[name],
                serving=served,
            )

        for name in models:
            for precision in paddle_inference.precisions(cfg, quantized[name]):
                spec = paddle_spec(name, precision).replace(paddings=("max", *text_paddings))
                if cfg.device == "gpu" and not ok:
                    skipped(ctx, spec, why)
                    continue
                log.info("benchmark: %s on paddle-inference/%s %s", name, backend, precision)
                measure_into(ctx, spec, {"served_as": notes[name]} if name in notes else None)
        for variant, name, options in paddle_variants or []:
            spec = paddle_spec(name, "int8" if quantized[name] else "fp32", **options).replace(variant=variant)
            if cfg.device == "gpu":
                skipped(ctx, spec, "serving variants are CPU (oneDNN) settings")
                continue
            extra = {
                "served_as": f"benchmark only: what a user gets only with a predictor configured this way ({', '.join(f'{k}={v}' for k, v in options.items())})"
            }
            log.info("benchmark: %s on paddle-inference/%s %s, variant %s", name, backend, spec.precision, variant)
            measure_into(ctx, spec, extra)
        peer_source = onnx_from or next((n for n in models if not quantized[n]), None)
        for wanted, label, runtime in (
            (cfg.onnx_peer, "ONNX Runtime", "onnxruntime"),
            (openvino, "OpenVINO", "openvino"),
        ):
            if not wanted:
                continue
            if peer_source is None:
                note = (
                    f"{label} peer skipped: no float model to start from (the peer starts from the FP32 Paddle model)"
                )
                log.warning("benchmark: %s", note)
                ctx.result.notes.append(note)
                continue
            peer_ctx = dataclasses.replace(ctx, base=base.replace(input_names=names_by_model[peer_source]))
            if cfg.device == "gpu":
                spec = peer_ctx.base.replace(
                    runtime=runtime,
                    model=peer_source,
                    device="gpu",
                    backend="ort-cpu" if runtime == "onnxruntime" else "ov-cpu",
                )
                for precision in ("fp32", "int8"):
                    skipped(
                        ctx,
                        spec.replace(precision=precision),
                        f"the {label} peer runs on CPU only; compare it with a CPU benchmark",
                    )
            elif runtime == "onnxruntime":
                onnxruntime_peer.peer(peer_ctx, models[peer_source], peer_source)
            else:
                openvino_peer.peer(peer_ctx, models[peer_source], peer_source, dict(openvino_quantized or {}))
    return ctx.result


def prepare_peers(
    model: ModelFiles, name: str, task: Any, workdir: Path, *, threads: int, onnx: bool = True, openvino: bool = True
) -> None:
    """Make (or find in the cache, ``job.cache``) the peers' conversions of the float model ``model``
    under ``workdir``, as ``run`` would, without measuring anything."""
    from job.program import program_inputs

    names = program_inputs(model)
    if onnx:
        onnxruntime_peer.candidates(model, workdir / "onnx" / name, calibration_batches(task, names))
    if openvino and openvino_peer.available()[0]:
        openvino_peer.nncf_int8(model, name, task, workdir, names, threads)
