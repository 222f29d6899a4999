"""The job's footprint on CPU (lab/job_footprint.py) and what the launcher makes of it.

The measurement itself runs a real child process; the committed record is the one the
launcher's ``--device cpu`` defaults come from, and the README's line is its rendering.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from job.kube import render
from lab import job_footprint

ROOT = Path(__file__).resolve().parent.parent
RECORD = ROOT / render.FOOTPRINT_RECORD


def test_readme_line_is_the_committed_records_rendering():
    record = json.loads(RECORD.read_text(encoding="utf-8"))
    line = job_footprint.readme_line(record, render.FOOTPRINT_RECORD)
    assert line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert f"--cpu {render.CPU_NODE_CPU} --memory {render.CPU_NODE_MEMORY}" in line


def test_the_committed_record_is_a_whole_measurement():
    record = json.loads(RECORD.read_text(encoding="utf-8"))
    assert record["exit_code"] == 0 and record["threads"] == int(render.CPU_NODE_CPU)
    assert record["hardware"]["cpu"] and record["hardware"]["isa"] and record["cpu_flags"]
    assert record["peak_rss_bytes"] > 0 and record["wall_seconds"] > 0 and record["cpu_seconds"] > 0
    assert "Job.device=cpu" in record["command"] and f"Job.threads={record['threads']}" in record["command"]


_PEAK_MIB = 300


def test_measure_reports_the_childs_peak_rss_wall_time_and_threads():
    """In a fresh process, as the lab command runs it: a child holding 300 MiB for a moment."""
    child = f"import time; block = bytearray({_PEAK_MIB} * 2**20); time.sleep(1.2)"
    script = (
        "import json, sys; from lab.job_footprint import measure; "
        f"print(json.dumps(measure([sys.executable, '-c', {child!r}], dict(__import__('os').environ))))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)
    assert run["exit_code"] == 0 and run["wall_seconds"] >= 1.2
    assert _PEAK_MIB * 2**20 <= run["peak_rss_bytes"] < (_PEAK_MIB + 100) * 2**20, run["peak_rss_bytes"]
    assert run["peak_os_threads"] >= 1


@pytest.mark.parametrize("flags", [["--threads", "0"], ["--strategy", "magic"]])
def test_bad_flags_are_one_line_and_exit_2(flags, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "job", "lab", "job_footprint", *flags, "--records", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --") and "Traceback" not in done.stderr
    assert not list(tmp_path.iterdir()), "nothing measured, no record"
