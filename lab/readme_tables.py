"""The README's measured blocks, each a pure function of one committed record under ``records/``.

A block in README.md opens with ``<!-- NAME: records/FILE.json -->`` and closes with
``<!-- /NAME -->``; ``BLOCKS`` maps NAME to the function that renders its text from the
record. ``tests/test_readme_figures.py`` holds every block equal to its rendering, so a
figure in a block is the record's or the test fails. Prose outside the blocks carries no
measured figure (the same test looks for them).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from job import tables

__all__ = ["BLOCKS", "blocks", "render_demo_table", "render_int8_weights_table", "render_probe_table"]

# Ops whose time moves when attention runs in INT8, named as a reader knows them.
_OP_NAMES = {
    "fused_matmul": "attention matmuls",
    "reshape2": "reshape copies",
    "fused_elementwise_add": "adds (the mask add unfused)",
    "softmax": "softmax",
    "quantize": "quantize",
    "layer_norm": "layer norm",
    "fused_transpose": "transposes",
}
_SHOWN_MS = 5.0  # an op's change shown in the probe table from this many ms per batch


def render_probe_table(record: dict) -> str:
    """The INT8-attention probe's table: median latency per scope, ratio to ``linear``, the
    demo teacher's F1, and the ops whose time moved most against ``linear`` (profiles)."""
    scopes = record["scopes"]
    base = {row["op"]: row["ms_per_run"] for row in scopes["linear"]["profile"]}
    rows = []
    for scope, row in scopes.items():
        profile = {entry["op"]: entry["ms_per_run"] for entry in row["profile"]}
        if scope == "linear":
            moved = f"attention matmuls in FP32: {profile.get('fused_matmul', 0.0):.0f}"
        else:
            deltas = {op: profile.get(op, 0.0) - base.get(op, 0.0) for op in _OP_NAMES}
            shown = sorted((op for op, d in deltas.items() if abs(d) >= _SHOWN_MS), key=lambda op: deltas[op])
            moved = ", ".join(f"{_OP_NAMES[op]} {deltas[op]:+.0f}" for op in shown)
        label = f"`{scope}`" + (" (experiment)" if scope == "linear+qk" else "")
        figures = [f"{row['median_ms']:.1f}", f"{row['speedup_vs_linear']:.3f}×", f"{row['teacher']['f1']:.2f}"]
        rows.append([label, *figures, moved])
    headers = [
        "INT8 scope",
        "median ms",
        "vs `linear`",
        "demo F1",
        "where the time moved (ms per batch, against `linear`)",
    ]
    return "\n".join(tables.markdown(headers, rows, ["---"] * len(headers)))


