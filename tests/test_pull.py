"""scripts/pull in the light environment (.venv-light: no paddle) against moto, and job.report."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from job.config import StorageConfig
from job.report import summary_table
from job.results import TaskResult
from job.storage import Storage, publish, task_prefix

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "pull"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "results"
HEAVY = ("paddle", "paddlenlp", "paddleslim", "numpy", "pandas", "scipy")


def run_pull(python: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(python), str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        cwd=REPO,
    )


def fixture_result(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def make_task(root: Path, result: dict) -> Path:
    root.mkdir(parents=True)
    (root / "inference.pdmodel").write_bytes(os.urandom(4096))
    (root / "inference.pdiparams").write_bytes(os.urandom(64 * 1024))
    (root / "vocab.txt").write_text("[PAD]\n[UNK]\n中\n文\n", encoding="utf-8")
    (root / "config.json").write_text("{}")
    (root / "results.json").write_text(json.dumps(result, ensure_ascii=False), encoding="utf-8")
    return root


def hashes(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def assert_clean_error(proc: subprocess.CompletedProcess[str], code: int) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr


@pytest.fixture
def published(s3_server, bucket, tmp_path):
    """run1: uie/ptq and tnews/qat_dis complete, sentiment/ptq gated; run2: uie/ptq complete."""
    storage = Storage(StorageConfig(endpoint_url=s3_server))
    out = f"s3://{bucket}/act"
    sources = {}
    for run, name, status in (
        ("run1", "uie_ptq.json", "complete"),
        ("run1", "tnews_qat_dis.json", "complete"),
        ("run1", "sentiment_ptq_gated.json", "gated"),
        ("run2", "uie_ptq.json", "complete"),
    ):
        result = fixture_result(name)
        src = make_task(tmp_path / "src" / run / result["task"], result)
        prefix = task_prefix(out, run, result["task"], result["strategy"])
        publish(storage, src, prefix, fingerprint="f" * 64, status=status, progress=False)
        sources[(run, result["task"], result["strategy"])] = src
    return out, sources


def test_light_venv_has_no_paddle(light_python):
    proc = subprocess.run([str(light_python), "-c", "import paddle"], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "No module named 'paddle'" in proc.stderr


@pytest.mark.parametrize("python", ["light", "full"])
def test_pull_imports_stay_light(python, request):
    """Importing what scripts/pull imports loads no paddle, numpy or the like, even where they are installed."""
    interpreter = request.getfixturevalue("light_python") if python == "light" else Path(sys.executable)
    code = (
        f"import sys; sys.path.insert(0, {str(REPO)!r}); "
        "import job.storage, job.report; from job.config import StorageConfig; "
        "s3 = job.storage.Storage(StorageConfig(endpoint_url='http://127.0.0.1:9')).backend('s3://bucket/key'); "
        "s3.client(); s3.transfer_config(); "
        f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}); "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    proc = subprocess.run(
        [str(interpreter), "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_pull_help(light_python):
    proc = run_pull(light_python, "--help")
    assert proc.returncode == 0
    assert "list" in proc.stdout and "get" in proc.stdout and "AWS_ENDPOINT_URL" in proc.stdout
    proc = run_pull(light_python, "get", "--help")
    assert proc.returncode == 0 and "--run" in proc.stdout and "--dest" in proc.stdout


def test_pull_list(s3_server, published, light_python):
    out, _ = published
    proc = run_pull(light_python, "list", out, "--endpoint-url", s3_server)
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines()]
    assert rows[0] == ["run", "task", "strategy", "state"]
    assert rows[1:5] == [
        ["run1", "sentiment", "ptq", "incomplete"],
        ["run1", "tnews", "qat_dis", "complete"],
        ["run1", "uie", "ptq", "complete"],
        ["run2", "uie", "ptq", "complete"],
    ]
    assert proc.stdout.splitlines()[-1] == "4 tasks, 3 complete"

    proc = run_pull(
        light_python, "list", out, "--run", "run2", env={"AWS_ENDPOINT_URL": s3_server}
    )  # endpoint from the environment
    assert proc.returncode == 0, proc.stderr
    assert [line.split()[0] for line in proc.stdout.splitlines()[1:-1]] == ["run2"]


def test_pull_get(s3_server, published, tmp_path, light_python):
    out, sources = published
    dest = tmp_path / "pulled"
    proc = run_pull(
        light_python, "get", out, "--run", "run1", "--dest", str(dest), "--endpoint-url", s3_server, "--no-progress"
    )
    assert proc.returncode == 0, proc.stderr
    assert "warning: skipping run1/sentiment/ptq: incomplete" in proc.stderr
    for key in (("run1", "uie", "ptq"), ("run1", "tnews", "qat_dis")):
        got = dest.joinpath(*key)
        assert {k: v for k, v in hashes(got).items() if k not in ("manifest.json", "_SUCCESS")} == hashes(sources[key])
    assert not (dest / "run1" / "sentiment").exists()
    assert not (dest / "run2").exists()
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("| task | strategy | status | metric | before | after | delta points |")
    assert "| tnews | qat_dis | complete | accuracy | 57.31 | 57.52 | +0.21 | 300.0 | 78.5 |" in lines
    assert "| uie | ptq | complete | f1 | 85.12 | 84.77 | -0.35 | 470.1 | 120.5 |" in lines
    assert lines[-1].startswith("pulled 2 tasks (10 files,") and lines[-1].endswith("; skipped 1 incomplete")

    proc = run_pull(
        light_python,
        "get",
        out,
        "--run",
        "run1",
        "--task",
        "tnews",
        "--dest",
        str(tmp_path / "one"),
        "--endpoint-url",
        s3_server,
    )
    assert proc.returncode == 0, proc.stderr
    assert [p.name for p in (tmp_path / "one" / "run1").iterdir()] == ["tnews"]


def test_pull_errors(s3_server, published, tmp_path, light_python):
    out, _ = published
    assert_clean_error(
        run_pull(light_python, "get", out, "--run", "run9", "--dest", str(tmp_path / "d"), "--endpoint-url", s3_server),
        2,
    )
    assert_clean_error(
        run_pull(
            light_python,
            "get",
            out,
            "--run",
            "run1",
            "--task",
            "sentiment",
            "--dest",
            str(tmp_path / "d"),
            "--endpoint-url",
            s3_server,
        ),
        2,
    )
    assert_clean_error(run_pull(light_python, "get", out, "--dest", str(tmp_path / "d")), 2)  # --run missing
    assert_clean_error(run_pull(light_python, "list", "s3://Bad_Bucket/x"), 2)
    assert_clean_error(run_pull(light_python, "list", "gs://bucket/x"), 2)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    proc = run_pull(light_python, "list", out, "--endpoint-url", dead, env={"AWS_MAX_ATTEMPTS": "1"})
    assert_clean_error(proc, 4)
    assert out in proc.stderr
    assert not (tmp_path / "d").exists()


def test_pull_from_a_local_output(tmp_path, light_python):
    out = tmp_path / "runs"
    result = fixture_result("uie_ptq.json")
    src = make_task(tmp_path / "src", result)
    publish(
        Storage(),
        src,
        task_prefix(str(out), "local", "uie", "ptq"),
        fingerprint="f" * 64,
        status="complete",
        progress=False,
    )
    proc = run_pull(light_python, "get", str(out), "--run", "local", "--dest", str(tmp_path / "dest"))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "dest" / "local" / "uie" / "ptq" / "inference.pdiparams").read_bytes() == (
        src / "inference.pdiparams"
    ).read_bytes()


# --------------------------------------------------------------------------------------
# job.report.summary_table
# --------------------------------------------------------------------------------------


def test_summary_table_from_fixtures():
    results = [
        TaskResult.from_dict(fixture_result(n))
        for n in ("uie_ptq.json", "tnews_qat_dis.json", "sentiment_ptq_gated.json", "ocnli_failed.json")
    ]
    lines = summary_table(results).splitlines()
    assert lines == [
        "| task | strategy | status | metric | before | after | delta points | original size MB | compressed size MB |",
        "|---|---|---|---|---:|---:|---:|---:|---:|",
        "| uie | ptq | complete | f1 | 85.12 | 84.77 | -0.35 | 470.1 | 120.5 |",
        "| tnews | qat_dis | complete | accuracy | 57.31 | 57.52 | +0.21 | 300.0 | 78.5 |",
        "| sentiment | ptq | gated | accuracy | 91.02 | 88.74 | -2.28 | 12.3 | 3.5 |",
        "| ocnli | prune_dis | failed | accuracy | 73.68 | - | - | 300.0 | - |",
    ]


def test_summary_table_edge_cases():
    assert summary_table([]).count("\n") == 1
    result = TaskResult.from_dict({"task": "a|b", "strategy": "x\ny\x1b", "status": "failed", "metric": "f1"})
    row = summary_table([result]).splitlines()[2]
    assert row == "| a\\|b | x y\\x1b | failed | f1 | - | - | - | - | - |"
    original = TaskResult.from_dict(fixture_result("uie_ptq.json"))
    copy = TaskResult.from_dict(original.to_dict())
    summary_table([copy])
    assert copy == original, "pure: the input is not modified"


def test_report_module_is_small_and_public():
    import job.report

    assert job.report.__all__ == ["summary_table"]
