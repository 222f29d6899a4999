"""job.storage against a real S3 HTTP server (moto on 127.0.0.1) and local folders.

Faults are injected on the wire, never by patching boto3: ``DyingProxy`` (TCP) cuts
every connection after N request bytes and refuses new ones until reopened;
``FaultProxy`` (HTTP) answers the first K requests with 503 SlowDown, or denies some.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from s3_faults import FaultProxy

from job.config import StorageConfig
from job.errors import ExitCode, InputError, StorageError
from job.storage import (
    MANIFEST,
    MARKER,
    NotFoundError,
    PublishResult,
    Storage,
    TaskStatus,
    completion_state,
    fetch,
    list_runs,
    publish,
    pull_task,
    task_prefix,
)

FP = "a" * 64
OTHER_FP = "b" * 64
MB = 1024 * 1024


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------


def make_storage(endpoint: str, **config) -> Storage:
    config.setdefault("multipart_threshold_mb", 5)
    config.setdefault("multipart_chunksize_mb", 5)
    return Storage(StorageConfig(endpoint_url=endpoint, **config))


def make_task_dir(root: Path, big_bytes: int = 0, seed: str = "x") -> Path:
    """A task folder shaped like the pipeline's: model, tokenizer files, results.json."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "inference.pdmodel").write_bytes(hashlib.sha256(seed.encode()).digest() * 64)
    (root / "inference.pdiparams").write_bytes(os.urandom(big_bytes) if big_bytes else seed.encode() * 1000)
    (root / "config.json").write_text(json.dumps({"hidden_size": 312, "seed": seed}))
    (root / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n我\n们\n" + seed + "\n", encoding="utf-8")
    (root / "tokenizer_config.json").write_text('{"do_lower_case": true}')
    (root / "special_tokens_map.json").write_text('{"unk_token": "[UNK]"}')
    (root / "results.json").write_text(
        json.dumps({"schema": 1, "task": "uie", "strategy": "ptq", "status": "complete"})
    )
    (root / "extra").mkdir(exist_ok=True)
    (root / "extra" / "notes.txt").write_text("nested file " + seed)
    return root


def tree_hashes(root: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.relative_to(root).as_posix() not in skip
    }


def snapshot(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


def keys(s3_client, bucket: str, prefix: str = "") -> list[str]:
    pages = s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def pending_uploads(s3_client, bucket: str) -> list[str]:
    return [u["Key"] for u in s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


def assert_one_line(exc: Exception, *names: str) -> None:
    message = str(exc)
    assert "\n" not in message and message.strip() == message
    for name in names:
        assert name in message, f"{name!r} not in {message!r}"


# --------------------------------------------------------------------------------------
# fault injection on the wire (tests/s3_faults.py)
# --------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------
# round trip, states, tampering
# --------------------------------------------------------------------------------------


def test_round_trip_with_multipart(s3_server, bucket, s3_client, tmp_path):
    storage = make_storage(s3_server)
    src = make_task_dir(tmp_path / "src", big_bytes=12 * MB)
    prefix = task_prefix(f"s3://{bucket}/out", "run1", "uie", "ptq")
    assert prefix == f"s3://{bucket}/out/run1/uie/ptq"

    result = publish(storage, src, prefix, fingerprint=FP, status="complete", progress=False)

    assert isinstance(result, PublishResult)
    assert (result.files, result.bytes, result.marker_written) == (
        8,
        sum(p.stat().st_size for p in src.rglob("*") if p.is_file()),
        True,
    )
    assert prefix in result.summary() and "\n" not in result.summary()
    head = s3_client.head_object(Bucket=bucket, Key="out/run1/uie/ptq/inference.pdiparams")
    assert head["ETag"].strip('"').endswith("-3"), "12 MB in 5 MB parts: a 3-part multipart upload"
    manifest = json.loads(storage.get_bytes(f"{prefix}/{MANIFEST}"))
    assert manifest["schema"] == 1 and manifest["fingerprint"] == FP and manifest["status"] == "complete"
    assert set(manifest["files"]) == set(tree_hashes(src))
    assert {k: v["sha256"] for k, v in manifest["files"].items()} == tree_hashes(src)
    assert storage.list(prefix) == sorted([*tree_hashes(src), MANIFEST, MARKER])
    assert storage.exists(f"{prefix}/{MARKER}") and not storage.exists(f"{prefix}/nope")
    assert storage.sha256(f"{prefix}/inference.pdiparams") == tree_hashes(src)["inference.pdiparams"]

    assert completion_state(storage, prefix, FP) == "complete"

    dest = tmp_path / "dest"
    pulled = pull_task(storage, prefix, dest, progress=False)
    assert (pulled.files, pulled.bytes, pulled.dest) == (8, result.bytes, dest)
    assert tree_hashes(dest, skip=(MANIFEST, MARKER)) == tree_hashes(src)
    assert (dest / MARKER).exists() and json.loads((dest / MANIFEST).read_text()) == manifest
    assert not [p for p in dest.iterdir() if p.name.startswith(".pull-")], "temp folder removed"
    # the pulled folder is itself a complete task (the pipeline can use it as is)
    assert completion_state(Storage(), str(dest), FP) == "complete"


def test_completion_states(s3_server, bucket, tmp_path):
    storage = make_storage(s3_server)
    prefix = f"s3://{bucket}/runs/r/tnews/ptq"
    assert completion_state(storage, prefix, FP) == "absent"

    storage.put_bytes(b"half", f"{prefix}/inference.pdiparams")
    assert completion_state(storage, prefix, FP) == "incomplete"

    src = make_task_dir(tmp_path / "src")
    publish(storage, src, prefix, fingerprint=FP, status="complete", progress=False)
    assert completion_state(storage, prefix, FP) == "complete"
    assert completion_state(storage, prefix, OTHER_FP) == "config_changed"

    # a marker without a valid manifest is not complete
    storage.put_bytes(b"{not json", f"{prefix}/{MANIFEST}")
    assert completion_state(storage, prefix, FP) == "incomplete"

    # a gated rerun (same prefix, --force) removes the old marker: never an old marker over new files
    result = publish(storage, src, prefix, fingerprint=FP, status="gated", progress=False)
    assert result.marker_written is False and "no _SUCCESS" in result.summary()
    assert not storage.exists(f"{prefix}/{MARKER}")
    assert json.loads(storage.get_bytes(f"{prefix}/{MANIFEST}"))["status"] == "gated"
    assert completion_state(storage, prefix, FP) == "incomplete"

    # a file listed in the manifest has disappeared
    publish(storage, src, prefix, fingerprint=FP, status="complete", progress=False)
    storage.delete(f"{prefix}/vocab.txt")
    assert completion_state(storage, prefix, FP) == "incomplete"


@pytest.mark.parametrize("same_size", [True, False], ids=["same-size", "other-size"])
def test_tampered_object_is_caught(s3_server, bucket, s3_client, tmp_path, same_size):
    storage = make_storage(s3_server)
    src = make_task_dir(tmp_path / "src")
    prefix = f"s3://{bucket}/out/r/uie/qat_dis"
    publish(storage, src, prefix, fingerprint=FP, status="complete", progress=False)
    original = (src / "vocab.txt").read_bytes()
    tampered = bytes(reversed(original)) if same_size else original + b"evil\n"
    assert tampered != original
    s3_client.put_object(Bucket=bucket, Key="out/r/uie/qat_dis/vocab.txt", Body=tampered)

    assert completion_state(storage, prefix, FP) == "incomplete"
    dest = tmp_path / "dest"
    with pytest.raises(StorageError) as info:
        pull_task(storage, prefix, dest, progress=False)
    assert_one_line(info.value, "vocab.txt")
    assert info.value.exit_code == ExitCode.STORAGE
    assert not dest.exists() or snapshot(dest) == [], "nothing of a failed pull is left in dest"


def test_pull_requires_marker_and_manifest(s3_server, bucket, tmp_path):
    storage = make_storage(s3_server)
    prefix = f"s3://{bucket}/out/r/uie/ptq"
    with pytest.raises(InputError, match="nothing there"):
        pull_task(storage, prefix, tmp_path / "d1", progress=False)
    publish(storage, make_task_dir(tmp_path / "src"), prefix, fingerprint=FP, status="failed", progress=False)
    with pytest.raises(InputError, match="_SUCCESS"):
        pull_task(storage, prefix, tmp_path / "d2", progress=False)
    storage.put_bytes(b"", f"{prefix}/{MARKER}")
    storage.delete(f"{prefix}/{MANIFEST}")
    with pytest.raises(InputError, match=MANIFEST):
        pull_task(storage, prefix, tmp_path / "d3", progress=False)
    assert not any((tmp_path / d).exists() for d in ("d1", "d2", "d3"))


def test_publish_skips_old_marker_and_manifest_in_local_dir(s3_server, bucket, tmp_path):
    storage = make_storage(s3_server)
    src = make_task_dir(tmp_path / "src")
    (src / MANIFEST).write_text('{"stale": true}')
    (src / MARKER).write_text("")
    prefix = f"s3://{bucket}/o/r/uie/ptq"
    result = publish(storage, src, prefix, fingerprint=FP, status="complete", progress=False)
    manifest = json.loads(storage.get_bytes(f"{prefix}/{MANIFEST}"))
    assert "stale" not in manifest and MANIFEST not in manifest["files"] and MARKER not in manifest["files"]
    assert result.files == len(manifest["files"]) == 8
    with pytest.raises(ValueError, match="status"):
        publish(storage, src, prefix, fingerprint=FP, status="done", progress=False)
    with pytest.raises(InputError, match="no such folder"):
        publish(storage, tmp_path / "missing", prefix, fingerprint=FP, status="complete", progress=False)


# --------------------------------------------------------------------------------------
# path traversal
# --------------------------------------------------------------------------------------

UNSAFE = ["../evil", "a/../../evil", "..", "/abs/path", "a\\..\\..\\evil", "..\\evil", "a//b", "./x", "C:/evil"]


@pytest.mark.parametrize("bad", UNSAFE)
def test_pull_refuses_paths_outside_dest(s3_server, bucket, s3_client, tmp_path, bad):
    storage = make_storage(s3_server)
    key_prefix = "out/r/uie/ptq"
    body = b"evil payload"
    files = {
        "config.json": {"sha256": hashlib.sha256(b"{}").hexdigest(), "size": 2},
        bad: {"sha256": hashlib.sha256(body).hexdigest(), "size": len(body)},
    }
    manifest = {"schema": 1, "fingerprint": FP, "status": "complete", "created": "now", "files": files}
    s3_client.put_object(Bucket=bucket, Key=f"{key_prefix}/config.json", Body=b"{}")
    s3_client.put_object(Bucket=bucket, Key=f"{key_prefix}/{bad}", Body=body)
    s3_client.put_object(Bucket=bucket, Key=f"{key_prefix}/{MANIFEST}", Body=json.dumps(manifest).encode())
    s3_client.put_object(Bucket=bucket, Key=f"{key_prefix}/{MARKER}", Body=b"")
    outer = tmp_path / "outer"
    dest = outer / "inner" / "dest"
    dest.mkdir(parents=True)
    before = snapshot(tmp_path)

    with pytest.raises((InputError, StorageError)) as info:
        pull_task(storage, f"s3://{bucket}/{key_prefix}", dest, progress=False)

    assert_one_line(info.value)
    assert snapshot(tmp_path) == before, "nothing written anywhere, dest included"
    assert not Path("/abs/path").exists()
    assert completion_state(storage, f"s3://{bucket}/{key_prefix}", FP) == "unsafe"


def test_pull_refuses_writing_through_a_symlink(s3_server, bucket, tmp_path):
    storage = make_storage(s3_server)
    src = make_task_dir(tmp_path / "src")
    prefix = f"s3://{bucket}/o/r/uie/ptq"
    publish(storage, src, prefix, fingerprint=FP, status="complete", progress=False)
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "extra").symlink_to(outside, target_is_directory=True)  # extra/notes.txt would land outside
    with pytest.raises(InputError, match="not empty"):
        pull_task(storage, prefix, dest, progress=False)
    assert list(outside.iterdir()) == []
    assert [p.name for p in dest.iterdir()] == ["extra"]
    pull_task(storage, prefix, dest, force=True, progress=False)  # replaced as a whole, the link with it
    assert list(outside.iterdir()) == []
    assert not (dest / "extra").is_symlink() and (dest / "extra" / "notes.txt").is_file()


@pytest.mark.parametrize("bad", ["../evil", "a/../../evil", "..", "a\\..\\evil"])
def test_fetch_refuses_unsafe_keys(s3_server, bucket, s3_client, tmp_path, bad):
    storage = make_storage(s3_server)
    s3_client.put_object(Bucket=bucket, Key="models/m/ok.txt", Body=b"ok")
    s3_client.put_object(Bucket=bucket, Key=f"models/m/{bad}", Body=b"evil")
    cache = tmp_path / "cache"
    with pytest.raises(InputError, match="unsafe"):
        fetch(storage, f"s3://{bucket}/models/m", cache)
    assert not any(p.name == "evil" for p in tmp_path.rglob("*"))
    assert not cache.exists() or list(cache.iterdir()) == []


# --------------------------------------------------------------------------------------
# failures on the wire
# --------------------------------------------------------------------------------------


def test_server_dies_during_upload_then_publish_again(s3_server, bucket, s3_client, tmp_path, dying_proxy):
    src = make_task_dir(tmp_path / "src", big_bytes=12 * MB)
    prefix = f"s3://{bucket}/out/r/uie/ptq"
    direct = make_storage(s3_server)
    publish(direct, src, prefix, fingerprint=OTHER_FP, status="complete", progress=False)  # an earlier run
    assert completion_state(direct, prefix, OTHER_FP) == "complete"

    proxy = dying_proxy(die_after=3 * MB)
    storage = make_storage(proxy.url, max_attempts=2)
    with pytest.raises(StorageError) as info:
        publish(storage, src, prefix, fingerprint=FP, status="complete", progress=False)
    assert proxy.died.is_set(), "the proxy died mid-upload"
    assert info.value.exit_code == ExitCode.STORAGE == 4
    assert_one_line(info.value, f"s3://{bucket}/out/r/uie/ptq")
    objects = keys(s3_client, bucket, "out/r/uie/ptq/")
    assert "out/r/uie/ptq/_SUCCESS" not in objects, "the old marker was deleted before uploading"
    assert "out/r/uie/ptq/manifest.json" not in objects
    assert completion_state(direct, prefix, FP) == "incomplete"

    proxy.reopen()
    result = publish(storage, src, prefix, fingerprint=FP, status="complete", progress=False)
    assert result.marker_written
    assert completion_state(direct, prefix, FP) == "complete"
    assert pending_uploads(s3_client, bucket) == [], "unfinished multipart uploads are aborted"
    pull_task(direct, prefix, tmp_path / "dest", progress=False)
    assert tree_hashes(tmp_path / "dest", skip=(MANIFEST, MARKER)) == tree_hashes(src)


def test_failed_publish_aborts_multipart_uploads(s3_server, bucket, s3_client, tmp_path, fault_proxy):
    src = make_task_dir(tmp_path / "src", big_bytes=11 * MB)
    prefix = f"s3://{bucket}/out/r/uie/ptq"
    # left behind by a killed pod: publishing again aborts it first
    stale = s3_client.create_multipart_upload(Bucket=bucket, Key="out/r/uie/ptq/inference.pdiparams")["UploadId"]
    s3_client.create_multipart_upload(Bucket=bucket, Key="elsewhere/keep.bin")
    denied_aborts = []

    def deny(method: str, path: str) -> bool:
        if method == "PUT" and "partNumber=2" in path:
            return True  # the upload fails...
        if method == "DELETE" and "uploadId=" in path and stale not in path and not denied_aborts:
            denied_aborts.append(path)  # ...and so does the transfer manager's own abort
            return True
        return False

    proxy = fault_proxy(deny=deny)
    storage = make_storage(proxy.url, max_attempts=1)
    with pytest.raises(StorageError) as info:
        publish(storage, src, prefix, fingerprint=FP, status="complete", progress=False)
    assert proxy.answered_403 >= 2 and denied_aborts
    assert_one_line(info.value, "inference.pdiparams")
    assert pending_uploads(s3_client, bucket) == ["elsewhere/keep.bin"], "publish aborted the uploads under its prefix"
    assert "out/r/uie/ptq/_SUCCESS" not in keys(s3_client, bucket)


def test_slowdown_503_is_retried(s3_server, bucket, tmp_path, fault_proxy):
    proxy = fault_proxy(slowdowns=2)
    storage = make_storage(proxy.url)  # default retries: standard mode, 5 attempts
    src = make_task_dir(tmp_path / "src")
    prefix = f"s3://{bucket}/out/r/tnews/ptq"
    result = publish(storage, src, prefix, fingerprint=FP, status="complete", progress=False)
    assert result.marker_written
    assert proxy.answered_503 == 2
    assert completion_state(make_storage(s3_server), prefix, FP) == "complete"


def test_slowdown_without_retries_is_a_storage_error(s3_server, bucket, tmp_path, fault_proxy):
    proxy = fault_proxy(slowdowns=1)
    storage = make_storage(proxy.url, max_attempts=1)
    with pytest.raises(StorageError) as info:
        storage.put_bytes(b"x", f"s3://{bucket}/k")
    assert proxy.answered_503 == 1
    assert_one_line(info.value, "SlowDown", f"s3://{bucket}/k")


def dead_endpoint() -> str:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def test_unreachable_endpoint_is_a_storage_error(s3_server, tmp_path):
    storage = make_storage(dead_endpoint(), max_attempts=1)
    for call in (
        lambda: storage.list("s3://some-bucket/p"),
        lambda: storage.exists("s3://some-bucket/p/x"),
        lambda: storage.get_bytes("s3://some-bucket/p/x"),
        lambda: publish(
            storage,
            make_task_dir(tmp_path / "src"),
            "s3://some-bucket/p",
            fingerprint=FP,
            status="complete",
            progress=False,
        ),
    ):
        with pytest.raises(StorageError) as info:
            call()
        assert info.value.exit_code == 4
        assert_one_line(info.value, "s3://some-bucket/p")


def test_missing_objects_and_buckets(s3_server, bucket):
    storage = make_storage(s3_server)
    with pytest.raises(NotFoundError):
        storage.get_bytes(f"s3://{bucket}/none")
    with pytest.raises(StorageError, match="NoSuchBucket"):
        storage.list("s3://no-such-bucket-here/x")
    assert storage.exists(f"s3://{bucket}/none") is False
    storage.delete(f"s3://{bucket}/none")  # deleting nothing is fine


# --------------------------------------------------------------------------------------
# fetch
# --------------------------------------------------------------------------------------


def _object_gets(proxy: FaultProxy) -> list[str]:
    return [
        path for method, path in proxy.requests if method == "GET" and "list-type" not in path and "uploads" not in path
    ]


def test_a_distillation_teacher_in_the_bucket_is_fetched_verified_and_checked(s3_server, bucket, s3_client, tmp_path):
    """``Distillation.teacher_model_dir=s3://...`` comes through the model's verified fetch, and its
    files are checked by name before any heavy work (ACT would get an s3:// string otherwise)."""
    from job.config import load_config
    from job.pipeline import _pull_teacher

    storage = make_storage(s3_server)
    src = tmp_path / "teacher"
    src.mkdir()
    (src / "inference.pdmodel").write_bytes(b"program")
    (src / "inference.pdiparams").write_bytes(b"params")
    uri = f"s3://{bucket}/teachers/t"
    publish(storage, src, uri, fingerprint=FP, status="complete", progress=False)
    demo = Path(__file__).resolve().parent.parent / "configs" / "uie_demo.yaml"
    cfg = load_config(demo, [f"Distillation.teacher_model_dir={uri}"])
    teacher = _pull_teacher(cfg, storage, tmp_path / "cache")
    assert teacher.folder.parent == tmp_path / "cache" / "inputs" and teacher.program.read_bytes() == b"program"
    # a name the bucket's folder lacks is the teacher's one-line error
    named = load_config(demo, [f"Distillation.teacher_model_dir={uri}", "Distillation.teacher_params_filename=t.p"])
    with pytest.raises(InputError, match=r"t\.p"):
        _pull_teacher(named, storage, tmp_path / "cache")


def test_fetch_caches_verifies_and_refreshes(s3_server, bucket, s3_client, tmp_path, fault_proxy):
    direct = make_storage(s3_server)
    src = make_task_dir(tmp_path / "src", seed="v1")
    uri = f"s3://{bucket}/models/uie-nano"
    publish(direct, src, uri, fingerprint=FP, status="complete", progress=False)
    proxy = fault_proxy()
    storage = make_storage(proxy.url)
    cache = tmp_path / "cache"

    first = fetch(storage, uri, cache)
    assert first.parent == cache and len(first.name) == 16
    assert tree_hashes(first, skip=(MANIFEST, MARKER, ".complete")) == tree_hashes(src)
    gets = len(_object_gets(proxy))
    assert gets == 9  # the manifest's 8 files, the manifest read once (written from memory)
    stats = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in first.rglob("*")}

    second = fetch(storage, uri, cache)
    assert second == first
    assert len(_object_gets(proxy)) == gets, "second fetch: listing only, no download"
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in second.rglob("*")} == stats
    assert [p.name for p in cache.iterdir()] == [first.name], "no temp folders left"

    # the input changed on the server: fetched again
    src2 = make_task_dir(tmp_path / "src2", seed="v2")
    publish(direct, src2, uri, fingerprint=FP, status="complete", progress=False)
    third = fetch(storage, uri, cache)
    assert third == first and tree_hashes(third, skip=(MANIFEST, MARKER, ".complete")) == tree_hashes(src2)

    # tampered behind the manifest's back: refused, no partial copy kept, the old copy not trusted
    s3_client.put_object(
        Bucket=bucket, Key="models/uie-nano/config.json", Body=b"x" * (src2 / "config.json").stat().st_size
    )
    for _ in range(2):
        with pytest.raises(StorageError, match=r"config\.json"):
            fetch(storage, uri, cache)
    assert [p.name for p in cache.iterdir()] == [first.name], "no partial folder left"


