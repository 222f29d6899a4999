"""``scripts/pull get`` against hostile stores: one table of buckets (moto on 127.0.0.1)
and local output folders whose keys, manifests, symlinks or leftover destinations attack
the pull.

Every row holds one good, complete task (``run1/tnews/ptq``) beside the attack. For each
row: nothing is written outside ``--dest``, the exit code is the row's, the good task is
pulled exactly as its manifest lists (no more, no less), and no control character of a key
reaches the terminal raw.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from job.storage.download import LOCK_NAME

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "pull"
GOOD = ("run1", "tnews", "ptq")
GOOD_FILES = {
    "inference.pdmodel": b"program" * 100,
    "inference.pdiparams": os.urandom(3000),
    "vocab.txt": "[PAD]\n[UNK]\n中\n".encode(),
    "results.json": json.dumps({"schema": 1, "task": "tnews", "strategy": "ptq", "status": "complete"}).encode(),
}
ESC = "\x1b[31m"


def manifest_of(files: dict[str, bytes], *, status: str = "complete", lie: dict[str, dict] | None = None) -> bytes:
    entries = {rel: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)} for rel, data in files.items()}
    entries.update(lie or {})
    return json.dumps(
        {"schema": 1, "fingerprint": "f" * 64, "status": status, "created": "now", "files": entries}
    ).encode()


def task_objects(files: dict[str, bytes], **manifest: object) -> dict[str, bytes]:
    """A published task folder as keys relative to it: files, manifest, marker."""
    return {**files, "manifest.json": manifest_of(files, **manifest), "_SUCCESS": b""}


def under(prefix: str, objects: dict[str, bytes]) -> dict[str, bytes]:
    return {f"{prefix}/{rel}": data for rel, data in objects.items()}


GOOD_TASK = under("/".join(GOOD), task_objects(GOOD_FILES))


@dataclass
class Case:
    """One hostile store. ``objects``: key (relative to the output root) -> bytes;
    ``links``: (local output only) path -> target under the test's ``outside`` folder;
    ``dest``/``dest_links``: files and symlinks present in the destination before the
    pull; ``code``: expected exit;
    ``kept``: destination files that must survive untouched."""

    objects: dict[str, bytes]
    code: int
    local: bool = False
    links: dict[str, str] = field(default_factory=dict)
    dest: dict[str, bytes] = field(default_factory=dict)
    dest_links: dict[str, str] = field(default_factory=dict)  # destination path -> folder under ``outside``
    kept: tuple[str, ...] = ()
    pulled: bool = True  # whether the good task ends up pulled
    pulled_too: tuple[str, ...] = ()  # other task folders that are safe and complete


SECRET = b"secret outside the run folder\n"
LONG = "n" * 300

CASES: dict[str, Case] = {
    # The reviewer's attack: the task and strategy names come from the keys.
    "task-and-strategy-are-dotdot": Case(
        {**GOOD_TASK, **under("run1/../..", task_objects({".bashrc": b"echo owned\n"}))}, code=2
    ),
    "strategy-is-dotdot": Case({**GOOD_TASK, **under("run1/uie/..", task_objects({"x.txt": b"x"}))}, code=2),
    "empty-task-name": Case({**GOOD_TASK, **under("run1//ptq", task_objects({"x.txt": b"x"}))}, code=2),
    "control-characters-in-a-name": Case(
        {**GOOD_TASK, **under(f"run1/uie{ESC}/ptq", task_objects({"x.txt": b"x"}))}, code=2
    ),
    "backslash-traversal-in-a-name": Case(
        {**GOOD_TASK, **under("run1/..\\..\\evil/ptq", task_objects({"x.txt": b"x"}))}, code=2
    ),
    # Manifest paths: refused, and the good task is still pulled.
    "manifest-path-escapes": Case(
        {
            **GOOD_TASK,
            **under(
                "run1/afqmc/ptq",
                {
                    "../../../escaped": b"evil",
                    "manifest.json": manifest_of({"../../../escaped": b"evil"}),
                    "_SUCCESS": b"",
                },
            ),
        },
        code=2,
    ),
    "manifest-name-too-long": Case({**GOOD_TASK, **under("run1/afqmc/ptq", task_objects({LONG: b"long"}))}, code=2),
    "manifest-file-and-folder-at-once": Case(
        {**GOOD_TASK, **under("run1/afqmc/ptq", task_objects({"a": b"file", "a/b": b"nested"}))}, code=2
    ),
    # Local output folders: symlinks never followed out of the run folder.
    "symlink-to-a-file-outside-matching-the-manifest": Case(
        {**GOOD_TASK, **under("run1/afqmc/ptq", task_objects({"secret.txt": SECRET}))},
        code=2,
        local=True,
        links={"run1/afqmc/ptq/secret.txt": "secret.txt"},
    ),
    "symlink-to-a-file-outside-not-matching": Case(
        {**GOOD_TASK, **under("run1/afqmc/ptq", task_objects({"secret.txt": b"x" * len(SECRET)}))},
        code=2,
        local=True,
        links={"run1/afqmc/ptq/secret.txt": "secret.txt"},
    ),
    # Leftovers in the destination.
    "earlier-pull-with-stale-files": Case(
        GOOD_TASK,
        code=0,
        dest={
            "run1/tnews/ptq/old-model.bin": b"stale",
            "run1/tnews/ptq/manifest.json": b"{}",
            "run1/tnews/ptq/_SUCCESS": b"",
        },
    ),
    "destination-holds-foreign-files": Case(
        GOOD_TASK,
        code=2,
        dest={"run1/tnews/ptq/mine.txt": b"my notes"},
        kept=("run1/tnews/ptq/mine.txt",),
        pulled=False,
    ),
    # A safe task whose results.json (printed as the summary table) holds control characters.
    "control-characters-in-results-json": Case(
        {
            **GOOD_TASK,
            **under(
                "run1/csl/ptq",
                task_objects(
                    {
                        "results.json": json.dumps(
                            {"task": f"csl{ESC}", "strategy": "ptq", "status": "complete"}
                        ).encode()
                    }
                ),
            ),
        },
        code=0,
        pulled_too=("run1/csl/ptq",),
    ),
    "destination-run-folder-is-a-symlink-out": Case(GOOD_TASK, code=2, dest_links={"run1": "elsewhere"}, pulled=False),
    "destination-task-folder-is-a-file": Case(
        GOOD_TASK, code=2, dest={"run1/tnews/ptq": b"a file"}, kept=("run1/tnews/ptq",), pulled=False
    ),
}


def snapshot(root: Path, skip: Path) -> dict[str, str]:
    """Every path under ``root`` outside ``skip``, with its content hash (links by target)."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path == skip or skip in path.parents:
            continue
        if path.is_symlink():
            out[str(path)] = "link:" + os.readlink(path)
        elif path.is_file():
            out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            out[str(path)] = "dir"
    return out


