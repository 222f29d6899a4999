"""The job image run the way the Kubernetes Job runs it, with podman, against moto's S3 on
127.0.0.1. Used by scripts/image-test.sh (``python tests/image_harness.py run``) and by the
image tier (tests/test_image.py).

The container's settings are not written here by hand: the launcher (scripts/launch, in
.venv-light) renders the Job, and ``podman_args`` translates its pod spec — user and group,
read-only root filesystem, dropped capabilities, no privilege escalation, the emptyDir
volumes (/work, /cache, /tmp) and the memory-backed /dev/shm, env, the Secret as an env
file, working directory, CPU and memory limits, args after the image's entrypoint — and
refuses anything it does not know how to honour.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from job.kube import render  # noqa: E402

CACHE = Path(os.environ.get("ACT_IMAGE_CACHE", "/var/tmp/act-image-cache"))
IMAGE = "localhost/act-job:cpu-test"
# The CPU image (docker/Dockerfile.cpu), built by scripts/image-test.sh --cpu.
CPU_IMAGE = "localhost/act-job-cpu:test"
BUCKET = "act-image-test"
LIGHT_PYTHON = ROOT / ".venv-light" / "bin" / "python"
SECRET = "act-job-s3"
# The tiny job: the tiny UIE teacher given as the model (Global.model_dir through
# --model-root, as on the cluster), PTQ on one batch, data from the bucket, on CPU.
TINY_SETTINGS = (
    f"Global.train_data=s3://{BUCKET}/data/train.txt",
    f"Global.dev_data=s3://{BUCKET}/data/dev.txt",
    f"Global.test_data=s3://{BUCKET}/data/test.txt",
    "Global.max_seq_length=64",
    "Job.threads=2",
    "Benchmark.enabled=false",
    "QuantPost.batch_nums=1",
)
# This machine has 2 cores and 23 GB: the launcher's GPU defaults (8 CPUs, 48Gi) cannot be granted.
# CPU Jobs (--device cpu) keep the launcher's measured defaults: they fit here as they are.
MACHINE_FLAGS = ("--cpu", "2", "--memory", "8Gi", "--shm-size", "1Gi")


def podman_env() -> dict[str, str]:
    """Our own storage (vfs) and engine settings (runc, cgroupfs, no default ulimits),
    written by scripts/image-test.sh."""
    return {
        **os.environ,
        "CONTAINERS_CONF": str(CACHE / "conf" / "containers.conf"),
        "CONTAINERS_STORAGE_CONF": str(CACHE / "conf" / "storage.conf"),
    }


def podman(*args: str, timeout: float = 600, check: bool = False) -> subprocess.CompletedProcess:
    done = subprocess.run(["podman", *args], env=podman_env(), capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args[:2])} failed: {done.stderr.strip()[-2000:]}")
    return done


_UNITS = {"Ki": "k", "Mi": "m", "Gi": "g", "Ti": "t"}


def _size(quantity: str) -> str:
    """A Kubernetes binary quantity (8Gi) as podman's size (8g)."""
    match = re.fullmatch(r"(\d+)(Ki|Mi|Gi|Ti)?", quantity)
    if not match:
        raise ValueError(f"cannot translate quantity {quantity!r}")
    return match.group(1) + _UNITS.get(match.group(2) or "", "b")