def test_fetch_single_object_and_local_paths(s3_server, bucket, s3_client, tmp_path):
    storage = make_storage(s3_server)
    data = '{"text": "你好"}\n'.encode()
    s3_client.put_object(Bucket=bucket, Key="data/train.json", Body=data)
    path = fetch(storage, f"s3://{bucket}/data/train.json", tmp_path / "cache")
    assert path.name == "train.json" and path.read_bytes() == data
    assert fetch(storage, f"s3://{bucket}/data/train.json", tmp_path / "cache") == path

    local = make_task_dir(tmp_path / "model")
    assert fetch(storage, str(local), tmp_path / "cache") == local
    assert fetch(storage, f"file://{local}", tmp_path / "cache") == local
    with pytest.raises(InputError) as info:
        fetch(storage, str(tmp_path / "no-model"), tmp_path / "cache")
    assert_one_line(info.value, str(tmp_path / "no-model"))
    with pytest.raises(InputError, match="nothing there"):
        fetch(storage, f"s3://{bucket}/data/none", tmp_path / "cache")


# --------------------------------------------------------------------------------------
# listing runs; local outputs
# --------------------------------------------------------------------------------------


def test_list_runs(s3_server, bucket, tmp_path):
    storage = make_storage(s3_server)
    out = f"s3://{bucket}/act"
    src = make_task_dir(tmp_path / "src")
    publish(storage, src, task_prefix(out, "r1", "uie", "ptq"), fingerprint=FP, status="complete", progress=False)
    publish(storage, src, task_prefix(out, "r1", "tnews", "qat_dis"), fingerprint=FP, status="gated", progress=False)
    publish(storage, src, task_prefix(out, "r2", "uie", "ptq"), fingerprint=OTHER_FP, status="complete", progress=False)
    storage.put_bytes(b"# report", f"{out}/report/report.md")  # not a task folder

    assert list_runs(storage, out) == [
        TaskStatus("r1", "tnews", "qat_dis", "incomplete", f"{out}/r1/tnews/qat_dis"),
        TaskStatus("r1", "uie", "ptq", "complete", f"{out}/r1/uie/ptq"),
        TaskStatus("r2", "uie", "ptq", "complete", f"{out}/r2/uie/ptq"),
    ]
    assert [t.prefix for t in list_runs(storage, out, run_id="r2")] == [f"{out}/r2/uie/ptq"]
    assert list_runs(storage, out, run_id="r3") == []
    with pytest.raises(InputError):
        list_runs(storage, out, run_id="../r1")


