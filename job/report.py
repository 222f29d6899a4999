"""Tables of results: pure functions over results.json dicts.

``summary_table`` renders one Markdown row per task: metric before and after compression
(in points, i.e. the 0-1 fraction x 100), the change, and the model sizes in MB
(10^6 bytes). Missing values show as ``-`` (a failed task may have no ``after``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["summary_table"]

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


def summary_table(results: list[dict[str, Any]]) -> str:
    """A Markdown table of results.json dicts, in the order given."""
    lines = [
        "| " + " | ".join(name for name, _ in _COLUMNS) + " |",
        "|" + "|".join(align for _, align in _COLUMNS) + "|",
    ]
    for result in results:
        lines.append("| " + " | ".join(_cell(value) for value in _row(result)) + " |")
    return "\n".join(lines)


def _row(result: dict[str, Any]) -> list[str]:
    metric = result.get("metric")
    models = result.get("models") or {}
    return [
        _text(result.get("task")),
        _text(result.get("strategy")),
        _text(result.get("status")),
        _text(metric),
        _points(result.get("before"), metric),
        _points(result.get("after"), metric),
        _number(result.get("delta_points"), "{:+.2f}"),
        _megabytes(models.get("original")),
        _megabytes(models.get("compressed")),
    ]


def _text(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


def _number(value: Any, fmt: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "-"
    return fmt.format(value)


def _points(metrics: Any, metric: Any) -> str:
    if not isinstance(metrics, dict) or not isinstance(metric, str):
        return "-"
    value = metrics.get(metric)
    return _number(value * 100 if isinstance(value, (int, float)) and not isinstance(value, bool) else None, "{:.2f}")


def _megabytes(model: Any) -> str:
    if not isinstance(model, dict):
        return "-"
    size = model.get("size_bytes")
    return _number(size / 1e6 if isinstance(size, (int, float)) and not isinstance(size, bool) else None, "{:.1f}")


def _cell(text: str) -> str:
    """Keep a cell on one line and its pipes from splitting the row."""
    return " ".join(text.split()).replace("|", "\\|")
