"""Locations: URIs of local folders and S3 buckets, and the names and paths that may come
from a bucket key or a manifest.

Everything a store, a key or a manifest names is checked here before it is used to build a
local path: a run, task or strategy name is one safe path component (``check_name``), a file
path inside a task folder is made of safe components (``safe_relpath``), and ``inside``
refuses a path that resolves (through ``..`` or a symlink) outside its root. ``escape``
(``job.terminal.escape``, re-exported) shows an untrusted name without letting control
characters reach a terminal.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from job.errors import InputError
from job.storage.scrub import scrub_url
from job.terminal import escape

__all__ = [
    "UnsafePathError",
    "as_uri",
    "check_name",
    "escape",
    "inside",
    "is_safe_name",
    "join",
    "safe_relpath",
    "scheme",
    "split_s3",
]

_SCHEME_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
# Whole-string patterns, used with ``fullmatch`` only: ``re.match`` with ``^...$`` accepts a
# trailing newline ('$' matches before a final '\n').
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IPV4_RE = re.compile(r"\d{1,3}(\.\d{1,3}){3}")
_NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,63}")
# C0 and C1 controls, DEL, and the bidirectional overrides that reorder what a terminal shows.
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# Longest file name component most file systems take (bytes): a longer one is refused
# before anything is written, as a bad manifest (exit 2), not as a failed write.
_MAX_COMPONENT = 255


class UnsafePathError(InputError):
    """A name or path from a key or a manifest that could lead outside its folder."""


def scheme(uri: str) -> str:
    """``s3`` for ``s3://...``, ``file`` for ``file://...``, ``""`` for a plain path."""
    match = _SCHEME_RE.match(uri)
    return match.group(1).lower() if match else ""


def as_uri(uri: Any) -> str:
    if isinstance(uri, os.PathLike):
        return os.fspath(uri)
    if not isinstance(uri, str) or not uri:
        raise InputError(f"expected a local path or s3://bucket/prefix, got {uri!r}")
    return uri


def join(prefix: str, *parts: str) -> str:
    base = prefix.rstrip("/")
    if not base and not scheme(prefix):
        base = "" if prefix.startswith("/") else "."
    return "/".join([base, *parts])


def split_s3(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/key/`` -> (``bucket``, ``some/key``); InputError when malformed."""
    rest = uri[len("s3://") :] if uri[:5].lower() == "s3://" else uri
    bucket, _, key = rest.partition("/")
    shown = escape(scrub_url(uri))
    if not bucket:
        raise InputError(f"{shown}: no bucket name; expected s3://bucket/prefix")
    if not _BUCKET_RE.fullmatch(bucket) or ".." in bucket or _IPV4_RE.fullmatch(bucket):
        name = f"***@{bucket.rpartition('@')[2]}" if "@" in bucket else bucket  # user:password@ never shown
        raise InputError(
            f"{shown}: {escape(repr(name))} is not a valid bucket name "
            "(3-63 characters: lowercase letters, digits, '.' and '-')"
        )
    return bucket, key.strip("/")


def is_safe_name(value: Any) -> bool:
    """One path component of letters, digits, '.', '_' and '-' (1-63), not '.' or '..'."""
    return isinstance(value, str) and bool(_NAME_RE.fullmatch(value)) and value not in (".", "..")


def check_name(name: str, value: Any) -> str:
    """A run, task or strategy name as one safe path component, or InputError."""
    if not is_safe_name(value):
        shown = escape(repr(value)) if isinstance(value, str) else repr(value)
        raise UnsafePathError(f"{name}: {shown} may hold only letters, digits, '.', '_' and '-' (1-63 characters)")
    return value


def safe_relpath(rel: str, where: str) -> str:
    """A relative path that stays inside its folder, or InputError.

    Refused: absolute paths, drive letters, ``..`` and ``.`` components, empty components,
    control characters, components longer than a file name may be; a backslash counts as a
    separator (a key written on Windows).
    """
    if not isinstance(rel, str) or not rel:
        raise UnsafePathError(f"{escape(where)}: refusing an empty path")
    parts = rel.replace("\\", "/").split("/")
    if (
        rel.startswith(("/", "\\"))
        or re.match(r"^[A-Za-z]:", rel)
        or _CONTROL_RE.search(rel)
        or any(part in ("", ".", "..") for part in parts)
    ):
        raise UnsafePathError(
            f"{escape(where)}: refusing unsafe path {escape(repr(rel))} "
            "(absolute, '..', empty component or control character)"
        )
    if any(len(part.encode("utf-8", "surrogatepass")) > _MAX_COMPONENT for part in parts):
        raise UnsafePathError(
            f"{escape(where)}: refusing {escape(repr(rel[:60]))}...: a name longer than {_MAX_COMPONENT} bytes"
        )
    return "/".join(parts)


def inside(root: Path, rel: str, where: str) -> Path:
    """``root/rel`` when it resolves inside ``root`` (``..`` and symlinks followed), else InputError."""
    resolved_root = Path(root).resolve()
    target = (resolved_root / rel).resolve()
    if target != resolved_root and not target.is_relative_to(resolved_root):
        raise UnsafePathError(f"{escape(where)}: refusing {escape(repr(rel))}: it resolves outside {resolved_root}")
    return resolved_root / rel