def test_local_output_round_trip(tmp_path):
    storage = Storage()
    src = make_task_dir(tmp_path / "work")
    out = str(tmp_path / "runs")
    prefix = task_prefix(out, "local", "sentiment", "ptq")
    assert completion_state(storage, prefix, FP) == "absent"
    result = publish(storage, src, prefix, fingerprint=FP, status="complete", progress=False)
    assert result.marker_written and "etag" not in json.loads(Path(prefix, MANIFEST).read_text())["files"]["vocab.txt"]
    assert completion_state(storage, prefix, FP) == "complete"
    assert completion_state(storage, prefix, OTHER_FP) == "config_changed"
    assert [t.state for t in list_runs(storage, out)] == ["complete"]
    pull_task(storage, prefix, tmp_path / "dest", progress=False)
    assert tree_hashes(tmp_path / "dest", skip=(MANIFEST, MARKER)) == tree_hashes(src)

    vocab = Path(prefix, "vocab.txt")
    vocab.write_bytes(bytes(reversed(vocab.read_bytes())))  # same size: only the SHA-256 tells
    assert completion_state(storage, prefix, FP) == "incomplete"
    with pytest.raises(StorageError, match=r"vocab\.txt"):
        pull_task(storage, prefix, tmp_path / "dest2", progress=False)


