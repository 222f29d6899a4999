"""Publishing a task folder: every file (each verified by the store), then
``manifest.json``, then ``_SUCCESS`` last and only for a complete task."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from job.errors import InputError, StorageError
from job.storage.base import describe
from job.storage.local import LocalBackend
from job.storage.locations import as_uri, join, safe_relpath
from job.storage.manifest import MANIFEST, MARKER, SCHEMA, STATUSES

__all__ = ["PublishResult", "format_size", "progress_bar", "publish"]

log = logging.getLogger(__name__)

_MB = 1024 * 1024


def format_size(n: int) -> str:
    return f"{n / _MB:.1f} MB" if n >= _MB / 10 else f"{n / 1024:.1f} KB"


def progress_bar(total: int, desc: str, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        disable=None if enabled else True,
        leave=False,
    )


def tail(prefix: str) -> str:
    """The last two components of a prefix, for a progress bar's label."""
    return "/".join(prefix.rstrip("/").rsplit("/", 2)[-2:])


@dataclass
class PublishResult:
    """What ``publish`` uploaded."""

    prefix: str
    files: int
    bytes: int
    seconds: float
    marker_written: bool

    def summary(self) -> str:
        marker = "marked complete" if self.marker_written else f"no {MARKER} marker"
        return (
            f"published {self.files} files ({format_size(self.bytes)}) to {self.prefix} "
            f"in {self.seconds:.1f} s, {marker}"
        )


def _local_files(local_dir: Path) -> list[tuple[str, Path]]:
    """The files of a folder to publish; a symlink leading out of it is refused."""
    files = []
    root = local_dir.resolve()
    for folder, dirs, names in os.walk(local_dir):
        dirs.sort()
        for name in sorted(names):
            path = Path(folder, name)
            rel = path.relative_to(local_dir).as_posix()
            if rel in (MANIFEST, MARKER):
                continue
            if path.is_symlink() and not path.resolve().is_relative_to(root):
                raise InputError(f"{local_dir}: refusing to publish {rel}, a symlink leading out of the folder")
            files.append((safe_relpath(rel, str(local_dir)), path))
    return files


def publish(
    storage: Any,
    local_dir: str | os.PathLike[str],
    prefix: str,
    *,
    fingerprint: str,
    status: str,
    progress: bool = True,
) -> PublishResult:
    """Upload a task folder, then ``manifest.json``, then ``_SUCCESS`` (complete tasks only).

    Each upload is verified by the store (``Storage.put_file``: its SHA-256 checksum where
    it keeps one, else the size). An old ``_SUCCESS`` (and manifest) at the prefix is
    deleted first, and unfinished multipart uploads left there by a killed run are
    aborted. On any failure, unfinished multipart uploads are aborted (best effort) and a
    ``StorageError`` is raised.
    """
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
    src = Path(local_dir)
    if not src.is_dir():
        raise InputError(f"{src}: no such folder to publish")
    prefix = as_uri(prefix)
    if storage.is_local(prefix):
        dst = LocalBackend.path(prefix).resolve()
        if dst != src.resolve() and dst.is_relative_to(src.resolve()):
            raise InputError(f"cannot publish {src} into {prefix}, a folder inside it")
    files = _local_files(src)
    total = sum(path.stat().st_size for _, path in files)
    start = time.monotonic()
    try:
        storage.delete(join(prefix, MARKER))
        storage.delete(join(prefix, MANIFEST))
        with contextlib.suppress(StorageError):
            stale = storage.abort_uploads(prefix)
            if stale:
                log.info("%s: aborted %d unfinished multipart uploads of an earlier run", prefix, stale)
        entries: dict[str, dict[str, Any]] = {}
        with progress_bar(total, f"upload {tail(prefix)}", progress) as bar:
            for rel, path in files:
                digest = storage.put_file(path, join(prefix, rel), progress=bar.update)
                entries[rel] = {"sha256": digest.sha256, "size": digest.size}
        stored = storage.listing(prefix)
        for rel, entry in entries.items():
            obj = stored.get(rel)
            if obj is None or obj.size != entry["size"]:
                raise StorageError(
                    f"upload to {join(prefix, rel)}: stored size differs from the {entry['size']} bytes sent"
                )
            if obj.etag:
                entry["etag"] = obj.etag
        manifest = {
            "schema": SCHEMA,
            "fingerprint": fingerprint,
            "status": status,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),  # noqa: UP017 - Python 3.10 too
            "files": entries,
        }
        storage.put_bytes(json.dumps(manifest, indent=2, sort_keys=True).encode(), join(prefix, MANIFEST))
        marker = status == "complete"
        if marker:
            storage.put_bytes(b"", join(prefix, MARKER))
    except BaseException as exc:
        with contextlib.suppress(Exception):
            storage.abort_uploads(prefix)
        if isinstance(exc, OSError):
            raise StorageError(storage.clean(f"publish to {prefix}: {describe(exc)}")) from exc
        raise
    return PublishResult(
        prefix, len(entries), sum(e["size"] for e in entries.values()), round(time.monotonic() - start, 2), marker
    )
