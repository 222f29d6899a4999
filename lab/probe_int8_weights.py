#!/usr/bin/env python3
"""Can a published INT8 folder store its linear weights in INT8? (issue 19, item 6)

    python -m job lab probe_int8_weights

Publishes the demo teacher with PTQ (``python -m job run --config configs/uie_demo.yaml
Job.strategy=ptq``; ``--published`` reuses a folder instead), then builds three variants of
that folder with ``job.compress.int8.int8_weights``, which stores every linear weight
behind a per-tensor pair as INT8 with its scale (the ``dequantize_linear`` reads the INT8
weight directly, Paddle 2.6's own form for INT8 weights):

* ``int8``: keeps the pair's ``quantize_linear`` on the weight (its output unused), the
  op Paddle's oneDNN INT8 pass takes the weight's scale from;
* ``int8-nohint``: without it, so oneDNN computes the fc weight scales itself;
* ``int8-assign``: the scale carried by an in-place ``assign`` of the weight instead
  (``out_threshold``), an op every predictor can run.

Each of the three folders (the published one, float32 weights, included) is scored on the
test split through the job's own evaluation, served as Taskflow serves it on CPU (a
default oneDNN INT8 predictor), then through an FP32 predictor (what a predictor without
oneDNN INT8 runs, e.g. Taskflow on GPU), and the INT8 ones through PaddleNLP's Taskflow
itself. Writes one JSON record with the folder and parameter sizes, the F1s and the CPU
(``--record``). TensorRT is not measured: this machine has no GPU.

Exit codes: 0 done; 1 a step failed; 2 bad arguments.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_CONFIG = "configs/lab/probe_int8_weights.yaml"
DEMO = "configs/uie_demo.yaml"
# Variant name -> int8_weights' hint (None: the folder as published).
VARIANTS = {"float32": None, "int8": "quantize", "int8-nohint": "none", "int8-assign": "assign"}


@dataclasses.dataclass(frozen=True)
class Experiment:
    """``python -m job lab probe_int8_weights``: which published folder, where the variants go."""

    published: str = ""
    """A published PTQ folder of the demo teacher to start from (empty: publish one into OUT/run; ``--published``)."""
    out: str = "runs/probe-int8-weights"
    """Where the run and the variants are written (``--out``)."""
    record: str = ""
    """The JSON record (empty: OUT/record.json; ``--record``)."""
    cache: str = ""
    """Job.cache_dir for the run (empty: the job's; ``--cache``)."""
    threads: int = 2
    """CPU threads of every predictor (``--threads``)."""
    taskflow: bool = True
    """Also score the variants through PaddleNLP's Taskflow (``--no-taskflow`` turns it off)."""


def parser():
    """The probe's flags; each overrides its config (``--config``) for this run."""
    from lab.cli import experiment_parser

    parser = experiment_parser("probe_int8_weights", __doc__, DEFAULT_CONFIG, ROOT)
    parser.add_argument("--published", help="a published PTQ folder to start from (default: publish one)")
    parser.add_argument("--out", help="where the run and the variants go (default: runs/probe-int8-weights)")
    parser.add_argument("--record", help="the JSON record (default: OUT/record.json)")
    parser.add_argument("--cache", help="Job.cache_dir for the run (default: the job's)")
    parser.add_argument("--threads", type=int, help="CPU threads (default 2)")
    parser.add_argument("--no-taskflow", dest="taskflow", action="store_false", default=None, help="skip Taskflow")
    return parser


def configure(argv: list[str]) -> Experiment:
    """The experiment: its config with the flags applied, checked."""
    from job.errors import InputError
    from lab.cli import config_with_flags

    args = parser().parse_args(argv)
    experiment = config_with_flags(args, Experiment, ("published", "out", "record", "cache", "threads", "taskflow"))
    if experiment.threads < 1:
        raise InputError("python -m job lab probe_int8_weights: --threads must be >= 1")
    return experiment


def build(published: Path, folder: Path, hint: str | None) -> int:
    """``published`` copied to ``folder``, its linear weights stored in INT8 unless
    ``hint`` is None; returns how many weights were stored in INT8."""
    from job.compress import int8
    from job.program import read_program, write_program

    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(published, folder)
    if hint is None:
        return 0
    desc = read_program(folder / "inference.pdmodel")
    stored = int8.int8_weights(desc, folder / "inference.pdiparams", hint)
    write_program(folder / "inference.pdmodel", desc)
    return stored


def _sizes(folder: Path) -> dict[str, int]:
    return {
        "folder_bytes": sum(p.stat().st_size for p in folder.iterdir() if p.is_file()),
        "params_bytes": (folder / "inference.pdiparams").stat().st_size,
    }


def _score(folder: Path, task, threads: int, precision: str) -> dict:
    """F1 (points) through the job's evaluation, or the one-line error the predictor raised."""
    from job.evaluate import Serving, evaluate
    from job.model import ModelFiles

    try:
        result = evaluate(
            ModelFiles(folder).check(), task, serving=Serving(threads=threads), precision=precision, batch_size=32
        )
    except Exception as exc:  # a predictor that cannot run the program is a finding, not a crash
        return {"error": " ".join(f"{type(exc).__name__}: {exc}".split())[:300]}
    return {
        "f1": round(100.0 * result.score, 2),
        "precision": result.precision,
        "examples": result.examples,
        "int8_ops": dict(result.int8_ops or {}),
        "serving": result.serving,
    }


def publish(out: Path, cache: str) -> Path:
    """The demo teacher published with PTQ by the job itself; returns its folder."""
    overrides = ["Job.strategy=ptq", f"Job.output={out / 'run'}", "Job.run_id=probe"]
    if cache:
        overrides.append(f"Job.cache_dir={cache}")
    command = [sys.executable, "-m", "job", "run", "--config", DEMO, *overrides]
    print(f"--> python -m job run --config {DEMO} {' '.join(overrides)}", flush=True)
    done = subprocess.run(command, cwd=ROOT)
    folder = out / "run" / "probe" / "uie" / "ptq"
    if done.returncode != 0 or not (folder / "_SUCCESS").is_file():
        raise RuntimeError(f"the PTQ run exited with {done.returncode}")
    return folder


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = configure(argv)

    import zlib  # noqa: F401  (before paddle: see pitfalls)

    from job import logs, pipeline
    from job.config import load_config
    from job.results import TaskResult
    from job.runtime import hardware, versions

    logs.setup()
    out = Path(args.out).resolve()
    try:
        published = Path(args.published).resolve() if args.published else publish(out, args.cache)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not (published / "results.json").is_file():
        print(f"error: {published}: no results.json (not a published folder)", file=sys.stderr)
        return 2
    results = TaskResult.from_dict(json.loads((published / "results.json").read_text(encoding="utf-8")))
    overrides = [f"Job.threads={args.threads}"] + ([f"Job.cache_dir={args.cache}"] if args.cache else [])
    task = pipeline.prepare(load_config(ROOT / DEMO, overrides), {}).task

    rows = {}
    for name, hint in VARIANTS.items():
        folder = out / "variants" / name
        stored = build(published, folder, hint)
        row = {"int8_weights": stored, "hint": hint, **_sizes(folder)}
        row["served_int8"] = _score(folder, task, args.threads, "auto")
        row["served_fp32"] = _score(folder, task, args.threads, "fp32")
        if args.taskflow:
            from lab.clients import taskflow_span_f1

            try:
                served = taskflow_span_f1(folder, Path(results.evaluation.source), max_seq_len=128)
                row["taskflow"] = {k: served[k] for k in ("f1", "examples", "int8")}
                row["taskflow"]["f1"] = round(100.0 * served["f1"], 2)
            except Exception as exc:  # as in _score: a loader that fails is the finding
                row["taskflow"] = {"error": " ".join(f"{type(exc).__name__}: {exc}".split())[:300]}
        rows[name] = row
        print(f"{name}: {json.dumps(row, ensure_ascii=False)}", flush=True)

    original = results.models.original
    record = {
        "schema": "probe-int8-weights/1",
        "what": (
            "the demo teacher's PTQ folder with its linear weights stored in float32 (as published) or INT8, "
            "served by Paddle 2.6 as Taskflow serves it on CPU (oneDNN INT8) and by an FP32 predictor"
        ),
        "date": datetime.date.today().isoformat(),
        "command": " ".join(["python -m job lab probe_int8_weights", *argv]),
        "hardware": hardware(),
        "threads": args.threads,
        "versions": versions(),
        "split": {"name": results.evaluation.split, "examples": results.evaluation.examples},
        "original": {
            "size_bytes": original.size_bytes,
            "params": original.params,
            "f1": round(100 * results.before["f1"], 2),
        },
        "tensorrt": "not measured: no GPU on this machine",
        "variants": rows,
    }
    path = Path(args.record) if args.record else out / "record.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\nrecord: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