def test_publish_in_place(tmp_path):
    storage = Storage()
    folder = make_task_dir(tmp_path / "runs" / "r" / "uie" / "ptq")
    before = tree_hashes(folder)
    publish(storage, folder, str(folder), fingerprint=FP, status="complete", progress=False)
    assert completion_state(storage, str(folder), FP) == "complete"
    assert tree_hashes(folder, skip=(MANIFEST, MARKER)) == before
    with pytest.raises(InputError, match="inside"):
        publish(storage, tmp_path / "runs", str(folder), fingerprint=FP, status="complete", progress=False)


# --------------------------------------------------------------------------------------
# configuration, URIs, credentials
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "uri",
    ["s3://", "s3:///key", "s3://Bad_Bucket/x", "s3://ab/x", "s3://-bucket/x", "s3://192.168.1.1/x", "gs://bucket/x"],
)
def test_malformed_uris_are_input_errors(uri):
    storage = Storage(StorageConfig(endpoint_url="http://127.0.0.1:9"))
    for call in (lambda: storage.exists(uri), lambda: storage.list(uri), lambda: task_prefix(uri, "r", "uie", "ptq")):
        with pytest.raises(InputError) as info:
            call()
        assert info.value.exit_code == ExitCode.INPUT
        assert_one_line(info.value)


