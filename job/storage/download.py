"""The one verified download, used by ``pull`` (results) and ``fetch`` (inputs).

Files go into a temp folder beside the target, each is checked (against the manifest's
SHA-256 and size, or, when no manifest describes it, against the store's own checksum),
then the temp folder replaces the target as a whole: the target ends up holding exactly
the files downloaded, and nothing else. A failure or an interruption (Ctrl-C, SIGTERM
turned into an exception by the entry point) removes the temp folder; a temp folder left
by a killed process is removed by the next download of the same target.

Every local path is checked against the resolved root the caller names (``within``):
no name, however formed, is written outside it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from job.errors import InputError, JobError, StorageError
from job.storage.base import ObjectInfo, Progress, content_matches, describe
from job.storage.locations import escape, inside, safe_relpath

__all__ = ["LOCK_NAME", "DestinationBusyError", "Expected", "check_listed", "destination_lock", "download_verified"]

log = logging.getLogger(__name__)

_PARTIAL = ".partial"
LOCK_NAME = ".act-pull.lock"
_OLD = ".old"


@dataclass(frozen=True)
class Expected:
    """What one downloaded file must be: its remote URI, size and, from a manifest, SHA-256
    (None: verified by the store's checksum of the object)."""

    uri: str
    size: int
    sha256: str | None = None


def check_listed(objects: dict[str, ObjectInfo], files: dict[str, dict[str, Any]], prefix: str, manifest: str) -> None:
    """Every file the manifest lists is there with its size, and may be read."""
    for rel, entry in files.items():
        obj = objects.get(rel)
        if obj is None:
            raise StorageError(f"{escape(prefix)}/{escape(rel)}: listed in {manifest} but missing")
        if obj.refused:
            raise InputError(f"{escape(prefix)}: refusing {escape(obj.refused)}")
        if obj.size != entry["size"]:
            raise StorageError(
                f"{escape(prefix)}/{escape(rel)}: {obj.size} bytes stored, {entry['size']} in {manifest}"
            )


def _local_error(exc: OSError, target: Path) -> InputError:
    return InputError(f"{target}: {describe(exc)}" + (f" ({exc.filename})" if exc.filename else ""))


def _resolve_future(path: Path) -> Path:
    """Where ``path`` would be, symlinks of its existing part followed, '..' of the rest applied."""
    probe = path
    while not probe.exists() and not probe.is_symlink() and probe != probe.parent:
        probe = probe.parent
    rest = os.path.relpath(path, probe) if probe != path else "."
    return Path(os.path.normpath(probe.resolve() / rest))


def _is_within(path: Path, root: Path) -> bool:
    return path != root and path.is_relative_to(root)


class DestinationBusyError(InputError):
    """Another process holds the destination's pull lock."""


@contextlib.contextmanager
def destination_lock(root: Path, *, wait: bool = False) -> Iterator[Path]:
    """Hold ``root/.act-pull.lock`` (``flock``, exclusive) while pulling into ``root``.

    Two pulls into one destination would otherwise remove each other's temp folders (a
    download removes the leftovers of killed ones) and install folders the other has cut.
    Without ``wait`` a held lock is refused at once (DestinationBusyError, exit 2); with it,
    the second pull waits. The OS drops the lock when its holder dies (even by SIGKILL), so
    a killed pull never blocks the next one. The file itself stays (removing it would race).
    """
    import fcntl

    path = Path(root) / LOCK_NAME
    try:
        Path(root).mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise _local_error(exc, path) from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise DestinationBusyError(
                f"{root}: another pull is writing into it (it holds {path}); try again when it ends, or pass --wait"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())  # for a person looking: who holds it
        yield path
    finally:
        os.close(fd)  # releases the lock


def _remove_leftovers(target: Path) -> None:
    """Temp folders of an earlier download of the same target that was killed."""
    with contextlib.suppress(OSError):
        for path in target.parent.iterdir():
            if (
                path.name.startswith(f".{target.name}.")
                and path.name.endswith((_PARTIAL, _OLD))
                and path.is_dir()
                and not path.is_symlink()
            ):
                shutil.rmtree(path, ignore_errors=True)
                log.info("removed %s, left by an interrupted download", path)


def download_verified(
    storage: Any,
    files: dict[str, Expected],
    target: Path,
    *,
    within: Path,
    extra: dict[str, bytes] | None = None,
    progress: Progress | None = None,
    check: Callable[[Path], None] | None = None,
    marker: str | None = None,
) -> int:
    """Download ``files`` (relative path -> what it must be) into ``target``, verified, plus
    ``extra`` files written as given; replace ``target`` as a whole. Returns the bytes downloaded.

    Refuses (InputError, exit 2), before writing anything, a path that is unsafe or would
    land outside ``within``; a problem of the local destination is an InputError too; a
    download that does not match is a StorageError (exit 4). ``check`` is called with the
    temp folder once every file is verified, before it is installed: what it raises stops
    the install. ``marker`` (an empty file) is written into ``target`` after the install, so
    a temp folder left by a killed process never holds it.
    """
    extra = extra or {}
    target = Path(target)
    where = str(target)
    root = Path(within).resolve()
    if not _is_within(_resolve_future(target), root):
        raise InputError(f"{escape(where)}: refusing it: it resolves outside {root}")
    if target.is_symlink():
        raise InputError(f"{target}: is a symlink; refusing to replace it")
    for rel in [*files, *extra]:
        safe_relpath(rel, where)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_leftovers(target)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=_PARTIAL, dir=target.parent))
        identity = _identity(tmp)
    except OSError as exc:
        raise _local_error(exc, target.parent) from exc
    total = 0
    try:
        for rel, expected in sorted(files.items()):
            local = inside(tmp, rel, where)  # a fresh folder: '..' and links were refused above
            digest = storage.get_file(expected.uri, local, progress=progress)
            if expected.sha256 is not None:
                if (digest.sha256, digest.size) != (expected.sha256, expected.size):
                    raise StorageError(
                        f"{escape(expected.uri)}: content does not match its manifest (SHA-256 or size differs)"
                    )
            else:
                _verify_by_store(storage, expected, local, digest.size)
            total += digest.size
        for rel, data in extra.items():
            local = inside(tmp, rel, where)
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_bytes(data)
        _check_complete(tmp, identity, {rel: e.size for rel, e in files.items()}, extra, where)
        if check is not None:
            check(tmp)
        _install(tmp, target)
        if marker is not None:
            (target / marker).write_bytes(b"")
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError) and not isinstance(exc, JobError):
            raise _local_error(exc, target) from exc
        raise
    return total