def _minutes(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def render_demo_table(record: dict) -> str:
    """The demo table (``lab/demo_table.py``'s record): per strategy the job's F1 beside
    Taskflow's on the same test sentences, the gate, parameters, size, compression time."""
    teacher = record["teacher"]
    taskflow = f"{teacher['taskflow']['f1'] * 100:.2f}" if teacher.get("taskflow") else "–"
    params = f"{teacher['params']:,}" if "params" in teacher else "–"
    size = f"{teacher['size_bytes'] / 1e6:.2f} MB" if "size_bytes" in teacher else "–"
    rows = [
        ["original (teacher)", "–", "FP32", f"{teacher['job_f1'] * 100:.2f}", taskflow, "–", "–", params, size, "–"]
    ]
    for row in record["rows"]:
        job = row["job"]
        gate = f"{'passed' if job['gate']['passed'] else 'failed'} ({job['gate']['tolerance']:g})"
        served = job["precision"].upper()
        if job.get("int8_ops"):
            served += f" ({sum(job['int8_ops'].values())} ops)"
        # As a user types it: the demo script, without where this run kept its outputs and cache.
        words = [w for w in row["command"].split() if not w.startswith(("Job.output=", "Job.cache_dir="))]
        command = " ".join(words).replace("python -m job run --config configs/uie_demo.yaml", "bash scripts/demo.sh")
        rows.append(
            [
                f"`{row['strategy']}`",
                f"`{command}`",
                served,
                f"{job['f1'] * 100:.2f}",
                f"{row['taskflow']['f1'] * 100:.2f}",
                f"{job['delta_points']:+.2f}",
                gate,
                f"{job['params']:,}",
                f"{job['size_bytes'] / 1e6:.2f} MB",
                _minutes(job.get("compress_seconds")),
            ]
        )
    headers = ["strategy", "command (after `bash scripts/setup.sh`)", "served as", "job F1", "Taskflow F1", "change"]
    headers += ["gate", "parameters", "model size", "compression time"]
    return "\n".join(tables.markdown(headers, rows, ["---"] * len(headers)))


_WEIGHTS_LABELS = {
    "float32": "float32 (published)",
    "int8": "INT8 + `quantize_linear` scale hint",
    "int8-nohint": "INT8, no hint",
    "int8-assign": "INT8 + in-place `assign` scale hint",
}


def render_int8_weights_table(record: dict) -> str:
    """The INT8-weights probe's table: per storage of the linear weights, the parameter file
    and folder sizes and the F1 through oneDNN INT8, an FP32 predictor and Taskflow."""

    def f1(result: dict | None) -> str:
        if not result:
            return "–"
        return f"{result['f1']:.2f}" if "f1" in result else "fails (no INT8 kernel)"

    original = record["original"]
    rows = [["original (FP32)", "–", f"{original['size_bytes'] / 1e6:.2f} MB", "–", f"{original['f1']:.2f}", "–"]]
    for name, row in record["variants"].items():
        rows.append(
            [
                _WEIGHTS_LABELS.get(name, name),
                f"{row['params_bytes'] / 1e6:.2f} MB",
                f"{row['folder_bytes'] / 1e6:.2f} MB",
                f1(row["served_int8"]),
                f1(row["served_fp32"]),
                f1(row.get("taskflow")),
            ]
        )
    headers = ["linear weights", "parameter file", "folder", "F1 oneDNN INT8", "F1 FP32 predictor", "F1 Taskflow"]
    return "\n".join(tables.markdown(headers, rows, ["---"] * len(headers)))


def _bench_table(record: dict) -> str:
    from lab.bench_record import render_table

    return render_table(record).rstrip("\n")


def _headline_check(record: dict) -> str:
    from lab.headline_check import render_paragraph

    return render_paragraph(record)


def _load_pull(record: dict) -> str:
    from lab.load_pull import render_paragraph

    return render_paragraph(record)


BLOCKS: dict[str, Callable[[dict], str]] = {
    "bench-table": _bench_table,
    "probe-table": render_probe_table,
    "demo-table": render_demo_table,
    "load-pull": _load_pull,
    "headline-check": _headline_check,
    "weights-table": render_int8_weights_table,
}

_BLOCK = re.compile(r"<!-- ([a-z-]+): (records/[\w./-]+\.json) -->\n(.*?)\n<!-- /\1 -->", re.S)


def blocks(readme: str) -> list[tuple[str, str, str]]:
    """Every measured block of a README text: (name, record path, text between the markers)."""
    return [(m.group(1), m.group(2), m.group(3)) for m in _BLOCK.finditer(readme)]


def render(name: str, record_path: Path) -> str:
    """The text block ``name`` must hold for the record at ``record_path``."""
    return BLOCKS[name](json.loads(record_path.read_text(encoding="utf-8")))


def rewrite(readme: Path, root: Path) -> int:
    """Re-render every measured block of ``readme`` from its record in place; returns how many changed."""
    text = readme.read_text(encoding="utf-8")
    changed = 0
    for name, record, body in blocks(text):
        fresh = render(name, root / record)
        if fresh != body:
            text = text.replace(f"<!-- {name}: {record} -->\n{body}\n", f"<!-- {name}: {record} -->\n{fresh}\n", 1)
            changed += 1
    readme.write_text(text, encoding="utf-8")
    return changed


if __name__ == "__main__":  # python -m lab.readme_tables: re-render README.md's measured blocks
    _root = Path(__file__).resolve().parent.parent
    print(f"{rewrite(_root / 'README.md', _root)} block(s) re-rendered")
