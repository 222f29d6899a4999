"""Pulls that race, stop, or meet hostile names and JSON: scripts/pull (light environment)
and job.storage against the local S3 server (moto over HTTP), through tests/s3_faults.py's
proxy where the wire must be slow or cut.

One table per class of issue 20: races (two real processes), names (trailing newline,
case and Unicode collisions), untrusted JSON (deep, large, wrong types, huge numbers, NaN,
not UTF-8), small reads cut on the way. In every hostile row a good task beside the bad
one is still pulled, verified, and reported.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from job.config import StorageConfig
from job.errors import InputError, StorageError
from job.storage import Storage, pull_task
from job.storage.download import LOCK_NAME
from job.storage.locations import check_name, is_safe_name, split_s3
from job.storage.settings import StoreSettings
from job.storage.untrusted import MAX_MANIFEST_BYTES, MAX_RESULTS_BYTES

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "pull"
RESULT = json.loads((Path(__file__).parent / "fixtures" / "results" / "uie_ptq.json").read_text(encoding="utf-8"))
GOOD = "run1/uie/ptq"
BAD = "run1/bad/ptq"


def good_files() -> dict[str, bytes]:
    return {
        "inference.pdmodel": b"program" * 500,
        "inference.pdiparams": os.urandom(64 * 1024),
        "vocab.txt": "[PAD]\n[UNK]\n中\n".encode(),
        "results.json": json.dumps(RESULT).encode(),
    }


def manifest_of(files: dict[str, bytes], **extra: object) -> bytes:
    entries = {rel: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)} for rel, data in files.items()}
    body = {"schema": 1, "fingerprint": "f" * 64, "status": "complete", "created": "now", "files": entries}
    return json.dumps({**body, **extra}).encode()


def put_task(client, bucket: str, prefix: str, files: dict[str, bytes], manifest: bytes | None = None) -> None:
    for rel, data in files.items():
        client.put_object(Bucket=bucket, Key=f"act/{prefix}/{rel}", Body=data)
    client.put_object(Bucket=bucket, Key=f"act/{prefix}/manifest.json", Body=manifest or manifest_of(files))
    client.put_object(Bucket=bucket, Key=f"act/{prefix}/_SUCCESS", Body=b"")


def pull(python: Path, *args: str, endpoint: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # after s3_server cleaned AWS_*
    return subprocess.Popen(
        [str(python), str(SCRIPT), *args, "--endpoint-url", endpoint],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )


def run(python: Path, *args: str, endpoint: str) -> tuple[int, str, str]:
    proc = pull(python, *args, endpoint=endpoint)
    out, err = proc.communicate(timeout=180)
    return proc.returncode, out, err


def files_under(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_good_pulled(dest: Path, files: dict[str, bytes]) -> None:
    got = files_under(dest / GOOD)
    assert set(got) == {*files, "manifest.json", "_SUCCESS"}, sorted(got)
    assert {rel: got[rel] for rel in files} == files


def hidden(dest: Path) -> list[str]:
    """Dot files and folders under ``dest`` other than its lock file (temp folders, leftovers)."""
    return [p.relative_to(dest).as_posix() for p in dest.rglob(".*") if p != dest / LOCK_NAME]


# -- races: two real processes on one destination --------------------------------------


def wait_for_partial(dest: Path, proc: subprocess.Popen[str]) -> None:
    """Until the pull has a temp folder holding a downloaded file (it is mid-download)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if any(p.is_file() for d in dest.rglob("*.partial") for p in d.rglob("*")):
            return
        time.sleep(0.02)
    raise AssertionError(f"the first pull never got mid-download (exit {proc.poll()})")


@pytest.fixture
def slow_store(s3_server, s3_client, bucket, fault_proxy):
    """run1/uie/ptq published, behind a proxy that answers each GET after 0.4 s."""
    files = {**good_files(), **{f"shard{i}.bin": os.urandom(32 * 1024) for i in range(5)}}
    put_task(s3_client, bucket, GOOD, files)
    proxy = fault_proxy(delay=0.4)
    return f"s3://{bucket}/act", proxy.url, files