def test_task_prefix():
    assert task_prefix("s3://bucket/a/", "r1", "uie", "ptq") == "s3://bucket/a/r1/uie/ptq"
    assert task_prefix("s3://bucket", "r1", "uie", "ptq") == "s3://bucket/r1/uie/ptq"
    assert task_prefix("./runs", "local", "tnews", "qat_dis") == "./runs/local/tnews/qat_dis"
    for bad in ("..", "a/b", "", "x" * 64):
        with pytest.raises(InputError):
            task_prefix("./runs", bad, "uie", "ptq")


def test_settings_from_config_and_environment(s3_server, monkeypatch):
    storage = Storage()
    assert (storage.endpoint_url, storage.region, storage.retry_mode, storage.max_attempts) == (
        None,
        "us-east-1",
        "standard",
        5,
    )

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://generic:9000")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://s3-only:9000")
    monkeypatch.setenv("AWS_REGION", "cn-north-1")
    monkeypatch.setenv("AWS_RETRY_MODE", "adaptive")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "3")
    storage = Storage()
    assert (storage.endpoint_url, storage.region, storage.retry_mode, storage.max_attempts) == (
        "http://s3-only:9000",
        "cn-north-1",
        "adaptive",
        3,
    )

    cfg = StorageConfig(
        endpoint_url="http://cfg:9000",
        region="eu-west-1",
        retry_mode="legacy",
        max_attempts=7,
        checksum_when_required=True,
    )
    storage = Storage(cfg)
    assert (storage.endpoint_url, storage.region, storage.retry_mode, storage.max_attempts) == (
        "http://cfg:9000",
        "eu-west-1",
        "legacy",
        7,
    )
    s3 = storage.backend("s3://bucket/key")
    client = s3.client()  # built once, offline
    assert client is s3.client()
    assert client.meta.endpoint_url == "http://cfg:9000" and client.meta.region_name == "eu-west-1"
    assert client.meta.config.retries == {"mode": "legacy", "total_max_attempts": 7}
    assert client.meta.config.request_checksum_calculation == "when_required"
    assert client.meta.config.response_checksum_validation == "when_required"
    assert (
        Storage(StorageConfig(endpoint_url="http://x:1"))
        .backend("s3://bucket/k")
        .client()
        .meta.config.request_checksum_calculation
        != "when_required"
    )

    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "many")
    with pytest.raises(InputError, match="AWS_MAX_ATTEMPTS"):
        Storage()
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("AWS_RETRY_MODE", "eager")
    with pytest.raises(InputError, match="AWS_RETRY_MODE"):
        Storage()
    monkeypatch.delenv("AWS_RETRY_MODE")
    with pytest.raises(InputError, match="endpoint"):
        Storage(StorageConfig(endpoint_url="minio:9000"))
    with pytest.raises(InputError, match="multipart_chunksize_mb"):
        Storage(StorageConfig(multipart_chunksize_mb=1))
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(InputError, match="AWS_SECRET_ACCESS_KEY"):
        Storage()


