"""Each published CPU model in each CPU runtime that reads it (job.serve): the job's own rows
of results.json's ``runtimes``, through the real job, Paddle Inference and OpenVINO.

The OpenVINO tests need the optional extra: they are marked ``openvino`` and run in
.venv-openvino (``bash scripts/test.sh --openvino``); the default tier checks the rows say
``skipped`` without it.
"""

from __future__ import annotations

import importlib.util
import json
import shutil

import numpy as np
import pytest
from jobrun import TINY, run_job

from job.config import load_config
from job.errors import ConfigError
from job.results import TaskResult

# Measured on the tiny teacher's 400 test examples (AMD EPYC, 2026-12-06): OpenVINO with FP32
# pinned scored the published PTQ folder F1 15.13, as Paddle Inference's oneDNN INT8 did (0.00
# points apart); at its default (BF16 for the float ops) 15.10 (0.03 apart); on the first six
# test batches the two runtimes' outputs differed by at most 6.2e-5. The bounds leave room for
# other CPUs' kernels and stay far below what a misfed input or a misread INT8 scale costs
# (whole points; outputs off by tenths).
F1_BOUND = {"f32": 0.1, "default": 0.3}
MAX_OUTPUT_DIFF = 1e-3


def _openvino_installed() -> bool:
    return importlib.util.find_spec("openvino") is not None


@pytest.fixture(scope="module")
def served(tiny, tmp_path_factory) -> dict:
    """The job's ptq of the tiny teacher, published locally, with its results.json."""
    out = tmp_path_factory.mktemp("served")
    done = run_job(
        "run",
        "--config",
        str(TINY),
        *tiny["overrides"],
        "Job.strategy=ptq",
        f"Job.output={out}",
        "Job.run_id=serve",
        "Benchmark.quick_repeats=3",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    folder = out / "serve" / "uie" / "ptq"
    result = TaskResult.from_dict(json.loads((folder / "results.json").read_text(encoding="utf-8")))
    return {"folder": folder, "result": result, "log": done.stderr, "stdout": done.stdout}


def _rows(result: TaskResult, model: str) -> dict[tuple[str, str], object]:
    return {(r.runtime, r.setting): r for r in result.runtimes if r.model == model}


@pytest.mark.openvino
def test_the_published_int8_folder_runs_its_linear_layers_in_int8_in_openvino(served):
    result = served["result"]
    rows = _rows(result, "compressed")
    assert list(rows) == [("paddle-inference", "default"), ("openvino", "default"), ("openvino", "f32")]
    linear_int8 = result.models.compressed.int8_ops["fc"]  # Paddle's oneDNN INT8 linear layers
    assert linear_int8 > 0
    for setting in ("default", "f32"):
        row = rows[("openvino", setting)]
        assert row.status == "measured", row.reason
        # Every linear layer Paddle runs in INT8 is an INT8 node in OpenVINO's compiled model.
        assert row.int8_ops == linear_int8, (setting, row.int8_ops, linear_int8)
        assert row.precision.startswith("int8"), row.precision
    assert rows[("openvino", "f32")].precision == "int8"
    original = _rows(result, "original")
    assert original[("openvino", "f32")].precision == "fp32" and original[("openvino", "f32")].int8_ops == 0


@pytest.mark.openvino
def test_openvino_scores_the_folder_as_paddle_inference_does(served):
    result = served["result"]
    rows = _rows(result, "compressed")
    paddle = rows[("paddle-inference", "default")]
    assert paddle.score_points == pytest.approx(result.after[result.metric] * 100, abs=1e-3)
    for setting, bound in F1_BOUND.items():
        row = rows[("openvino", setting)]
        assert abs(row.score_points - paddle.score_points) <= bound, (setting, row.score_points, paddle.score_points)
        assert row.delta_points == pytest.approx(row.score_points - result.before[result.metric] * 100, abs=1e-3)


@pytest.mark.openvino
def test_openvino_outputs_match_paddle_inference_batch_by_batch(served, tiny):
    """The same published folder, the same batches: OpenVINO (FP32 pinned for the float ops)
    and Paddle Inference's oneDNN INT8 give the same span probabilities."""
    from job.benchmark.openvino_peer import Session
    from job.evaluate import Serving, create_predictor, run_batch
    from job.model import ModelFiles

    cfg = load_config(TINY, [*tiny["overrides"], "Job.strategy=ptq"])
    from job import pipeline

    task = pipeline.prepare(cfg, {}).task
    model = ModelFiles(served["folder"])
    predictor, used, _ = create_predictor(model, Serving(threads=1))
    assert used == "int8"
    session = Session(model.program, 1, "f32", static=False)
    worst = 0.0
    for count, batch in enumerate(task.batches("test", 16)):
        ours, theirs = session(batch), run_batch(predictor, batch)
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs, strict=True):
            worst = max(worst, float(np.max(np.abs(a - b))))
        if count == 5:
            break
    assert worst <= MAX_OUTPUT_DIFF, worst


