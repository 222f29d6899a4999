"""The built job images (tier ``image``: ``bash scripts/test.sh -m image``, as root).

Two images, each test once per image (ids ``cuda`` and ``cpu``): docker/Dockerfile built on a
CPU base by ``bash scripts/image-test.sh --build-only``, and the CPU image docker/Dockerfile.cpu
built by ``bash scripts/image-test.sh --cpu --build-only`` (both cached: seconds when nothing
changed). Each is checked from outside with podman and run as the Kubernetes Job runs it
(tests/image_harness.py; the CPU image's Job as ``scripts/launch --device cpu`` renders it,
with its measured CPU and memory): what it holds, its default command, its history and
environment, the exit codes that come out of ``podman run``, and the documented end-to-end
command itself.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import image_harness as harness
import pytest

from job.errors import ExitCode
from job.kube import render

pytestmark = pytest.mark.image
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Built:
    """An image under test: its name, the image-test.sh flags that make it, the Job's device."""

    name: str
    flags: tuple[str, ...]
    device: str  # how scripts/launch renders its Job: gpu (then swapped to CPU here) or cpu

    def __str__(self) -> str:  # tests pass the image itself to podman
        return self.name


VARIANTS = {"cuda": Built(harness.IMAGE, (), "gpu"), "cpu": Built(harness.CPU_IMAGE, ("--cpu",), "cpu")}


@pytest.fixture(scope="session", params=list(VARIANTS))
def built(request) -> Built:
    variant = VARIANTS[request.param]
    done = subprocess.run(
        ["bash", "scripts/image-test.sh", *variant.flags, "--build-only"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=5400,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return variant


@pytest.fixture(scope="session")
def image(built) -> str:
    return built.name


@pytest.fixture(scope="session")
def cpu_image() -> str:
    command = ["bash", "scripts/image-test.sh", "--cpu", "--build-only"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=5400)
    assert done.returncode == 0, done.stderr[-3000:]
    return harness.CPU_IMAGE


@pytest.fixture(scope="session")
def stage(built, tmp_path_factory):
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


def test_no_credential_in_history_or_environment(built):
    image = built.name
    history = harness.podman("history", "--no-trunc", "--format", "{{.CreatedBy}}", image, check=True).stdout
    # The history is there to be read. The CPU image ships its final stage only: the user is
    # added there, the install happened in the build stage, whose commands are not shipped.
    if built.device == "gpu":
        assert "pip install" in history
    else:
        assert "useradd" in history and "pip install" not in history
    env = _inspect(image)["Config"]["Env"]
    found = [line for line in [*history.splitlines(), *env] if _CREDENTIAL.search(line)]
    assert not found, found
    assert not any(name.startswith("AWS_") for name in (item.partition("=")[0] for item in env))


def test_bad_config_exits_2_and_writes_nothing_outside_the_volumes(stage, built):
    job = stage.job("bad-config", image=built.name, device=built.device, edited=("TrainConfig.epochs=ten",))
    run = stage.run(job, "act-image-bad-config")
    assert run.returncode == int(ExitCode.INPUT), run.log[-3000:]
    errors = [line for line in run.log.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "TrainConfig.epochs" in errors[0] and "Traceback" not in run.log, run.log[-3000:]
    assert run.written == []


def test_failed_gate_exits_3(stage, built):
    job = stage.job("gated", "Job.gate_tolerance=-100", image=built.name, device=built.device)
    run = stage.run(job, "act-image-gated")
    assert run.returncode == int(ExitCode.GATE), run.log[-3000:]
    assert run.written == []
    # The log stays readable: PaddleSlim's bars redraw at most every 30 s (job/logs.py).
    assert run.log.count("Adding quant op") <= 4 and run.log.count("Run batch") <= 4, run.log[-3000:]
    for value in (stage.secret["AWS_ACCESS_KEY_ID"], stage.secret["AWS_SECRET_ACCESS_KEY"]):
        assert value not in run.log


def test_the_documented_command_builds_runs_and_pulls(built):
    """``bash scripts/image-test.sh [--cpu]``: the tiny PTQ job in the image, published to moto, pulled and verified."""
    done = subprocess.run(
        ["bash", "scripts/image-test.sh", *built.flags], cwd=ROOT, capture_output=True, text=True, timeout=5400
    )
    assert done.returncode == 0, done.stderr[-5000:]
    assert re.search(rf"image {re.escape(built.name)}: \d+ MB, built in \d+ s", done.stderr)
    assert "image-test: ok: published to s3://act-image-test/act/image-test, pulled and verified" in done.stderr
    if built.device == "cpu":
        # The CPU image's Job as scripts/launch --device cpu renders it: its measured CPU and memory.
        resources = f"cpu {render.CPU_NODE_CPU}, memory {render.CPU_NODE_MEMORY}, Job.device=cpu"
        assert f"running Job act-uie-ptq-image-test ({resources})" in done.stderr, done.stderr[-3000:]


# --------------------------------------------------------------------------------------
# The CPU image only
# --------------------------------------------------------------------------------------


def test_cpu_image_serves_paddle_cpu_and_openvino(cpu_image):
    """As user 10001 on a read-only root: Paddle's CPU build and OpenVINO (the job's extra) import
    and see the CPU; nncf (the benchmark's peer) and the C++ compiler of the build stage are not in
    the image (the stand-in base keeps Debian's gcc, which python:3.11-slim does not have)."""
    script = (
        "import importlib.util as u, openvino as ov, paddle; "
        "print(paddle.__version__, paddle.is_compiled_with_cuda(), ov.__version__.split('-')[0], "
        "'CPU' in ov.Core().available_devices, u.find_spec('nncf') is None)"
    )
    done = harness.podman(
        "run", "--rm", "--pull", "never", "--no-healthcheck", "--read-only", "--entrypoint", "python",
        cpu_image, "-c", script,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-5:] == ["2.6.2", "False", "2026.4.1", "True", "True"], done.stdout
    no_compiler = harness.podman(
        "run", "--rm", "--pull", "never", "--no-healthcheck", "--entrypoint", "bash", cpu_image, "-c",
        "command -v g++ c++ || echo none",
    )  # fmt: skip
    assert no_compiler.stdout.strip() == "none", no_compiler.stdout
