"""Tables of results: pure functions over typed results (``job.results.TaskResult``), and
the ``report`` command.

``summary_table`` renders one Markdown row per task: metric before and after compression
(in points, i.e. the 0-1 fraction x 100), the change, and the model sizes in MB
(10^6 bytes). Missing values show as ``-`` (a failed task may have no ``after``).

``cli`` (``python -m job report DIR_OR_S3 --out DIR``) gathers every results.json under
a folder (recursively) or an ``s3://`` prefix, each read through ``TaskResult.from_dict``
(a file that is not JSON or fails its checks is skipped with a one-line warning naming
it), and writes ``report.md``, ``report.json`` and ``report.png``:

* (a) accuracy per model and strategy, with the reference example's columns
  ``| 模型 | 策略 | AFQMC | TNEWS | IFLYTEK | CMNLI | OCNLI | CLUEWSC2020 | CSL | AVG |``,
  a ``UIE F1`` column when UIE results exist (and one per other task, e.g. SENTIMENT),
  and a ``Base模型`` row per model from the ``before`` metrics;
* (b) the per-model summary ``| 模型 | 策略 | Accuracy（avg） | 时延(ms) | 加速比 |``
  extended with FP32 / FP16 / INT8 latency and the speedup against the base model's
  FP32 and (on GPU) FP16, one row per benchmark environment;
* (c) every benchmark record (both runtimes, both paddings, skipped ones with their
  reason), and an environment section listing hardware, threads, batch, sequence
  length, warm-up, repeats and package versions of each benchmark group.

Honesty checks: an INT8 measurement not faster than the FP32 one of the same results
file, runtime, device, padding and batch is flagged in its rows ("⚠ INT8 not faster
than FP32") and listed under "Flags". Metric values are fractions in results.json; the
tables show points (x100) with 2 decimals.

This module is light (stdlib, ``job.results`` and ``job.tables`` at import; matplotlib and
storage are imported when used): scripts/pull imports ``summary_table`` on machines without
paddle. It is one long module because gather, build and the renderers share
the row dicts of report.json; a split would pass those shapes between modules.
"""

from __future__ import annotations

import json
import logging
import math
import statistics
from pathlib import Path
from typing import Any

from job import tables
from job.results import CompressedFigures, OriginalFigures, TaskResult

# tests/test_pull.py pins the public surface to summary_table; cli, gather, build and the
# renderers are reached as attributes (job.__main__ calls report.cli).
__all__ = ["summary_table"]

log = logging.getLogger("job.report")

_COLUMNS = (
    ("task", "---"),
    ("strategy", "---"),
    ("status", "---"),
    ("metric", "---"),
    ("before", "---:"),
    ("after", "---:"),
    ("delta points", "---:"),
    ("original size MB", "---:"),
    ("compressed size MB", "---:"),
)


def summary_table(results: list[TaskResult]) -> str:
    """A Markdown table of results, in the order given."""
    header = [name for name, _ in _COLUMNS]
    aligns = [align for _, align in _COLUMNS]
    return "\n".join(tables.markdown(header, [_row(result) for result in results], aligns))


def _row(result: TaskResult) -> list[str]:
    metric = result.metric
    return [
        _text(result.task),
        _text(result.strategy),
        _text(result.status),
        _text(metric),
        _points(result.before, metric),
        _points(result.after, metric),
        _fmt(result.delta_points, "{:+.2f}"),
        _megabytes(result.models.original),
        _megabytes(result.models.compressed),
    ]


