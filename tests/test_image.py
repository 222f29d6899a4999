"""The built job image (tier ``image``: ``bash scripts/test.sh -m image``, as root).

The CPU image of docker/Dockerfile, built by ``bash scripts/image-test.sh --build-only``
(cached: seconds when nothing changed), checked from outside with podman and run as the
Kubernetes Job runs it (tests/image_harness.py): what it holds, its default command, its
history and environment, the exit codes that come out of ``podman run``, and the documented
end-to-end command itself.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import image_harness as harness
import pytest

from job.errors import ExitCode

pytestmark = pytest.mark.image
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def image() -> str:
    done = subprocess.run(
        ["bash", "scripts/image-test.sh", "--build-only"], cwd=ROOT, capture_output=True, text=True, timeout=5400
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return harness.IMAGE


@pytest.fixture(scope="module")
def stage(image, tmp_path_factory):
    with harness.Stage(tmp_path_factory.mktemp("image-stage")) as stage:
        yield stage


def _inspect(image: str) -> dict:
    (data,) = json.loads(harness.podman("image", "inspect", image, check=True).stdout)
    return data


def test_image_holds_only_the_job(image):
    """No tests, .git, virtual environments or caches from the build context or the build."""
    script = (
        "ls -A /app; echo ---; "
        "find / -xdev \\( -name .git -o -name tests -path '/app/*' -o -name '.venv*' -o -name .pytest_cache "
        "-o -name .ruff_cache -o -name __pycache__ -path '/app/*' -o -name '*.egg-info' -path '/app/*' \\) -print; "
        "find /root/.cache /tmp -mindepth 1 2>/dev/null; true"
    )
    done = harness.podman(
        "run", "--rm", "--pull", "never", "--no-healthcheck", "--user", "0", "--entrypoint", "bash", image, "-c", script
    )
    assert done.returncode == 0, done.stderr
    top, _, found = done.stdout.partition("---\n")
    assert sorted(top.split()) == ["configs", "job", "requirements", "scripts"]
    assert found.split() == [], found


def test_default_command_is_the_help(image):
    config = _inspect(image)["Config"]
    assert config["Entrypoint"] == ["python", "-m", "job"] and config["Cmd"] == ["--help"]
    assert config["User"] == "10001:10001"
    done = harness.podman("run", "--rm", "--pull", "never", "--no-healthcheck", "--read-only", image)
    assert done.returncode == 0, done.stderr
    for command in ("run", "eval", "report", "data", "teacher", "config"):
        assert re.search(rf"^\s+{command}\b", done.stdout, flags=re.M), (command, done.stdout)


_CREDENTIAL = re.compile(
    r"AKIA[0-9A-Z]{12,}|AWS_(SECRET_ACCESS_KEY|ACCESS_KEY_ID|SESSION_TOKEN)\s*=|(secret|password|passwd|token)\s*=",
    re.IGNORECASE,
)


def test_no_credential_in_history_or_environment(image):
    history = harness.podman("history", "--no-trunc", "--format", "{{.CreatedBy}}", image, check=True).stdout
    assert "pip install" in history  # the history is there to be read
    env = _inspect(image)["Config"]["Env"]
    found = [line for line in [*history.splitlines(), *env] if _CREDENTIAL.search(line)]
    assert not found, found
    assert not any(name.startswith("AWS_") for name in (item.partition("=")[0] for item in env))


def test_bad_config_exits_2_and_writes_nothing_outside_the_volumes(stage):
    job = stage.job("bad-config", edited=("TrainConfig.epochs=ten",))
    run = stage.run(job, "act-image-bad-config")
    assert run.returncode == int(ExitCode.INPUT), run.log[-3000:]
    errors = [line for line in run.log.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "TrainConfig.epochs" in errors[0] and "Traceback" not in run.log, run.log[-3000:]
    assert run.written == []


def test_failed_gate_exits_3(stage):
    run = stage.run(stage.job("gated", "Job.gate_tolerance=-100"), "act-image-gated")
    assert run.returncode == int(ExitCode.GATE), run.log[-3000:]
    assert run.written == []
    # The log stays readable: PaddleSlim's bars redraw at most every 30 s (job/logs.py).
    assert run.log.count("Adding quant op") <= 4 and run.log.count("Run batch") <= 4, run.log[-3000:]
    for value in (stage.secret["AWS_ACCESS_KEY_ID"], stage.secret["AWS_SECRET_ACCESS_KEY"]):
        assert value not in run.log


def test_the_documented_command_builds_runs_and_pulls(image):
    """``bash scripts/image-test.sh``: the tiny PTQ job in the image, published to moto, pulled and verified."""
    done = subprocess.run(["bash", "scripts/image-test.sh"], cwd=ROOT, capture_output=True, text=True, timeout=5400)
    assert done.returncode == 0, done.stderr[-5000:]
    assert re.search(r"image localhost/act-job:cpu-test: \d+ MB, built in \d+ s", done.stderr)
    assert "image-test: ok: published to s3://act-image-test/act/image-test, pulled and verified" in done.stderr
