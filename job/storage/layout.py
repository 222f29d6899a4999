"""The results layout ``<output>/<run-id>/<task>/<strategy>/``: naming a task folder,
listing the task folders under an output root, and pulling one back, verified."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from job.errors import InputError
from job.storage.download import Expected, check_listed, destination_lock, download_verified
from job.storage.locations import as_uri, check_name, escape, is_safe_name, join
from job.storage.manifest import MANIFEST, MARKER, UNSAFE, parse_manifest, task_state_why
from job.storage.publish import format_size, progress_bar, tail
from job.storage.registry import backend_class
from job.storage.untrusted import MAX_MANIFEST_BYTES, MAX_RESULTS_BYTES, TooLargeError, load_results

__all__ = ["SELECTION", "PullResult", "TaskStatus", "list_runs", "pull_task", "task_prefix"]

log = logging.getLogger(__name__)

# <output>/<run>/<task>/_selected/ holds the task's selected.json (job.storage.selection), not a
# strategy: no strategy name starts with '_' (job.config.STRATEGIES).
SELECTION = "_selected"
RESULTS = "results.json"


def task_prefix(output: str, run_id: str, task: str, strategy: str) -> str:
    """``<output>/<run_id>/<task>/<strategy>`` for a local folder or an s3:// output."""
    output = as_uri(output)
    for name, value in (("run_id", run_id), ("task", task), ("strategy", strategy)):
        check_name(name, value)
    backend_class(output)
    return join(output, run_id, task, strategy)


@dataclass
class TaskStatus:
    """One task folder under an output root.

    ``state`` is ``complete``, ``incomplete``, ``unsafe`` (a run, task or strategy name
    taken from the store's keys that is not one safe path component, or a manifest naming an
    unsafe or colliding path) or ``invalid`` (a manifest that is not a usable one: not JSON,
    too large or deep, of the wrong types). The names of a folder with an unsafe name are
    shown escaped and its ``prefix`` is empty: it is never read.
    """

    run_id: str
    task: str
    strategy: str
    state: str
    prefix: str
    reason: str = ""  # for an unsafe or invalid folder: why, one line, escaped

    @property
    def name(self) -> str:
        return f"{self.run_id}/{self.task}/{self.strategy}"


def list_runs(storage: Any, output: str, *, run_id: str | None = None) -> list[TaskStatus]:
    """Every ``<run>/<task>/<strategy>`` folder under ``output`` with its state.

    The state is ``completion_state``'s without the fingerprint comparison, checked from
    sizes (and ETags on S3) only: ``pull`` verifies every SHA-256.
    """
    output = as_uri(output)
    backend_class(output)  # a malformed output fails here, before any joining
    if run_id is not None:
        check_name("run_id", run_id)
    base = output if run_id is None else join(output, run_id)
    groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    for rel, obj in storage.listing(base).items():
        parts = rel.split("/") if run_id is None else [run_id, *rel.split("/")]
        if len(parts) >= 4 and parts[2] != SELECTION:
            groups.setdefault((parts[0], parts[1], parts[2]), {})["/".join(parts[3:])] = obj
    statuses = []
    for (run, task, strategy), objects in sorted(groups.items()):
        if not all(is_safe_name(name) for name in (run, task, strategy)):
            names = [escape(repr(name))[:80] for name in (run, task, strategy)]
            statuses.append(TaskStatus(*names, UNSAFE, "", "a name that is not one safe path component"))
            continue
        prefix = join(output, run, task, strategy)
        state, _, reason = task_state_why(storage, prefix, objects, deep=False)
        statuses.append(TaskStatus(run, task, strategy, state, prefix, escape(" ".join(reason.split()))[:300]))
    return statuses


@dataclass
class PullResult:
    """What ``pull`` downloaded."""

    prefix: str
    dest: Path
    files: int
    bytes: int
    seconds: float
    result: Any = None  # the task's results.json as job.results.TaskResult, when it has one

    def summary(self) -> str:
        return (
            f"pulled {self.files} files ({format_size(self.bytes)}) from {self.prefix} into {self.dest} "
            f"in {self.seconds:.1f} s"
        )


