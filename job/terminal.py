"""Text from outside (a bucket's keys and files, the cluster API's messages) made safe to print.

``escape`` shows every control character as a Python escape (``\\x1b``, ``\\n``, ``\\u202e``),
so nothing a store or a cluster sends can move the cursor, recolour, retitle or reorder a
terminal, or split one log line into two; it also bounds the length. ``has_control`` is the
matching test for names that must be refused instead. Standard library only: the launcher,
the pull and the job all use it.
"""

from __future__ import annotations

__all__ = ["escape", "has_control", "is_control"]

_ELLIPSIS = "..."


def is_control(char: str) -> bool:
    """True for one character that ``escape`` would not print as itself.

    That is what Python's ``repr`` escapes: controls (C0, DEL, C1), format characters (the
    bidirectional overrides such as U+202E, zero-width ones), surrogates (a lone one makes
    ``print`` raise), private-use and unassigned code points, line and paragraph separators,
    and every space but U+0020 (a no-break or em space passes for a plain one).
    """
    return not char.isprintable()


def has_control(text: str) -> bool:
    """True when ``text`` holds any character that ``escape`` would not print as itself."""
    return any(is_control(char) for char in text)


def _escaped(char: str) -> str:
    # repr's own escapes (\\n, \\x1b, \\u202e): what Python users read, and what the pull showed.
    return repr(char)[1:-1] if is_control(char) else char


def escape(text: str, limit: int = 200) -> str:
    """``text`` with control characters shown as escapes, at most ``limit`` characters long.

    A longer result ends with ``...``; ``limit`` <= 0 means no limit. Non-strings are shown
    with ``str``. The cut is made on whole escapes, so no partial ``\\x1`` is left.
    """
    text = str(text)
    if limit > 0:
        text_cut = text[: limit + 1]  # each character shows as at least one: enough to decide
    else:
        text_cut = text
    pieces = [_escaped(char) for char in text_cut]
    if limit <= 0:
        return "".join(pieces)
    if len(text) <= limit and sum(map(len, pieces)) <= limit:
        return "".join(pieces)
    room = max(limit - len(_ELLIPSIS), 0)
    kept: list[str] = []
    used = 0
    for piece in pieces:
        if used + len(piece) > room:
            break
        kept.append(piece)
        used += len(piece)
    return "".join(kept) + _ELLIPSIS