def test_second_pull_into_the_same_destination_is_refused(slow_store, tmp_path, light_python):
    output, endpoint, files = slow_store
    dest = tmp_path / "pulled"
    args = ("get", output, "--run", "run1", "--dest", str(dest), "--no-progress")
    first = pull(light_python, *args, endpoint=endpoint)
    wait_for_partial(dest, first)

    code, _, err = run(light_python, *args, endpoint=endpoint)

    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "another pull" in err and "--wait" in err
    _, err1 = first.communicate(timeout=180)
    assert first.returncode == 0, err1
    assert_good_pulled(dest, files)
    assert hidden(dest) == []


def test_second_pull_waits_with_wait(slow_store, tmp_path, light_python):
    output, endpoint, files = slow_store
    dest = tmp_path / "pulled"
    args = ("get", output, "--run", "run1", "--dest", str(dest), "--no-progress")
    first = pull(light_python, *args, endpoint=endpoint)
    wait_for_partial(dest, first)

    second = pull(light_python, *args, "--wait", endpoint=endpoint)
    _, err2 = second.communicate(timeout=180)
    _, err1 = first.communicate(timeout=180)

    assert (first.returncode, second.returncode) == (0, 0), err1 + err2
    assert "error" not in err1 + err2
    assert_good_pulled(dest, files)
    assert hidden(dest) == []


def test_killed_pull_leaves_nothing_taken_for_a_result(slow_store, tmp_path, light_python):
    output, endpoint, files = slow_store
    dest = tmp_path / "pulled"
    args = ("get", output, "--run", "run1", "--dest", str(dest), "--no-progress")
    first = pull(light_python, *args, endpoint=endpoint)
    wait_for_partial(dest, first)
    first.send_signal(signal.SIGKILL)  # no clean-up runs
    first.communicate(timeout=60)

    assert not list(dest.rglob("_SUCCESS")), "a killed pull left a marker"
    code, out, err = run(light_python, "list", str(dest), endpoint=endpoint)
    assert code == 0 and "0 complete" in out, out + err

    code, _, err = run(light_python, *args, endpoint=endpoint)  # the OS released the killed pull's lock
    assert code == 0, err
    assert_good_pulled(dest, files)
    assert hidden(dest) == [], "the leftovers of the killed pull were removed under the lock"


def test_a_temp_folder_removed_under_a_live_pull_is_never_installed(s3_server, s3_client, bucket, tmp_path):
    """What another process's clean-up did to a live pull: the pull's temp folder vanishes
    after one file and is made again by the next download. Nothing is installed."""
    files = good_files()
    put_task(s3_client, bucket, GOOD, files)

    class RemovingStorage(Storage):
        calls = 0

        def get_file(self, uri, local_path, progress=None):
            RemovingStorage.calls += 1
            if RemovingStorage.calls == 2:
                tmp = next(p for p in Path(local_path).parents if p.name.endswith(".partial"))
                shutil.rmtree(tmp)
            return super().get_file(uri, local_path, progress)

    storage = RemovingStorage(StorageConfig(endpoint_url=s3_server))
    dest = tmp_path / "pulled" / GOOD
    with pytest.raises(InputError, match="changed by another process"):
        pull_task(storage, f"s3://{bucket}/act/{GOOD}", dest, within=tmp_path / "pulled", progress=False)
    assert not dest.exists()
    assert hidden(tmp_path / "pulled") == []


# -- names ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["uie\n", "2024-06-01\n"])  # re.match with ^...$ accepted these
def test_names_with_a_control_character_are_refused(name):
    assert not is_safe_name(name)
    with pytest.raises(InputError):
        check_name("task", name)


@pytest.mark.parametrize("uri", ["s3://act-bucket\n/key", "s3://models.example\n/act"])
def test_bucket_names_with_a_control_character_are_refused(uri):
    with pytest.raises(InputError):
        split_s3(uri)


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:9000\n", "http://127.0.0.1:9000\x1b[2J", "http://minio\r:9"])
def test_endpoints_with_a_control_character_are_refused(endpoint):
    with pytest.raises(InputError, match="expected http"):
        StoreSettings(StorageConfig(endpoint_url=endpoint))


@dataclass
class Hostile:
    """A bad task folder at ``prefix`` beside the good run1/uie/ptq; ``files`` and the
    manifest (``manifest``, else made from ``files``); ``shown``: a text the refusal names."""

    files: dict[str, bytes]
    shown: str
    manifest: bytes | None = None
    prefix: str = BAD
    never_read: tuple[str, ...] = ()  # keys whose content must never be fetched
    local: bool = False  # a local output folder (moto refuses keys holding a newline)


