"""The launcher refuses what the job would refuse, before a GPU is scheduled.

``--model-root``, ``--output`` and every ``--set`` are checked with the job's own config
parser (``job.config.load_config`` on each task's config, with exactly the arguments the
Job's container gets) and storage's URI parser; a bad one is one line and exit 2. URL
credentials (a kubeconfig server's ``user:pass@``) appear in no output.
"""

from __future__ import annotations

import os
import socket
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
LAUNCH = ROOT / "scripts" / "launch"
IMAGE = "registry.example.com/ml/act-job:0.1.0"
BASE = ["--image", IMAGE, "--run-id", "exp1"]
OUTPUT = ["--output", "s3://ml-results/act"]


def launch(python: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KUBECONFIG", "ACT_JOB_"))}
    return subprocess.run(
        [str(python), str(LAUNCH), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


BAD_FLAGS = {
    "model-root-ftp": ["--model-root", "ftp://host/models", *OUTPUT],
    "model-root-gs": ["--model-root", "gs://bucket/models", *OUTPUT],
    "model-root-relative": ["--model-root", "models/ernie", *OUTPUT],
    "model-root-absolute-local": ["--model-root", "/models/ernie", *OUTPUT],
    "model-root-no-bucket": ["--model-root", "s3://", *OUTPUT],
    "model-root-bad-bucket": ["--model-root", "s3://Bad_Bucket/x", *OUTPUT],
    "output-bad-bucket": ["--output", "s3://Bad_Bucket/x"],
    "output-bucket-too-short": ["--output", "s3://ab/x"],
    "set-model-dir-gs": ["--set", "Global.model_dir=gs://bucket/m", *OUTPUT],
    "set-epochs-not-a-number": ["--set", "TrainConfig.epochs=abc", *OUTPUT],
    "set-epochs-negative": ["--set", "TrainConfig.epochs=-1", *OUTPUT],
    "set-gate-out-of-range": ["--set", "Job.gate_tolerance=500", *OUTPUT],
    "set-nested-under-a-value": ["--set", "TrainConfig.epochs.x=1", *OUTPUT],
    "set-nested-under-a-bool": ["--set", "Benchmark.enabled.x=1", *OUTPUT],
    "set-bad-choice": ["--set", "Distillation.loss=cosine", *OUTPUT],
    "set-strategies-reserved": ["--set", "Job.strategies=[ptq,qat_dis]", *OUTPUT],
    "set-endpoint-with-password": ["--set", "Storage.endpoint_url=http://minio:hunter2pw@minio.internal:9000", *OUTPUT],
    "model-root-with-password": ["--model-root", "s3://minio:hunter2pw@ml-models/ernie", *OUTPUT],
    "data-root-relative": ["--data-root", "data/clue", *OUTPUT],
    "data-root-absolute-local": ["--data-root", "/data/clue", *OUTPUT],
    "data-root-gs": ["--data-root", "gs://bucket/clue", *OUTPUT],
    "data-root-bad-bucket": ["--data-root", "s3://Bad_Bucket/clue", *OUTPUT],
    "data-root-with-password": ["--data-root", "s3://minio:hunter2pw@ml-data/clue", *OUTPUT],
    "data-root-and-set-dataset": ["--data-root", "s3://ml-data/clue", "--set", "Global.dataset=clue", *OUTPUT],
    "strategies-unknown": ["--strategies", "ptq,magic", *OUTPUT],
    "strategies-twice": ["--strategies", "ptq", "ptq", *OUTPUT],
    "strategies-empty": ["--strategies", ",", *OUTPUT],
    "tasks-empty": ["--tasks", "", *OUTPUT],
    "tasks-only-commas": ["--tasks", ",", *OUTPUT],
    "device-unknown": ["--device", "tpu", *OUTPUT],
    "device-upper-case": ["--device", "CPU", *OUTPUT],
    "device-cpu-with-gpu-product": ["--device", "cpu", "--gpu-product", "Tesla-T4", *OUTPUT],
    "device-cpu-bad-cpu": ["--device", "cpu", "--cpu", "two", *OUTPUT],
    "device-cpu-zero-cpu": ["--device", "cpu", "--cpu", "0", *OUTPUT],
    "device-cpu-bad-memory": ["--device", "cpu", "--memory", "4GB", *OUTPUT],
    "device-cpu-set-device": ["--device", "cpu", "--set", "Job.device=gpu", *OUTPUT],
}


@pytest.mark.parametrize("name", list(BAD_FLAGS))
def test_bad_flag_is_one_line_and_exit_2(name, light_python):
    result = launch(light_python, *BASE, *BAD_FLAGS[name])
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert result.stdout == "", "no Job rendered"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    assert "hunter2pw" not in result.stdout + result.stderr, "a URL password was printed"


def _dead_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_kubeconfig_server_credentials_never_printed(light_python, tmp_path):
    password = "kube-pass-" + uuid.uuid4().hex[:12]
    config = tmp_path / "kubeconfig"
    config.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": f"http://admin:{password}@127.0.0.1:{_dead_port()}"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    runs = [
        launch(light_python, *BASE, *OUTPUT, "--tasks", "afqmc", "--apply", "--kubeconfig", str(config)),
        launch(
            light_python,
            *BASE,
            *OUTPUT,
            "--tasks",
            "afqmc",
            "--watch",
            "--interval",
            "0.05",
            "--kubeconfig",
            str(config),
        ),
    ]
    for result in runs:
        assert result.returncode == 4, result.stderr
        assert "127.0.0.1" in result.stderr, "the message still names the cluster"
        assert password not in result.stdout + result.stderr


def test_cpu_device_takes_the_cpu_image_and_never_the_gpu_one(light_python):
    """--device cpu without --image: $ACT_JOB_CPU_IMAGE; the GPU image ($ACT_JOB_IMAGE) is not a fallback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KUBECONFIG", "ACT_JOB_"))}
    args = [str(light_python), str(LAUNCH), "--device", "cpu", "--run-id", "exp1", "--tasks", "afqmc", *OUTPUT]
    gpu_only = subprocess.run(
        args, cwd=ROOT, env=env | {"ACT_JOB_IMAGE": IMAGE}, capture_output=True, text=True, timeout=120
    )
    assert gpu_only.returncode == 2 and gpu_only.stdout == ""
    assert gpu_only.stderr.strip() == "error: --image is required (or set $ACT_JOB_CPU_IMAGE)"
    cpu_image = IMAGE + "-cpu"
    done = subprocess.run(
        args,
        cwd=ROOT,
        env=env | {"ACT_JOB_IMAGE": IMAGE, "ACT_JOB_CPU_IMAGE": cpu_image},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    (job,) = [d for d in yaml.safe_load_all(done.stdout) if d]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["image"] == cpu_image and "Job.device=cpu" in container["args"]
