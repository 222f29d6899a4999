"""Finished stages staged in the output location, so that a run interrupted after a stage
(a pod killed or retried during publish) does not repeat it.

Layout: ``<output>/<run_id>/<task>/<strategy>/_staging/<stage>/`` holds the stage's files,
``record.json`` (what the stage returned, as JSON), ``staged.json`` (schema, stage, the run
fingerprint of config and inputs, and each file's SHA-256 and size) and ``_STAGED``,
written last. A staged stage is reused only when ``_STAGED`` is there, the fingerprint is
the run's and every file downloads with its SHA-256; otherwise it is ignored (logged) and
overwritten. It is removed once the result is published.

Never a published result: the task folder's own ``_SUCCESS``/``manifest.json`` are not
written here, so ``list_runs`` shows a folder holding only staging as ``incomplete`` and
``pull`` refuses it; no ``results.json`` is staged, so ``report.gather`` does not see it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from job.errors import JobError
from job.storage.download import Expected, check_listed, download_verified
from job.storage.locations import check_name, escape, join
from job.storage.manifest import parse_manifest

__all__ = [
    "COMPRESS",
    "MARKER",
    "RECORD",
    "STAGED",
    "STAGING",
    "clear",
    "compressed_or_run",
    "load",
    "save",
    "stage_prefix",
]

log = logging.getLogger(__name__)

STAGING = "_staging"
STAGED = "staged.json"
MARKER = "_STAGED"
RECORD = "record.json"
SCHEMA = 1
_MAX_MANIFEST = 1 << 20  # a manifest of a few files is a few KB; a larger one is not ours


def stage_prefix(dest: str, stage: str) -> str:
    """``<dest>/_staging/<stage>``."""
    return join(dest, STAGING, check_name("stage", stage))


def save(store: Any, dest: str, stage: str, fingerprint: str, files: dict[str, Path], record: dict) -> None:
    """Stage ``files`` (name -> local file) and ``record`` under the run's fingerprint,
    each upload verified by the store; the manifest, then ``_STAGED`` last."""
    prefix = stage_prefix(dest, stage)
    store.delete(join(prefix, MARKER))  # an earlier staging is no longer valid from here on
    for rel in store.listing(prefix):
        store.delete(join(prefix, rel))
    entries: dict[str, dict[str, Any]] = {}
    for rel, path in sorted(files.items()):
        digest = store.put_file(path, join(prefix, rel))
        entries[rel] = {"sha256": digest.sha256, "size": digest.size}
    data = json.dumps(record, sort_keys=True).encode()
    store.put_bytes(data, join(prefix, RECORD))
    entries[RECORD] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    manifest = {"schema": SCHEMA, "stage": stage, "fingerprint": fingerprint, "files": entries}
    store.put_bytes(json.dumps(manifest, indent=1, sort_keys=True).encode(), join(prefix, STAGED))
    store.put_bytes(b"", join(prefix, MARKER))
    log.info("staged stage %s in %s (fingerprint %s…)", stage, prefix, fingerprint[:12])


def load(store: Any, dest: str, stage: str, fingerprint: str, into: Path) -> dict | None:
    """The staged stage's record with its files downloaded and verified into ``into``, or
    None (logged) when nothing valid is staged for this fingerprint."""
    prefix = stage_prefix(dest, stage)
    try:
        objects = store.listing(prefix)
        if not objects:
            return None
        if MARKER not in objects or STAGED not in objects:
            log.info("%s: unfinished staging (no %s); ignored, the stage runs again", prefix, MARKER)
            return None
        if objects[STAGED].size > _MAX_MANIFEST:
            log.warning("%s: %s is %d bytes; ignored", prefix, STAGED, objects[STAGED].size)
            return None
        manifest = parse_manifest(store.get_bytes(join(prefix, STAGED)), join(prefix, STAGED))
        if manifest.get("stage") != stage or manifest.get("fingerprint") != fingerprint:
            log.info("%s: staged for another config or other inputs; ignored, the stage runs again", prefix)
            return None
        files = manifest["files"]
        if RECORD not in files:
            log.warning("%s: %s lists no %s; ignored", prefix, STAGED, RECORD)
            return None
        check_listed(objects, files, prefix, STAGED)
        expected = {rel: Expected(join(prefix, rel), e["size"], e["sha256"]) for rel, e in files.items()}
        into.parent.mkdir(parents=True, exist_ok=True)
        download_verified(store, expected, into, within=into.parent)
        record = json.loads((into / RECORD).read_bytes())
        (into / RECORD).unlink()
        if not isinstance(record, dict):
            raise ValueError(f"{RECORD} is not a JSON object")
    except (JobError, ValueError, RecursionError, OSError) as exc:
        log.warning("%s: staging not reused: %s", prefix, escape(" ".join(str(exc).split())[:300]))
        return None
    log.info("reused staged stage %s (fingerprint %s…) from %s", stage, fingerprint[:12], prefix)
    return record


def clear(store: Any, dest: str) -> int:
    """Remove every staged stage of a task folder; how many objects were removed."""
    prefix = join(dest, STAGING)
    objects = store.listing(prefix)
    # The markers first: an interrupted clear never leaves a staged stage that looks whole.
    for rel in sorted(objects, key=lambda rel: not rel.endswith("/" + MARKER)):
        store.delete(join(prefix, rel))
    if store.is_local(prefix):
        from job.storage.local import LocalBackend

        root = LocalBackend.path(prefix)
        for folder, _, _ in sorted(os.walk(root), key=lambda item: -len(item[0])):
            with contextlib.suppress(OSError):
                os.rmdir(folder)
    return len(objects)


COMPRESS = "compress"


def compressed_or_run(store: Any, dest: str, fingerprint: str, workdir: Path, run: Any, *, reuse: bool = True) -> Any:
    """``(CompressResult, EvalResult)`` of the compress stage: the staged ones when valid for
    ``fingerprint`` (``reuse``), else ``run()``'s, then staged (a failure to stage is logged:
    staging saves time, it is not the result)."""
    import dataclasses

    from job.compress.int8 import RestrictResult
    from job.compress.stage import Calibration, CompressResult
    from job.evaluate import EvalResult, ModelFiles

    into = workdir / "compressed"
    record = load(store, dest, COMPRESS, fingerprint, into) if reuse else None
    if record is not None:
        try:
            c, after = record["compress"], record["evaluation"]
            model = ModelFiles(into, c.pop("model_filename"), c.pop("params_filename")).check()
            scope, calib = c.pop("int8_scope"), c.pop("calibration")
            compressed = CompressResult(
                model,
                **(c | {"patches": tuple(c["patches"])}),
                int8_scope=RestrictResult(**scope) if scope else None,
                calibration=Calibration(**calib) if calib else None,
            )
            return compressed, EvalResult(**after)
        except (JobError, KeyError, TypeError, ValueError, AttributeError) as exc:
            log.warning("%s: staged record not usable (%s); the stage runs again", dest, escape(str(exc)[:200]))
    compressed, after = run()
    fields = {f.name: getattr(compressed, f.name) for f in dataclasses.fields(compressed) if f.name != "model"}
    record = {
        "compress": fields
        | {
            "model_filename": compressed.model.model_filename,
            "params_filename": compressed.model.params_filename,
            "patches": list(compressed.patches),
            "int8_scope": dataclasses.asdict(compressed.int8_scope) if compressed.int8_scope else None,
            "calibration": dataclasses.asdict(compressed.calibration) if compressed.calibration else None,
        },
        "evaluation": dataclasses.asdict(after),
    }
    model = compressed.model
    try:
        save(
            store,
            dest,
            COMPRESS,
            fingerprint,
            {model.model_filename: model.program, model.params_filename: model.params},
            record,
        )
    except (JobError, OSError, TypeError, ValueError) as exc:
        log.warning("%s: could not stage the compress stage (%s); a rerun repeats it", dest, escape(str(exc)[:200]))
    return compressed, after
