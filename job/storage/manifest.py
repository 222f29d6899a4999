"""The published task folder's ``manifest.json`` and ``_SUCCESS`` marker, and the state of
a task folder read from them.

``manifest.json`` lists every file of the folder with its SHA-256 and size (and, on S3,
the ETag it was stored under), the config fingerprint and the task's status. ``_SUCCESS``
is written last, for a complete task only.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from typing import Any

from job.errors import InputError
from job.storage.base import NotFoundError, ObjectInfo
from job.storage.locations import UnsafePathError, escape, join, safe_relpath
from job.storage.untrusted import MAX_MANIFEST_BYTES, InvalidJSONError, TooLargeError, load_json

__all__ = [
    "INVALID",
    "MANIFEST",
    "MARKER",
    "SCHEMA",
    "STATUSES",
    "UNSAFE",
    "completion_state",
    "parse_manifest",
    "task_state",
    "task_state_why",
]

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
MARKER = "_SUCCESS"
SCHEMA = 1
STATUSES = ("complete", "gated", "failed")
# The state of a task folder that names something unsafe (a manifest path out of the
# folder, a symlink out of it, a name that is not one safe component): never read.
UNSAFE = "unsafe"
# The state of a task folder whose manifest.json is not a usable manifest (not JSON, too
# large or too deep to read, another schema, entries of the wrong types): never read.
INVALID = "invalid"


def parse_manifest(data: bytes, where: str) -> dict[str, Any]:
    """A manifest with safe paths, or InputError saying what is wrong."""
    manifest = load_json(data, where)
    if (
        not isinstance(manifest, dict)
        or manifest.get("schema") != SCHEMA
        or not isinstance(manifest.get("files"), dict)
    ):
        raise InvalidJSONError(f"{escape(where)}: not a manifest of schema {SCHEMA} with a 'files' mapping")
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
            raise InvalidJSONError(
                f"{escape(where)}: entry {escape(repr(rel))[:80]} needs a sha256 (64 hex digits) and a size"
            )
    for rel in manifest["files"]:
        # A file that is also a folder of another entry ('a' and 'a/b') cannot be written.
        parts = rel.split("/")
        for cut in range(1, len(parts)):
            if "/".join(parts[:cut]) in manifest["files"]:
                raise UnsafePathError(
                    f"{escape(where)}: {escape(repr('/'.join(parts[:cut])))} is listed as a file and as a folder"
                )
    _check_collisions(manifest["files"], where)
    return manifest


def _fold(path: str) -> str:
    """The name a case-insensitive, normalizing file system (macOS, Windows) files ``path`` under."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", path).casefold())


def _check_collisions(files: dict[str, Any], where: str) -> None:
    """Refuse two paths (files, or the folders holding them, or a reserved name) that one
    case-insensitive or Unicode-normalizing file system would write as one: the second
    would silently replace the first on the laptop that pulls."""
    seen: dict[str, str] = {_fold(name): name for name in (MANIFEST, MARKER)}
    for rel in files:
        parts = rel.split("/")
        for cut in range(1, len(parts) + 1):
            path = "/".join(parts[:cut])
            other = seen.setdefault(_fold(path), path)
            if other != path:
                raise UnsafePathError(
                    f"{escape(where)}: {escape(repr(path))[:80]} and {escape(repr(other))[:80]} "
                    "are one name on a case-insensitive or normalizing file system"
                )


def task_state(
    storage: Any, prefix: str, objects: dict[str, ObjectInfo], deep: bool
) -> tuple[str, dict[str, Any] | None]:
    """State of one task folder from its listing (fingerprint not compared): ``absent``,
    ``complete``, ``incomplete``, ``unsafe`` or ``invalid``, and its manifest when readable."""
    state, manifest, _ = task_state_why(storage, prefix, objects, deep)
    return state, manifest


def task_state_why(
    storage: Any, prefix: str, objects: dict[str, ObjectInfo], deep: bool
) -> tuple[str, dict[str, Any] | None, str]:
    """``task_state`` with, for an ``unsafe`` or ``invalid`` folder, the one-line reason.

    The manifest is untrusted: read only when the listing (then the store's answer) says it
    is at most ``MAX_MANIFEST_BYTES``; one that is not a usable manifest makes the folder
    ``invalid``, one naming an unsafe or colliding path makes it ``unsafe``.
    """
    if not objects:
        return "absent", None, ""
    if MARKER not in objects or MANIFEST not in objects:
        return "incomplete", None, ""
    if objects[MANIFEST].refused:
        log.warning("%s", escape(objects[MANIFEST].refused))
        return UNSAFE, None, escape(objects[MANIFEST].refused)
    manifest_uri = join(prefix, MANIFEST)
    try:
        size = objects[MANIFEST].size
        if size > MAX_MANIFEST_BYTES:
            raise TooLargeError(f"{escape(manifest_uri)}: {size} bytes, more than the {MAX_MANIFEST_BYTES} to read")
        manifest = parse_manifest(storage.get_bytes(manifest_uri, MAX_MANIFEST_BYTES), manifest_uri)
    except NotFoundError:
        return "incomplete", None, ""
    except UnsafePathError as exc:
        log.warning("%s", exc)
        return UNSAFE, None, str(exc)
    except InputError as exc:  # not JSON, too large or deep, another schema: not a usable manifest
        log.warning("%s", exc)
        return INVALID, None, str(exc)
    if manifest.get("status") != "complete":
        return "incomplete", manifest, ""
    local = storage.is_local(prefix)
    for rel, entry in manifest["files"].items():
        obj = objects.get(rel)
        if obj is not None and obj.refused:
            log.warning("%s: %s", escape(prefix), escape(obj.refused))
            return UNSAFE, manifest, f"{escape(prefix)}: {escape(obj.refused)}"
        if obj is None or obj.size != entry["size"]:
            log.info(
                "%s: %s is %s", prefix, rel, "missing" if obj is None else "of another size than its manifest says"
            )
            return "incomplete", manifest, ""
        if entry.get("etag") and obj.etag and entry["etag"] != obj.etag:
            log.info("%s: %s was overwritten after publishing", prefix, rel)
            return "incomplete", manifest, ""
        if deep and local and storage.sha256(join(prefix, rel)) != entry["sha256"]:
            log.info("%s: %s does not match its SHA-256 in the manifest", prefix, rel)
            return "incomplete", manifest, ""
    return "complete", manifest, ""


def completion_state(storage: Any, prefix: str, fingerprint: str) -> str:
    """``absent``, ``complete``, ``config_changed`` or ``incomplete``.

    Complete means: ``_SUCCESS`` present and every file of ``manifest.json`` there with
    its size (on S3 also its ETag; locally its SHA-256), under the same fingerprint (of
    the config and the inputs). A complete task of another fingerprint is ``config_changed``.
    """
    state, manifest = task_state(storage, prefix, storage.listing(prefix), deep=True)
    if state == INVALID:  # the job's own output with a broken manifest: published again
        return "incomplete"
    if state == "complete" and manifest is not None and manifest.get("fingerprint") != fingerprint:
        return "config_changed"
    return state
