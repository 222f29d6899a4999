#!/usr/bin/env python3
"""The README's "Measured on the demo teacher" table, measured: every strategy of the demo
run through the job, then each published folder scored again through PaddleNLP's Taskflow
(the client users load it with) on the whole embedded test split.

    python -m job lab demo_table [--out runs/demo-table] [--strategies qat_dis ptq ...]

Each row is one ``python -m job run --config configs/uie_demo.yaml Job.strategy=S ...``
(printed beside it). Runs already complete under --out are reused by the job itself (same
run id, same resolved config). Writes ``table.md`` and ``table.json`` (with the CPU, its
instruction sets and the versions) into --out and prints the table.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEMO = "configs/uie_demo.yaml"
DEFAULT_CONFIG = "configs/lab/demo_table.yaml"


def _strategies() -> dict[str, list[str]]:
    return {
        "qat_dis": [],
        "ptq": [],  # calibrates on QuantPost.batch_nums (default 10) batches of the train split
        "ptq_hpo": ["HyperParameterOptimization.max_quant_count=8", "HyperParameterOptimization.ptq_algo=[hist,avg]"],
        "prune_dis": [],
        "prune_ptq": [],
    }


@dataclasses.dataclass(frozen=True)
class Experiment:
    """``python -m job lab demo_table``: which strategies make the table's rows, where the runs go."""

    out: str = "runs/demo-table"
    """Output root of the runs and the table (``--out``)."""
    cache: str = ""
    """``Job.cache_dir`` for the runs (empty: the job's; ``--cache``)."""
    strategies: dict[str, list[str]] = dataclasses.field(default_factory=_strategies)
    """Row per strategy, in order: ``Job.strategy`` -> extra overrides on the demo config
    (``--strategies`` picks some)."""

    def check(self) -> None:
        from job.config import STRATEGIES, require

        for name, overrides in self.strategies.items():
            require(name in STRATEGIES, f"strategies.{name}", f"not a strategy; choose among {', '.join(STRATEGIES)}")
            require(
                isinstance(overrides, list) and all(isinstance(o, str) and "=" in o for o in overrides),
                f"strategies.{name}",
                "expected a list of Section.key=value overrides",
            )


def parser():
    """The table's flags; each overrides its config (``--config``) for this run."""
    from lab.cli import experiment_parser

    parser = experiment_parser("demo_table", __doc__, DEFAULT_CONFIG, ROOT)
    parser.add_argument("--out", help="output root of the runs and the table (default: runs/demo-table)")
    parser.add_argument(
        "--strategies",
        nargs="+",
        metavar="STRATEGY",
        help="strategies to run, among the config's (default: all of them)",
    )
    parser.add_argument("--cache", help="Job.cache_dir for the runs (default: the job's)")
    return parser


def configure(argv: list[str]) -> Experiment:
    """The experiment: its config with the flags applied."""
    from job.config import load_dataclass
    from job.errors import InputError

    args = parser().parse_args(argv)
    experiment = load_dataclass(args.config, Experiment)
    if args.strategies:
        unknown = [name for name in args.strategies if name not in experiment.strategies]
        if unknown:
            raise InputError(
                f"python -m job lab demo_table: --strategies {' '.join(unknown)}: not in {args.config} "
                f"(have: {', '.join(experiment.strategies)})"
            )
        experiment = dataclasses.replace(experiment, strategies={n: experiment.strategies[n] for n in args.strategies})
    changes = {k: v for k, v in (("out", args.out), ("cache", args.cache)) if v is not None}
    return dataclasses.replace(experiment, **changes)


def main(argv: list[str] | None = None) -> int:
    args = configure(list(sys.argv[1:] if argv is None else argv))

    import zlib  # noqa: F401  (before paddle: see job/runtime.py)

    from job.runtime import hardware, versions
    from lab.clients import taskflow_span_f1
    from lab.readme_tables import render_demo_table

    out = Path(args.out)
    rows = []
    teacher = None
    for strategy, extra in args.strategies.items():
        overrides = [f"Job.strategy={strategy}", f"Job.output={out}", *extra]
        if args.cache:
            overrides.append(f"Job.cache_dir={args.cache}")
        command = ["python", "-m", "job", "run", "--config", DEMO, *overrides]
        print(f"--> {' '.join(command)}", flush=True)
        started = time.perf_counter()
        done = subprocess.run([sys.executable, *command[1:]], cwd=ROOT)
        folder = out / "demo" / "uie" / strategy
        results_file = folder / "results.json"
        if done.returncode not in (0, 3) or not results_file.is_file():
            print(f"error: {strategy}: the job exited with {done.returncode}", file=sys.stderr)
            return 1
        results = json.loads(results_file.read_text(encoding="utf-8"))
        test_file = Path(results["evaluation"]["source"])
        served = taskflow_span_f1(folder, test_file, max_seq_len=results["config"]["Global"]["max_seq_length"])
        if teacher is None:
            source = _teacher_folder(results, args.cache)
            teacher = {
                "job_f1": results["before"]["f1"],
                "taskflow": taskflow_span_f1(
                    source, test_file, max_seq_len=results["config"]["Global"]["max_seq_length"]
                )
                if source
                else None,
                "results": results,
            }
        rows.append(
            {
                "strategy": strategy,
                "command": " ".join(command),
                "exit_code": done.returncode,
                "seconds": round(time.perf_counter() - started, 1),
                "results": results,
                "taskflow": served,
            }
        )

    record = make_record(teacher, rows, hardware(), versions())
    text = render_demo_table(record)
    print(text)
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(text + "\n", encoding="utf-8")
    (out / "table.json").write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\nsaved {out / 'table.md'} and {out / 'table.json'}")
    return 0


def _teacher_folder(results: dict, cache: str) -> Path | None:
    """The exported FP32 teacher the job compressed (in the job's cache)."""
    from job.config import load_config
    from job.pipeline import cache_dir

    overrides = [f"Job.cache_dir={cache}"] if cache else []
    root = cache_dir(load_config(ROOT / DEMO, overrides)) / "teachers"
    found = sorted(root.glob(f"{results['model_name']}-*/inference.pdmodel"), key=lambda p: p.stat().st_mtime)
    return found[-1].parent if found else None


def _summary(results: dict) -> dict:
    compressed = results["models"]["compressed"]
    return {
        "f1": results["after"]["f1"],
        "delta_points": results["delta_points"],
        "gate": results["gate"],
        "precision": compressed["precision"],
        "int8_ops": compressed.get("int8_ops", {}),
        "params": compressed["params"],
        "size_bytes": compressed["size_bytes"],
        "evaluation": results["evaluation"],
        "compress_seconds": results["durations"].get("compress"),
        "calibration": compressed.get("calibration"),
    }


SCHEMA = 2  # 2: the record holds every figure its table shows (the original's size and parameters)


def make_record(teacher: dict, rows: list[dict], hardware: dict, versions: dict) -> dict:
    """The committed form of one run of the table: everything ``lab.readme_tables.render_demo_table`` shows, and
    the machine and versions it was measured on."""
    original = teacher["results"]["models"]["original"]
    return {
        "schema": SCHEMA,
        "hardware": hardware,
        "versions": versions,
        "teacher": {
            "job_f1": teacher["job_f1"],
            "taskflow": teacher["taskflow"],
            "params": original["params"],
            "size_bytes": original["size_bytes"],
        },
        "rows": [{k: v for k, v in row.items() if k != "results"} | {"job": _summary(row["results"])} for row in rows],
    }


if __name__ == "__main__":
    sys.exit(main())
