"""The published selection of a task: read every strategy folder of ``<output>/<run>/<task>/``,
choose by ``job.select.RULE``, publish ``selected.json``, and read it back verified.

Where it lands: ``<output>/<run>/<task>/_selected/`` holds ``selected.json`` and the
deployment card ``DEPLOY.md`` (``job.card.render_deploy``: the strategy, the runtime and
setting to serve it with, its figures and that runtime's loading code), published like a
model folder (``job.storage.publish``: the file verified by the store, then
``manifest.json`` with its SHA-256, then ``_SUCCESS`` last). ``read_selection`` trusts it
only when that folder is complete (``manifest.task_state``), the bytes it reads have the
manifest's SHA-256, and the rule applied to the task's folders as they are now makes the
same ``selected.json`` (else it is stale). ``_selected`` is not a strategy name
(``layout.SELECTION``), so the pull's listing leaves it out.

A task is selected only when every strategy folder is final: published complete, or
published gated or failed (a manifest of that status). A folder still being written
(incomplete) or one that cannot be trusted (unsafe) refuses the task's selection (exit 2),
so ``selected.json`` is never written before its candidates' markers. Tasks are
independent: one refused task never stops the others.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

from job.errors import ExitCode, InputError, JobError
from job.results import TaskResult
from job.select import Candidate, Selection, candidates_of, choose, device_of
from job.storage.layout import SELECTION, list_runs
from job.storage.locations import UnsafePathError, as_uri, check_name, escape, join
from job.storage.manifest import MANIFEST, MARKER, UNSAFE, parse_manifest, task_state
from job.storage.publish import publish
from job.storage.registry import backend_class

__all__ = [
    "DEPLOY",
    "FILE",
    "MAX_BYTES",
    "print_selections",
    "read_selection",
    "select_run",
    "select_task",
    "selection_prefix",
    "serve_with",
]

log = logging.getLogger(__name__)

FILE = "selected.json"
DEPLOY = "DEPLOY.md"
RESULTS = "results.json"
# Larger results.json or selected.json files are refused unread: both are a few KB.
MAX_BYTES = 4 * 1024 * 1024


def selection_prefix(output: str, run_id: str, task: str) -> str:
    """``<output>/<run_id>/<task>/_selected``, the folder holding ``selected.json``."""
    output = as_uri(output)
    check_name("run_id", run_id)
    check_name("task", task)
    backend_class(output)
    return join(output, run_id, task, SELECTION)


def select_run(store: Any, output: str, run_id: str, tasks: list[str] | None = None) -> list[Selection]:
    """``select_task`` for each task of the run (all of them unless ``tasks``), in name order.

    A task that is refused or fails keeps its ``refused`` line and ``exit_code``; the others
    go on. Names of tasks that are not safe path components are refused, never read."""
    output = as_uri(output)
    check_name("run_id", run_id)
    for task in tasks or []:
        check_name("task", task)
    names = sorted(set(tasks)) if tasks else sorted({t.task for t in list_runs(store, output, run_id=run_id)})
    selections = []
    for task in names:
        try:
            selections.append(select_task(store, output, run_id, task))
        except JobError as exc:
            log.debug("select %s/%s failed", run_id, task, exc_info=True)
            selections.append(Selection(run_id=run_id, task=task, refused=str(exc), exit_code=int(exc.exit_code)))
    return selections


def print_selections(selections: list[Selection]) -> int:
    """Per task: the choice and the candidates table, refusals as one line each on stderr;
    returns the worst exit code (what ``python -m job select``, the launcher's ``--watch`` and a
    local run of several strategies end with)."""
    import sys

    for selection in selections:
        print(f"\n== {selection.run_id}/{selection.task}: {selection.selected or 'nothing selected'} ==")
        if selection.candidates:
            print("\n".join(selection.table()))
        if selection.refused:
            print(f"error: {escape(selection.refused, 1000)}", file=sys.stderr)
            continue
        print(f"  {escape(selection.reason, 1000)}\n  published: {selection.location}")
        if selection.selected is not None:
            print(f"  serve with: {serve_with(selection)}")
    return max((s.exit_code for s in selections), default=0)


def select_task(store: Any, output: str, run_id: str, task: str) -> Selection:
    """Choose the task's model and publish ``selected.json``, or say why not (``refused``)."""
    prefix = selection_prefix(output, run_id, task)
    candidates, devices, results = _candidates(store, output, run_id, task)
    if not candidates:
        raise InputError(f"{run_id}/{task}: no strategy folders under {escape(output)} to select from")
    device = ",".join(sorted(devices))
    selection = choose(task, run_id, candidates, device=device)
    blocked = [c for c in selection.candidates if c.status in ("incomplete", UNSAFE)]
    if blocked:
        names = ", ".join(f"{c.strategy} ({c.status})" for c in blocked)
        selection.refused = f"{run_id}/{task}: refusing to select while results are incomplete or unsafe: {names}"
    elif len(devices) > 1:
        selection.refused = f"{run_id}/{task}: latencies were measured on different devices ({device}): not comparable"
    if selection.refused:
        selection.exit_code = int(ExitCode.INPUT)
        return selection
    from job.card import render_deploy

    chosen = results.get(selection.selected) if selection.selected is not None else None
    with tempfile.TemporaryDirectory(prefix="selection-") as tmp:
        (Path(tmp) / FILE).write_text(selection.to_json(), encoding="utf-8")
        (Path(tmp) / DEPLOY).write_text(render_deploy(selection, chosen, prefix=output), encoding="utf-8")
        publish(store, tmp, prefix, fingerprint=_fingerprint(selection), status="complete", progress=False)
    selection.location = join(prefix, FILE)
    return selection