def pull_task(
    storage: Any,
    prefix: str,
    dest_dir: str | os.PathLike[str],
    *,
    within: str | os.PathLike[str] | None = None,
    force: bool = False,
    progress: bool = True,
    take_lock: bool = True,
) -> PullResult:
    """Download a complete task into ``dest_dir``, verifying every file against the manifest.

    ``dest_dir`` ends up holding exactly the manifest's files, ``manifest.json`` and
    ``_SUCCESS``: it is replaced as a whole once every file is verified, so an earlier
    pull's stale files go with it. A non-empty ``dest_dir`` that does not hold an earlier
    pull (no ``manifest.json``) is refused unless ``force``. Nothing is written outside
    ``within`` (default: the folder holding ``dest_dir``). A failed or interrupted pull
    leaves ``dest_dir`` as it was.

    The pull holds ``within``'s lock (``download.destination_lock``, refused at once when
    another pull holds it) unless ``take_lock`` is False: the caller holds it. The
    manifest is read only up to ``untrusted.MAX_MANIFEST_BYTES``; a ``results.json`` is
    checked against its schema (``job.results.TaskResult``) before the folder is installed:
    a bad one is an ``untrusted.InvalidJSONError`` and nothing is installed.
    """
    root = Path(within) if within is not None else Path(dest_dir).absolute().parent
    prefix = as_uri(prefix)
    start = time.monotonic()
    objects = storage.listing(prefix)
    manifest_uri = join(prefix, MANIFEST)
    if not objects:
        raise InputError(f"{escape(prefix)}: nothing there")
    if MANIFEST not in objects:
        raise InputError(f"{escape(prefix)}: no {MANIFEST}; not a published task folder")
    if MARKER not in objects:
        raise InputError(
            f"{escape(prefix)}: not complete (no {MARKER} marker); the task failed, was gated or is still running"
        )
    if objects[MANIFEST].refused:
        raise InputError(f"{escape(prefix)}: refusing {escape(objects[MANIFEST].refused)}")
    if objects[MANIFEST].size > MAX_MANIFEST_BYTES:
        raise TooLargeError(f"{escape(manifest_uri)}: larger than the {MAX_MANIFEST_BYTES} bytes a manifest may be")
    raw = storage.get_bytes(manifest_uri, MAX_MANIFEST_BYTES)
    manifest = parse_manifest(raw, manifest_uri)
    files: dict[str, dict[str, Any]] = manifest["files"]
    check_listed(objects, files, prefix, MANIFEST)
    if RESULTS in files and files[RESULTS]["size"] > MAX_RESULTS_BYTES:
        raise TooLargeError(f"{escape(prefix)}/{RESULTS}: larger than the {MAX_RESULTS_BYTES} bytes it may be")
    results: list[Any] = []

    def check_results(folder: Path) -> None:
        if RESULTS in files:
            results.append(load_results((folder / RESULTS).read_bytes(), f"{prefix}/{RESULTS}"))

    # Locked only now: a task refused for what the store holds writes nothing, the lock included.
    with destination_lock(root) if take_lock else contextlib.nullcontext():
        total = _download(storage, prefix, files, raw, Path(dest_dir), root, force, progress, check_results)
    return PullResult(prefix, Path(dest_dir), len(files), total, round(time.monotonic() - start, 2), *results[:1])


def _download(
    storage: Any,
    prefix: str,
    files: dict[str, dict[str, Any]],
    raw: bytes,
    dest: Path,
    root: Path,
    force: bool,
    progress: bool,
    check: Any,
) -> int:
    """The local part of ``pull_task``, under the destination's lock."""
    if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
        raise InputError(f"{dest}: not a folder; refusing to replace it")
    if dest.is_dir() and any(dest.iterdir()) and not (dest / MANIFEST).is_file() and not force:
        raise InputError(f"{dest}: not empty and not an earlier pull; choose another --dest, or --force to replace it")
    expected = {rel: Expected(join(prefix, rel), entry["size"], entry["sha256"]) for rel, entry in files.items()}
    total = sum(entry["size"] for entry in files.values())
    with progress_bar(total, f"download {tail(prefix)}", progress) as bar:
        download_verified(
            storage,
            expected,
            dest,
            within=root,
            extra={MANIFEST: raw},
            progress=bar.update,
            check=check,
            marker=MARKER,
        )
    return total
