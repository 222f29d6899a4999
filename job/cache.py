"""The one artifact cache: built teachers, the embedded data sets, exports, compressed
models, ONNX and OpenVINO conversions and accuracy results are each built once into a
folder and reused only while the key of what built them is the same.

A key is the SHA-256 of a JSON document of named parts: the content of the input files,
the source text of the code that builds the artifact (the files that hold it), the
settings, and the versions of the libraries involved. Anything that can change the
artifact belongs in it; a part left out is a stale artifact reused silently. No version
constant is bumped by hand: a change to the builder's code is a change to the key.

``build_once`` builds into a temporary sibling folder, writes the marker (``MARKER``:
the key, the build's seconds and the ``info`` the build returned) into it last, and swaps
it into place by rename. A crash at any point leaves either the previous complete folder
or folders without a marker, never a marked half-built one. Temporary folders are hidden
(``.NAME.tmp-HOST-PID-*``) so that no glob for results finds them; the next build of the
same artifact removes those whose process is gone (same host, dead pid) and leaves the
others alone (another host, or a live process building the same artifact).

Code is read once per process (``snapshot`` reads it up front): a long run keys its
artifacts by the code it loaded at its start, not by an edit made to the files while it
runs (which would key an artifact built by the old code as if the new code had built it).
Standard library only (ONNX Runtime and OpenVINO benchmark workers import it).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import logging
import os
import secrets
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["MARKER", "Built", "build_once", "code_text", "file_digest", "key", "read_marker", "snapshot", "versions"]

log = logging.getLogger("job.cache")

MARKER = ".cache-key"

_HOST = socket.gethostname() or "host"


# --------------------------------------------------------------------------------------
# Keys
# --------------------------------------------------------------------------------------


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's content (cached per path, size and modification time)."""
    stat = Path(path).stat()
    return _digest(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            sha.update(chunk)
    return sha.hexdigest()


_SOURCES: dict[str, str] = {}


def _source(path: str | Path) -> str:
    resolved = str(Path(path).resolve())
    if resolved not in _SOURCES:
        _SOURCES[resolved] = Path(resolved).read_text(encoding="utf-8")
    return _SOURCES[resolved]


def snapshot(*paths: str | Path) -> None:
    """Read these source files now; later keys use this text (see the module docstring)."""
    for path in paths:
        _source(path)


def _object_source(obj: Any) -> str:
    """A function's or class's source, cut from its file's text as first read."""
    obj = inspect.unwrap(obj)  # lru_cache and other wrappers: the function they wrap
    lines = _source(inspect.getsourcefile(obj)).splitlines(keepends=True)
    if inspect.ismodule(obj):
        return "".join(lines)
    start = inspect.findsource(obj)[1] if inspect.isclass(obj) else obj.__code__.co_firstlineno - 1
    return "".join(inspect.getblock(lines[start:]))


def code_text(*items: Any) -> str:
    """The source text of files, modules, functions or classes, concatenated."""
    parts = []
    for item in items:
        parts.append(_source(item) if isinstance(item, (str, Path)) else _object_source(item))
    return "\n".join(parts)


def versions(*names: str) -> dict[str, str]:
    """Installed versions of these distributions (the ones not installed are left out)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def key(*, files: list[str | Path] | tuple = (), code: str = "", **parts: Any) -> str:
    """The key of an artifact built from ``files`` by ``code`` with ``parts``
    (settings, versions: anything JSON can show)."""
    document = {
        "files": [file_digest(f) for f in files],
        "code": hashlib.sha256(code.encode("utf-8")).hexdigest(),
        "parts": parts,
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True, default=str).encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------------------
# Build once
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Built:
    """A cached artifact: its folder, the ``info`` its build returned (as JSON gives it
    back, whether built now or reused), whether this call reused it, and how long the
    building run took (seconds)."""

    folder: Path
    info: dict[str, Any] = field(default_factory=dict)
    reused: bool = False
    seconds: float | None = None


def read_marker(folder: str | Path) -> dict[str, Any] | None:
    """The marker of a complete ``folder`` (``key``, ``what``, ``seconds``, ``info``), else None."""
    try:
        found = json.loads((Path(folder) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) and isinstance(found.get("key"), str) else None


def build_once(
    folder: str | Path,
    key: str,
    build: Callable[[Path], dict[str, Any] | None],
    *,
    what: str,
    rebuild: bool = False,
) -> Built:
    """``folder`` as built under ``key``: reused when its marker holds ``key`` (and not
    ``rebuild``), else ``build(tmp)`` fills a fresh temporary sibling, the marker is written
    into it last, and it replaces ``folder`` by rename. A build that raises leaves
    ``folder`` as it was (its temporary folder is removed). ``build`` returns the info to
    keep in the marker (JSON: seconds, what was made), or None."""
    folder = Path(folder)
    marker = read_marker(folder)
    if marker is not None and marker["key"] == key and not rebuild:
        log.info("reusing %s (%s)", folder, what)
        return Built(folder, marker.get("info") or {}, True, marker.get("seconds"))
    if rebuild:
        why = "asked to rebuild"
    elif marker is not None:
        why = "built under another key (its inputs, code, settings or versions changed)"
    elif folder.exists():
        why = "no marker (an unfinished build, or one from before this cache)"
    else:
        why = "not built yet"
    log.info("%s %s (%s): %s", "rebuilding" if folder.exists() else "building", folder, what, why)
    folder.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(folder)
    tmp = _fresh_dir(folder)
    _LIVE.add(tmp)
    try:
        started = time.perf_counter()
        info = json.loads(json.dumps(build(tmp) or {}, default=str))
        seconds = round(time.perf_counter() - started, 1)
        _write_marker(tmp, {"key": key, "what": what, "seconds": seconds, "info": info})
        _swap(tmp, folder, key)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        _LIVE.discard(tmp)
    return Built(folder, info, False, seconds)


# Temporary folders this process is building in (its own pid is then not a dead one's).
_LIVE: set[Path] = set()


def _hidden(folder: Path, kind: str) -> str:
    """The name prefix of ``folder``'s temporary (``tmp``) or set-aside (``old``) siblings."""
    return f".{folder.name}.{kind}-{_HOST}-{os.getpid()}"


def _fresh_dir(folder: Path) -> Path:
    """A new empty temporary sibling of ``folder`` (mkdir, so the umask decides its mode:
    ``tempfile.mkdtemp``'s 0700 would become the artifact's)."""
    while True:
        tmp = folder.parent / f"{_hidden(folder, 'tmp')}-{secrets.token_hex(4)}"
        try:
            tmp.mkdir()
        except FileExistsError:
            continue
        return tmp


def _write_marker(tmp: Path, marker: dict[str, Any]) -> None:
    part = tmp / f"{MARKER}.part"  # renamed: a marker is never read half-written
    part.write_text(json.dumps(marker, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(part, tmp / MARKER)


def _swap(tmp: Path, folder: Path, key: str) -> None:
    """Put the complete ``tmp`` in ``folder``'s place: the old folder is renamed aside, then
    removed. Another process may swap in the same artifact meanwhile: retried, and a
    folder that ends up holding this key is as good as ours."""
    for _ in range(3):
        old = None
        if folder.exists() or folder.is_symlink():
            old = Path(tempfile.mkdtemp(prefix=f"{_hidden(folder, 'old')}-", dir=folder.parent))
            try:
                os.replace(folder, old)  # onto the empty placeholder directory
            except FileNotFoundError:  # another process moved it first
                old.rmdir()
                old = None
        try:
            os.replace(tmp, folder)
        except OSError:  # another process's result landed between the two renames
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
            continue
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return
    found = read_marker(folder)
    if found is None or found["key"] != key:
        raise OSError(f"{folder}: could not be replaced (another process keeps writing it)")
    shutil.rmtree(tmp, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # someone else's process (or an unparsable pid): not ours to judge
    return True


def _remove_stale(folder: Path) -> None:
    """Remove ``folder``'s temporary and set-aside siblings left by dead processes on this
    host; warn about the others (another host's or a live process's: not ours to remove)."""
    kept = []
    for kind in ("tmp", "old"):
        prefix = f".{folder.name}.{kind}-"
        for path in folder.parent.iterdir():
            if not path.name.startswith(prefix):
                continue
            owner, pid = _owner(path.name[len(prefix) :])
            # Our own pid: an earlier process's (a restarted container) unless this one builds in it.
            mine = pid == os.getpid()
            if owner == _HOST and pid is not None and (path not in _LIVE if mine else not _alive(pid)):
                log.info("removing %s, left by a process that is gone", path)
                shutil.rmtree(path, ignore_errors=True)
            else:
                kept.append(path.name)
    if kept:
        log.warning("%s: left alone (another process or host may be building it): %s", folder, ", ".join(kept))


def _owner(suffix: str) -> tuple[str, int | None]:
    """``HOST-PID-RANDOM`` -> (HOST, PID); the host name may itself hold dashes."""
    head, _, _random = suffix.rpartition("-")
    host, _, pid = head.rpartition("-")
    return host, int(pid) if pid.isdigit() else None