def read_selection(store: Any, output: str, run_id: str, task: str) -> Selection:
    """The task's published selection, verified: its folder complete (marker, manifest, sizes;
    locally every SHA-256), ``selected.json`` of the manifest's SHA-256, well typed, naming
    this run and task and a safe strategy, and still the choice the rule makes from the
    task's folders as they are now (not stale). ``InputError`` (one line) otherwise."""
    prefix = selection_prefix(output, run_id, task)
    state, manifest = task_state(store, prefix, store.listing(prefix), deep=True)
    if state != "complete" or manifest is None:
        raise InputError(f"{run_id}/{task}: no published selection ({state}); run `python -m job select` first")
    data = _verified_bytes(store, prefix, FILE, manifest)
    try:
        selection = Selection.from_dict(json.loads(data))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{join(prefix, FILE)}: {escape(str(exc))[:200]}") from None
    if (selection.run_id, selection.task) != (run_id, task):
        raise InputError(
            f"{join(prefix, FILE)}: names {escape(selection.run_id)}/{escape(selection.task)}, not its folder"
        )
    if selection.selected is not None:
        check_name(f"{join(prefix, FILE)}: selected", selection.selected)
    candidates, devices, _ = _candidates(store, output, run_id, task)
    fresh = choose(task, run_id, candidates, device=",".join(sorted(devices)))
    if _decision(fresh, selection.read_schema) != _decision(selection, selection.read_schema):
        raise InputError(
            f"{run_id}/{task}: the published selection is stale (the task's results changed since it was made); "
            "run `python -m job select` again"
        )
    selection.location = join(prefix, FILE)
    return selection


def _decision(selection: Selection, schema: int) -> dict[str, Any]:
    """What a published selection must still agree on with the rule applied now: all of it;
    for a schema-1 file (before runtimes, another rule text) the choice and each strategy's
    verdict and figures (results of that age have no runtime rows, so the rule is the same)."""
    data = selection.to_dict()
    if schema >= 2:
        return data
    figures = ("strategy", "status", "eligible", "score_points", "latency_ms", "speedup", "size_bytes")
    return {
        "selected": data["selected"],
        "candidates": [{key: c[key] for key in figures} for c in data["candidates"]],
    }


def serve_with(selection: Selection) -> str:
    """``<runtime> (<setting>, <precision>)``: what ``scripts/pull get --selected`` and ``select`` print."""
    precision = selection.precision or "precision not recorded"
    return f"{selection.runtime} ({selection.setting}, {precision})"