def results(**changes: object) -> bytes:
    return json.dumps({**RESULT, **changes}).encode()


DEEP = b"[" * 100_000 + b"]" * 100_000
BIG_MANIFEST = b'{"schema": 1, "status": "complete", "files": {}, "pad": "' + b"a" * (50 * 1024 * 1024) + b'"}'
SHA = "0" * 64

HOSTILE: dict[str, Hostile] = {
    # names
    "trailing-newline-in-the-task-name": Hostile({"x.txt": b"x"}, "unsafe", prefix="run1/bad\n/ptq", local=True),
    "paths-differing-by-case": Hostile({"Model.bin": b"a", "model.bin": b"b"}, "case-insensitive"),
    "paths-differing-by-normalization-nfc-nfd": Hostile({"caf\u00e9.txt": b"a", "cafe\u0301.txt": b"b"}, "normaliz"),
    "paths-differing-by-compatibility-nfkc": Hostile({"\ufb01le.txt": b"a", "file.txt": b"b"}, "normaliz"),
    "folders-differing-by-case": Hostile({"Sub/a.txt": b"a", "sub/b.txt": b"b"}, "case-insensitive"),
    "the-manifest-name-in-another-case": Hostile({"Manifest.JSON": b"{}"}, "case-insensitive"),
    # manifest.json
    "manifest-nested-100k-deep": Hostile(
        {}, "nested too deeply", manifest=b'{"schema": 1, "status": "complete", "files": {}, "x": ' + DEEP + b"}"
    ),
    "manifest-of-50-mb": Hostile({}, "read", manifest=BIG_MANIFEST, never_read=(f"act/{BAD}/manifest.json",)),
    "manifest-files-of-the-wrong-type": Hostile(
        {}, "files", manifest=b'{"schema": 1, "status": "complete", "files": ["a"]}'
    ),
    "manifest-entry-of-the-wrong-types": Hostile(
        {}, "sha256", manifest=json.dumps({"schema": 1, "files": {"a": {"sha256": 5, "size": "x"}}}).encode()
    ),
    "manifest-size-a-huge-int": Hostile(
        {},
        "out of range",
        manifest=b'{"schema": 1, "files": {"a": {"sha256": "%s", "size": 1%s}}}' % (SHA.encode(), b"0" * 400),
    ),
    "manifest-size-nan": Hostile(
        {}, "NaN", manifest=b'{"schema": 1, "files": {"a": {"sha256": "%s", "size": NaN}}}' % SHA.encode()
    ),
    "manifest-not-utf8": Hostile({}, "UTF-8", manifest=b"\xff\xfe" + manifest_of({})),
    # results.json (checked against TaskResult before the folder is installed)
    "results-nested-100k-deep": Hostile({"results.json": b'{"schema": 1, "x": ' + DEEP + b"}"}, "nested too deeply"),
    "results-task-of-the-wrong-type": Hostile({"results.json": results(task=["uie"])}, "task"),
    "results-metric-a-huge-int": Hostile({"results.json": results(before={"f1": 10**400})}, "out of range"),
    "results-delta-nan": Hostile({"results.json": results(delta_points=float("nan"))}, "NaN"),
    "results-not-utf8": Hostile({"results.json": b"\xff" + results()}, "UTF-8"),
    "results-above-the-cap": Hostile(
        {"results.json": b" " * (MAX_RESULTS_BYTES + 1) + results()},
        "larger than",
        never_read=(f"act/{BAD}/results.json",),
    ),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_hostile_task_is_refused_and_the_others_are_pulled(
    name, s3_server, s3_client, bucket, fault_proxy, tmp_path, light_python
):
    case = HOSTILE[name]
    good = good_files()
    proxy = fault_proxy()
    if case.local:
        output = str(tmp_path / "store" / "act")
        for prefix, files, manifest in ((GOOD, good, None), (case.prefix, case.files, case.manifest)):
            folder = Path(output, prefix)
            folder.mkdir(parents=True)
            for rel, data in {**files, "manifest.json": manifest or manifest_of(files), "_SUCCESS": b""}.items():
                (folder / rel).write_bytes(data)
    else:
        output = f"s3://{bucket}/act"
        put_task(s3_client, bucket, GOOD, good)
        put_task(s3_client, bucket, case.prefix, case.files, case.manifest)
    dest = tmp_path / "pulled"

    code, out, err = run(
        light_python,
        "get",
        output,
        "--run",
        "run1",
        "--dest",
        str(dest),
        "--no-progress",
        endpoint=proxy.url,
    )

    shown = out + err
    assert code == 2, shown
    assert "Traceback" not in shown and "\x1b" not in shown
    refusals = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(refusals) == 1 and "bad" in refusals[0] and case.shown in refusals[0], err
    assert_good_pulled(dest, good)
    assert sorted(p.parent.relative_to(dest).as_posix() for p in dest.rglob("_SUCCESS")) == [GOOD]
    assert "pulled 1 tasks" in out and RESULT["task"] in out  # the good task's results table
    assert hidden(dest) == []
    fetched = {path.split("?")[0].lstrip("/") for method, path in proxy.requests if method == "GET"}
    for key in case.never_read:
        assert f"{bucket}/{key}" not in fetched, f"{key} was read though the store said it is too large"


def test_manifest_cap_is_checked_on_the_size_the_store_reports(s3_server, s3_client, bucket):
    s3_client.put_object(Bucket=bucket, Key="m.json", Body=b"{}" + b" " * 100)
    storage = Storage(StorageConfig(endpoint_url=s3_server))
    with pytest.raises(InputError, match="more than the 50"):
        storage.get_bytes(f"s3://{bucket}/m.json", max_bytes=50)
    assert storage.get_bytes(f"s3://{bucket}/m.json", max_bytes=102) == b"{}" + b" " * 100
    assert MAX_MANIFEST_BYTES < 50 * 1024 * 1024


# -- small reads cut on the way ---------------------------------------------------------


def cut_first(how: str, times: int, key: str):
    left = {"n": times}

    def cut(method: str, path: str) -> str | None:
        if method == "GET" and path.split("?")[0].endswith(key) and left["n"] > 0:
            left["n"] -= 1
            return how
        return None

    return cut


@pytest.mark.parametrize("how", ["truncate", "reset"])
def test_a_small_read_cut_once_is_read_again(how, s3_server, s3_client, bucket, fault_proxy):
    data = json.dumps({"schema": 1, "pad": "x" * 5000}).encode()
    s3_client.put_object(Bucket=bucket, Key="act/manifest.json", Body=data)
    proxy = fault_proxy(cut=cut_first(how, 1, "/act/manifest.json"))
    storage = Storage(StorageConfig(endpoint_url=proxy.url))

    assert storage.get_bytes(f"s3://{bucket}/act/manifest.json") == data
    assert [m for m, p in proxy.requests if m == "GET"] == ["GET", "GET"]


@pytest.mark.parametrize("how", ["truncate", "reset"])
def test_a_small_read_cut_every_time_fails_after_the_download_limit(how, s3_server, s3_client, bucket, fault_proxy):
    s3_client.put_object(Bucket=bucket, Key="act/results.json", Body=b"{}" * 3000)
    proxy = fault_proxy(cut=cut_first(how, 100, "/act/results.json"))
    storage = Storage(StorageConfig(endpoint_url=proxy.url))
    attempts = storage.backend(f"s3://{bucket}/x").transfer_config().num_download_attempts

    with pytest.raises(StorageError) as info:
        storage.get_bytes(f"s3://{bucket}/act/results.json")

    assert "\n" not in str(info.value) and "results.json" in str(info.value)
    assert len([m for m, p in proxy.requests if m == "GET"]) == attempts == 5


@pytest.mark.parametrize("how", ["truncate", "reset"])
def test_pull_survives_a_cut_manifest_read(how, s3_server, s3_client, bucket, fault_proxy, tmp_path, light_python):
    good = good_files()
    put_task(s3_client, bucket, GOOD, good)
    proxy = fault_proxy(cut=cut_first(how, 2, f"/act/{GOOD}/manifest.json"))  # the listing's read and the pull's
    dest = tmp_path / "pulled"

    code, out, err = run(
        light_python,
        "get",
        f"s3://{bucket}/act",
        "--run",
        "run1",
        "--dest",
        str(dest),
        "--no-progress",
        endpoint=proxy.url,
    )

    assert code == 0, out + err
    assert_good_pulled(dest, good)