def podman_args(job: dict, secret_file: Path, volumes: Path) -> list[str]:
    """``podman run`` arguments (after ``run``) for the Job's one container, volumes as
    host folders under ``volumes``."""
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    pod_sc, sc = pod.get("securityContext", {}), container.get("securityContext", {})
    user, group = sc.get("runAsUser", pod_sc.get("runAsUser")), sc.get("runAsGroup", pod_sc.get("runAsGroup"))
    if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) and not user:
        raise ValueError("runAsNonRoot without a non-zero runAsUser")
    # Kubernetes ignores an image's HEALTHCHECK; podman would try to set up a systemd timer.
    args = ["--pull", "never", "--no-healthcheck", "--network", "host", "--user", f"{user}:{group}"]
    if "fsGroup" in pod_sc:
        args += ["--group-add", str(pod_sc["fsGroup"])]
    if sc.get("readOnlyRootFilesystem"):
        # Nothing writable but the volumes: podman would add tmpfs on /tmp, /var/tmp and /run.
        args += ["--read-only", "--read-only-tmpfs=false"]
    if sc.get("capabilities", {}).get("drop") == ["ALL"] and not sc["capabilities"].get("add"):
        args += ["--cap-drop", "all"]
    if sc.get("allowPrivilegeEscalation") is False:
        args += ["--security-opt", "no-new-privileges"]
    if sc.get("privileged"):
        raise ValueError("privileged containers are not translated")
    known_volumes = {v["name"]: v for v in pod["volumes"]}
    for mount in container["volumeMounts"]:
        volume = known_volumes[mount["name"]]
        if set(volume) - {"name", "emptyDir"}:
            raise ValueError(f"volume {volume['name']}: only emptyDir volumes are translated")
        empty = volume["emptyDir"]
        if empty.get("medium") == "Memory":
            if mount["mountPath"] != "/dev/shm":
                raise ValueError("memory emptyDirs are translated for /dev/shm only")
            args += ["--shm-size", _size(empty.get("sizeLimit", "64Mi"))]
            continue
        # An emptyDir: a fresh folder, writable by all (as the kubelet makes it), owned by fsGroup.
        host = volumes / volume["name"]
        host.mkdir(parents=True)
        host.chmod(0o777)
        os.chown(host, user, pod_sc.get("fsGroup", group))
        args += ["--mount", f"type=bind,src={host},dst={mount['mountPath']}"]
    for item in container.get("env", []):
        args += ["--env", f"{item['name']}={item['value']}"]
    for source in container.get("envFrom", []):
        if set(source) != {"secretRef"}:
            raise ValueError("only envFrom secretRef is translated")
        args += ["--env-file", str(secret_file)]
    if "workingDir" in container:
        args += ["--workdir", container["workingDir"]]
    limits = container.get("resources", {}).get("limits", {})
    if "cpu" in limits:
        args += ["--cpus", limits["cpu"]]
    if "memory" in limits:
        args += ["--memory", _size(limits["memory"])]
    if "command" in container:
        raise ValueError("the Job is expected to use the image's entrypoint")
    return [*args, container["image"], *container.get("args", [])]


