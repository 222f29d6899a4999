#!/usr/bin/env python3
"""The job's footprint on CPU, measured: the demo job (configs/uie_demo.yaml, its uie-pico
teacher, one strategy, a cold cache) runs on CPU as a subprocess into a temporary output;
the record holds its peak resident memory (``getrusage(RUSAGE_CHILDREN).ru_maxrss`` after it
ends), wall and CPU time, the compute threads it was given, the most OS threads it had, and
the CPU (name and instruction sets).

    python -m job lab job_footprint [--strategy ptq] [--threads 2]

Writes records/job-footprint-<date>-<cpu>.json. ``scripts/launch --device cpu`` sizes its CPU
and memory requests from that record (``job.kube.render.cpu_resources_from_footprint``).
This is the demo teacher's footprint: UIE-base and ERNIE runs need more (launcher flags
``--cpu`` and ``--memory``). Run it with the interpreter of the CPU image's packages
(``.venv-openvino``: Paddle and OpenVINO) so that the runtimes the CPU image serves are measured.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEMO = "configs/uie_demo.yaml"
DEFAULT_CONFIG = "configs/lab/job_footprint.yaml"


@dataclasses.dataclass(frozen=True)
class Experiment:
    """``python -m job lab job_footprint``: which strategy, how many threads, where the record goes."""

    strategy: str = "ptq"
    """``Job.strategies`` of the run (``--strategy``): one strategy, as one Job of the launcher runs."""
    threads: int = 2
    """``Job.threads`` of the run (``--threads``): the compute threads, i.e. the cores a pod requests."""
    records: str = "records"
    """Folder of the record (``--records``)."""

    def check(self) -> None:
        from job.config import STRATEGIES, require

        require(self.strategy in STRATEGIES, "strategy", f"not a strategy; choose among {', '.join(STRATEGIES)}")
        require(self.threads >= 1, "threads", "must be >= 1 (the record sizes a CPU request from it)")


def parser():
    from lab.cli import experiment_parser

    parser = experiment_parser("job_footprint", __doc__, DEFAULT_CONFIG, ROOT)
    parser.add_argument("--strategy", help="the strategy of the run (default: ptq)")
    parser.add_argument("--threads", type=int, help="Job.threads of the run (default: 2)")
    parser.add_argument("--records", help="folder of the record (default: records)")
    return parser


def configure(argv: list[str]) -> Experiment:
    from job.config import STRATEGIES
    from job.errors import InputError
    from lab.cli import config_with_flags

    args = parser().parse_args(argv)
    if args.strategy is not None and args.strategy not in STRATEGIES:
        raise InputError(f"--strategy {args.strategy!r}: choose among {', '.join(STRATEGIES)}")
    if args.threads is not None and args.threads < 1:
        raise InputError(f"--threads {args.threads}: must be >= 1 (the record sizes a CPU request from it)")
    return config_with_flags(args, Experiment, ("strategy", "threads", "records"))


def _threads_of(pid: int) -> int:
    """OS threads of a live process (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _openvino_version() -> str | None:
    try:
        import openvino
    except ImportError:
        return None
    return str(openvino.__version__)


def measure(command: list[str], env: dict[str, str]) -> dict:
    """Run ``command`` to its end; its exit code, wall time, CPU time, peak RSS and peak OS threads.

    Peak RSS is the largest of this process's waited-for children (``RUSAGE_CHILDREN``), so
    the job must be the first child: run this in a fresh process (the lab command does).
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load_before = os.getloadavg()[0]  # other processes on the machine stretch wall time, not peak RSS
    started = time.perf_counter()
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    tail: list[str] = []
    peak_threads = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak_threads
        while not done.wait(0.5):
            peak_threads = max(peak_threads, _threads_of(proc.pid))

    def read() -> None:
        for line in proc.stderr:
            tail.append(line.rstrip("\n"))
            del tail[:-20]

    sampler, reader = threading.Thread(target=sample), threading.Thread(target=read)
    sampler.start()
    reader.start()
    code = proc.wait()
    done.set()
    sampler.join()
    reader.join()
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_seconds = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "exit_code": code,
        "wall_seconds": round(wall, 1),
        "cpu_seconds": round(cpu_seconds, 1),
        "cores_busy_on_average": round(cpu_seconds / wall, 2) if wall > 0 else None,
        "peak_rss_bytes": after.ru_maxrss * 1024,  # Linux reports KiB
        "peak_os_threads": peak_threads,
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],  # before, after
        "log_tail": tail,
    }


def readme_line(record: dict, path: str) -> str:
    """The README's line for a footprint record (tests/test_job_footprint.py holds the README to it)."""
    from job.kube.render import cpu_resources_from_footprint

    cpu, memory = cpu_resources_from_footprint(record)
    return (
        f"# measured ({path}): the demo job ({record['strategy']}, teacher uie-pico) with {record['threads']} "
        f"threads on {record['hardware']['cpu']}: peak RSS {record['peak_rss_bytes'] / 2**20:,.0f} MiB "
        f"-> --device cpu defaults --cpu {cpu} --memory {memory}"
    )


def _tree_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def main(argv: list[str] | None = None) -> int:
    experiment = configure(list(sys.argv[1:] if argv is None else argv))

    from job.machine import cpu_facts

    with tempfile.TemporaryDirectory(prefix="job-footprint-") as scratch:
        output, cache = Path(scratch) / "out", Path(scratch) / "cache"
        command = [
            sys.executable,
            "-m",
            "job",
            "run",
            "--config",
            DEMO,
            f"Job.strategies=[{experiment.strategy}]",
            f"Job.output={output}",
            "Job.run_id=footprint",
            "Job.device=cpu",
            f"Job.threads={experiment.threads}",
            f"Job.cache_dir={cache}",
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | {"PYTHONPATH": str(ROOT)}
        print(f"--> {' '.join(['python', *command[1:]])}", flush=True)
        run = measure(command, env)
        output_bytes = _tree_bytes(output) if output.exists() else 0
        cache_bytes = _tree_bytes(cache) if cache.exists() else 0
    facts = cpu_facts()
    record = {
        "schema": 1,
        "command": " ".join(["python", *command[1:]]).replace(scratch, "TMP"),
        "teacher": "uie-pico (configs/uie_demo.yaml, the demo teacher; UIE-base and ERNIE need more)",
        "strategy": experiment.strategy,
        "threads": experiment.threads,
        "openvino": _openvino_version(),
        "hardware": facts,
        "cpu_flags": sorted(facts.get("isa", [])),
        **{k: v for k, v in run.items() if k != "log_tail"},
        "output_bytes": output_bytes,
        "cache_bytes": cache_bytes,
    }
    if run["exit_code"] != 0:
        record["log_tail"] = run["log_tail"]
    cpu = re.sub(r"[^a-z0-9]+", "-", str(facts.get("cpu", "cpu")).lower()).strip("-")[:40]
    out = ROOT / experiment.records / f"job-footprint-{datetime.date.today().isoformat()}-{cpu}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in record.items() if k != "hardware"}, indent=1))
    print(f"saved {out}")
    return 0 if run["exit_code"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
