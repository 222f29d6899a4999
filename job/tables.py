"""The one table formatter of ``job/``: Markdown tables (the report, the pull's results
table) and plain-text columns (the run's summary, ``scripts/pull list``, the launcher's
watch table). Pure functions of strings; stdlib only, so the light tools can import it.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["markdown", "text"]

_MARKERS = ("---", ":---", "---:", ":---:")


def markdown(headers: Sequence[str], rows: Sequence[Sequence[str]], align: Sequence[str] | None = None) -> list[str]:
    """A Markdown table as lines: the header, the alignment row (``align``: one of
    ``---``, ``:---``, ``---:``, ``:---:`` per column; default centred) and one line per row.
    Body cells are kept on one line, their pipes escaped and their control characters shown
    as escapes (cells may come from a results.json read from a shared store)."""
    align = list(align) if align is not None else [":---:"] * len(headers)
    if len(align) != len(headers) or any(marker not in _MARKERS for marker in align):
        raise ValueError(f"align must hold one of {', '.join(_MARKERS)} per column ({len(headers)}), got {align}")
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(_cell(cell) for cell in row) + " |" for row in rows]
    return lines


def text(
    rows: Sequence[Sequence[str]], align: str = "", *, indent: str = "", gap: str = "  ", rule: bool = False
) -> list[str]:
    """Plain-text columns as lines, each column as wide as its widest cell; ``align`` holds
    ``<`` (left, the default) or ``>`` (right) per column; ``rule`` puts a line of dashes
    under the first row (a header). Trailing spaces are dropped."""
    if not rows:
        return []
    columns = max(len(row) for row in rows)
    align = align.ljust(columns, "<")
    if set(align) - {"<", ">"}:
        raise ValueError(f"align holds '<' or '>' per column, got {align!r}")
    widths = [max((len(row[i]) for row in rows if i < len(row)), default=0) for i in range(columns)]
    lines = []
    for row in rows:
        cells = [f"{cell:{align[i]}{widths[i]}}" for i, cell in enumerate(row)]
        lines.append((indent + gap.join(cells)).rstrip())
    if rule:
        lines.insert(1, (indent + gap.join("-" * width for width in widths)).rstrip())
    return lines


def _cell(cell: str) -> str:
    from job.terminal import escape  # light (stdlib); the one control-character escape

    return escape(" ".join(str(cell).split())).replace("|", "\\|")
