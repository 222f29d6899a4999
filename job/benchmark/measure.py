"""The measurement loop, the same for every runtime, and the worker process it runs in.

Each measurement runs in a fresh interpreter (``Measurement.isolate``, the default), so
runtimes do not share thread pools, caches or memory: ``dispatch`` writes the spec as
JSON, runs ``python -m job.benchmark --worker IN OUT`` and reads the figures back.

Warm-up: ``warmup`` untimed runs of the ``max`` batch, and one untimed pass over every
batch of a padding mode (every shape primed); then ``repeats`` runs of the ``max`` batch,
or as many passes over a mode's batches as ``repeats`` batches need (at least one). Each
timed run is ``time.perf_counter`` around copying the inputs in, running and copying the
outputs out. ``latency_ms``: median, p90, p99 (linear interpolation), mean per batch;
``throughput``: samples per second over all timed runs; ``peak_memory_mb``: the
resident-set high-water mark (``VmHWM``) reset once the model is loaded (writing ``5`` to
/proc/self/clear_refs; ``peak_memory_method`` says when that was not possible).
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from job.benchmark.session import RUNTIMES, session_class
from job.benchmark.spec import Measurement
from job.benchmark.workload import load_workload

__all__ = ["JOBS", "WorkerError", "dispatch", "measure", "profile_rows", "run_job", "worker"]

log = logging.getLogger("job.benchmark")

WORKER_TIMEOUT = 3600

# Jobs a worker runs: name -> (module, function taking the payload dict). "measure" times
# a Measurement; the others prepare a peer's conversion in a process of its own.
JOBS = {
    "measure": ("job.benchmark.measure", "measure_job"),
    "nncf-quantize": ("job.benchmark.openvino_peer", "nncf_job"),
}


class WorkerError(RuntimeError):
    """A measurement or job that failed: its message is the row's ``error``."""


def measure_job(payload: dict[str, Any]) -> dict[str, Any]:
    return measure(Measurement.from_json(payload["spec"]))


def _error_text(payload: dict[str, Any], exc: BaseException) -> str:
    """One informative line of an exception, as the runtime involved words it best."""
    module = JOBS[payload["job"]][0]
    if payload["job"] == "measure":
        module = RUNTIMES.get(json.loads(payload["spec"]).get("runtime"), module)
    text = getattr(importlib.import_module(module), "error_text", _first_line)(str(exc))
    return f"{exc.__class__.__name__}: {text}"


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (lines[0] if lines else "")[:300]


def run_job(payload: dict[str, Any]) -> dict[str, Any]:
    module, function = JOBS[payload["job"]]
    return getattr(importlib.import_module(module), function)(payload)


def dispatch(
    job: str | Measurement, payload: dict[str, Any] | None = None, *, threads: int = 0, isolate: bool = True
) -> dict[str, Any]:
    """Run a measurement (a ``Measurement``) or a named job with ``payload`` in a fresh
    interpreter (or in this one when ``isolate`` is off); ``WorkerError`` when it failed."""
    if isinstance(job, Measurement):
        payload, threads, isolate = {"job": "measure", "spec": job.to_json()}, job.threads, job.isolate
    else:
        payload = dict(payload or {}, job=job)
    if not isolate:
        try:
            return run_job(payload)
        except Exception as exc:
            raise WorkerError(_error_text(payload, exc)) from exc
    with tempfile.TemporaryDirectory(prefix="act-bench-worker-") as tmp:
        in_file, out_file = Path(tmp) / "in.json", Path(tmp) / "out.json"
        in_file.write_text(json.dumps(payload), encoding="utf-8")
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env["OMP_NUM_THREADS"] = str(threads or os.cpu_count() or 1)
        env.setdefault("GLOG_minloglevel", "2")
        command = [sys.executable, "-m", "job.benchmark", "--worker", str(in_file), str(out_file)]
        try:
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=WORKER_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            raise WorkerError(f"timed out after {WORKER_TIMEOUT} s") from None
        if done.returncode != 0 or not out_file.is_file():
            tail = [line for line in (done.stderr or "").strip().splitlines() if line.strip()]
            log.debug("benchmark worker stderr:\n%s", done.stderr)
            raise WorkerError(f"worker exited with {done.returncode}: {tail[-1] if tail else 'no output'}")
        out = json.loads(out_file.read_text(encoding="utf-8"))
        if "error" in out:
            log.debug("benchmark worker stderr:\n%s", done.stderr)
            raise WorkerError(out["error"])
        return out


