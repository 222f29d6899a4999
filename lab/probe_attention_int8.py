#!/usr/bin/env python3
"""Does INT8 attention pay in the predictor users run? (issue 13, the Q·Kᵀ question)

    python -m job lab probe_attention_int8    # after `make bench` (it reuses its models)

From the unrestricted PTQ programs `make bench` keeps (UIE-base, ``ptq-all``; the demo
teacher, ``accuracy/ptq``) it builds the published program at three INT8 scopes:

* ``linear``: the job's default (``job.compress.int8.restrict``);
* ``linear+pv``: also probabilities x V (``Job.int8_scope=linear+pv``);
* ``linear+qk``: also the scores matmul Q x K^T, with the pairs on its operand chains
  (the 1/sqrt(d) scale, the reshapes and transposes) so that oneDNN gets Q's scale before
  the scale is folded into the matmul, and a shape-preserving ``reshape2`` between the
  scores and the attention-mask add. Without that reshape Paddle 2.6 fuses the mask add
  into the INT8 matmul as residual data and the scores collapse (see ``job/compress/int8.py``);
  with it the add stays in float. Not a published scope: this probe is its only user.

Each is scored on the demo teacher (test split, span F1, a default oneDNN INT8 predictor,
as Taskflow serves it), then timed on UIE-base (batch 40 x 128) through the benchmark's
own worker, one process per measurement, the variants interleaved round by round, and
profiled op by op. Prints a table with each variant's ratio to ``linear`` and writes a
JSON record naming the CPU and its instruction sets (``--record``).

Exit codes: 0 done; 1 a measurement failed; 2 bad arguments or `make bench`'s models missing.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import shutil
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from job import tables  # noqa: E402
from job.program import op_args, read_program, write_program  # noqa: E402

TEACHER_CONFIG = ROOT / "configs" / "uie_demo.yaml"
SCOPES = ("linear", "linear+pv", "linear+qk")
INPUT_NAMES = ("input_ids", "token_type_ids", "position_ids", "attention_mask")
_CHAIN_OPS = ("scale", "transpose2", "reshape2")
DEFAULT_CONFIG = "configs/lab/probe_attention_int8.yaml"


@dataclasses.dataclass(frozen=True)
class Experiment:
    """``python -m job lab probe_attention_int8``: where `make bench`'s models are, how long to time."""

    bench: str = "bench-out/work/full"
    """`make bench`'s work folder: its unrestricted PTQ programs and its workload (``--bench``)."""
    out: str = "bench-out/probe-attention-int8"
    """Where the variants are built (``--out``)."""
    record: str = ""
    """The JSON record (empty: OUT/record.json; ``--record``)."""
    rounds: int = 3
    """Timing rounds, the variants interleaved (``--rounds``)."""
    repeats: int = 10
    """Timed runs per measurement (``--repeats``)."""
    warmup: int = 3
    """Warm-up runs per measurement (``--warmup``)."""
    threads: int = 2
    """CPU threads (``--threads``)."""

    def check(self) -> None:
        from job.config import require

        for name in ("rounds", "repeats", "threads"):
            require(getattr(self, name) >= 1, name, "must be >= 1")
        require(self.warmup >= 0, "warmup", "must be >= 0")


def _is_scores_matmul(op, weights: set[str]) -> bool:
    """Q x K^T: a matmul with a transposed second operand that is not a weight."""
    if op.type not in ("matmul_v2", "matmul"):
        return False
    attrs = {a.name: a for a in op.attrs}
    transposed = attrs.get("trans_y") or attrs.get("transpose_Y")
    return bool(transposed and transposed.b) and op_args(op.inputs)["Y"][0] not in weights


def _load(program: Path):
    desc = read_program(program)
    block = desc.blocks[0]
    persistable = {v.name for v in block.vars if v.persistable}
    dequantized = {
        op_args(o.outputs)["Y"][0]
        for o in block.ops
        if o.type == "dequantize_linear" and op_args(o.inputs)["X"][0] in persistable
    }
    return desc, block, persistable | dequantized


def linear_qk(program: Path):
    """The ``linear+qk`` INT8 scope of ``program`` (a ``job.compress.int8.Scope``): the job's
    ``linear`` plus Q x K^T and the scale/reshape/transpose ops its operands come through
    (their input pairs carry the scales oneDNN reads once those ops are fused into the matmul)."""
    from job.compress import int8

    _, block, weights = _load(program)
    made_by = {name: op for op in block.ops for v in op.outputs for name in v.arguments}
    chain: set[str] = set()

    def walk(name: str, depth: int = 0) -> None:
        op = made_by.get(name)
        if op is None or depth > 16:
            return
        if op.type in ("quantize_linear", "dequantize_linear", *_CHAIN_OPS):
            if op.type in _CHAIN_OPS:
                chain.add(op_args(op.outputs)["Out"][0])
            walk(op_args(op.inputs)["X"][0], depth + 1)

    for op in block.ops:
        if _is_scores_matmul(op, weights):
            walk(op_args(op.inputs)["X"][0])
            walk(op_args(op.inputs)["Y"][0])

    def keep(op, _weights: set[str], _origins: dict[str, str]) -> bool:
        if _is_scores_matmul(op, weights):
            return True
        return op.type in _CHAIN_OPS and any(name in chain for v in op.outputs for name in v.arguments)

    return int8.SCOPES["linear"].also("linear+qk", keep)


