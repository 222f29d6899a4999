"""The lab apart from the job: nothing under ``job/`` imports ``lab`` but the lazy
``python -m job lab`` command; that command lists the experiments, refuses a bad
experiment config in one line with exit code 2, and says so in one line where only
``job/`` is shipped (the image); the bench's plan is the job's own, extended."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _lab_imports(path: Path) -> list[str]:
    """Where ``path`` imports the lab: import statements and ``importlib.import_module("lab...")``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names = [node.args[0].value]
        found += [f"{path.relative_to(REPO)}:{node.lineno}: {n}" for n in names if n == "lab" or n.startswith("lab.")]
    return found


def test_nothing_under_job_imports_the_lab_but_the_lazy_cli_command():
    found = [hit for path in sorted((REPO / "job").rglob("*.py")) for hit in _lab_imports(path)]
    assert found, "the CLI's lab command imports lab.cli lazily: the walk must see it"
    assert all(hit.startswith("job/__main__.py:") and hit.endswith(": lab.cli") for hit in found), found


def _job(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "job", *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def test_lab_help_explains_every_experiment():
    from lab.cli import EXPERIMENTS

    done = _job("lab", "--help")
    assert done.returncode == 0, done.stderr
    for name in EXPERIMENTS:
        assert f"  {name}\n" in done.stdout and f"config: configs/lab/{name}.yaml" in done.stdout, name
    flags = _job("lab", "bench_uie_base", "--help")
    assert flags.returncode == 0 and all(f in flags.stdout for f in ("--quick", "--table", "--record", "--prepare"))
    assert "lab" in _job("--help").stdout


def test_a_bad_experiment_config_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "bench.yaml"
    bad.write_text("out: bench-out\ntreads: 2\n", encoding="utf-8")
    done = _job("lab", "bench_uie_base", "--config", str(bad))
    assert done.returncode == 2, done.stderr
    assert done.stderr == f"error: {bad}:2: treads: unknown key (did you mean threads?)\n"
    unknown = _job("lab", "bench_uie_bass")
    assert unknown.returncode == 2 and unknown.stderr.count("\n") == 1 and "no experiment named" in unknown.stderr
    flag = _job("lab", "probe_attention_int8", "--rounds", "0")
    assert flag.returncode == 2 and flag.stderr.count("\n") == 1 and "Traceback" not in flag.stderr


def test_without_the_lab_the_command_is_one_line_and_exit_2(tmp_path):
    """The image ships job/ only: there `python -m job lab` must say so, not trace back."""
    shutil.copytree(REPO / "job", tmp_path / "job", ignore=shutil.ignore_patterns("__pycache__"))
    for args in (("lab", "bench_uie_base", "--quick"), ("lab", "--help")):
        done = _job(*args, cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert done.stderr.count("\n") == 1 and "the lab is not installed here" in done.stderr, done.stderr
    assert _job("config", cwd=tmp_path).returncode == 0, "the rest of the CLI works without the lab"


def test_the_bench_plan_is_the_jobs_plan_extended_with_the_labs_rows(monkeypatch):
    """The job's rows first (as the job serves them; ptq-pv labelled), then the BF16 rows
    (latency batch only), then the job's ONNX peer, then OpenVINO handed our published programs."""
    import job.evaluate
    from job import benchmark
    from job.config import BenchmarkConfig
    from lab.bench_uie_base import bench_plan

    monkeypatch.setattr(job.evaluate, "is_quantized", lambda model: model != "fp32-files")
    models = {"fp32": "fp32-files", "ptq": "q", "ptq-pv": "q", "prune_ptq": "q"}
    cfg = BenchmarkConfig(enabled=True, device="cpu", precisions=["fp32", "int8"], onnx_peer=True)
    entries = bench_plan(cfg, models, openvino=True, bf16_rows=["fp32", "ptq"])
    assert [(e.model, e.runtime, e.precision, e.variant) for e in entries] == [
        ("fp32", "paddle-inference", "fp32", ""),
        ("ptq", "paddle-inference", "int8", ""),
        ("ptq-pv", "paddle-inference", "int8", ""),
        ("prune_ptq", "paddle-inference", "int8", ""),
        ("fp32", "paddle-inference", "", "bf16"),
        ("ptq", "paddle-inference", "", "bf16"),
        ("fp32", "onnxruntime", "", ""),
        ("fp32", "openvino", "", ""),
    ]
    job_plan = benchmark.plan(cfg, models)
    assert [e for e in entries if e.runtime == "onnxruntime"] == [e for e in job_plan if e.runtime == "onnxruntime"]
    by_row = {(e.model, e.runtime, e.variant): e for e in entries}
    assert by_row["ptq-pv", "paddle-inference", ""].label.startswith("benchmark only")
    assert not by_row["ptq", "paddle-inference", ""].label, "the job's rows are served as the job serves them"
    bf16 = by_row["ptq", "paddle-inference", "bf16"]
    assert bf16.options == {"bf16": True} and not bf16.padding and bf16.label.startswith("benchmark only")
    # OpenVINO reads our published PTQ and pruned programs (and the unrestricted PTQ one).
    assert by_row["fp32", "openvino", ""].options == {"quantized": ("ptq", "ptq-all", "prune_ptq")}
    without = bench_plan(cfg, models, openvino=False, bf16_rows=[])
    assert [e.runtime for e in without] == ["paddle-inference"] * 4 + ["onnxruntime"]


def test_scripts_keep_no_lab_code():
    for name in ("bench_uie_base.py", "probe_attention_int8.py", "demo_table.py"):
        assert not (REPO / "scripts" / name).exists(), f"scripts/{name}: the lab's entry point is python -m job lab"
    python = [p for p in (REPO / "scripts").iterdir() if p.suffix == ".py" or p.name in ("pull", "launch")]
    assert sum(len(p.read_text(encoding="utf-8").splitlines()) for p in python) < 300
