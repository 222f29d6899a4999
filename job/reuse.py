"""Reuse keys for cached build artifacts (exports, compressed models, ONNX and OpenVINO
conversions, accuracy results): a folder is reused only while the key of what built it
is the same; a different key is said in the log and the artifact is rebuilt.

A key is the SHA-256 of a JSON document of named parts: the content of the input files,
the source text of the code that builds the artifact (functions or whole files), the
settings, and the versions of the libraries involved. Anything that can change the
artifact belongs in it; a part left out is a stale artifact reused silently.
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

__all__ = ["MARKER", "code_text", "file_digest", "fresh", "key", "mark"]

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


def code_text(*items: Any) -> str:
    """The source text of functions, classes, modules or files, concatenated."""
    parts = []
    for item in items:
        if isinstance(item, (str, Path)):
            parts.append(Path(item).read_text(encoding="utf-8"))
        else:
            parts.append(inspect.getsource(item))
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
    log.info("rebuilding %s%s: the inputs, code or settings that built it changed", folder, f" ({what})" if what else "")
    return False


def mark(folder: str | Path, value: str, **info: Any) -> None:
    """Record that ``folder`` is complete and was built under key ``value`` (last step)."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    (Path(folder) / MARKER).write_text(json.dumps({"key": value, **info}, default=str) + "\n", encoding="utf-8")