def worker(argv: list[str]) -> int:
    """``python -m job.benchmark --worker IN.json OUT.json`` (internal)."""
    if len(argv) != 3 or argv[0] != "--worker":
        print("usage: python -m job.benchmark --worker IN.json OUT.json (internal)", file=sys.stderr)
        return 2
    payload = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    if payload["job"] == "measure" and json.loads(payload["spec"]).get("runtime") == "paddle-inference":
        from job.runtime import paddle  # noqa: F401 - zlib before paddle, see job.runtime
    try:
        out = run_job(payload)
    except Exception as exc:  # the parent records the failure as the row
        import traceback

        traceback.print_exc()
        out = {"error": _error_text(payload, exc)}
    tmp = Path(argv[2]).with_suffix(".tmp")
    tmp.write_text(json.dumps(out), encoding="utf-8")
    shutil.move(str(tmp), argv[2])
    return 0


def measure(spec: Measurement) -> dict[str, Any]:
    """Time ``spec``'s session on its workload in each of its paddings (or profile it)."""
    work = load_workload(spec.workload)
    session = session_class(spec.runtime).open(spec)
    if spec.profile:
        return {"profile": profile_rows(spec, session, work["max"])}
    measurements = []
    max_out = None
    for padding in spec.paddings:
        if padding == "max":
            batches = [work["max"]]
            warm = [work["max"]] * spec.warmup
        else:
            batches = work["texts"].get(padding) or []
            if not batches:
                continue
            warm = list(batches) if spec.warmup else []
        reset = _reset_peak()
        for batch in warm:
            session(batch)
        passes = 1 if padding == "max" else max(1, math.ceil(spec.repeats / len(batches)))
        runs = spec.repeats if padding == "max" else passes * len(batches)
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
            "latency_ms": {
                "median": float(np.median(ms)),
                "p90": float(np.percentile(ms, 90)),
                "p99": float(np.percentile(ms, 99)),
                "mean": float(ms.mean()),
            },
            "throughput": samples / float(np.sum(times)),
            "peak_memory_mb": _peak_mb(),
            "peak_memory_method": "VmHWM reset after model load" if reset else "VmHWM of the process lifetime",
            "timed_runs": runs,
            "worker_pid": os.getpid(),  # shows which process measured (isolate: one per measurement)
        }
        if padding == "max":
            measured["seq_len"] = (
                int(work["max"]["input_ids"].shape[1]) if "input_ids" in work["max"] else spec.max_seq_len
            )
            max_out = last
            if spec.save_outputs and last is not None:
                np.savez(spec.save_outputs, *[np.asarray(o) for o in last])
        else:
            widths = [int(next(iter(b.values())).shape[1]) for b in batches]
            sizes = [len(next(iter(b.values()))) for b in batches]
            measured.update(
                seq_len=work["real_len"],
                padded_len_mean=float(np.average(widths, weights=sizes)),
                pad_multiple=spec.pad_multiple if padding != "to-max" else None,
                texts=int(sum(sizes)),
                batches=len(batches),
                passes=passes,
                shapes=sorted({f"{s}x{w}" for s, w in zip(sizes, widths, strict=True)}),
                warmup=len(warm),
                repeats=passes,
            )
        measured.update(session.facts())
        measurements.append(measured)
    if max_out is not None:
        checks = session.checks(work["max"], max_out)
        for measured in measurements:
            if measured["padding"] == "max":
                measured.update(checks)
    return {"measurements": measurements}


def profile_rows(spec: Measurement, session, batch: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Milliseconds per run spent in each op type, largest first, then the wall time."""
    runs, top = spec.profile.runs, spec.profile.top
    for _ in range(max(1, spec.warmup)):
        session(batch)
    totals, counts, wall = session.profile(batch, runs)
    wall_ms = wall * 1000.0 / runs
    rows = []
    for op, total in totals.most_common(top):
        rows.append(
            {
                "op": op,
                "ms_per_run": total / runs,
                "calls_per_run": counts[op] / runs,
                "share": total / runs / wall_ms if wall_ms else 0.0,
            }
        )
    rows.append({"op": "(wall time per run)", "ms_per_run": wall_ms, "calls_per_run": 0, "share": 1.0})
    return rows


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
