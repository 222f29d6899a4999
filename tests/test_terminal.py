"""``job.terminal.escape``: what a bucket or a cluster sends reaches a terminal as visible
escapes, on one line, bounded; ``has_control`` refuses the same characters in names."""

from __future__ import annotations

import sys

import pytest

from job.storage import locations
from job.terminal import escape, has_control


@pytest.mark.parametrize(
    "text,shown",
    [
        ("plain name-1.0_x", "plain name-1.0_x"),
        ("é中文 ok", "é中文 ok"),  # printable non-ASCII stays readable
        ("a\nb", "a\\nb"),
        ("a\rb", "a\\rb"),
        ("\x1b[2Jclear", "\\x1b[2Jclear"),
        ("title\x1b]0;x\x07", "title\\x1b]0;x\\x07"),
        ("nul\x00", "nul\\x00"),
        ("del\x7f", "del\\x7f"),
        ("c1\x9b31m", "c1\\x9b31m"),  # the one-byte CSI
        ("abc\u202edef", "abc\\u202edef"),  # right-to-left override reorders what follows
        ("zero\u200bwidth", "zero\\u200bwidth"),
        ("line\u2028sep", "line\\u2028sep"),
        ("lone\ud800surrogate", "lone\\ud800surrogate"),  # print() would raise on it
        ("private\ue000use", "private\\ue000use"),
    ],
)
def test_escape_shows_controls_as_escapes(text, shown):
    assert escape(text) == shown
    assert not has_control(escape(text))
    assert has_control(text) == (text != shown)
    escape(text).encode(sys.stdout.encoding or "utf-8")  # printable as is


def test_escape_bounds_the_length_on_whole_escapes():
    assert escape("x" * 300) == "x" * 197 + "..." and len(escape("x" * 300)) == 200
    assert escape("x" * 200) == "x" * 200
    assert escape("y" * 10, limit=5) == "yy..."
    cut = escape("\x1b" * 100, limit=50)
    assert len(cut) <= 50 and cut.endswith("...") and cut[:-3] == "\\x1b" * 11  # no partial "\x1"
    assert escape("z" * 500, limit=0) == "z" * 500  # 0: no limit
    assert escape("a\nb" * 100, limit=10) == "a\\nba\\n..."


def test_every_code_point_below_0x3000_escapes_to_printable_text():
    text = "".join(chr(c) for c in range(0x3000))
    shown = escape(text, limit=0)
    assert shown.isprintable() and not has_control(shown)


def test_storage_uses_the_same_escape():
    assert locations.escape is escape
    assert escape(123) == "123"
