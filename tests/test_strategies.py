"""A run of several strategies: its summary table of every strategy and its exit code
(``job.pipeline``), from real ``results.TaskResult`` objects. The end-to-end run of two
strategies, one of them gated, is the slow test at the end."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from jobrun import TINY, run_job
from test_results import a_result

from job.config import load_config
from job.errors import ExitCode, GateError
from job.pipeline import BENCH_RECORD, Outcome, _exit_code, strategies_table
from job.results import Timing

SEVERAL = load_config(TINY, ["Job.strategies=[ptq, qat_dis, prune_dis]"])
ONE = load_config(TINY, ["Job.strategy=ptq"])


def result(strategy: str, status: str = "complete", compressed_ms: float = 12.34):
    """``test_results.a_result()`` for ``strategy``: original 30.5 ms, compressed as given."""
    made = copy.deepcopy(a_result())
    made.strategy, made.status = strategy, status
    made.gate.passed = status == "complete"
    made.latency.compressed = Timing(precision="int8", latency_ms=compressed_ms, p90_ms=compressed_ms, throughput=1.0)
    made.latency.speedup = round(made.latency.original.latency_ms / compressed_ms, 3)
    return made


def outcome(strategy: str, status: str = "complete", compressed_ms: float = 12.34) -> Outcome:
    return Outcome(strategy, f"runs/demo/uie/{strategy}", result(strategy, status, compressed_ms), status)


def test_the_table_shows_every_strategy_against_the_original():
    outcomes = [
        outcome("ptq"),
        outcome("qat_dis", "gated", 40.0),
        Outcome("prune_dis", "runs/demo/uie/prune_dis", None, "failed", "RuntimeError: \x1b[31mboom", 1),
    ]
    lines = strategies_table(SEVERAL, outcomes).splitlines()
    assert lines[1] == "== uie: 3 strategies (run tiny) =="
    assert lines[2].split() == ["model", "status", "metric", "change", "latency", "speedup", "size", "weights"]
    assert lines[4].split() == [
        "original",
        "(uie-tiny)",
        "f1",
        "85.12",
        "30.5",
        "ms",
        "fp32",
        "470.12",
        "MB",
        "471.76",
        "MB",
    ]
    assert lines[5].split() == [
        "ptq",
        "complete",
        "f1",
        "84.77",
        "-0.35",
        "12.3",
        "ms",
        "int8",
        "2.47x",
        "120.46",
        "MB",
        "471.76",
        "MB",
    ]
    assert lines[6].split()[:2] == ["qat_dis", "gated"] and "0.76x" in lines[6]
    assert lines[7].split() == ["prune_dis", "failed"]
    assert lines[8] == "  prune_dis failed: RuntimeError: \\x1b[31mboom"  # escaped, one line
    assert "compression did not pay" not in "\n".join(lines)


def test_the_table_says_plainly_when_no_compressed_model_is_faster():
    text = strategies_table(SEVERAL, [outcome("ptq", compressed_ms=31.0), outcome("qat_dis", compressed_ms=30.5)])
    assert "compression did not pay here: no compressed model was faster than the original" in text
    assert BENCH_RECORD in text
    assert (Path(__file__).parent.parent / BENCH_RECORD).is_file()  # the pointer leads to a committed record


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        (["complete", "gated", "gated"], ExitCode.OK),
        (["gated", "gated", "gated"], ExitCode.GATE),
        (["done", "gated", "complete"], ExitCode.OK),
        (["done", "gated", "gated"], ExitCode.OK),  # a strategy complete from before passed
        (["complete", "failed", "gated"], ExitCode.INTERNAL),
    ],
)
def test_several_strategies_exit_3_only_when_none_passed_and_non_zero_on_a_crash(states, expected):
    outcomes = [
        Outcome(
            name, "", None if state in ("failed", "done") else result(name, state), state, "", 1 * (state == "failed")
        )
        for name, state in zip(("ptq", "qat_dis", "prune_dis"), states, strict=True)
    ]
    assert _exit_code(SEVERAL, outcomes) == expected


def test_one_strategy_gated_is_the_gate_error_of_before():
    with pytest.raises(GateError, match=r"changed f1 by -0\.35 points, beyond the tolerance of 100\.00"):
        _exit_code(ONE, [outcome("ptq", "gated")])
    assert _exit_code(ONE, [outcome("ptq")]) == ExitCode.OK


@pytest.mark.slow
def test_a_gated_strategy_does_not_stop_the_next(tiny):
    """ptq calibrated to clip activations at their 1st percentile ruins F1 (gated); QAT +
    distillation then still runs, passes and is published; the original is evaluated and
    timed once for both; exit 0 since one passed."""
    out = tiny["root"] / "out-several"
    done = run_job(
        "run",
        "--config",
        str(TINY),
        "--strategies",
        "ptq,qat_dis",
        *tiny["overrides"],
        "Teacher.shape=uie-pico",
        "Teacher.checkpoint=teachers/uie-pico-pd199801",
        "Job.gate_tolerance=2.0",
        "QuantPost.batch_nums=2",
        "QuantPost.hist_percent=0.01",
        f"Job.output={out}",
        timeout=1200,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    folders = {name: out / "tiny" / "uie" / name for name in ("ptq", "qat_dis")}
    found = {
        name: json.loads((folder / "results.json").read_text(encoding="utf-8")) for name, folder in folders.items()
    }
    assert found["ptq"]["status"] == "gated" and not (folders["ptq"] / "_SUCCESS").exists()
    assert found["qat_dis"]["status"] == "complete" and (folders["qat_dis"] / "_SUCCESS").is_file()
    assert done.stderr.count("phase evaluate original: started") == 1
    assert done.stderr.count("phase latency original: started") == 1
    for name, results in found.items():
        latency = results["latency"]
        assert latency["original"] == found["ptq"]["latency"]["original"], "one timing of the original"
        assert latency["compressed"]["latency_ms"] > 0 and latency["batch_size"] == 16 and latency["seq_len"] == 64
        assert latency["speedup"] == round(latency["original"]["latency_ms"] / latency["compressed"]["latency_ms"], 3)
        assert results["models"]["compressed"]["weight_bytes"] > 0
        assert results["config"]["Job"]["strategy"] == name and results["config"]["Job"]["strategies"] == []
    assert "== uie: 2 strategies (run tiny) ==" in done.stdout
    # The run ends with the selection: the rule applied to the figures recorded in results.json.
    selection = json.loads((out / "tiny" / "uie" / "_selected" / "selected.json").read_text(encoding="utf-8"))
    assert (out / "tiny" / "uie" / "_selected" / "_SUCCESS").is_file()
    eligible = {
        name: r["latency"]["compressed"]["latency_ms"]
        for name, r in found.items()
        if r["status"] == "complete" and r["latency"]["speedup"] > 1
    }
    expected = min(eligible, key=eligible.get) if eligible else None
    assert selection["selected"] == expected, selection["reason"]
    paddle = [c for c in selection["candidates"] if c["runtime"] == "paddle-inference"]
    assert {c["strategy"]: c["eligible"] for c in paddle} == {n: n in eligible for n in found}
    # The slow tier runs without the OpenVINO extra: its rows are candidates that say so (a gated
    # result's rows say gated), never chosen.
    others = [c for c in selection["candidates"] if c["runtime"] != "paddle-inference"]
    said = {n: "skipped" if r["status"] == "complete" else r["status"] for n, r in found.items()}
    assert others and all(c["status"] == said[c["strategy"]] and not c["eligible"] for c in others), others
    assert selection["runtime"] == ("paddle-inference" if expected else None)
    for name, folder in folders.items():  # a card per published model, its figures from results.json
        card = (folder / "MODEL.md").read_text(encoding="utf-8")
        assert f"{found[name]['after']['f1'] * 100:.2f}" in card
    report_dir = tiny["root"] / "report-several"
    assert run_job("report", str(out), "--out", str(report_dir)).returncode == 0
    assert (report_dir / "pareto.png").stat().st_size > 0
    if expected is None:
        assert all("not faster" in c["why"] for c in selection["candidates"] if c["status"] == "complete")
        return
    # The selected folder as a user loads it: Taskflow at its defaults, within the gate of the original.
    from lab.clients import taskflow_span_f1

    served = taskflow_span_f1(folders[expected], tiny["data"] / "test.txt", max_seq_len=64)
    before = found[expected]["before"]["f1"]
    assert served["int8"] and (before - served["f1"]) * 100 <= 2.0, (served, before)


def test_the_table_says_why_int8_folders_keep_float32_weights():
    folded, stored = outcome("ptq"), outcome("qat_dis")
    folded.result.models.compressed.int8_scope = {"scope": "linear", "folded": 20, "stored_int8": 0}
    stored.result.models.compressed.int8_scope = {"scope": "linear", "folded": 20, "stored_int8": 20}
    text = strategies_table(SEVERAL, [folded, stored])
    assert "  ptq: INT8 linear weights stored as float32 (Job.weights: float32" in text
    assert "qat_dis" not in text.split("INT8 linear weights")[0].splitlines()[-1]
    assert "stored as float32" not in strategies_table(SEVERAL, [stored])