def test_credentials_never_leak(s3_server, bucket, s3_client, tmp_path, monkeypatch, caplog, capsys):
    secret = f"planted-secret-{uuid.uuid4().hex}"
    token = f"planted-token-{uuid.uuid4().hex}"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("AWS_SESSION_TOKEN", token)
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="botocore")  # its DEBUG records show request headers
    storage = make_storage(s3_server)
    texts = [repr(storage), str(vars(storage))]

    out = f"s3://{bucket}/out"
    prefix = task_prefix(out, "r", "uie", "ptq")
    texts.append(publish(storage, make_task_dir(tmp_path / "src"), prefix, fingerprint=FP, status="complete").summary())
    texts.append(completion_state(storage, prefix, FP))
    texts.append(repr(list_runs(storage, out)))
    texts.append(pull_task(storage, prefix, tmp_path / "dest").summary())
    texts.append(str(fetch(storage, prefix, tmp_path / "cache")))
    for call in (
        lambda: pull_task(storage, f"{out}/none", tmp_path / "d2"),
        lambda: storage.list("s3://no-such-bucket-here/x"),
        lambda: make_storage(dead_endpoint(), max_attempts=1).list(out),
    ):
        with pytest.raises((InputError, StorageError)) as info:
            call()
        texts.append(str(info.value))
    assert any("Sending http request" in r.getMessage() for r in caplog.records), "botocore's DEBUG logs were captured"

    script = Path(__file__).resolve().parent.parent / "scripts" / "pull"
    runs = [
        ["list", out, "--endpoint-url", s3_server, "-v"],
        ["get", out, "--run", "r", "--dest", str(tmp_path / "cli"), "--endpoint-url", s3_server, "-v"],
        ["list", out, "--endpoint-url", dead_endpoint(), "-v"],
    ]
    env = {**os.environ, "AWS_MAX_ATTEMPTS": "1"}
    procs = [
        subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=60, env=env)
        for args in runs
    ]
    assert [p.returncode for p in procs] == [0, 0, 4], [p.stderr for p in procs]
    assert "complete" in procs[0].stdout and (tmp_path / "cli" / "r" / "uie" / "ptq" / "vocab.txt").is_file()
    for proc in procs:
        texts += [proc.stdout, proc.stderr]

    captured = capsys.readouterr()
    texts += [captured.out, captured.err, caplog.text]
    texts += [p.read_bytes().decode("utf-8", "replace") for p in tmp_path.rglob("*") if p.is_file()]
    texts += [
        s3_client.get_object(Bucket=bucket, Key=k)["Body"].read().decode("utf-8", "replace")
        for k in keys(s3_client, bucket)
    ]
    for text in texts:
        assert secret not in text and token not in text
