"""The probe record folders' READMEs: each table row naming a results.json beside it states
that file's F1 and change, as the job wrote them. No paddle."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

RECORDS = Path(__file__).resolve().parent.parent / "records"
_ROW = re.compile(r"^\| (?P<file>[\w.-]+\.json) \|.*\| (?P<f1>[\d.]+) \| (?P<change>-?[\d.]+) \|$")
FOLDER_READMES = sorted(RECORDS.glob("*/README.md"))


def table_rows(text: str) -> dict[str, tuple[str, str]]:
    return {m["file"]: (m["f1"], m["change"]) for m in map(_ROW.match, text.splitlines()) if m}


def figures_of(path: Path) -> tuple[str, str]:
    result = json.loads(path.read_text(encoding="utf-8"))
    return f"{100 * result['after']['f1']:.2f}", f"{result['delta_points']:.2f}"


def test_every_probe_folder_has_a_readme():
    """A folder of run records explains itself: the command, the gate, a row per file."""
    folders = sorted(path for path in RECORDS.iterdir() if path.is_dir())
    assert folders and [path.parent for path in FOLDER_READMES] == folders


@pytest.mark.parametrize("readme", FOLDER_READMES, ids=lambda p: p.parent.name)
def test_each_row_states_its_files_figures_and_every_file_has_a_row(readme):
    rows = table_rows(readme.read_text(encoding="utf-8"))
    files = sorted(p.name for p in readme.parent.glob("*.json"))
    assert sorted(rows) == files
    for name, stated in rows.items():
        assert stated == figures_of(readme.parent / name), name


def teacher_f1() -> str:
    """The demo teacher's test F1 as the newest bench record states it (Paddle Inference FP32)."""
    newest = max(RECORDS.glob("bench-uie-base-*.json"))
    return f"{json.loads(newest.read_text(encoding='utf-8'))['accuracy']['f1']['paddle-fp32']:.2f}"


def _header(readme: Path) -> str:
    return next((line for line in readme.read_text(encoding="utf-8").splitlines() if line.startswith("| file |")), "")


VS_TEACHER = [readme for readme in FOLDER_READMES if "vs teacher" in _header(readme)]


def test_a_students_folder_states_its_distance_to_the_teacher():
    assert VS_TEACHER, "no records/*/README.md with a vs teacher column (the layer-drop students have one)"


@pytest.mark.parametrize("readme", VS_TEACHER, ids=lambda p: p.parent.name)
def test_a_vs_teacher_column_is_the_f1_less_the_teachers(readme):
    """Runs whose job original is not the teacher (a student distilled from it) state their
    distance to the teacher too: F1 minus the teacher's, which the README names."""
    lines = readme.read_text(encoding="utf-8").splitlines()
    header = _header(readme)
    assert f"teacher's test F1 of {teacher_f1()}" in " ".join(lines)
    column = [cell.strip() for cell in header.strip("|").split("|")].index("vs teacher")
    for name in table_rows("\n".join(lines)):
        (row,) = [line for line in lines if line.startswith(f"| {name} |")]
        stated = [cell.strip() for cell in row.strip("|").split("|")][column]
        f1, _ = figures_of(readme.parent / name)
        assert stated == f"{float(f1) - float(teacher_f1()):.2f}", name


def test_a_changed_figure_is_caught():
    readme = FOLDER_READMES[0]
    text = readme.read_text(encoding="utf-8")
    name, (f1, change) = next(iter(table_rows(text).items()))
    edited = text.replace(f"| {f1} | {change} |", f"| {f1} | {float(change) - 0.01:.2f} |", 1)
    assert table_rows(edited)[name] != figures_of(readme.parent / name)
