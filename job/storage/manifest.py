"""The published task folder's ``manifest.json`` and ``_SUCCESS`` marker, and the state of
a task folder read from them.

``manifest.json`` lists every file of the folder with its SHA-256 and size (and, on S3,
the ETag it was stored under), the config fingerprint and the task's status. ``_SUCCESS``
is written last, for a complete task only.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from job.errors import InputError
from job.storage.base import NotFoundError, ObjectInfo
from job.storage.locations import UnsafePathError, escape, join, safe_relpath

__all__ = ["MANIFEST", "MARKER", "SCHEMA", "STATUSES", "UNSAFE", "completion_state", "parse_manifest", "task_state"]

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
MARKER = "_SUCCESS"
SCHEMA = 1
STATUSES = ("complete", "gated", "failed")
# The state of a task folder that names something unsafe (a manifest path out of the
# folder, a symlink out of it, a name that is not one safe component): never read.
UNSAFE = "unsafe"


def parse_manifest(data: bytes, where: str) -> dict[str, Any]:
    """A manifest with safe paths, or InputError saying what is wrong."""
    try:
        manifest = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{escape(where)}: not valid JSON ({escape(str(exc))})") from None
    if (
        not isinstance(manifest, dict)
        or manifest.get("schema") != SCHEMA
        or not isinstance(manifest.get("files"), dict)
    ):
        raise InputError(f"{escape(where)}: not a manifest of schema {SCHEMA} with a 'files' mapping")
    for rel, entry in manifest["files"].items():
        safe = safe_relpath(rel, where)
        if rel in (MANIFEST, MARKER):
            raise UnsafePathError(f"{escape(where)}: lists the reserved name {rel!r}")
        if safe != rel:  # 'a\\b' and 'a/b' would both land in a/b
            raise UnsafePathError(f"{escape(where)}: refusing {escape(repr(rel))}: write paths with '/'")
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("sha256"), str)
            or not re.fullmatch(r"[0-9a-f]{64}", entry["sha256"])
            or not isinstance(entry.get("size"), int)
            or isinstance(entry.get("size"), bool)
            or entry["size"] < 0
        ):
            raise InputError(f"{escape(where)}: entry {escape(repr(rel))} needs a sha256 (64 hex digits) and a size")
    for rel in manifest["files"]:
        # A file that is also a folder of another entry ('a' and 'a/b') cannot be written.
        parts = rel.split("/")
        for cut in range(1, len(parts)):
            if "/".join(parts[:cut]) in manifest["files"]:
                raise UnsafePathError(
                    f"{escape(where)}: {escape(repr('/'.join(parts[:cut])))} is listed as a file and as a folder"
                )
    return manifest


def task_state(
    storage: Any, prefix: str, objects: dict[str, ObjectInfo], deep: bool
) -> tuple[str, dict[str, Any] | None]:
    """State of one task folder from its listing (fingerprint not compared): ``absent``,
    ``complete``, ``incomplete`` or ``unsafe``, and its manifest when readable."""
    if not objects:
        return "absent", None
    if MARKER not in objects or MANIFEST not in objects:
        return "incomplete", None
    if objects[MANIFEST].refused:
        log.warning("%s", escape(objects[MANIFEST].refused))
        return UNSAFE, None
    try:
        manifest = parse_manifest(storage.get_bytes(join(prefix, MANIFEST)), join(prefix, MANIFEST))
    except NotFoundError:
        return "incomplete", None
    except UnsafePathError as exc:
        log.warning("%s", exc)
        return UNSAFE, None
    except InputError as exc:  # not JSON, another schema: not a usable manifest
        log.warning("%s", exc)
        return "incomplete", None
    if manifest.get("status") != "complete":
        return "incomplete", manifest
    local = storage.is_local(prefix)
    for rel, entry in manifest["files"].items():
        obj = objects.get(rel)
        if obj is not None and obj.refused:
            log.warning("%s: %s", escape(prefix), escape(obj.refused))
            return UNSAFE, manifest
        if obj is None or obj.size != entry["size"]:
            log.info(
                "%s: %s is %s", prefix, rel, "missing" if obj is None else "of another size than its manifest says"
            )
            return "incomplete", manifest
        if entry.get("etag") and obj.etag and entry["etag"] != obj.etag:
            log.info("%s: %s was overwritten after publishing", prefix, rel)
            return "incomplete", manifest
        if deep and local and storage.sha256(join(prefix, rel)) != entry["sha256"]:
            log.info("%s: %s does not match its SHA-256 in the manifest", prefix, rel)
            return "incomplete", manifest
    return "complete", manifest


def completion_state(storage: Any, prefix: str, fingerprint: str) -> str:
    """``absent``, ``complete``, ``config_changed`` or ``incomplete``.

    Complete means: ``_SUCCESS`` present and every file of ``manifest.json`` there with
    its size (on S3 also its ETag; locally its SHA-256), under the same fingerprint (of
    the config and the inputs). A complete task of another fingerprint is ``config_changed``.
    """
    state, manifest = task_state(storage, prefix, storage.listing(prefix), deep=True)
    if state == "complete" and manifest is not None and manifest.get("fingerprint") != fingerprint:
        return "config_changed"
    return state
