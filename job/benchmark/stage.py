"""The benchmark stage: ``plan`` lists what the job measures (every model on Paddle
Inference and, when asked, the ONNX Runtime peer); ``run`` measures a plan, the job's or
one an experiment extended (rows served otherwise, the OpenVINO peer); ``prepare_peers``
makes the peers' conversions."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from job.benchmark import onnxruntime_peer, openvino_peer, paddle_inference
from job.benchmark.result import BenchResult, Context, measure_into, skipped
from job.benchmark.spec import Measurement, Planned
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

__all__ = ["plan", "prepare_peers", "run"]

log = logging.getLogger("job.benchmark")


def plan(cfg: BenchmarkConfig, models: dict[str, ModelFiles]) -> list[Planned]:
    """The job's own plan for ``models`` (name -> inference model folder): every model on
    Paddle Inference in each precision it is served in (``paddle_inference.precisions``),
    then the ONNX Runtime peer (``Benchmark.onnx_peer``) from the first float model."""
    from job.evaluate import is_quantized

    cfg = dataclasses.replace(cfg, device=cfg.device or "cpu")
    quantized = {name: is_quantized(model) for name, model in models.items()}
    entries = [
        Planned(name, "paddle-inference", precision)
        for name in models
        for precision in paddle_inference.precisions(cfg, quantized[name])
    ]
    if cfg.onnx_peer:
        entries.append(Planned(next((n for n in models if not quantized[n]), ""), "onnxruntime"))
    return entries


_PEERS = {"onnxruntime": "ONNX Runtime", "openvino": "OpenVINO"}


def run(
    cfg: BenchmarkConfig,
    models: dict[str, ModelFiles],
    task: Any,
    entries: list[Planned] | None = None,
    *,
    workdir: Path | None = None,
    isolate: bool = True,
    serving: Serving | None = None,
) -> BenchResult:
    """Measure ``entries`` (default: the job's own ``plan(cfg, models)``) on ``task``'s
    test texts, as ``cfg`` says; every model an entry names is in ``models`` (name ->
    inference model folder). ``workdir`` keeps the workloads and conversions (and lets
    ``BenchResult.profile`` run later); without it a temporary folder is used. ``serving``
    is the ``job.evaluate.Serving`` evaluation serves with (default: ``Serving()``): every
    Paddle row is served with it, its device, precision, threads, oneDNN cache and TensorRT
    shape range set from ``cfg`` and the workload. Records come in the entries' order."""
    from job.evaluate import Serving
    from job.program import is_quantized, program_inputs
    from job.runtime import hardware, versions

    cfg.check()
    cfg = dataclasses.replace(cfg, device=cfg.device or "cpu")  # empty: follows Job.device, CPU when used alone
    entries = plan(cfg, models) if entries is None else list(entries)
    for entry in entries:
        entry.check()
        named = [entry.model] if entry.model else []
        missing = [n for n in [*named, *entry.options.get("quantized", ())] if n not in models]
        if missing:
            raise ValueError(f"planned {entry.runtime} row names models not given to run: {', '.join(missing)}")
    threads = cfg.threads or cpu_count()
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="act-bench-")))
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        env = {"hardware": hardware(), "versions": versions()}
        if any(entry.runtime == "openvino" for entry in entries):
            env["versions"].update(openvino_peer.versions())
        # Only the models Paddle serves or a peer starts from are read here: a program handed
        # to OpenVINO as it is (``quantized``) may be one Paddle cannot read, its refusal a row.
        read = {entry.model for entry in entries if entry.model}
        quantized = {name: is_quantized(model) for name, model in models.items() if name in read}
        names_by_model = {name: tuple(program_inputs(model)) for name, model in models.items() if name in read}
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
                    "benchmark: device gpu asked for, but %s; "
                    "GPU (TensorRT) measurements are skipped, no figures are made up",
                    why,
                )
                ctx.result.notes.append(f"GPU measurements skipped: {why}")
        else:
            ok, why = True, ""
        backend = paddle_inference.BACKENDS[cfg.device]

        for entry in entries:
            if entry.runtime == "paddle-inference":
                name = entry.model
                precision = entry.precision or ("int8" if quantized[name] else "fp32")
                spec = base.replace(
                    runtime="paddle-inference",
                    model=name,
                    backend=backend,
                    precision=precision,
                    source=str(models[name].program),
                    params=str(models[name].params),
                    input_names=names_by_model[name],
                    serving=dataclasses.replace(
                        serving or Serving(),
                        device=cfg.device,
                        precision=precision,
                        threads=threads,
                        cache_capacity=shape_count(workload),
                        input_names=names_by_model[name],
                        max_batch_size=cfg.batch_size,
                        max_seq_len=cfg.max_seq_len,
                    ),
                    variant=entry.variant,
                    bf16=bool(entry.options.get("bf16", False)),
                    paddings=("max", *text_paddings) if entry.padding else ("max",),
                )
                if cfg.device == "gpu" and entry.variant:
                    skipped(ctx, spec, "serving variants are CPU (oneDNN) settings")
                    continue
                if cfg.device == "gpu" and not ok:
                    skipped(ctx, spec, why)
                    continue
                log.info(
                    "benchmark: %s on paddle-inference/%s %s%s",
                    name,
                    backend,
                    precision,
                    f", variant {entry.variant}" if entry.variant else "",
                )
                measure_into(ctx, spec, {"served_as": entry.label} if entry.label else None)
                continue
            if entry.runtime == "openvino" and entry.variant == "served":
                _served_in_openvino(ctx, entry, models[entry.model], quantized[entry.model], names_by_model)
                continue
            label, runtime, source = _PEERS[entry.runtime], entry.runtime, entry.model
            if not source:
                note = (
                    f"{label} peer skipped: no float model to start from (the peer starts from the FP32 Paddle model)"
                )
                log.warning("benchmark: %s", note)
                ctx.result.notes.append(note)
                continue
            peer_ctx = dataclasses.replace(ctx, base=base.replace(input_names=names_by_model[source]))
            if cfg.device == "gpu":
                spec = peer_ctx.base.replace(
                    runtime=runtime,
                    model=source,
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
                onnxruntime_peer.peer(peer_ctx, models[source], source)
            else:
                ours = {name: models[name] for name in entry.options.get("quantized", ())}
                openvino_peer.peer(peer_ctx, models[source], source, ours)
    return ctx.result


def _served_in_openvino(
    ctx: Context, entry: Planned, model: ModelFiles, quantized: bool, names_by_model: dict[str, tuple[str, ...]]
) -> None:
    """A published folder read by OpenVINO as it is, with the entry's precision hint: a
    row of the job's own serving (``job.serve``), not the peer's conversions."""
    hint = str(entry.options.get("hint", ""))
    spec = ctx.base.replace(
        runtime="openvino",
        model=entry.model,
        device="cpu",
        backend="ov-cpu",
        precision="int8" if quantized else "fp32",
        variant="served",
        hint=hint,
        source=str(model.program),
        input_names=names_by_model[entry.model],
    )
    extra = {"hint": hint or "default", "source": "the published folder, read by OpenVINO's Paddle frontend"}
    if ctx.base.device == "gpu":
        skipped(ctx, spec, "OpenVINO serves on CPU here; time it with a CPU run", **extra)
        return
    ok, why = openvino_peer.runtime_available()
    if not ok:
        skipped(ctx, spec, why, **extra)
        return
    log.info("benchmark: %s on openvino (published folder, hint %s)", entry.model, hint or "default")
    measure_into(ctx, spec, extra)


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