def files_under(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name", list(CASES))
def test_pull_get_from_a_hostile_store(name, request, tmp_path, light_python):
    case = CASES[name]
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(SECRET)
    work = tmp_path / "work"  # --dest is work/pulled; '..' from a task folder lands in work/
    work.mkdir()
    dest = work / "pulled"
    if case.local:
        root = tmp_path / "store"
        for key, data in case.objects.items():
            path = root / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        for link, target in case.links.items():
            (root / link).unlink()
            (root / link).symlink_to(outside / target)
        output: str = str(root)
        extra: list[str] = []
    else:
        s3_server = request.getfixturevalue("s3_server")
        client = request.getfixturevalue("s3_client")
        bucket = request.getfixturevalue("bucket")
        for key, data in case.objects.items():
            client.put_object(Bucket=bucket, Key=f"act/{key}", Body=data)
        output = f"s3://{bucket}/act"
        extra = ["--endpoint-url", s3_server]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # after s3_server cleaned AWS_*
    for rel, data in case.dest.items():
        path = dest / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    for rel, folder in case.dest_links.items():
        (outside / folder).mkdir()
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).symlink_to(outside / folder, target_is_directory=True)
    kept = {rel: (dest / rel).read_bytes() for rel in case.kept}
    before = snapshot(tmp_path, dest)

    proc = subprocess.run(
        [str(light_python), str(SCRIPT), "get", output, "--run", "run1", "--dest", str(dest), "--no-progress", *extra],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=work,
    )

    shown = proc.stdout + proc.stderr
    assert proc.returncode == case.code, shown
    assert "Traceback" not in shown
    assert "\x1b" not in shown, "a control character of a key reached the terminal"
    assert snapshot(tmp_path, dest) == before, "something was written outside --dest"
    assert SECRET.decode() not in shown and hashlib.sha256(SECRET).hexdigest()[:8] not in shown
    # The destination's pull lock stays (removing it would race); nothing else hidden does.
    assert not [p for p in dest.rglob("*") if p.name.startswith(".") and p != dest / LOCK_NAME], (
        "temp folders or dot files left in --dest"
    )
    for rel, data in kept.items():
        assert (dest / rel).read_bytes() == data
    # Exactly what the manifests list, and only from safe, complete tasks.
    folders = sorted({p.parent.relative_to(dest).as_posix() for p in dest.rglob("_SUCCESS")})
    if case.pulled:
        assert folders == sorted(["/".join(GOOD), *case.pulled_too]), folders
        got = files_under(dest.joinpath(*GOOD))
        assert set(got) == {*GOOD_FILES, "manifest.json", "_SUCCESS"}
        assert {rel: got[rel] for rel in GOOD_FILES} == GOOD_FILES
    else:
        assert "/".join(GOOD) not in folders
    if case.code:
        assert any(line.startswith("error: ") for line in proc.stderr.splitlines()), proc.stderr


def test_pull_list_escapes_control_characters(s3_server, s3_client, bucket, light_python):
    for key, data in under(f"run1/uie{ESC}/ptq", task_objects({"x.txt": b"x"})).items():
        s3_client.put_object(Bucket=bucket, Key=f"act/{key}", Body=data)
    proc = subprocess.run(
        [str(light_python), str(SCRIPT), "list", f"s3://{bucket}/act", "--endpoint-url", s3_server],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "\x1b" not in proc.stdout + proc.stderr
    assert "unsafe" in proc.stdout and "\\x1b" in proc.stdout, proc.stdout