@pytest.mark.openvino
def test_the_headline_checks_loaders_give_the_jobs_outputs(served, tiny):
    """lab.headline_check loads a published folder as its users do (OpenVINO with the card's
    code, shapes dynamic; Paddle as Taskflow serves it): on the same batch, both give what
    the job's own OpenVINO session and evaluation predictor give."""
    from job import pipeline
    from job.benchmark.openvino_peer import Session
    from job.evaluate import Serving, create_predictor, run_batch
    from job.model import ModelFiles
    from lab import headline_check

    task = pipeline.prepare(load_config(TINY, [*tiny["overrides"], "Job.strategy=ptq"]), {}).task
    batch = next(iter(task.batches("test", 16)))
    model = ModelFiles(served["folder"])
    side = headline_check.Side("ptq", "openvino", model.program, "f32", 1.0)
    expected = Session(model.program, 1, "f32", static=False)(batch)
    for ours, theirs in zip(headline_check.open_side(side, 1)(batch), expected, strict=True):
        assert float(np.max(np.abs(ours - theirs))) <= MAX_OUTPUT_DIFF
    predictor, used, _ = create_predictor(model, Serving(threads=1))
    assert used == "int8"
    paddle = headline_check.Side("ptq", "paddle-inference", model.program, "", 1.0)
    for ours, theirs in zip(headline_check.open_side(paddle, 1)(batch), run_batch(predictor, batch), strict=True):
        assert float(np.max(np.abs(ours - theirs))) <= MAX_OUTPUT_DIFF


@pytest.mark.openvino
def test_rows_are_timed_like_the_paddle_row_and_speedups_follow(served):
    result = served["result"]
    original_ms = result.latency.original.latency_ms
    for row in result.runtimes:
        assert row.timing is not None and row.timing.latency_ms > 0, row
        assert row.timing.precision == row.precision
        assert row.speedup == pytest.approx(round(original_ms / row.timing.latency_ms, 3), abs=1e-3)
    assert _rows(result, "compressed")[("paddle-inference", "default")].timing == result.latency.compressed
    assert "served in each CPU runtime" in served["stdout"]


@pytest.mark.openvino
def test_a_program_openvino_refuses_and_a_runtime_that_loses_the_gate_are_rows(served, tiny, tmp_path):
    from job import pipeline, serve
    from job.evaluate import EvalResult
    from job.model import ModelFiles

    cfg = load_config(TINY, [*tiny["overrides"], "Job.strategy=ptq", "Job.gate_tolerance=1.0"])
    task = pipeline.prepare(cfg, {}).task
    broken = tmp_path / "broken"
    shutil.copytree(served["folder"], broken)
    (broken / "inference.pdmodel").write_bytes(b"\x08\x01not a program")
    result = served["result"]
    paddle = _rows(result, "compressed")[("paddle-inference", "default")]
    after = EvalResult(result.metric, dict(result.after), 400, "int8", 1.0, split="test")
    # The original scored 3 points above what the folder scores: every runtime loses the gate.
    before = EvalResult(result.metric, {result.metric: paddle.score_points / 100 + 0.03}, 400, "fp32", 1.0, "test")
    timed: list = []

    def time_entries(entries):
        timed.extend(entries)
        return []

    rows = serve.rows(cfg, task, "compressed", ModelFiles(broken), after, None, before, None, time_entries)
    assert [(r.runtime, r.setting, r.status) for r in rows] == [
        ("paddle-inference", "default", "gated"),
        ("openvino", "default", "refused"),
        ("openvino", "f32", "refused"),
    ]
    assert all(r.reason and "\n" not in r.reason and len(r.reason) <= 300 for r in rows)
    assert all(r.timing is None and r.score_points is None for r in rows[1:])
    rows = serve.rows(cfg, task, "compressed", ModelFiles(served["folder"]), after, None, before, None, time_entries)
    assert [r.status for r in rows] == ["gated", "gated", "gated"]
    assert not timed, "a runtime that lost the gate is not offered, so not timed"


def test_without_openvino_the_rows_say_skipped(tmp_path):
    """The default tier (no OpenVINO): the job's rows say why instead of failing."""
    if _openvino_installed():
        pytest.skip("openvino is installed here: the openvino tier measures the rows")
    from job import serve
    from job.evaluate import EvalResult

    cfg = load_config(TINY, ["Job.strategy=ptq"])
    before = EvalResult("f1", {"f1": 0.5}, 10, "fp32", 1.0, split="test")
    after = EvalResult("f1", {"f1": 0.495}, 10, "int8", 1.0, split="test")
    rows = serve.rows(cfg, None, "compressed", None, after, None, before, None, None)
    assert [(r.runtime, r.setting, r.status) for r in rows] == [
        ("paddle-inference", "default", "measured"),
        ("openvino", "default", "skipped"),
        ("openvino", "f32", "skipped"),
    ]
    assert "requirements/extras/openvino.txt" in rows[1].reason
    assert rows[0].delta_points == pytest.approx(-0.5)
    cfg_strict = load_config(TINY, ["Job.strategy=ptq", "Job.gate_tolerance=0.4"])
    assert serve.rows(cfg_strict, None, "compressed", None, after, None, before, None, None)[0].status == "gated"


def test_no_cpu_runtime_rows_on_gpu_or_when_none_are_asked():
    from job import serve

    assert serve.settings(load_config(TINY, ["Job.strategy=ptq"])) == [("openvino", "default"), ("openvino", "f32")]
    assert serve.settings(load_config(TINY, ["Job.strategy=ptq", "Benchmark.cpu_runtimes=[]"])) == []
    assert serve.settings(load_config(TINY, ["Job.strategy=ptq", "Job.device=gpu"])) == []


@pytest.mark.parametrize("value", ["[tensorrt]", "[openvino, openvino]"])
def test_an_unknown_or_repeated_cpu_runtime_is_one_line_naming_the_key(value):
    with pytest.raises(ConfigError, match=r"Benchmark\.cpu_runtimes") as caught:
        load_config(TINY, ["Job.strategy=ptq", f"Benchmark.cpu_runtimes={value}"])
    assert "\n" not in str(caught.value)
