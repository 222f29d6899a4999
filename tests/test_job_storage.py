"""The job against object storage: inputs read from and results published to a real S3
HTTP server on 127.0.0.1 (moto), through proxies that fail the way stores do."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import boto3
from jobrun import ROOT, TINY, run_job

PLANTED_SECRET = "planted-secret-9f8e7d6c5b4a"


def s3_env(endpoint: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY=PLANTED_SECRET,
        AWS_ENDPOINT_URL=endpoint,
        AWS_REGION="us-east-1",
        AWS_MAX_ATTEMPTS="2",
    )
    return env


def upload_data(endpoint: str, bucket: str, data: Path) -> dict[str, str]:
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key=PLANTED_SECRET,
    )
    uris = {}
    for split in ("train", "dev", "test"):
        client.upload_file(str(data / f"{split}.txt"), bucket, f"data/{split}.txt")
        uris[split] = f"s3://{bucket}/data/{split}.txt"
    return uris


def job_args(tiny: dict, uris: dict[str, str], output: str, *extra: str) -> list[str]:
    return [
        "run",
        "--config",
        str(TINY),
        *tiny["overrides"],
        f"Global.train_data={uris['train']}",
        f"Global.dev_data={uris['dev']}",
        f"Global.test_data={uris['test']}",
        "Job.strategy=ptq",
        "QuantPost.batch_nums=1",
        f"Job.output={output}",
        *extra,
    ]


def test_inputs_from_s3_results_to_s3_and_pulled_back(tiny, s3_server, bucket, tmp_path):
    uris = upload_data(s3_server, bucket, tiny["data"])
    env = s3_env(s3_server)
    done = run_job(
        *job_args(tiny, uris, f"s3://{bucket}/runs", "Job.run_id=s3run", f"Job.cache_dir={tmp_path / 'cache'}"), env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"s3://{bucket}/runs/s3run/uie/ptq" in done.stdout
    # Inputs were pulled into the cache, verified; the teacher was trained from them.
    assert (tmp_path / "cache" / "inputs").is_dir()

    light = ROOT / ".venv-light" / "bin" / "python"
    pulled = subprocess.run(
        [
            str(light),
            "scripts/pull",
            "get",
            f"s3://{bucket}/runs",
            "--run",
            "s3run",
            "--dest",
            str(tmp_path / "pulled"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert pulled.returncode == 0, pulled.stderr
    folder = tmp_path / "pulled" / "s3run" / "uie" / "ptq"
    results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    assert results["status"] == "complete" and (folder / "inference.pdiparams").is_file()
    assert "uie" in pulled.stdout and "ptq" in pulled.stdout
    for text in (done.stdout, done.stderr, pulled.stdout, pulled.stderr, json.dumps(results)):
        assert PLANTED_SECRET not in text


def test_storage_outage_mid_upload_fails_with_the_storage_code_then_the_rerun_completes(
    tiny, s3_server, bucket, tmp_path, dying_proxy, s3_client
):
    uris = upload_data(s3_server, bucket, tiny["data"])
    cache = tmp_path / "cache"
    # Inputs reach the cache through the live server first; the outage hits the upload.
    warm = run_job(*job_args(tiny, uris, str(tmp_path / "local-out"), f"Job.cache_dir={cache}"), env=s3_env(s3_server))
    assert warm.returncode == 0, warm.stderr[-3000:]

    proxy = dying_proxy(die_after=200_000)
    args = job_args(tiny, uris, f"s3://{bucket}/runs", "Job.run_id=outage", f"Job.cache_dir={cache}")
    failed = run_job(*args, env=s3_env(proxy.url))
    assert proxy.died.is_set()
    assert failed.returncode == 4, failed.stderr[-3000:]
    last = failed.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and f"s3://{bucket}/runs/outage/uie/ptq" in last
    assert "Traceback" not in failed.stderr
    listed = s3_client.list_objects_v2(Bucket=bucket, Prefix="runs/outage/").get("Contents", [])
    assert "runs/outage/uie/ptq/_SUCCESS" not in {o["Key"] for o in listed}

    proxy.reopen()
    again = run_job(*args, env=s3_env(proxy.url))
    assert again.returncode == 0, again.stderr[-3000:]
    listed = s3_client.list_objects_v2(Bucket=bucket, Prefix="runs/outage/").get("Contents", [])
    assert "runs/outage/uie/ptq/_SUCCESS" in {o["Key"] for o in listed}
    assert s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_slowdown_answers_are_retried_and_the_run_completes(tiny, s3_server, bucket, tmp_path, fault_proxy):
    uris = upload_data(s3_server, bucket, tiny["data"])
    proxy = fault_proxy(slowdowns=3)
    env = s3_env(proxy.url)
    env["AWS_MAX_ATTEMPTS"] = "5"
    done = run_job(
        *job_args(tiny, uris, f"s3://{bucket}/runs", "Job.run_id=slow", f"Job.cache_dir={tmp_path / 'cache'}"), env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert proxy.answered_503 == 3
    assert "complete" in done.stdout


def test_a_changed_input_under_the_same_run_id_is_not_skipped(tiny, s3_server, bucket, tmp_path, s3_client):
    """The completion fingerprint covers the inputs' content: overwriting the training data
    at the same URI makes the finished task "config_changed" (exit 2), not "already complete"."""
    uris = upload_data(s3_server, bucket, tiny["data"])
    env = s3_env(s3_server)
    args = job_args(tiny, uris, f"s3://{bucket}/runs", "Job.run_id=inputs", f"Job.cache_dir={tmp_path / 'cache'}")
    done = run_job(*args, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    again = run_job(*args, env=env)
    assert again.returncode == 0 and "already complete" in again.stdout, again.stderr[-3000:]

    lines = (tiny["data"] / "train.txt").read_bytes().splitlines(keepends=True)
    s3_client.put_object(Bucket=bucket, Key="data/train.txt", Body=b"".join(lines[:-1]))  # one record fewer
    changed = run_job(*args, env=env)
    assert "already complete" not in changed.stdout
    assert changed.returncode == 2, changed.stderr[-3000:]
    assert "different config or different inputs" in changed.stderr.strip().splitlines()[-1]
