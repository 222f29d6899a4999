"""results.json as a typed schema (``job.results.TaskResult``): round trips, the checks of
``from_dict`` on untrusted files, schema 1 files, ``build``'s refusal of figures measured
on different data, the serving each model is labelled with, and the terminal summary."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from jobrun import TINY

from job import tables
from job.results import (
    SCHEMA,
    CompressedFigures,
    Evaluation,
    Gate,
    Latency,
    Models,
    OriginalFigures,
    RuntimeFigures,
    TaskResult,
    Timing,
    summary,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "results"


def a_result() -> TaskResult:
    """A schema 3 result as ``build`` makes one (every part filled)."""
    return TaskResult(
        run_id="demo",
        task="uie",
        strategy="ptq",
        act_strategies=["quant_post"],
        status="complete",
        metric="f1",
        before={"f1": 0.8512, "precision": 0.8604, "recall": 0.8422},
        after={"f1": 0.8477, "precision": 0.8561, "recall": 0.8395},
        delta_points=-0.35,
        gate=Gate(tolerance=1.0, passed=True),
        model_name="uie-tiny",
        models=Models(
            original=OriginalFigures(
                size_bytes=470_123_456,
                params=117_940_000,
                precision="fp32",
                split="test",
                examples=400,
                serving="FP32 oneDNN: enable_mkldnn() (as Taskflow)",
                source="trained",
                weight_bytes=471_760_000,
            ),
            compressed=CompressedFigures(
                size_bytes=120_456_789,
                params=117_940_000,
                precision="int8",
                split="test",
                examples=400,
                serving="INT8 oneDNN: enable_mkldnn() then enable_mkldnn_int8() with no op set (as Taskflow)",
                int8_ops={"fc": 12},
                int8_scope={"scope": "linear", "kept": 12, "removed": 4, "rewired": 4, "folded": 0},
                calibration={"batches": 2, "batch_size": 16, "fixed": True, "examples": 32},
                compress_seconds=61.5,
                weight_bytes=471_760_000,
            ),
        ),
        evaluation=Evaluation(split="test", examples=400, selection={"split": "dev", "examples": 400}),
        durations={"compress": 61.5, "evaluate compressed": 3.0},
        total_seconds=75.0,
        patches=["dropout_mask"],
        versions={"paddleslim": "2.6.0"},
        hardware={"cpu": "x86_64", "cores": 2, "gpu": None},
        config={"Job": {"strategy": "ptq"}},
        config_fingerprint="f" * 64,
        benchmark=[
            {
                "model": "compressed",
                "runtime": "paddle-inference",
                "precision": "int8",
                "padding": "max",
                "latency_ms": {"median": 12.34},
            }
        ],
        latency=Latency(
            device="cpu",
            backend="onednn",
            batch_size=40,
            seq_len=128,
            threads=2,
            warmup=1,
            repeats=5,
            hardware="AMD EPYC (avx512_vnni)",
            original=Timing(precision="fp32", latency_ms=30.5, p90_ms=31.0, throughput=1311.5),
            compressed=Timing(precision="int8", latency_ms=12.34, p90_ms=12.9, throughput=3241.5),
            speedup=2.472,
        ),
        runtimes=[
            RuntimeFigures(
                runtime="openvino",
                setting="default",
                precision="int8+bf16",
                score_points=83.01,
                delta_points=-0.06,
                int8_ops=20,
                timing=Timing(precision="int8+bf16", latency_ms=11.0, p90_ms=11.5, throughput=3636.4),
                speedup=2.773,
            ),
            RuntimeFigures(runtime="openvino", setting="f32", status="refused", reason="Fail to convert x"),
        ],
        created="2026-12-06T10:00:00+00:00",
    )


def test_round_trip_keeps_the_field_names_users_read():
    result = a_result()
    data = json.loads(result.to_json())
    assert data["schema"] == SCHEMA == 4
    for key in ("status", "metric", "before", "after", "delta_points", "gate", "models", "evaluation", "benchmark"):
        assert key in data, key
    for key in ("versions", "hardware", "config", "config_fingerprint"):
        assert key in data, key
    assert data["gate"] == {"tolerance": 1.0, "passed": True}
    for role in ("original", "compressed"):
        assert {"size_bytes", "params", "precision", "split", "examples", "serving"} <= set(data["models"][role])
    assert "serving" not in data["evaluation"], "serving is recorded per model"
    assert TaskResult.from_dict(data) == result


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("status",), "ok", "status: 'ok' is not one of"),
        (("before", "f1"), True, "before.f1: expected a number, got a boolean"),
        (("after",), [0.8], "after: expected an object, got a list"),
        (("gate", "passed"), "yes", "gate.passed: expected a boolean, got text"),
        (("models", "original", "examples"), 4.5, "models.original.examples: expected an integer, got a number"),
        (("models", "compressed", "split"), 1, "models.compressed.split: expected text, got a number"),
        (("models", "compressed", "int8_ops", "fc"), "12", "models.compressed.int8_ops.fc: expected an integer"),
        (("evaluation", "examples"), "400", "evaluation.examples: expected an integer, got text"),
        (("benchmark", 0), "a record", "benchmark[0]: expected an object, got text"),
        (("task",), "", "task: missing or empty"),
        (("schema",), 5, "schema: 5 is not a results.json schema this job reads"),
        (("models", "original", "surprise"), 1, "models.original.surprise: not a key of results.json schema 4"),
        (("latency", "compressed", "latency_ms"), "12", "latency.compressed.latency_ms: expected a number, got text"),
        (("latency", "speedup"), [2], "latency.speedup: expected a number, got a list"),
        (("models", "compressed", "weight_bytes"), 1.5, "models.compressed.weight_bytes: expected an integer"),
    ],
)
def test_from_dict_names_the_bad_key(path: tuple, value, message: str):
    data = a_result().to_dict()
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(ValueError) as caught:
        TaskResult.from_dict(data)
    assert str(caught.value).startswith(message), str(caught.value)


def test_the_current_schema_must_hold_every_key():
    data = a_result().to_dict()
    del data["models"]["original"]["serving"]
    with pytest.raises(ValueError, match=r"^models\.original\.serving: missing$"):
        TaskResult.from_dict(data)
    data = a_result().to_dict()
    del data["latency"]
    with pytest.raises(ValueError, match=r"^latency: missing$"):
        TaskResult.from_dict(data)


def test_schema_2_files_lack_only_the_keys_schema_3_added():
    data = a_result().to_dict()
    data["schema"] = 2
    del data["latency"]
    for role in ("original", "compressed"):
        del data["models"][role]["weight_bytes"]
    result = TaskResult.from_dict(data)
    assert result.latency is None and result.models.compressed.weight_bytes is None
    del data["models"]["original"]["serving"]
    with pytest.raises(ValueError, match=r"^models\.original\.serving: missing$"):
        TaskResult.from_dict(data)


def test_schema_3_files_lack_only_the_runtimes():
    data = a_result().to_dict()
    data["schema"] = 3
    del data["runtimes"]
    assert TaskResult.from_dict(data).runtimes == []
    data["schema"] = 4
    with pytest.raises(ValueError, match=r"^runtimes: missing$"):
        TaskResult.from_dict(data)
    for key, value in (("runtime", "tensorrt"), ("setting", "bf16"), ("status", "ok"), ("model", "\x1b[2J")):
        bad = a_result().to_dict()
        bad["runtimes"][1][key] = value
        with pytest.raises(ValueError, match=rf"^runtimes\[1\]\.{key}: .* is not one of"):
            TaskResult.from_dict(bad)
    row = a_result().to_dict()
    row["runtimes"][0]["timing"]["latency_ms"] = "fast"
    with pytest.raises(ValueError, match=r"^runtimes\[0\]\.timing\.latency_ms: expected a number, got text$"):
        TaskResult.from_dict(row)


def test_faster_means_a_measured_speedup_above_one():
    assert a_result().latency.faster()
    assert not Latency(speedup=1.0).faster()
    assert not Latency(speedup=None).faster()


def test_schema_1_files_are_read_with_defaults():
    for path in sorted(FIXTURES.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        assert data["schema"] == 1
        result = TaskResult.from_dict(data)
        assert (result.task, result.strategy, result.status) == (data["task"], data["strategy"], data["status"])
        assert result.to_dict()["schema"] == SCHEMA
        assert TaskResult.from_dict(result.to_dict()) == result, path.name
    csl = TaskResult.from_dict(json.loads((FIXTURES / "clue_csl_qat_dis_gpu.json").read_text(encoding="utf-8")))
    assert csl.models.compressed is not None and csl.models.compressed.serving == "", "not recorded in schema 1"
    assert csl.evaluation is not None and csl.evaluation.examples == 4316
    old = {"task": "tnews", "strategy": "ptq", "evaluation": {"split": "test", "serving": "oneDNN"}, "extra": 1}
    assert TaskResult.from_dict(old).evaluation == Evaluation(split="test"), "schema 1's unknown keys are dropped"
    named = {"task": "t", "strategy": "s", "config": {"Global": {"model_dir": "s3://m/ernie-3.0-medium/"}}}
    assert TaskResult.from_dict(named).model_name == "ernie-3.0-medium"


def test_from_dict_does_not_modify_its_input():
    data = a_result().to_dict()
    kept = copy.deepcopy(data)
    TaskResult.from_dict(data).models.compressed.int8_ops["fc"] = 0
    assert data == kept


# --------------------------------------------------------------------------------------
# build: both models measured alike, each labelled with its own serving
# --------------------------------------------------------------------------------------


def build_inputs(tmp_path: Path, before_split: str, before_examples: int) -> dict:
    from job.compress.stage import CompressResult
    from job.config import load_config
    from job.evaluate import EvalResult
    from job.model import ModelFiles, ModelResult

    cfg = load_config(TINY)
    values = {"f1": 0.8, "precision": 0.8, "recall": 0.8}
    return {
        "cfg": cfg,
        "built": ModelResult(ModelFiles(tmp_path / "original"), "given"),
        "compressed": CompressResult(ModelFiles(tmp_path / "compressed"), "ptq", ["quant_post"], 1.0, None),
        "before": EvalResult("f1", values, before_examples, "fp32", 1.0, {}, before_split, "FP32 oneDNN"),
        "after": EvalResult("f1", values, 400, "int8", 1.0, {"fc": 2}, "test", "INT8 oneDNN"),
        "durations": {},
        "bench": None,
        "total_seconds": 1.0,
    }


@pytest.mark.parametrize(("split", "examples"), [("dev", 400), ("test", 399)])
def test_build_refuses_models_scored_on_different_data(tmp_path: Path, split: str, examples: int):
    from job import results

    with pytest.raises(ValueError, match="the gate compares like with like only"):
        results.build(**build_inputs(tmp_path, split, examples))


def test_build_takes_named_inputs_only(tmp_path: Path):
    from job import results

    inputs = build_inputs(tmp_path, "test", 400)
    with pytest.raises(TypeError):
        results.build(*inputs.values())


def test_serving_says_what_each_precision_is():
    from job.evaluate import Serving

    fp32, int8 = Serving(precision="fp32"), Serving(precision="int8")
    assert fp32.describe().startswith("FP32 oneDNN") and "INT8" not in fp32.describe()
    assert "int8" not in fp32.describe().lower()
    assert int8.describe().startswith("INT8 oneDNN") and "enable_mkldnn_int8()" in int8.describe()
    assert Serving(device="gpu", precision="fp32").describe() == "TensorRT FP32"
    assert Serving(device="gpu", precision="int8").describe().startswith("TensorRT INT8")


# --------------------------------------------------------------------------------------
# The terminal summary and the table formatter
# --------------------------------------------------------------------------------------


def test_summary_reads_the_typed_result():
    text = summary(a_result(), "runs/demo/uie/ptq")
    lines = text.splitlines()
    assert lines[1] == "== uie / ptq (quant_post): complete =="
    assert lines[2:21] == [
        "                                                 original          compressed",
        "  f1                                                85.12               84.77",
        "  precision                                         86.04               85.61",
        "  recall                                            84.22               83.95",
        "  model size                                    470.12 MB           120.46 MB",
        "  parameters                                  117,940,000         117,940,000",
        "  served as                                          fp32  int8 (12 INT8 ops)",
        "  weight memory                                 471.76 MB           471.76 MB",
        "  latency (40 x 128, cpu)                         30.5 ms             12.3 ms",
        "  throughput                                    1311.5 /s           3241.5 /s",
        "  speedup                                                               2.47x",
        "  latency paddle-inference int8 (compressed)      12.3 ms",
        "  PTQ calibration                                                 32 examples",
        "  served in each CPU runtime (same split; latency per batch at 40 x 128; speedup against the original as "
        "Paddle Inference serves it):",
        "    model       runtime             ran as        f1  change  latency  speedup  status",
        "    ----------  ------------------  ---------  -----  ------  -------  -------  --------------------------",
        "    compressed  openvino (default)  int8+bf16  83.01   -0.06  11.0 ms    2.77x  measured",
        "    compressed  openvino (f32)      -              -       -        -        -  refused: Fail to convert x",
        "  f1 change -0.35 points on test (400 examples); accuracy gate (tolerance 1.00) PASSED",
    ]
    assert all(line == line.rstrip() for line in lines)
    assert "not faster" not in text


def test_summary_says_plainly_when_the_compressed_model_is_not_faster():
    result = a_result()
    result.latency.compressed = Timing(precision="int8", latency_ms=33.0, p90_ms=34.0, throughput=1200.0)
    result.latency.speedup = round(30.5 / 33.0, 3)
    text = summary(result, "runs/demo/uie/ptq")
    assert "  speedup                                                               0.92x" in text.splitlines()
    assert "  not faster than the original on cpu (AMD EPYC (avx512_vnni))" in text.splitlines()


def test_summary_without_latency_shows_no_latency_rows():
    result = a_result()
    result.latency = None
    for row in result.runtimes:  # Benchmark.quick off: the runtimes are scored, not timed
        row.timing, row.speedup = None, None
    text = summary(result, "runs/demo/uie/ptq")
    assert "speedup" not in text and "latency (" not in text and "latency per batch" not in text
    assert "    compressed  openvino (default)  int8+bf16  83.01   -0.06  measured" in text


def test_weight_bytes_are_the_tensors_data_as_served(tmp_path: Path):
    import numpy as np
    from paddle_params import save_combine

    from job.results import weight_bytes

    arrays = {"a.w": np.ones((3, 4), dtype="float32"), "b.w": np.ones((5,), dtype="int8")}
    save_combine(tmp_path / "inference.pdiparams", arrays)
    folder = type("Model", (), {"params": tmp_path / "inference.pdiparams"})()
    # 12 float32 + 5 int8 served as float32 (predictors dequantize INT8 weights when they
    # load): the data only, not the file's headers (the file is larger than what it stores).
    assert weight_bytes(folder) == 12 * 4 + 5 * 4
    assert (tmp_path / "inference.pdiparams").stat().st_size > 12 * 4 + 5


def test_tables():
    assert tables.markdown(["a", "b"], [["x|y", "1\n2"]], ["---", "---:"]) == [
        "| a | b |",
        "|---|---:|",
        "| x\\|y | 1 2 |",
    ]
    assert tables.markdown(["a"], [["\x1b[31m"]])[2] == "| \\x1b[31m |"
    with pytest.raises(ValueError):
        tables.markdown(["a", "b"], [], ["---"])
    assert tables.text([("name", "n"), ("a", "100")], "<>", indent="  ") == ["  name    n", "  a     100"]
    assert tables.text([("TASK", "REASON"), ("uie", "")]) == ["TASK  REASON", "uie"]
    assert tables.text([]) == []