def guard_scores(program: Path) -> int:
    """Put a shape-preserving ``reshape2`` after every Q x K^T, so that no oneDNN pass can
    fuse the mask add into it; returns how many."""
    desc, block, weights = _load(program)
    template = next(op for op in block.ops if op.type == "reshape2")
    variables = {v.name: v for v in block.vars}
    xshape = variables[op_args(template.outputs)["XShape"][0]]
    guarded = 0
    index = 0
    while index < len(block.ops):
        op = block.ops[index]
        if _is_scores_matmul(op, weights):
            out = next(v for v in op.outputs if v.parameter == "Out")
            name = out.arguments[0]
            raw = block.vars.add()
            raw.CopyFrom(variables[name])
            raw.name = f"{name}.unmasked"
            shape_var = block.vars.add()
            shape_var.CopyFrom(xshape)
            shape_var.name = f"{name}.xshape"
            out.arguments[0] = raw.name
            reshape = type(template)()  # an OpDesc
            reshape.CopyFrom(template)
            for v in reshape.inputs:
                v.arguments[:] = [raw.name] if v.parameter == "X" else []
            for v in reshape.outputs:
                v.arguments[:] = [name] if v.parameter == "Out" else [shape_var.name]
            for attr in reshape.attrs:
                if attr.name == "shape":
                    attr.ints[:] = [0] * len(variables[name].type.lod_tensor.tensor.dims)
            block.ops.insert(index + 1, reshape)
            guarded += 1
            index += 1
        index += 1
    write_program(program, desc)
    return guarded


def build(source: Path, folder: Path, scope: str) -> Path:
    """``source`` (a folder with an unrestricted PTQ program) published at ``scope``."""
    from job.compress import int8

    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(source, folder)
    program = folder / "inference.pdmodel"
    if scope == "linear+qk":
        int8.restrict(program, linear_qk(program))
        if guard_scores(program) == 0:
            raise RuntimeError(f"{source}: no Q x K^T matmul found")
    else:
        int8.restrict(program, scope)
    return folder


def teacher_f1(folders: dict[str, Path], threads: int) -> dict[str, dict]:
    """Span F1 (points) of each demo-teacher variant through a default INT8 predictor, and
    the ops it ran in INT8."""
    from job import pipeline
    from job.config import load_config
    from job.evaluate import Serving, evaluate
    from job.model import ModelFiles

    cfg = load_config(TEACHER_CONFIG, [f"Job.threads={threads}"])
    prepared = pipeline.prepare(cfg, {})
    model, task = prepared.built.model, prepared.task
    out = {
        "fp32": {
            "f1": round(
                100.0 * evaluate(model, task, serving=Serving(threads=threads), batch_size=cfg.Global.batch_size).score,
                2,
            )
        }
    }
    for scope, folder in folders.items():
        result = evaluate(
            ModelFiles(folder).check(), task, serving=Serving(threads=threads), batch_size=cfg.Global.batch_size
        )
        out[scope] = {
            "f1": round(100.0 * result.score, 2),
            "int8_ops": dict(result.int8_ops or {}),
            "precision": result.precision,
        }
    return out


def _spec(folder: Path, workload: Path, threads: int, warmup: int, repeats: int, profile=None):
    from job.benchmark.spec import Measurement
    from job.evaluate import Serving

    return Measurement(
        runtime="paddle-inference",
        model=folder.name,
        precision="int8",
        source=str(folder / "inference.pdmodel"),
        params=str(folder / "inference.pdiparams"),
        workload=str(workload),
        input_names=INPUT_NAMES,
        threads=threads,
        warmup=warmup,
        repeats=repeats,
        batch_size=40,
        max_seq_len=128,
        backend="onednn",
        serving=Serving(threads=threads, precision="int8"),
        profile=profile,
    )


def parser():
    """The probe's flags; each overrides its config (``--config``) for this run."""
    from lab.cli import experiment_parser

    parser = experiment_parser("probe_attention_int8", __doc__, DEFAULT_CONFIG, ROOT)
    parser.add_argument("--bench", help="`make bench`'s work folder (default: bench-out/work/full)")
    parser.add_argument("--out", help="where the variants are built (default: bench-out/probe-attention-int8)")
    parser.add_argument("--record", help="the JSON record (default: OUT/record.json)")
    parser.add_argument("--rounds", type=int, help="timing rounds, variants interleaved (default 3)")
    parser.add_argument("--repeats", type=int, help="timed runs per measurement (default 10)")
    parser.add_argument("--warmup", type=int, help="warm-up runs per measurement (default 3)")
    parser.add_argument("--threads", type=int, help="CPU threads (default 2)")
    return parser