def _candidates(
    store: Any, output: str, run_id: str, task: str
) -> tuple[list[Candidate], set[str], dict[str, TaskResult]]:
    """The candidates of every strategy folder of the task (one per runtime row, or one for
    a folder that cannot be read), the devices their latencies were measured on, and the
    results read, by strategy."""
    candidates, devices, results = [], set(), {}
    for folder in list_runs(store, output, run_id=run_id):
        if folder.task != task and folder.task != escape(repr(task)):
            continue
        if folder.state == UNSAFE:
            why = "unsafe: a folder name or manifest path that is not safe"
            candidates.append(Candidate(strategy=folder.strategy, status=UNSAFE, why=why))
            continue
        objects = store.listing(folder.prefix)
        state, manifest = task_state(store, folder.prefix, objects, deep=True)
        if state == "incomplete" and manifest is None and MARKER not in objects and MANIFEST in objects:
            state, manifest = _unmarked_manifest(store, folder.prefix, objects)
        final = state == "complete" or (manifest is not None and manifest.get("status") in ("gated", "failed"))
        if state == UNSAFE or not final:
            why = "unsafe: its manifest names something unsafe" if state == UNSAFE else ""
            candidates.append(Candidate(strategy=folder.strategy, status=state, why=why))
            continue
        try:
            result = TaskResult.from_dict(json.loads(_verified_bytes(store, folder.prefix, RESULTS, manifest)))
        except InputError as exc:
            candidates.append(Candidate(strategy=folder.strategy, status=UNSAFE, why=f"unsafe: {exc}"[:200]))
            continue
        except (UnicodeDecodeError, ValueError) as exc:
            why = f"unsafe: {RESULTS}: {escape(str(exc))}"[:200]
            candidates.append(Candidate(strategy=folder.strategy, status=UNSAFE, why=why))
            continue
        if (result.task, result.strategy) != (task, folder.strategy):
            why = f"unsafe: {RESULTS} names {escape(result.task)}/{escape(result.strategy)}, not its folder"[:200]
            candidates.append(Candidate(strategy=folder.strategy, status=UNSAFE, why=why))
            continue
        try:
            made = candidates_of(result)
        except ValueError as exc:  # a runtime row naming an unknown runtime, setting, precision or status
            why = f"unsafe: {RESULTS}: {escape(str(exc))}"[:200]
            candidates.append(Candidate(strategy=folder.strategy, status=UNSAFE, why=why))
            continue
        for candidate in made:
            if manifest.get("status") != "complete" and candidate.status == "complete":
                candidate.status, candidate.why = "incomplete", f"published as {manifest.get('status')}, not complete"
        candidates.extend(made)
        results[folder.strategy] = result
        if any(c.status == "complete" for c in made) and result.latency is not None:
            devices.add(device_of(result))
    return candidates, devices, results


def _unmarked_manifest(store: Any, prefix: str, objects: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    """The manifest of a folder published without a marker (gated, failed; or still being
    written): ``task_state`` reads manifests of marked folders only."""
    where = join(prefix, MANIFEST)
    if objects[MANIFEST].refused:
        return UNSAFE, None
    try:
        return "incomplete", parse_manifest(store.get_bytes(where), where)
    except UnsafePathError:
        return UNSAFE, None
    except InputError:  # not JSON, another schema: not a usable manifest
        return "incomplete", None


def _verified_bytes(store: Any, prefix: str, rel: str, manifest: dict[str, Any]) -> bytes:
    """A small file of a published folder, whose bytes have the manifest's size and SHA-256."""
    entry = manifest["files"].get(rel)
    where = join(prefix, rel)
    if entry is None:
        raise InputError(f"{escape(where)}: not listed in the folder's manifest")
    if entry["size"] > MAX_BYTES:
        raise InputError(f"{escape(where)}: {entry['size']} bytes, more than {MAX_BYTES} allowed")
    data = store.get_bytes(where)
    if len(data) != entry["size"] or hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise InputError(f"{escape(where)}: does not match its SHA-256 in the manifest")
    return data


def _fingerprint(selection: Selection) -> str:
    """The decision and what it was made from (the manifest's fingerprint)."""
    return hashlib.sha256(json.dumps(selection.to_dict(), sort_keys=True).encode()).hexdigest()