def render_job(*flags: str) -> dict:
    """One Job, rendered by the real launcher."""
    done = subprocess.run(
        [str(LIGHT_PYTHON), str(ROOT / "scripts" / "launch"), *flags], capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise RuntimeError(f"scripts/launch failed: {done.stderr.strip()}")
    (job,) = [d for d in yaml.safe_load_all(done.stdout) if d]
    return job


def tiny_inputs() -> Path:
    """The tiny UIE teacher and a slice of the benchmark (tests/jobrun.py), made once and
    cached by the files that decide them."""
    inputs = [ROOT / "tests" / "jobrun.py", ROOT / "tests" / "fixtures" / "configs" / "uie_tiny.yaml"]
    inputs += [
        ROOT / "job" / name
        for name in ("data/embedded.py", "data/uie.py", "model/build.py", "model/train.py", "model/stage.py")
    ]
    key = hashlib.sha256(b"".join(p.read_bytes() for p in inputs)).hexdigest()[:12]
    folder = CACHE / f"tiny-{key}"
    if not (folder / "ready").exists():
        from jobrun import make_tiny

        for old in CACHE.glob("tiny-*"):
            shutil.rmtree(old, ignore_errors=True)
        made = make_tiny(folder)
        model = next((made["root"] / "cache" / "teachers").glob("uie-tiny-*[!p]"))
        shutil.copytree(model, folder / "model")
        (folder / "ready").write_text("")
    return folder


@dataclass
class Run:
    returncode: int
    log: str
    seconds: float
    written: list[str]  # paths outside the volumes that the container changed (podman diff)


class Stage:
    """moto's S3 server on 127.0.0.1 with the tiny inputs published, and a Secret stand-in."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.secret = {
            "AWS_ACCESS_KEY_ID": "AKIA" + secrets.token_hex(8).upper(),
            "AWS_SECRET_ACCESS_KEY": secrets.token_urlsafe(30),
            "AWS_REGION": "us-east-1",
        }

    def __enter__(self) -> Stage:
        import logging

        import boto3
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.secret["AWS_ENDPOINT_URL_S3"] = f"http://{host}:{port}"
        self.secret_file = self.workdir / "secret.env"
        self.secret_file.write_text("".join(f"{k}={v}\n" for k, v in self.secret.items()))
        self.secret_file.chmod(0o600)
        s3 = boto3.session.Session().client(
            "s3",
            endpoint_url=self.secret["AWS_ENDPOINT_URL_S3"],
            region_name="us-east-1",
            aws_access_key_id=self.secret["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.secret["AWS_SECRET_ACCESS_KEY"],
        )
        s3.create_bucket(Bucket=BUCKET)
        tiny = tiny_inputs()
        for file in sorted((tiny / "model").rglob("*")):
            # Hidden files are the job's own cache markers (.cache-key), not part of the model.
            if file.is_file() and not any(part.startswith(".") for part in file.relative_to(tiny).parts):
                s3.upload_file(str(file), BUCKET, f"models/uie/{file.relative_to(tiny / 'model').as_posix()}")
        for split in ("train", "dev", "test"):
            s3.upload_file(str(tiny / "data" / f"{split}.txt"), BUCKET, f"data/{split}.txt")
        return self

    def __exit__(self, *exc) -> None:
        self.server.stop()

    def host_env(self) -> dict[str, str]:
        """The host's environment for scripts/pull: the same store and credentials, nothing else of AWS."""
        clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        return {**clean, **self.secret, "NO_PROXY": "127.0.0.1,localhost"}

    def job(
        self,
        run_id: str,
        *settings: str,
        image: str = IMAGE,
        strategy: str = "ptq",
        edited: tuple[str, ...] = (),
        device: str = "gpu",
    ) -> dict:
        """The tiny job's Job; ``edited``: arguments appended to the container's after rendering,
        as a hand edit of the YAML would (the launcher refuses a config that would fail).
        ``device="cpu"``: the Job exactly as ``scripts/launch --device cpu`` renders it."""
        sets = [flag for item in (*TINY_SETTINGS, *settings) for flag in ("--set", item)]
        machine = MACHINE_FLAGS if device == "gpu" else ("--device", device)
        job = render_job(
            "--image", image, "--output", f"s3://{BUCKET}/act", "--run-id", run_id, "--tasks", "uie",
            "--strategy", strategy, "--model-root", f"s3://{BUCKET}/models", "--secret", SECRET,
            *machine, *sets,
        )  # fmt: skip
        container = job["spec"]["template"]["spec"]["containers"][0]
        if device == "gpu":
            # The launcher renders GPU Jobs (Job.device=gpu, reserved in --set); this is the
            # docker/Dockerfile image on a machine without a GPU, so that one argument is swapped.
            assert "Job.device=gpu" in container["args"], container["args"]
            container["args"] = ["Job.device=cpu" if a == "Job.device=gpu" else a for a in container["args"]]
        container["args"] += list(edited)
        return job

    def run(self, job: dict, name: str) -> Run:
        """Run the Job's container to its end; report what it printed and changed outside its volumes."""
        volumes = self.workdir / name
        podman("rm", "--force", name)
        args = podman_args(job, self.secret_file, volumes)
        started = time.perf_counter()
        done = subprocess.run(
            ["podman", "run", "--name", name, *args],
            env=podman_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=3600,
        )
        seconds = time.perf_counter() - started
        diff = podman("diff", name, check=True).stdout.split("\n")
        podman("rm", "--force", name)
        return Run(done.returncode, done.stdout, seconds, [line for line in diff if line.strip()])


def pull(stage: Stage, run_id: str, dest: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LIGHT_PYTHON), str(ROOT / "scripts" / "pull"), "get", f"s3://{BUCKET}/act", "--run", run_id,
         "--dest", str(dest), "--no-progress"],
        env=stage.host_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def _openvino_rows(results: Path) -> list[str]:
    """The CPU image has the OpenVINO extra: the pulled results.json must hold the compressed
    model's OpenVINO rows measured, its linear layers in INT8 (job.serve). Problems, if any."""
    from job.results import TaskResult

    result = TaskResult.from_dict(json.loads(results.read_text(encoding="utf-8")))
    rows = [r for r in result.runtimes if r.model == "compressed" and r.runtime == "openvino"]
    for row in rows:
        print(
            f"image-test: openvino ({row.setting}): {row.status}, ran {row.precision or '-'}, "
            f"{row.int8_ops} INT8 nodes, {row.timing.latency_ms if row.timing else '-'} ms {row.reason}",
            file=sys.stderr,
        )
    if len(rows) != 2 or any(r.status != "measured" or not r.precision.startswith("int8") for r in rows):
        return ["the CPU image's run did not measure the published folder in OpenVINO in INT8 at both settings"]
    return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="run the tiny job in the image as the Job runs it, then pull it")
    parser.add_argument("command", choices=["run"])
    parser.add_argument("--image", default=IMAGE)
    parser.add_argument(
        "--device", choices=["gpu", "cpu"], default="gpu", help="cpu: the CPU image's Job (scripts/launch --device cpu)"
    )
    args = parser.parse_args(argv)
    for old in (CACHE / "runs").glob("*"):  # earlier runs' volumes and pulls: kept until the next run
        shutil.rmtree(old, ignore_errors=True)
    work = CACHE / "runs" / time.strftime("%Y%m%d-%H%M%S")
    work.mkdir(parents=True)
    print("image-test: preparing the tiny inputs (cached after the first run)", file=sys.stderr)
    with Stage(work) as stage:
        job = stage.job("image-test", "Job.gate_tolerance=100", image=args.image, device=args.device)
        container = job["spec"]["template"]["spec"]["containers"][0]
        limits = container["resources"]["limits"]
        device = next(a for a in container["args"] if a.startswith("Job.device="))
        print(
            f"image-test: running Job {job['metadata']['name']} (cpu {limits['cpu']}, memory {limits['memory']}, "
            f"{device}) in podman, read-only, as user {render.RUN_AS_ID}",
            file=sys.stderr,
        )
        run = stage.run(job, "act-image-test")
        print("----- container output (what kubectl logs would show) -----\n" + run.log.rstrip(), file=sys.stderr)
        print("-----", file=sys.stderr)
        leaked = [v for k, v in stage.secret.items() if "KEY" in k and v in run.log]
        problems = []
        if run.returncode != 0:
            problems.append(f"the job exited with {run.returncode}")
        if run.written:
            problems.append(f"the container wrote outside its volumes: {run.written}")
        if leaked:
            problems.append("a credential appeared in the container's output")
        pulled = pull(stage, "image-test", work / "pulled")
        print(
            pulled.stdout.rstrip() + ("\n" + pulled.stderr.rstrip() if pulled.stderr.strip() else ""), file=sys.stderr
        )
        task = work / "pulled" / "image-test" / "uie" / "ptq"
        if pulled.returncode != 0 or not (task / "_SUCCESS").is_file():
            problems.append(f"scripts/pull get exited with {pulled.returncode}")
        elif args.device == "cpu":
            problems += _openvino_rows(task / "results.json")
    print(
        f"image-test: job run {run.seconds:.0f} s in the container; log {len(run.log.splitlines())} lines",
        file=sys.stderr,
    )
    for problem in problems:
        print(f"image-test: FAILED: {problem}", file=sys.stderr)
    if not problems:
        print(
            f"image-test: ok: published to s3://{BUCKET}/act/image-test, pulled and verified into {task}",
            file=sys.stderr,
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