def configure(argv: list[str]) -> Experiment:
    """The experiment: its config with the flags applied, checked."""
    from job.errors import InputError
    from lab.cli import config_with_flags

    args = parser().parse_args(argv)
    experiment = config_with_flags(
        args, Experiment, ("bench", "out", "record", "rounds", "repeats", "warmup", "threads")
    )
    if experiment.rounds < 1 or experiment.repeats < 1 or experiment.warmup < 0 or experiment.threads < 1:
        raise InputError(
            "python -m job lab probe_attention_int8: --rounds, --repeats and --threads must be >= 1, --warmup >= 0"
        )
    return experiment


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = configure(argv)
    bench = Path(args.bench).resolve()
    sources = {"uie-base": bench / "ptq-all" / "compressed", "teacher": bench / "accuracy" / "ptq" / "compressed"}
    workload = bench / "bench" / "workload.npz"
    for path in (*(p / "inference.pdmodel" for p in sources.values()), workload):
        if not path.is_file():
            print(
                f"error: {path} is missing: run `make bench` (or python -m job lab bench_uie_base --prepare) first",
                file=sys.stderr,
            )
            return 2

    import zlib  # noqa: F401  (before paddle: see pitfalls)

    from job import logs
    from job.benchmark.measure import WorkerError, dispatch
    from job.benchmark.spec import Profile
    from job.runtime import hardware, versions

    logs.setup()
    out = Path(args.out).resolve()
    variants = {
        name: {scope: build(source, out / name / scope.replace("+", "-"), scope) for scope in SCOPES}
        for name, source in sources.items()
    }
    accuracy = teacher_f1(variants["teacher"], args.threads)
    timings: dict[str, list[float]] = {scope: [] for scope in SCOPES}
    int8_ops: dict[str, dict] = {}
    try:
        for round_index in range(args.rounds):
            for scope, folder in variants["uie-base"].items():
                measured = dispatch(_spec(folder, workload, args.threads, args.warmup, args.repeats))["measurements"][0]
                timings[scope].append(measured["latency_ms"]["median"])
                int8_ops[scope] = measured.get("int8_ops")
                print(
                    f"round {round_index + 1}/{args.rounds}  {scope:<10} {measured['latency_ms']['median']:8.1f} ms",
                    flush=True,
                )
        profiles = {
            scope: dispatch(_spec(folder, workload, args.threads, args.warmup, args.repeats, Profile(runs=3, top=10)))[
                "profile"
            ]
            for scope, folder in variants["uie-base"].items()
        }
    except WorkerError as exc:
        print(f"error: a measurement failed: {exc}", file=sys.stderr)
        return 1
    base = statistics.median(timings["linear"])
    rows = {
        scope: {
            "median_ms": round(statistics.median(timings[scope]), 1),
            "round_medians_ms": [round(t, 1) for t in timings[scope]],
            "speedup_vs_linear": round(base / statistics.median(timings[scope]), 3),
            "uie_base_int8_ops": int8_ops[scope],
            "teacher": accuracy[scope],
            "profile": [
                {k: (round(v, 2) if isinstance(v, float) else v) for k, v in row.items()} for row in profiles[scope]
            ],
        }
        for scope in SCOPES
    }
    record = {
        "schema": "probe-attention-int8/1",
        "what": (
            "INT8 attention in Paddle 2.6's default oneDNN INT8 predictor: "
            "UIE-base latency (batch 40 x 128) and demo-teacher F1 per INT8 scope"
        ),
        "date": datetime.date.today().isoformat(),
        "command": " ".join(["python -m job lab probe_attention_int8", *argv]),
        "hardware": hardware(),
        "threads": args.threads,
        "versions": versions(),
        "settings": {"rounds": args.rounds, "repeats": args.repeats, "warmup": args.warmup},
        "teacher_fp32_f1": accuracy["fp32"]["f1"],
        "scopes": rows,
    }
    path = Path(args.record) if args.record else out / "record.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(render(record))
    print(f"\nrecord: {path}")
    return 0


def render(record: dict) -> str:
    """The record as a Markdown table, then each scope's largest op types."""
    hw = record["hardware"]
    lines = [
        (
            f"{record['date']}, {hw.get('cpu')} ({hw.get('cores')} cores; {', '.join(hw.get('isa') or [])}), "
            f"{record['threads']} threads; demo teacher FP32 F1 {record['teacher_fp32_f1']}"
        ),
        "",
    ]
    rows = []
    for scope, row in record["scopes"].items():
        ops = ", ".join(f"{n} {k}" for k, n in sorted((row["teacher"].get("int8_ops") or {}).items()))
        figures = [f"{row['median_ms']:.1f}", f"{row['speedup_vs_linear']:.3f}×", f"{row['teacher']['f1']:.2f}"]
        rows.append([scope, *figures, ops])
    headers = ["INT8 scope", "UIE-base median ms", "vs linear", "demo teacher F1", "ops in INT8 (demo teacher)"]
    lines += tables.markdown(headers, rows, ["---"] * len(headers))
    for scope, row in record["scopes"].items():
        top = "; ".join(f"{p['op']} {p['ms_per_run']:.1f}" for p in row["profile"][:7])
        lines.append(f"\n{scope}: {top} (ms per run)")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
