"""Verification by content against moto's S3 server on 127.0.0.1: uploads checked with
the store's SHA-256 checksum, inputs fetched without a manifest checked against the
store's own checksum (or refused), and URL credentials absent from every ``-v`` log and
traceback of the entry points."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import signal
import socket
import subprocess
import sys
import time
import uuid

import boto3
import pytest
from botocore.config import Config
from jobrun import ROOT

from job.config import StorageConfig
from job.errors import InputError, StorageError
from job.storage import Storage, fetch, publish
from job.storage.download import LOCK_NAME

MB = 1024 * 1024


def make_storage(endpoint: str) -> Storage:
    return Storage(StorageConfig(endpoint_url=endpoint, multipart_threshold_mb=5, multipart_chunksize_mb=5))


def b64_sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def test_uploads_are_checked_with_the_stores_sha256(s3_server, s3_client, bucket, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    files = {"small.txt": b"hello", "big.bin": os.urandom(12 * MB)}
    for name, data in files.items():
        (src / name).write_bytes(data)
    publish(
        make_storage(s3_server),
        src,
        f"s3://{bucket}/out/r/uie/ptq",
        fingerprint="f" * 64,
        status="complete",
        progress=False,
    )

    small = s3_client.head_object(Bucket=bucket, Key="out/r/uie/ptq/small.txt", ChecksumMode="ENABLED")
    assert small.get("ChecksumSHA256") == b64_sha256(files["small.txt"])
    big = s3_client.head_object(Bucket=bucket, Key="out/r/uie/ptq/big.bin", ChecksumMode="ENABLED")
    parts = [files["big.bin"][i : i + 5 * MB] for i in range(0, 12 * MB, 5 * MB)]
    composite = base64.b64encode(hashlib.sha256(b"".join(hashlib.sha256(p).digest() for p in parts)).digest()).decode()
    assert (big.get("ChecksumSHA256") or "").split("-")[0] == composite, (
        "multipart: S3's composite of the parts' SHA-256s"
    )


def plain_client(endpoint: str):
    """A client that stores no checksum (as older tools and some stores do)."""
    config = Config(request_checksum_calculation="when_required", response_checksum_validation="when_required")
    return boto3.session.Session().client("s3", endpoint_url=endpoint, region_name="us-east-1", config=config)


def test_fetch_without_a_manifest_checks_the_stores_checksum(s3_server, s3_client, bucket, tmp_path, fault_proxy):
    """Damaged on the way, same size: boto3 has no checksum to validate, the ETag (MD5 of a
    single PUT) or the store's SHA-256/CRC32 still tells."""
    data = "一行数据\n".encode() * 100
    plain = plain_client(s3_server)
    plain.put_object(Bucket=bucket, Key="data/train.txt", Body=data)
    plain.put_object(Bucket=bucket, Key="model/a.bin", Body=data)
    s3_client.put_object(Bucket=bucket, Key="sha/dev.txt", Body=data, ChecksumAlgorithm="SHA256")
    damaged = fault_proxy(
        corrupt=lambda method, path: method == "GET" and "list-type" not in path and (".txt" in path or ".bin" in path)
    )
    storage = Storage(StorageConfig(endpoint_url=damaged.url, checksum_when_required=True))
    for uri in (f"s3://{bucket}/data/train.txt", f"s3://{bucket}/model", f"s3://{bucket}/sha/dev.txt"):
        with pytest.raises(StorageError, match="checksum"):
            fetch(storage, uri, tmp_path / "cache")
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir()), "nothing damaged kept"
    # undamaged, it is fetched
    assert fetch(make_storage(s3_server), f"s3://{bucket}/data/train.txt", tmp_path / "cache").read_bytes() == data


def test_fetch_refuses_an_object_nothing_verifies(s3_server, bucket, tmp_path):
    """A multipart object stored without checksums (its ETag is no MD5) and no manifest beside it."""
    plain = plain_client(s3_server)
    from boto3.s3.transfer import TransferConfig

    plain.upload_fileobj(
        io.BytesIO(os.urandom(6 * MB)),
        bucket,
        "models/m/inference.pdiparams",
        Config=TransferConfig(multipart_threshold=5 * MB, multipart_chunksize=5 * MB),
    )
    assert "-" in plain.head_object(Bucket=bucket, Key="models/m/inference.pdiparams")["ETag"]
    with pytest.raises(InputError, match="cannot verify"):
        fetch(make_storage(s3_server), f"s3://{bucket}/models/m", tmp_path / "cache")


def _dead_endpoint(password: str) -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://minio-user:{password}@127.0.0.1:{probe.getsockname()[1]}"


def test_pull_verbose_never_shows_an_endpoint_password(s3_server, light_python):
    password = "pw-" + uuid.uuid4().hex
    proc = subprocess.run(
        [
            str(light_python),
            str(ROOT / "scripts" / "pull"),
            "list",
            "s3://some-bucket/act",
            "-v",
            "--endpoint-url",
            _dead_endpoint(password),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "AWS_MAX_ATTEMPTS": "1"},
    )
    assert proc.returncode == 4, proc.stderr[-2000:]
    assert "Traceback" in proc.stderr, "-v logs the traceback"
    assert password not in proc.stdout + proc.stderr


def test_job_run_verbose_never_shows_an_endpoint_password(s3_server, tmp_path):
    password = "pw-" + uuid.uuid4().hex
    env = {**os.environ, "AWS_MAX_ATTEMPTS": "1", "AWS_ENDPOINT_URL": _dead_endpoint(password), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "job",
            "run",
            "-v",
            "--config",
            str(ROOT / "tests" / "fixtures" / "configs" / "uie_tiny.yaml"),
            "Job.output=s3://some-bucket/act",
            f"Job.cache_dir={tmp_path / 'cache'}",
            "Job.strategy=ptq",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=ROOT,
    )
    assert proc.returncode == 4, proc.stderr[-3000:]
    assert "Traceback" in proc.stderr, "-v logs the traceback"
    assert password not in proc.stdout + proc.stderr


def test_interrupted_pull_leaves_nothing(s3_server, s3_client, bucket, tmp_path, light_python, dying_proxy):
    """SIGTERM during a download: the task folder is not created and no temp folder remains."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "inference.pdiparams").write_bytes(os.urandom(40 * MB))
    publish(
        make_storage(s3_server),
        src,
        f"s3://{bucket}/act/r1/uie/ptq",
        fingerprint="f" * 64,
        status="complete",
        progress=False,
    )
    dest = tmp_path / "pulled"
    proc = subprocess.Popen(
        [
            str(light_python),
            str(ROOT / "scripts" / "pull"),
            "get",
            f"s3://{bucket}/act",
            "--run",
            "r1",
            "--dest",
            str(dest),
            "--no-progress",
            "--endpoint-url",
            s3_server,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(p.is_file() and p.stat().st_size > 0 for p in dest.rglob("*")):
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode != 0, (out, err)
    left = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*")) if dest.exists() else []
    # The destination's lock file stays (removing it would race); no temp folder or task does.
    assert not [p for p in left if "ptq" in p or (p.split("/")[-1].startswith(".") and p != LOCK_NAME)], left
