"""Inputs of the job (model folder, data files): fetched into a verified local cache, and
identified by content for the completion fingerprint."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from job.errors import InputError, StorageError
from job.storage.base import hash_file
from job.storage.download import Expected, check_listed, download_verified
from job.storage.local import LocalBackend
from job.storage.locations import as_uri, escape, join, safe_relpath, split_s3
from job.storage.manifest import MANIFEST, parse_manifest
from job.storage.untrusted import MAX_MANIFEST_BYTES

__all__ = ["fetch", "input_identity", "run_fingerprint"]

log = logging.getLogger(__name__)

STAMP = ".complete"  # written into a fetch cache folder after a verified download


def _remote(storage: Any, uri: str) -> tuple[str, str, dict[str, Any]]:
    """(kind, file name, objects) of an s3:// input: a folder (prefix) or one object."""
    _, key = split_s3(uri)
    objects = storage.listing(uri)
    if objects:
        return "folder", "", objects
    obj = storage.stat(uri) if key else None
    if obj is None:
        raise InputError(f"{escape(uri)}: nothing there (no object, no objects under it)")
    name = key.rsplit("/", 1)[-1]
    return "file", name, {name: obj}


def fetch(storage: Any, uri: str, cache_dir: str | os.PathLike[str]) -> Path:
    """A local path for an input: a local path as is, an s3:// folder or object cached.

    S3 inputs go to ``cache_dir/<sha256(uri)[:16]>/`` through the one verified download.
    A folder with a ``manifest.json`` brings exactly the files it lists, each checked
    against its SHA-256; anything else (a folder without a manifest, one object) is
    checked against the store's own checksum of each object (SHA-256, CRC32, or the MD5
    ETag of a single PUT) and refused when the store keeps none. The cache folder is
    stamped ``.complete`` and reused while its stamp matches the remote listing (keys,
    sizes, ETags), so a changed input is fetched again. Returns the folder, or the file
    for one object.
    """
    uri = as_uri(uri)
    if storage.is_local(uri):
        path = LocalBackend.path(uri)
        if not path.exists():
            raise InputError(f"{escape(uri)}: no such file or folder")
        return path
    bucket, key = split_s3(uri)
    canonical = f"s3://{bucket}/{key}"
    cache = Path(cache_dir)
    target = cache / hashlib.sha256(canonical.encode()).hexdigest()[:16]
    kind, name, objects = _remote(storage, uri)
    result = target if kind == "folder" else target / name
    signature = {
        "uri": canonical,
        "kind": kind,
        "objects": {rel: [o.size, o.etag] for rel, o in sorted(objects.items())},
    }
    try:
        if json.loads((target / STAMP).read_text(encoding="utf-8")) == signature:
            log.debug("%s: cached in %s", uri, target)
            return result
    except (OSError, ValueError):
        pass
    for rel in objects:
        safe_relpath(rel, uri)
        if rel == STAMP:
            raise InputError(f"{escape(uri)}: holds {STAMP}, a name the cache reserves")
    extra = {STAMP: json.dumps(signature, sort_keys=True).encode()}
    if kind == "folder" and MANIFEST in objects:
        raw = storage.get_bytes(join(uri, MANIFEST), MAX_MANIFEST_BYTES)
        files = parse_manifest(raw, join(uri, MANIFEST))["files"]
        check_listed(objects, files, uri, MANIFEST)
        expected = {rel: Expected(join(uri, rel), entry["size"], entry["sha256"]) for rel, entry in files.items()}
        extra[MANIFEST] = raw
        skipped = sorted(set(objects) - set(files) - {MANIFEST})
        if skipped:
            log.info(
                "%s: %d objects not in %s left out (%s)",
                uri,
                len(skipped),
                MANIFEST,
                ", ".join(map(escape, skipped[:5])),
            )
    else:
        expected = {rel: Expected(uri if kind == "file" else join(uri, rel), obj.size) for rel, obj in objects.items()}
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{cache}: cannot create the cache ({exc.strerror or exc})") from exc
    download_verified(storage, expected, target, within=cache, extra=extra)
    log.info("%s: fetched into %s", uri, target)
    return result


def input_identity(storage: Any, uri: str) -> Any:
    """What identifies an input's content: SHA-256s (a manifest's, or a local file's), else
    the store's ETags. A changed model or data file at the same URI changes it."""
    uri = as_uri(uri)
    if storage.is_local(uri):
        path = LocalBackend.path(uri)
        if path.is_file():
            return hash_file(path).sha256
        if not path.is_dir():
            raise InputError(f"{escape(uri)}: no such file or folder")
        root = path.resolve()
        found = {}
        for rel, obj in sorted(storage.listing(uri).items()):
            if not obj.refused:
                found[rel] = hash_file(root / rel).sha256
        return found
    kind, _, objects = _remote(storage, uri)
    if kind == "folder" and MANIFEST in objects:
        try:
            raw = storage.get_bytes(join(uri, MANIFEST), MAX_MANIFEST_BYTES)
            files = parse_manifest(raw, join(uri, MANIFEST))["files"]
            return {rel: entry["sha256"] for rel, entry in sorted(files.items())}
        except (InputError, StorageError):
            pass  # fetch will say what is wrong; the listing still identifies the content
    return {rel: obj.etag or obj.size for rel, obj in sorted(objects.items())}


def run_fingerprint(storage: Any, config_fingerprint: str, inputs: list[str]) -> str:
    """The completion fingerprint: the config's and the identity of every input, so that a
    changed input under the same run id is a new run, not an "already complete" skip."""
    identities = {uri: input_identity(storage, uri) for uri in dict.fromkeys(inputs) if uri}
    blob = json.dumps({"config": config_fingerprint, "inputs": identities}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()
