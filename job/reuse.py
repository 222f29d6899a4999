"""Reuse keys for cached build artifacts (exports, compressed models, ONNX and OpenVINO
conversions, accuracy results): a folder is reused only while the key of what built it
is the same; a different key is said in the log and the artifact is rebuilt.

A key is the SHA-256 of a JSON document of named parts: the content of the input files,
the source text of the code that builds the artifact (the files that hold it), the
settings, and the versions of the libraries involved. Anything that can change the
artifact belongs in it; a part left out is a stale artifact reused silently.

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
from pathlib import Path
from typing import Any

__all__ = ["MARKER", "code_text", "file_digest", "fresh", "key", "mark", "snapshot"]

log = logging.getLogger("job.reuse")

MARKER = ".reuse-key"


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


def key(*, files: list[str | Path] | tuple = (), code: str = "", **parts: Any) -> str:
    """The reuse key of an artifact built from ``files`` by ``code`` with ``parts``
    (settings, versions: anything JSON can show)."""
    document = {
        "files": [file_digest(f) for f in files],
        "code": hashlib.sha256(code.encode("utf-8")).hexdigest(),
        "parts": parts,
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def fresh(folder: str | Path, wanted: str, what: str = "") -> bool:
    """Whether ``folder`` holds an artifact built under the key ``wanted``. A folder built
    under another key is reported (never reused silently)."""
    marker = Path(folder) / MARKER
    try:
        found = json.loads(marker.read_text(encoding="utf-8")).get("key")
    except (OSError, ValueError, AttributeError):
        return False
    if found == wanted:
        log.info("reusing %s%s (same inputs, code and settings)", folder, f" ({what})" if what else "")
        return True
    log.info(
        "rebuilding %s%s: the inputs, code or settings that built it changed", folder, f" ({what})" if what else ""
    )
    return False


def mark(folder: str | Path, value: str, **info: Any) -> None:
    """Record that ``folder`` is complete and was built under key ``value`` (last step)."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    (Path(folder) / MARKER).write_text(json.dumps({"key": value, **info}, default=str) + "\n", encoding="utf-8")