def _text(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _fmt(value: Any, fmt: str = "{:.2f}") -> str:
    """A number formatted, or ``-`` for anything else (None, bool, text)."""
    return fmt.format(value) if _is_number(value) else "-"


def _metric(metrics: Any, metric: Any) -> float | None:
    """``metrics[metric]`` as a 0-1 fraction, or None when missing or not a number."""
    if not isinstance(metrics, dict) or not isinstance(metric, str):
        return None
    value = metrics.get(metric)
    return value if _is_number(value) else None


def _points(metrics: Any, metric: Any) -> str:
    value = _metric(metrics, metric)
    return _fmt(None if value is None else value * 100)


def _megabytes(model: OriginalFigures | CompressedFigures | None) -> str:
    size = model.size_bytes if model is not None else None
    return _fmt(size / 1e6 if _is_number(size) else None, "{:.1f}")


# --------------------------------------------------------------------------------------
# The report: gather -> build (a dict, report.json) -> render (Markdown, PNG)
# --------------------------------------------------------------------------------------

CLUE_COLUMNS = (
    ("afqmc", "AFQMC"),
    ("tnews", "TNEWS"),
    ("iflytek", "IFLYTEK"),
    ("cmnli", "CMNLI"),
    ("ocnli", "OCNLI"),
    ("cluewsc2020", "CLUEWSC2020"),
    ("csl", "CSL"),
)
# The reference example's headers, exactly.
ACCURACY_COLUMNS = ("模型", "策略", *(label for _, label in CLUE_COLUMNS), "AVG")
LATENCY_COLUMNS = ("模型", "策略", "Accuracy（avg）", "时延(ms)", "加速比")
_LATENCY_EXTRA = ("FP32(ms)", "FP16(ms)", "INT8(ms)", "加速比(vs FP32)", "加速比(vs FP16)", "环境", "备注")
_EXTRA_TASK_LABELS = {"uie": "UIE F1", "sentiment": "SENTIMENT"}
# The selected models' latency table: the reference columns first, then what select weighed.
SELECTED_LATENCY_COLUMNS = (
    *LATENCY_COLUMNS,
    "任务",
    "运行时",  # the runtime (setting, precision) select chose to serve the model with
    "原模型时延(ms)",
    "samples/s",
    "模型大小(MB)",
    "权重内存(MB)",
    "设备",
    "run",
)
SELECTED = "选中模型"
SELECTED_MARK = "★"

BASE = "Base模型"
_STRATEGY_NAMES = {
    "qat_dis": "量化训练+蒸馏",
    "ptq": "离线量化",
    "ptq_hpo": "离线量化(超参搜索)",
    "prune_dis": "剪枝蒸馏",
    "prune_ptq": "剪枝蒸馏+离线量化",
}
_STRATEGY_ORDER = ("base", "qat_dis", "ptq", "ptq_hpo", "prune_dis", "prune_ptq")
SLOW_INT8 = "⚠ INT8 not faster than FP32"
_SCHEMA = 1


def strategy_label(key: str) -> str:
    """``Base模型`` for the base row, else the reference example's Chinese name and the key."""
    if key == "base":
        return BASE
    name = _STRATEGY_NAMES.get(key)
    return f"{name} ({key})" if name else key


def gather(source: str) -> tuple[list[tuple[str, TaskResult]], list[str]]:
    """Every readable results.json under a folder (recursively), or under an s3:// prefix.
    Returns ``[(where, result)]`` and warnings about the files skipped."""
    from job.errors import InputError

    found: list[tuple[str, TaskResult]] = []
    warnings: list[str] = []
    if source.lower().startswith("s3://"):
        from job.storage import Storage

        store = Storage()
        prefix = source.rstrip("/")
        for rel in store.list(prefix):
            if rel == "results.json" or rel.endswith("/results.json"):
                uri = f"{prefix}/{rel}"
                _parse(uri, lambda uri=uri: store.get_bytes(uri), found, warnings)
        return found, warnings
    path = Path(source)
    if not path.exists():
        raise InputError(f"{source}: no such folder")
    files = [path] if path.is_file() else sorted(p for p in path.rglob("results.json") if p.is_file())
    for file in files:
        _parse(str(file), file.read_bytes, found, warnings)
    return found, warnings


def _parse(where: str, read: Any, found: list, warnings: list[str]) -> None:
    try:
        data = json.loads(read().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        message = (
            f"{where}: skipped, not readable as JSON "
            f"({exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        )
        log.warning(message)
        warnings.append(message)
        return
    try:
        result = TaskResult.from_dict(data)
    except ValueError as exc:  # a key's type, a missing task or strategy, an unknown schema
        from job.terminal import escape  # the key named may come from the file

        message = f"{where}: skipped, not a results.json of this job ({escape(str(exc))})"
        log.warning(message)
        warnings.append(message)
        return
    found.append((where, result))


# --------------------------------------------------------------------------------------
# selected.json (written by ``select``): read defensively, it comes from a shared bucket
# --------------------------------------------------------------------------------------

SELECTION_FILE = "selected.json"
_SELECTION_BYTES = 1 << 20  # a run's selection is a few kB; anything larger is not one
_MAX_CANDIDATES = 100


def gather_selections(source: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Every readable ``<run>/<task>/_selected/selected.json`` under a folder or an s3:// prefix,
    each checked (``_selection``); a bad file is skipped, a bad candidate dropped, each with
    a one-line warning. Returns the selections and the warnings."""
    found: list[dict[str, Any]] = []
    warnings: list[str] = []

    def read(where: str, size: int, parts: list[str], data: Any) -> None:
        try:
            if size > _SELECTION_BYTES:
                raise ValueError(f"{size:,} bytes, more than a selection holds ({_SELECTION_BYTES:,})")
            selection, dropped = _selection(json.loads(data().decode("utf-8")), parts)
        except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
            from job.storage.locations import escape

            message = f"{where}: skipped, not a selected.json of this job ({escape(str(exc).splitlines()[0])[:200]})"
            log.warning(message)
            warnings.append(message)
            return
        for reason in dropped:
            message = f"{where}: {reason}"
            log.warning(message)
            warnings.append(message)
        found.append({**selection, "source": where})

    if source.lower().startswith("s3://"):
        from job.storage import Storage

        store = Storage()
        prefix = source.rstrip("/")
        for rel, info in sorted(store.listing(prefix).items()):
            if rel == SELECTION_FILE or rel.endswith("/" + SELECTION_FILE):
                uri = f"{prefix}/{rel}"
                read(uri, info.size, rel.split("/")[:-1], lambda uri=uri: store.get_bytes(uri))
        return found, warnings
    path = Path(source)
    if path.is_file():
        return found, warnings
    for file in sorted(p for p in path.rglob(SELECTION_FILE) if p.is_file()):
        read(str(file), file.stat().st_size, list(file.parent.parts), file.read_bytes)
    return found, warnings


def _selection(data: Any, parts: list[str]) -> tuple[dict[str, Any], list[str]]:
    """A selected.json object read by ``job.select.Selection.from_dict`` (schema, types,
    candidates, the choice among them: ``ValueError`` names the first bad key), found where
    ``select`` publishes it: ``<run>/<task>/_selected/selected.json``."""
    from job.select import Selection
    from job.storage.layout import SELECTION
    from job.storage.locations import escape

    selection = Selection.from_dict(data)
    if len(selection.candidates) > _MAX_CANDIDATES:
        raise ValueError(f"candidates: {len(selection.candidates)}, more than {_MAX_CANDIDATES}")
    if parts[-3:] != [selection.run_id, selection.task, SELECTION]:
        where = f"{escape(selection.run_id, 63)}/{escape(selection.task, 63)}"
        raise ValueError(f"run_id/task {where} is not the folder it was found in")
    fields = selection.to_dict()
    keys = ("run_id", "task", "selected", "runtime", "setting", "precision", "rule", "reason", "device")
    return {**{key: fields[key] for key in (*keys, "candidates", "pareto")}, "schema": selection.read_schema}, []


def _metric_points(metrics: Any, metric: Any) -> float | None:
    value = _metric(metrics, metric)
    return None if value is None else round(value * 100, 4)


def _env_key(record: dict[str, Any]) -> str:
    seq = record.get("seq_len") if record.get("padding") == "max" else "dynamic"
    key = {
        "device": record.get("device"),
        "threads": record.get("threads"),
        "batch_size": record.get("batch_size"),
        "seq_len": seq,
        "warmup": record.get("warmup") if record.get("padding") == "max" else None,
        "repeats": record.get("repeats") if record.get("padding") == "max" else None,
        "hardware": record.get("hardware") or {},
        "versions": record.get("versions") or {},
    }
    return json.dumps(key, sort_keys=True, ensure_ascii=False)


def _measured(record: dict[str, Any]) -> bool:
    latency = record.get("latency_ms")
    return isinstance(latency, dict) and _is_number(latency.get("median"))


def build(
    results: list[tuple[str, TaskResult]],
    warnings: list[str] | tuple[str, ...] = (),
    selections: list[dict[str, Any]] | tuple[dict[str, Any], ...] = (),
) -> dict[str, Any]:
    """The whole report as a dict (written as report.json, rendered as Markdown);
    ``selections`` (from ``gather_selections``) add the selected models' tables and mark
    the selected cells."""
    warnings = list(warnings)
    # One result per (model, strategy, task): the newest when a task ran several times.
    chosen: dict[tuple[str, str, str], tuple[str, TaskResult]] = {}
    for where, result in results:
        key = (result.model_name or "unknown model", result.strategy, result.task)
        if key in chosen:
            older, newer = sorted([chosen[key], (where, result)], key=lambda item: (item[1].created, item[0]))
            warnings.append(f"{older[0]}: skipped, {newer[0]} holds a newer result for {key[0]} / {key[1]} / {key[2]}")
            chosen[key] = newer
        else:
            chosen[key] = (where, result)
    extra_tasks = sorted(
        {task for (_, _, task) in chosen if task not in dict(CLUE_COLUMNS)}, key=lambda t: (t != "uie", t)
    )
    accuracy_columns = [*ACCURACY_COLUMNS, *(_EXTRA_TASK_LABELS.get(t, t.upper()) for t in extra_tasks)]

    # Accuracy rows: the base model from `before`, each strategy from `after`.
    rows: dict[tuple[str, str], dict[str, Any]] = {}

    def row(model: str, strategy: str) -> dict[str, Any]:
        if (model, strategy) not in rows:
            rows[(model, strategy)] = {
                "model": model,
                "strategy": strategy_label(strategy),
                "strategy_key": strategy,
                "tasks": {},
                "status": {},
                "sources": [],
                "selected": [],  # tasks for which `select` chose this row's result
            }
        return rows[(model, strategy)]

    failed: list[str] = []
    for (model, strategy, task), (where, result) in chosen.items():
        metric = result.metric
        base = row(model, "base")
        before = _metric_points(result.before, metric)
        if before is not None and task not in base["tasks"]:
            base["tasks"][task] = before
            base["status"][task] = "complete"
            base["sources"].append(where)
        target = row(model, strategy)
        target["tasks"][task] = _metric_points(result.after, metric)
        target["status"][task] = result.status
        target["sources"].append(where)
        if result.status == "failed" or target["tasks"][task] is None:
            failed.append(
                f"{model} / {strategy} / {task}: {result.status}" + (f" ({result.error})" if result.error else "")
            )
    for item in rows.values():
        clue = [item["tasks"][t] for t, _ in CLUE_COLUMNS if item["tasks"].get(t) is not None]
        others = [item["tasks"][t] for t in extra_tasks if item["tasks"].get(t) is not None]
        item["clue_avg"] = round(statistics.fmean(clue), 4) if clue else None
        item["clue_tasks"] = len(clue)
        values = clue or others
        item["accuracy_avg"] = round(statistics.fmean(values), 4) if values else None
        if clue:
            item["accuracy_tasks"] = [t for t, _ in CLUE_COLUMNS if item["tasks"].get(t) is not None]
        else:
            item["accuracy_tasks"] = [t for t in extra_tasks if item["tasks"].get(t) is not None]
        item["accuracy_label"] = _avg_label(item["accuracy_avg"], item["accuracy_tasks"], bool(clue))
    ordered = sorted(
        rows.values(),
        key=lambda r: (
            r["model"],
            _STRATEGY_ORDER.index(r["strategy_key"]) if r["strategy_key"] in _STRATEGY_ORDER else 99,
            r["strategy_key"],
        ),
    )

    # Benchmarks: every record, tagged with where it came from.
    environments: dict[str, str] = {}
    benchmarks: list[dict[str, Any]] = []
    flags: list[dict[str, Any]] = []
    for (model, strategy, task), (where, result) in chosen.items():
        for record in result.benchmark:
            env = _env_key(record)
            env_id = environments.setdefault(env, f"E{len(environments) + 1}")
            row_strategy = "base" if record.get("model") == "original" else strategy
            benchmarks.append(
                {
                    **record,
                    "source": where,
                    "model_name": model,
                    "task": task,
                    "strategy": strategy,
                    "row_strategy": row_strategy,
                    "environment": env_id,
                    "flags": [],
                }
            )
    for record in benchmarks:
        if record.get("precision") != "int8" or not _measured(record):
            continue
        peers = [
            other
            for other in benchmarks
            if other["source"] == record["source"]
            and other.get("precision") == "fp32"
            and _measured(other)
            and all(other.get(k) == record.get(k) for k in ("runtime", "device", "padding", "batch_size"))
            and (record.get("padding") != "max" or other.get("seq_len") == record.get("seq_len"))
        ]
        for fp32 in peers:
            if record.get("padding") == "max":
                slow = record["latency_ms"]["median"] >= fp32["latency_ms"]["median"]
            else:
                slow = (record.get("throughput") or 0) <= (fp32.get("throughput") or 0)
            if slow:
                flag = {
                    "message": SLOW_INT8,
                    "model": record["model_name"],
                    "strategy": record["strategy"],
                    "task": record["task"],
                    "runtime": record.get("runtime"),
                    "device": record.get("device"),
                    "padding": record.get("padding"),
                    "batch_size": record.get("batch_size"),
                    "int8_ms": record["latency_ms"]["median"],
                    "fp32_ms": fp32["latency_ms"]["median"],
                    "source": record["source"],
                }
                flags.append(flag)
                record["flags"].append(SLOW_INT8)
                break

    selection = _selection_report(chosen, rows, selections)
    latency_rows = _latency_rows(ordered, benchmarks)
    env_list = []
    for env, env_id in environments.items():
        env_list.append({"id": env_id, **json.loads(env)})
    return {
        "schema": _SCHEMA,
        "sources": sorted({where for where, _ in chosen.values()}),
        "warnings": warnings,
        "failed": failed,
        "accuracy": {"columns": accuracy_columns, "extra_tasks": extra_tasks, "rows": ordered},
        "latency": {"columns": [*LATENCY_COLUMNS, *_LATENCY_EXTRA], "rows": latency_rows},
        "benchmarks": benchmarks,
        "environments": env_list,
        "flags": flags,
        "selection": selection,
    }


def _selection_report(
    chosen: dict[tuple[str, str, str], tuple[str, TaskResult]],
    rows: dict[tuple[str, str], dict[str, Any]],
    selections: list[dict[str, Any]] | tuple[dict[str, Any], ...],
) -> dict[str, Any]:
    """The selected models: one entry per selection (its figures are the selected
    candidate's, as ``select`` recorded them), the accuracy table's rows (the original's
    and the selected model's points per task, per model and run), and the marks on the
    rows of table (a) whose result was selected (same run, task and strategy)."""
    tasks = []
    table: dict[tuple[str, str], dict[str, Any]] = {}
    for sel in sorted(selections, key=lambda s: (s["run_id"], s["task"], s["source"])):
        chosen_key = (sel["selected"], sel["runtime"], sel["setting"])
        candidate = next(
            (c for c in sel["candidates"] if (c["strategy"], c["runtime"], c["setting"]) == chosen_key), None
        )
        model = next(
            (
                result.model_name
                for (_, strategy, task), (_, result) in chosen.items()
                if task == sel["task"] and strategy == sel["selected"] and result.run_id == sel["run_id"]
            ),
            None,
        )
        if model is not None and (model, sel["selected"]) in rows:
            rows[(model, sel["selected"])]["selected"].append(sel["task"])
        name = model or next(
            (
                r.model_name
                for (_, _, task), (_, r) in chosen.items()
                if task == sel["task"] and r.run_id == sel["run_id"]
            ),
            "-",
        )
        tasks.append({**sel, "model": name, "figures": candidate})
        row = table.setdefault(
            (name, sel["run_id"]), {"model": name, "run_id": sel["run_id"], "base": {}, "selected": {}, "strategy": {}}
        )
        original = next((c["original_points"] for c in sel["candidates"] if c["original_points"] is not None), None)
        row["base"][sel["task"]] = original
        row["selected"][sel["task"]] = candidate["score_points"] if candidate else None
        row["strategy"][sel["task"]] = sel["selected"]
    extra = sorted({t["task"] for t in tasks if t["task"] not in dict(CLUE_COLUMNS)}, key=lambda t: (t != "uie", t))
    for row in table.values():
        for key in ("base", "selected"):
            clue = [row[key][t] for t, _ in CLUE_COLUMNS if row[key].get(t) is not None]
            row[f"{key}_avg"] = round(statistics.fmean(clue), 4) if clue else None
            row[f"{key}_avg_label"] = _avg_label(
                row[f"{key}_avg"], [t for t, _ in CLUE_COLUMNS if row[key].get(t) is not None], True
            )
    return {
        "tasks": tasks,
        "accuracy": {
            "columns": [*ACCURACY_COLUMNS, *(_EXTRA_TASK_LABELS.get(t, t.upper()) for t in extra)],
            "extra_tasks": extra,
            "rows": [table[key] for key in sorted(table)],
        },
        "latency": {"columns": list(SELECTED_LATENCY_COLUMNS)},
    }


def _avg_label(value: float | None, tasks: list[str], clue: bool) -> str:
    """The average as the tables show it: plain over all seven CLUE tasks, else with
    what it covers, so that averages over different task sets are not mistaken for
    each other."""
    if value is None:
        return "-"
    if clue:
        return f"{value:.2f}" if len(tasks) == len(CLUE_COLUMNS) else f"{value:.2f} ({len(tasks)}/{len(CLUE_COLUMNS)})"
    return f"{value:.2f} ({', '.join(tasks)})"


def _latency_rows(accuracy_rows: list[dict[str, Any]], benchmarks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (model, strategy, environment): Paddle Inference latency at max padding, per
    precision (the median over the results files that measured it)."""
    out = []
    for acc in accuracy_rows:
        mine = [
            b
            for b in benchmarks
            if b["model_name"] == acc["model"]
            and b["row_strategy"] == acc["strategy_key"]
            and b.get("runtime") == "paddle-inference"
            and b.get("padding") == "max"
            and _measured(b)
        ]
        envs = sorted({b["environment"] for b in mine}, key=lambda e: int(e[1:])) or [None]
        for env in envs:
            here = [b for b in mine if b["environment"] == env]
            by_precision: dict[str, float] = {}
            for precision in ("fp32", "fp16", "int8"):
                values = [b["latency_ms"]["median"] for b in here if b.get("precision") == precision]
                if values:
                    by_precision[precision] = round(statistics.median(values), 3)
            served = next((p for p in ("int8", "fp16", "fp32") if p in by_precision), None)
            flags = sorted({f for b in here for f in b["flags"]})
            out.append(
                {
                    "model": acc["model"],
                    "strategy": acc["strategy"],
                    "strategy_key": acc["strategy_key"],
                    "accuracy_avg": acc["accuracy_avg"],
                    "accuracy_label": acc["accuracy_label"],
                    "environment": env,
                    "latency_ms": by_precision,
                    "served_precision": served,
                    "served_ms": by_precision.get(served) if served else None,
                    "measurements": len(here),
                    "flags": flags,
                    "status": acc["status"],
                }
            )
    # Speedups against the base row of the same model and environment.
    for item in out:
        base = next(
            (
                b
                for b in out
                if b["model"] == item["model"]
                and b["strategy_key"] == "base"
                and b["environment"] == item["environment"]
            ),
            None,
        )
        item["speedup"] = item["speedup_vs_fp32"] = item["speedup_vs_fp16"] = None
        if base is None or item is base or not item["served_ms"]:
            continue
        base_served = base["latency_ms"].get("fp16") or base["latency_ms"].get("fp32")
        if base_served:
            item["speedup"] = round(base_served / item["served_ms"], 3)
        if base["latency_ms"].get("fp32"):
            item["speedup_vs_fp32"] = round(base["latency_ms"]["fp32"] / item["served_ms"], 3)
        if base["latency_ms"].get("fp16"):
            item["speedup_vs_fp16"] = round(base["latency_ms"]["fp16"] / item["served_ms"], 3)
    return out


# --------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------


def _accuracy_cell(item: dict[str, Any], task: str) -> str:
    value = item["tasks"].get(task)
    if task not in item["tasks"]:
        return "-"
    if value is None:
        return "failed" if item["status"].get(task) == "failed" else "-"
    mark = "†" if item["status"].get(task) == "gated" else ""
    if task in item.get("selected", ()):
        mark += f" {SELECTED_MARK}"
    return f"{value:.2f}{mark}"


def render_markdown(report: dict[str, Any]) -> str:
    """report.md: the two reference tables, every measurement, environments and flags."""
    lines = ["# 压缩结果 (compression report)", ""]
    lines.append(
        f"{len(report['sources'])} results.json file(s). "
        "Metrics in points (fraction x 100); latency in ms per batch (median)."
    )
    if report.get("selection", {}).get("tasks"):
        lines += _selection_markdown(report["selection"])
    lines += ["", "## (a) 精度 (accuracy)", ""]
    acc = report["accuracy"]
    table = []
    for item in acc["rows"]:
        cells = [item["model"], item["strategy"]]
        cells += [_accuracy_cell(item, task) for task, _ in CLUE_COLUMNS]
        cells.append(item["accuracy_label"] if item["clue_avg"] is not None else "-")
        cells += [_accuracy_cell(item, task) for task in acc["extra_tasks"]]
        table.append(cells)
    lines += tables.markdown(acc["columns"], table)
    lines += [
        "",
        (
            "AVG: mean over the CLUE tasks; (n/7) when only n of the seven were run. "
            "† the accuracy gate failed for this task (status gated)."
            + (
                f" {SELECTED_MARK} the model `select` chose for this task."
                if report.get("selection", {}).get("tasks")
                else ""
            )
        ),
    ]

    lines += ["", "## (b) 性能 (per-model summary)", ""]
    lat = report["latency"]
    table = []
    for item in lat["rows"]:
        ms = item["latency_ms"]
        served = f"{item['served_ms']:.2f} ({item['served_precision']})" if item["served_ms"] else "-"
        notes = list(item["flags"])
        if "gated" in item["status"].values():
            notes.append("accuracy gate failed: " + ", ".join(t for t, s in item["status"].items() if s == "gated"))
        table.append(
            [
                item["model"],
                item["strategy"],
                item["accuracy_label"],
                served,
                _fmt(item["speedup"]),
                _fmt(ms.get("fp32")),
                _fmt(ms.get("fp16")),
                _fmt(ms.get("int8")),
                _fmt(item["speedup_vs_fp32"]),
                _fmt(item["speedup_vs_fp16"]),
                item["environment"] or "-",
                "; ".join(notes) or "",
            ]
        )
    lines += tables.markdown(lat["columns"], table)
    lines += [
        "",
        "Paddle Inference, inputs padded to the maximum length. 时延(ms): the precision the model is served in; "
        "加速比: the base model's served latency (FP16 where a GPU was used, else FP32) over this row's; "
        "环境: the benchmark environment below.",
    ]

    measured = report["benchmarks"]
    if measured:
        lines += ["", "## (c) 全部测量 (every measurement)", ""]
        header = [
            "模型",
            "策略",
            "任务",
            "被测",
            "runtime",
            "backend",
            "精度",
            "variant",
            "padding",
            "batch",
            "seq",
            "threads",
            "median",
            "p90",
            "p99",
            "samples/s",
            "峰值内存MB",
            "环境",
            "备注",
        ]
        table = []
        for b in measured:
            latency = b.get("latency_ms") if _measured(b) else None
            seq = (
                _fmt(b.get("seq_len"), "{:.0f}")
                if b.get("padding") == "max"
                else f"{_fmt(b.get('seq_len'), '{:.1f}')} (padded {_fmt(b.get('padded_len_mean'), '{:.1f}')})"
            )
            note = list(b.get("flags") or [])
            if b.get("skipped"):
                note.append(f"skipped: {b['skipped']}")
            if b.get("error"):
                note.append(f"failed: {b['error']}")
            table.append(
                [
                    b["model_name"],
                    strategy_label(b["strategy"]),
                    b["task"],
                    str(b.get("model", "-")),
                    str(b.get("runtime", "-")),
                    str(b.get("backend", "-")),
                    str(b.get("precision", "-")),
                    str(b.get("variant") or ""),
                    str(b.get("padding", "-")),
                    _fmt(b.get("batch_size"), "{}"),
                    seq,
                    _fmt(b.get("threads"), "{}"),
                    _fmt(latency and latency.get("median")),
                    _fmt(latency and latency.get("p90")),
                    _fmt(latency and latency.get("p99")),
                    _fmt(b.get("throughput"), "{:.1f}"),
                    _fmt(b.get("peak_memory_mb"), "{:.0f}"),
                    b["environment"],
                    "; ".join(note),
                ]
            )
        lines += tables.markdown(header, table)

    if report["environments"]:
        lines += ["", "## 测试环境 (benchmark environments)", ""]
        for env in report["environments"]:
            hw = env.get("hardware") or {}
            versions = ", ".join(f"{k} {v}" for k, v in (env.get("versions") or {}).items()) or "not recorded"
            seq = (
                f"sequence length {env['seq_len']}"
                if env.get("seq_len") != "dynamic"
                else "real texts, dynamic padding"
            )
            runs = (
                f", warm-up {env['warmup']}, {env['repeats']} timed runs"
                if env.get("repeats") is not None
                else ", one warm-up pass over every shape, timed passes as recorded"
            )
            cpu = hw.get("cpu") or "CPU not recorded"
            vnni = "" if hw.get("avx512_vnni") is None else f", AVX-512 VNNI {'yes' if hw.get('avx512_vnni') else 'no'}"
            if hw.get("isa"):
                vnni += ", ISA " + " ".join(hw["isa"])
            lines.append(
                f"- **{env['id']}**: device {env.get('device')}; {cpu} ({hw.get('cores', '?')} cores{vnni}); "
                f"GPU {hw.get('gpu') or 'none'}; "
                f"threads {env.get('threads')}; batch {env.get('batch_size')}; {seq}{runs}; versions: {versions}"
            )
    lines += ["", "## Flags", ""]
    if report["flags"]:
        for flag in report["flags"]:
            lines.append(
                f"- {flag['message']}: {flag['model']} / {strategy_label(flag['strategy'])} / {flag['task']}, "
                f"{flag['runtime']} {flag['device']}, "
                f"padding {flag['padding']}, batch {flag['batch_size']}: "
                f"INT8 {flag['int8_ms']:.2f} ms vs FP32 {flag['fp32_ms']:.2f} ms ({flag['source']})"
            )
    else:
        lines.append("- none: every INT8 measurement is faster than its FP32 counterpart.")
    if report["failed"]:
        lines += ["", "## Failed tasks", ""] + [f"- {item}" for item in report["failed"]]
    if report["warnings"]:
        lines += ["", "## Skipped files", ""] + [f"- {item}" for item in report["warnings"]]
    return "\n".join(lines) + "\n"


def _selection_markdown(selection: dict[str, Any]) -> list[str]:
    """The selected models first: accuracy per task (the original and the selected model,
    each cell naming the strategy) and their latency, both from selected.json."""
    lines = ["", f"## {SELECTED} (selected models)", ""]
    rules = sorted({t["rule"] for t in selection["tasks"] if t["rule"]})
    lines += [f"Rule: {rule}" for rule in rules] or ["Rule: not recorded."]
    lines += ["", "![accuracy vs latency per task, the selected model marked](pareto.png)", ""]
    acc = selection["accuracy"]
    table = []
    for row in acc["rows"]:
        tasks = [t for t, _ in CLUE_COLUMNS] + acc["extra_tasks"]
        base = [_fmt(row["base"].get(t)) if t in row["base"] else "-" for t in tasks]
        chosen = []
        for t in tasks:
            if t not in row["strategy"]:
                chosen.append("-")
            elif row["strategy"][t] is None:
                chosen.append("none")
            else:
                chosen.append(f"{_fmt(row['selected'].get(t))} ({row['strategy'][t]})")
        n_clue = len(CLUE_COLUMNS)
        table.append(
            [row["model"], f"{BASE} (run {row['run_id']})", *base[:n_clue], row["base_avg_label"], *base[n_clue:]]
        )
        table.append(
            [
                row["model"],
                f"{SELECTED} (run {row['run_id']})",
                *chosen[:n_clue],
                row["selected_avg_label"],
                *chosen[n_clue:],
            ]
        )
    lines += tables.markdown(acc["columns"], table)
    lines += ["", "Each selected cell: the selected model's points and its strategy; none: no model passed the rule."]
    table = []
    for task in selection["tasks"]:
        c = task["figures"]
        if c is None:
            continue
        table.append(
            [
                task["model"],
                strategy_label(task["selected"]),
                _fmt(c["score_points"]),
                _fmt(c["latency_ms"]),
                _fmt(c["speedup"]),
                task["task"],
                _runtime_label(task),
                _fmt(c["original_latency_ms"]),
                _fmt(c["throughput"], "{:.1f}"),
                _fmt(c["size_bytes"] / 1e6 if c["size_bytes"] is not None else None),
                _fmt(c["weight_bytes"] / 1e6 if c["weight_bytes"] is not None else None),
                task["device"] or "-",
                task["run_id"],
            ]
        )
    lines += ["", *tables.markdown(selection["latency"]["columns"], table)]
    lines += [
        "",
        "时延(ms): the selected model's median per batch in the runtime it is served with (运行时: runtime, setting, "
        "precision), 加速比 against the original as Paddle Inference serves it, measured in the same run (figures as "
        "`select` recorded them in selected.json; a selection of schema 1 predates runtimes: Paddle Inference).",
    ]
    unselected = [t for t in selection["tasks"] if t["selected"] is None]
    if unselected:
        lines += [""] + [
            f"- {t['run_id']} / {t['task']}: no model selected ({t['reason'] or 'no reason'})" for t in unselected
        ]
    return lines


def _runtime_label(selection: dict[str, Any]) -> str:
    """``openvino (f32, int8)``: the runtime a selection serves its model with (known names only:
    ``job.select`` checked them)."""
    precision = selection["precision"] or "precision not recorded"
    return f"{selection['runtime']} ({selection['setting']}, {precision})"


def _candidate_label(candidate: dict[str, Any]) -> str:
    """A candidate in the plot: its strategy, and its runtime when not Paddle Inference's default."""
    if (candidate["runtime"], candidate["setting"]) == ("paddle-inference", "default"):
        return candidate["strategy"]
    return f"{candidate['strategy']} ({candidate['runtime']}, {candidate['setting']})"


def _frontier(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The accuracy-latency frontier: by latency, each point more accurate than every faster one."""
    out: list[tuple[float, float]] = []
    for latency, accuracy in sorted(points, key=lambda p: (p[0], -p[1])):
        if not out or accuracy > out[-1][1]:
            out.append((latency, accuracy))
    return out


def render_pareto_png(report: dict[str, Any], path: Path) -> Path:
    """pareto.png: ``pareto_figure`` saved."""
    import matplotlib.pyplot as plt

    fig = pareto_figure(report)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def pareto_figure(report: dict[str, Any]):
    """Accuracy against latency, one panel per selection (run / task): every candidate
    with figures, select's Pareto set filled, the original as a cross, the selected model
    as a star, and the accuracy-latency frontier of the eligible candidates dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = report["selection"]["tasks"]
    columns = min(3, max(1, len(tasks)))
    rows = math.ceil(max(1, len(tasks)) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5.5 * columns, 4.2 * rows), dpi=110, squeeze=False)
    for ax in axes.flat[len(tasks) :]:
        ax.set_axis_off()
    for ax, task in zip(axes.flat, tasks, strict=False):
        plotted = [c for c in task["candidates"] if c["latency_ms"] is not None and c["score_points"] is not None]
        ax.set_title(f"{task['task']} (run {task['run_id']})", fontsize=9)
        if not plotted:
            ax.text(
                0.5, 0.5, "no candidate with latency and accuracy", ha="center", va="center", transform=ax.transAxes
            )
            continue
        for c in plotted:
            face = "tab:blue" if c["pareto"] else "none"
            edge = "tab:blue" if c["eligible"] else "tab:gray"
            ax.scatter(c["latency_ms"], c["score_points"], s=50, marker="o", facecolors=face, edgecolors=edge)
            ax.annotate(
                _candidate_label(c),
                (c["latency_ms"], c["score_points"]),
                textcoords="offset points",
                xytext=(5, 3),
                fontsize=7,
            )
        line = _frontier([(c["latency_ms"], c["score_points"]) for c in plotted if c["eligible"]])
        ax.plot([p[0] for p in line], [p[1] for p in line], ls="--", lw=0.8, color="tab:blue", drawstyle="steps-post")
        base = next(
            (c for c in plotted if c["original_latency_ms"] is not None and c["original_points"] is not None), None
        )
        if base is not None:
            ax.scatter(base["original_latency_ms"], base["original_points"], marker="x", s=60, color="black")
            ax.annotate(
                "original",
                (base["original_latency_ms"], base["original_points"]),
                textcoords="offset points",
                xytext=(5, -10),
                fontsize=7,
            )
        chosen = task["figures"]
        if chosen is not None and chosen["latency_ms"] is not None and chosen["score_points"] is not None:
            ax.scatter(chosen["latency_ms"], chosen["score_points"], marker="*", s=260, color="tab:red", zorder=3)
            ax.annotate(
                f"selected: {_candidate_label(chosen)}",
                (chosen["latency_ms"], chosen["score_points"]),
                textcoords="offset points",
                xytext=(6, -12),
                fontsize=8,
                color="tab:red",
            )
        ax.set_xlabel("latency, ms per batch (median)", fontsize=8)
        ax.set_ylabel(f"{task['figures']['metric'] if task['figures'] else 'metric'} (points)", fontsize=8)
        ax.grid(True, alpha=0.3)
    fig.suptitle(
        "accuracy vs latency (filled: Pareto set; grey: not eligible; star: selected; dashed: eligible frontier)",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def render_png(report: dict[str, Any], path: Path) -> Path:
    """Accuracy against served latency, one labelled marker per model / strategy row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [r for r in report["latency"]["rows"] if r["served_ms"] and r["accuracy_avg"] is not None]
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=110)
    if not points:
        ax.text(0.5, 0.5, "no latency figures in these results", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
    else:
        markers = "osD^vP*X"
        envs = sorted({r["environment"] for r in points}, key=lambda e: int(e[1:]))
        for item in points:
            marker = markers[envs.index(item["environment"]) % len(markers)]
            ax.scatter(item["served_ms"], item["accuracy_avg"], marker=marker, s=60)
            label = f"{item['model']} / {item['strategy_key']} ({item['served_precision']}, {item['environment']})"
            ax.annotate(
                label, (item["served_ms"], item["accuracy_avg"]), textcoords="offset points", xytext=(6, 4), fontsize=7
            )
        ax.set_xlabel("latency, ms per batch (median, Paddle Inference, served precision)")
        ax.set_ylabel("accuracy (avg, points)")
        ax.set_title("accuracy vs latency")
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def cli(source: str, out: str | Path) -> int:
    """``python -m job report``: gather, build, write report.md / report.json / report.png."""
    from job.errors import InputError

    results, warnings = gather(source)
    if not results:
        detail = f" ({len(warnings)} unreadable)" if warnings else ""
        raise InputError(f"{source}: no readable results.json found{detail}")
    selections, selection_warnings = gather_selections(source)
    report = build(results, warnings + selection_warnings, selections)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown = render_markdown(report)
    (out_dir / "report.md").write_text(markdown, encoding="utf-8")
    (out_dir / "report.json").write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    render_png(report, out_dir / "report.png")
    pareto = ""
    if selections:
        render_pareto_png(report, out_dir / "pareto.png")
        pareto = f", pareto.png from {len(selections)} selected.json file(s)"
    print(markdown)
    flags = f", {len(report['flags'])} flag(s)" if report["flags"] else ""
    print(
        f"wrote {out_dir / 'report.md'}, report.json and report.png from {len(results)} results.json file(s)"
        f"{pareto}{flags}"
    )
    return 0