def _identity(path: Path) -> tuple[int, int]:
    info = os.lstat(path)
    return info.st_dev, info.st_ino


def _check_complete(
    tmp: Path, identity: tuple[int, int], sizes: dict[str, int], extra: dict[str, bytes], where: str
) -> None:
    """The temp folder is still the one this download made (not removed and made again by
    someone else) and holds exactly the files verified, each of its size: else nothing is
    installed."""
    found = {
        os.path.relpath(os.path.join(folder, name), tmp).replace(os.sep, "/"): os.lstat(os.path.join(folder, name))
        for folder, _, names in os.walk(tmp)
        for name in names
    }
    wanted = {**sizes, **{rel: len(data) for rel, data in extra.items()}}
    if _identity(tmp) != identity or {rel: info.st_size for rel, info in found.items()} != wanted:
        raise InputError(
            f"{escape(where)}: the download's temp folder {tmp.name} was changed by another process "
            "(another pull into the same place?); nothing installed"
        )


def _verify_by_store(storage: Any, expected: Expected, local: Path, size: int) -> None:
    """No manifest describes this object: its size and the store's own checksum must match."""
    if size != expected.size:
        raise StorageError(f"{escape(expected.uri)}: downloaded {size} bytes, {expected.size} listed")
    checksum = storage.backend(expected.uri).store_checksum(expected.uri)
    if checksum is None:
        raise InputError(
            f"{escape(expected.uri)}: cannot verify it: "
            "no manifest.json beside it and the store keeps no checksum of it "
            "(upload it with a SHA-256 or CRC32 checksum, or publish the folder with a manifest.json)"
        )
    if not content_matches(*checksum, local):
        raise StorageError(f"{escape(expected.uri)}: content does not match the store's {checksum[0]} checksum")


def _install(tmp: Path, target: Path) -> None:
    """``tmp`` becomes ``target``; an earlier ``target`` is moved aside, then removed."""
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=_OLD, dir=target.parent))
        os.replace(target, old / "x")
    try:
        os.replace(tmp, target)
    except BaseException:
        if old is not None:
            os.replace(old / "x", target)  # put the earlier copy back
            old.rmdir()
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
