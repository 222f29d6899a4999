"""lab/headline_check.py: the bench record's headline pair, found in the bench's work folder
and loaded as users load it. The timing itself runs in the lab (it needs OpenVINO and the
bench's UIE-base models); these tests hold what it loads and how it alternates."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from job.errors import InputError
from lab import bench_uie_base as bench
from lab import headline_check

REPO = Path(__file__).resolve().parent.parent
RECORD = REPO / headline_check.Experiment().bench


def _record(drop=lambda row: False) -> dict:
    record = json.loads(RECORD.read_text(encoding="utf-8"))
    record["records"] = [row for row in record["records"] if not drop(row)]
    return record


def _layout(work: Path, *models: str) -> Path:
    """The files the bench run leaves under its work folder, empty."""
    for folder in [
        work / "bench" / "openvino" / "fp32",
        *(bench.model_folder(work, m, "linear") for m in models),
    ]:
        folder.mkdir(parents=True, exist_ok=True)
    (work / "bench" / "openvino" / "fp32" / "nncf-int8.xml").write_text("<net/>", encoding="utf-8")
    for model in models:
        (bench.model_folder(work, model, "linear") / "inference.pdmodel").write_bytes(b"")
    return work


def test_the_committed_headline_is_our_five_eighths_ffn_pruned_folder_in_openvino_default_vs_nncf_default(tmp_path):
    work = _layout(tmp_path, "prune_ffn_ptq", "prune_ffn0625_ptq")
    ours, peer = headline_check.sides(_record(), work)
    assert (ours.runtime, ours.source, ours.hint) == (
        "openvino",
        work / "prune_ffn0625_ptq" / "compressed" / "inference.pdmodel",
        "",
    )
    assert (peer.runtime, peer.source, peer.hint) == (
        "openvino",
        work / "bench" / "openvino" / "fp32" / "nncf-int8.xml",
        "",
    )
    # The rows' ratio stays in the detail; the headline is the pair's side-by-side rounds, the worse way.
    record = _record()
    headline = record["targets"]["headline"]
    assert f"= {peer.recorded_ms / ours.recorded_ms:.3f}x" in headline["detail"]
    modes = record["headline_side_by_side"]["modes"]
    assert headline["value"] == pytest.approx(min(mode["ratio"] for mode in modes.values()))


def test_an_f32_row_is_loaded_with_the_f32_hint(tmp_path):
    """Without the default-precision rows (and Paddle's, which may be as fast) the headline picks the f32
    ones: both get the hint."""
    work = _layout(tmp_path, "prune_ffn_ptq", "prune_ffn0625_ptq")
    ours, peer = headline_check.sides(
        _record(lambda row: str(row.get("variant", "")).endswith("default") or row["runtime"] == "paddle-inference"),
        work,
    )
    assert (ours.label, ours.hint) == ("prune_ffn0625_ptq/paddle-quantized", "f32")
    assert (peer.label, peer.hint) == ("fp32/nncf-int8-f32", "f32")


def test_a_paddle_row_is_loaded_from_its_published_folder(tmp_path):
    """Without our programs in OpenVINO (nor the FFN-pruned entries), ours is Paddle's fastest INT8 within
    the gate: the pruned one."""
    work = _layout(tmp_path, "prune_ptq", "ptq")
    ours, _ = headline_check.sides(
        _record(
            lambda row: (
                (row["runtime"] == "openvino" and row["model"] != "fp32")
                or row["model"] in ("prune050_ptq", "prune_ffn_ptq", "prune_ffn0625_ptq")
            )
        ),
        work,
    )
    assert (ours.runtime, ours.source, ours.hint) == (
        "paddle-inference",
        work / "prune_ptq" / "compressed" / "inference.pdmodel",
        "",
    )


def test_the_ptq_folders_follow_the_bench_layout(tmp_path):
    assert bench.model_folder(tmp_path, "ptq", "linear+pv") == tmp_path / "ptq-linear-pv"
    assert bench.model_folder(tmp_path, "ptq-pv", "linear") == tmp_path / "ptq-linear-pv"
    assert bench.model_folder(tmp_path, "ptq", "linear") == tmp_path / "ptq-linear"


def test_a_missing_model_is_one_line_naming_the_file(tmp_path):
    with pytest.raises(InputError, match=r"prune_ffn0625_ptq/compressed/inference\.pdmodel: not found"):
        headline_check.sides(_record(), tmp_path)


def test_rounds_alternate_the_order():
    calls = []
    runs = {name: (lambda feed, name=name: calls.append(name)) for name in ("ours", "peer")}
    times = headline_check.interleaved(runs, {}, rounds=3, warmup=1)
    assert calls == ["ours", "peer", "ours", "peer", "peer", "ours", "ours", "peer"]
    assert [len(v) for v in times.values()] == [3, 3]


def test_a_pair_is_timed_each_way_and_its_ratio_is_the_peers_over_ours(monkeypatch, tmp_path):
    """``time_pair`` (the bench's headline and this check): an OpenVINO side is loaded both ways, a Paddle
    side once (its dynamic run also stands beside the peer's static one); the ratio is the peer's median
    over ours. Runs that take 4 ms (ours) and 12 ms (the peer): about 3x, never about 1/3."""
    import time

    loaded = []

    def fake_open(side, threads, shapes="dynamic", shape=(40, 128)):
        loaded.append((side.label, shapes, shape))
        return lambda feed: time.sleep(0.004 if side.label == "ours" else 0.012)

    monkeypatch.setattr(headline_check, "open_side", fake_open)
    ours = headline_check.Side("ours", "paddle-inference", tmp_path / "inference.pdmodel", "", 1.0)
    peer = headline_check.Side("peer", "openvino", tmp_path / "nncf-int8.xml", "", 1.0)
    modes = headline_check.time_pair(ours, peer, 2, (4, 16), rounds=5, warmup=1)
    assert sorted(loaded) == [("ours", "dynamic", (4, 16)), ("peer", "dynamic", (4, 16)), ("peer", "static", (4, 16))]
    assert set(modes) == set(headline_check.SHAPES)
    for mode in modes.values():
        assert 2.0 < mode["ratio"] < 3.6, mode
        assert mode["round_ratios"]["min"] <= mode["round_ratios"]["median"] <= mode["round_ratios"]["max"]
        assert [len(mode["times_ms"][key]) for key in ("ours", "peer")] == [5, 5]


def test_without_openvino_it_says_so_in_one_line_and_exits_2(tmp_path):
    try:
        import openvino  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("OpenVINO is installed here")
    work = _layout(tmp_path, "prune_ffn_ptq", "prune_ffn0625_ptq")
    done = subprocess.run(
        [sys.executable, "-m", "job", "lab", "headline_check", "--work", str(work)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: python -m job lab headline_check: OpenVINO is not installed "
        "(bash scripts/setup.sh --openvino, then .venv-openvino/bin/python)"
    ]


def test_the_committed_check_is_of_the_committed_bench_records_headline(tmp_path):
    """The README's check paragraph is about the bench table above it: same record, same pair, same ratio."""
    readme = (REPO / "README.md").read_text("utf-8")
    (check,) = re.findall(r"<!-- headline-check: (records/\S+\.json) -->", readme)
    (table,) = re.findall(r"<!-- bench-table: (records/\S+\.json) -->", readme)
    record = json.loads((REPO / check).read_text(encoding="utf-8"))
    assert record["bench_record"] == table
    bench = json.loads((REPO / record["bench_record"]).read_text(encoding="utf-8"))
    assert record["recorded_ratio"] == pytest.approx(bench["targets"]["headline"]["value"], abs=5e-4)
    work = _layout(tmp_path, "prune_ffn_ptq", "prune_ffn0625_ptq")
    ours, peer = headline_check.sides(bench, work)
    assert (record["sides"]["ours"]["label"], record["sides"]["peer"]["label"]) == (ours.label, peer.label)
    assert set(record["modes"]) == set(headline_check.SHAPES)


@pytest.mark.parametrize(
    "content", ["[1, 2]", '{"records": [1]}', '{"records": [{"padding": "max", "model": 3}]}', "{not json"]
)
def test_a_record_of_another_shape_is_one_line_and_exit_2(tmp_path, content):
    bad = tmp_path / "bench.json"
    bad.write_text(content, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "job", "lab", "headline_check", "--bench", str(bad), "--work", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"error: {bad}: ")
