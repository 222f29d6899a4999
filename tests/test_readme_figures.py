"""Every measured figure in README.md comes from a committed record: the measured blocks are
rendered from their records (lab/readme_tables.py) and must equal that rendering, and the
prose outside them carries no measured figure. No paddle; no timing."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from lab import readme_tables

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")

# What a measured figure looks like in prose: a number with a unit of time, size or ratio,
# or a score with two decimals (83.07). Versions (Python 3.11), settings (batch 40 x 128,
# pruned_ratio 0.25) and checksum names (SHA-256s) are facts of the code, not measurements.
_FIGURE = re.compile(
    r"(?<![\w.])\d[\d,]*(?:\.\d+)?\s?(?:ms|MB|GB|KB|min|minutes|hours?|seconds|s\b|%|G/s)"
    r"|(?<![\w.])\d+(?:\.\d+)?(?:×|x\b)"
    r"|(?<![\w.-])\d{1,3}\.\d{2}(?![\d.])"
)
_NOT_MEASURED = {"0.25", "0.05", "256s"}  # pruned_ratio's default, ACT's origin_metric tolerance, SHA-256s


def _prose(text: str) -> str:
    text = readme_tables._BLOCK.sub("", text)
    return re.sub(r"```.*?```", "", text, flags=re.S)


_VERSION_BEFORE = re.compile(r"(?:Python|CPython|≥|strict,)\s*$")  # "Python 3.11", "boto3 ≥ 1.36", "strict, 1.29"


def measured_figures_in_prose(text: str) -> list[str]:
    prose = _prose(text)
    return [
        m.group(0)
        for m in _FIGURE.finditer(prose)
        if m.group(0) not in _NOT_MEASURED and not _VERSION_BEFORE.search(prose[max(0, m.start() - 12) : m.start()])
    ]


def test_the_readme_has_its_measured_blocks():
    names = [name for name, _, _ in readme_tables.blocks(README)]
    assert sorted(names) == [
        "bench-table",
        "demo-table",
        "headline-check",
        "load-pull",
        "probe-table",
        "weights-table",
    ], names


@pytest.mark.parametrize("block", readme_tables.blocks(README), ids=lambda block: block[0])
def test_each_measured_block_is_its_records_rendering(block):
    name, record, body = block
    path = ROOT / record
    assert path.is_file(), f"{record} is not committed"
    assert json.loads(path.read_text(encoding="utf-8"))["hardware"]["isa"], f"{record} does not name its CPU's ISA"
    assert body == readme_tables.render(name, path)


def test_no_measured_figure_in_the_prose():
    found = measured_figures_in_prose(README)
    assert not found, f"figures outside a rendered block (render them from a record or remove them): {found}"


def test_the_prose_check_sees_figures():
    """The check above would catch a figure typed into the prose."""
    assert measured_figures_in_prose("took 6 min here and F1 83.09, 3.13× faster, 4.81 MB") == [
        "6 min",
        "83.09",
        "3.13×",
        "4.81 MB",
    ]
    assert measured_figures_in_prose("Python 3.11, batch 40 × 128, `pruned_ratio` (0.25), boto3 ≥ 1.36") == []


def test_a_changed_record_figure_changes_the_rendering():
    """A figure typed into the README instead of rendered is caught: rendering the same
    record with one F1 changed gives a different block."""
    name, record, body = next(block for block in readme_tables.blocks(README) if block[0] == "demo-table")
    data = json.loads((ROOT / record).read_text(encoding="utf-8"))
    data["rows"][0]["job"]["f1"] += 0.0001
    assert readme_tables.BLOCKS[name](data) != body


def test_rewrite_renders_stale_blocks_in_place(tmp_path):
    readme = tmp_path / "README.md"
    stale = README.replace("| 1390.0 |", "| 1390.1 |", 1)
    assert stale != README
    readme.write_text(stale, encoding="utf-8")
    assert readme_tables.rewrite(readme, ROOT) == 1
    assert readme.read_text(encoding="utf-8") == README


def _docstrings(path: Path) -> list[tuple[str, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node)
            if doc:
                found.append((getattr(node, "name", "<module>"), doc))
    return found


def test_no_measured_figure_in_a_docstring():
    """Docstrings of the job and the lab say what was measured and where its record is, not the figures."""
    offenders = []
    for path in sorted([*(ROOT / "job").rglob("*.py"), *(ROOT / "lab").rglob("*.py")]):
        for name, doc in _docstrings(path):
            found = measured_figures_in_prose(doc)
            if found:
                offenders.append(f"{path.relative_to(ROOT)}:{name}: {found}")
    assert not offenders, "\n".join(offenders)
