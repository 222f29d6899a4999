"""The latency harness on a tiny UIE: Paddle Inference (oneDNN FP32 and INT8), the GPU
path (skipped without a GPU, never faked), the padding comparison on the same texts, and
the ONNX Runtime and OpenVINO peers (tests/test_bench_record.py: the run's record)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from job.config import BenchmarkConfig

# Record fields every measured record carries (item 1 of the benchmark's contract).
FIELDS = {
    "model",
    "runtime",
    "device",
    "backend",
    "precision",
    "padding",
    "batch_size",
    "seq_len",
    "threads",
    "warmup",
    "repeats",
    "latency_ms",
    "throughput",
    "peak_memory_mb",
    "hardware",
    "versions",
}
SENTENCE = "新华社北京一月一日电国家主席江泽民在人民大会堂发表新年讲话回顾过去一年的成就展望新世纪的发展前景"
PROMPTS = ("人名", "地名", "时间")


def _examples(count: int, where: str):
    from job.data.uie import UIEExample

    out = []
    for i in range(count):
        length = 4 + (i * 7) % 52  # 4..55 characters: many lengths
        content = (SENTENCE * 2)[i % 10 : i % 10 + length]
        out.append(UIEExample(content, PROMPTS[i % 3], (), f"{where}:{i + 1}"))
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny exported UIE, its PTQ INT8 version (job.compress, strategy ptq), and a task."""
    from job import compress
    from job.config import load_config
    from job.data.tasks import UIETask
    from job.data.uie import UIEData, encode
    from job.model import ModelFiles, build_uie, build_vocab, export_uie, load_tokenizer, save_tokenizer

    root = tmp_path_factory.mktemp("bench")
    vocab_dir = root / "tokenizer"
    save_tokenizer(build_vocab([SENTENCE, *PROMPTS]), vocab_dir)
    tokenizer = load_tokenizer(vocab_dir)
    splits = {
        split: encode(UIEData(_examples(n, split)), tokenizer, 64)
        for split, n in (("train", 16), ("dev", 16), ("test", 48))
    }
    task = UIETask(splits)
    model = build_uie("uie-tiny", len(tokenizer.vocab), seed=1)
    fp32 = ModelFiles(export_uie(model, vocab_dir, root / "fp32")).check()
    config = root / "ptq.yaml"
    config.write_text(
        "Global: {task_name: uie, dataset: embedded, batch_size: 8, max_seq_length: 64}\n"
        "QuantPost: {batch_size: 8, batch_nums: 1, algo: abs_max, onnx_format: true}\n"
        "Job: {strategy: ptq, threads: 1}\n",
        encoding="utf-8",
    )
    (root / "ptq").mkdir()
    int8 = compress.run(load_config(config), fp32, task, root / "ptq").model
    return {"root": root, "task": task, "fp32": fp32, "int8": int8}


def _cfg(**overrides) -> BenchmarkConfig:
    values = {
        "batch_size": 8,
        "max_seq_len": 64,
        "threads": 1,
        "warmup": 1,
        "repeats": 2,
        "dynamic_padding": True,
        "onnx_peer": False,
    }
    values.update(overrides)
    return BenchmarkConfig(**values)


@pytest.fixture(scope="module")
def cpu_result(tiny):
    from job import benchmark

    cfg = _cfg(onnx_peer=True)
    return benchmark.run(
        cfg, {"original": tiny["fp32"], "compressed": tiny["int8"]}, tiny["task"], workdir=tiny["root"] / "bench"
    )


def test_records_have_every_field_and_positive_latency(cpu_result):
    measured = [r for r in cpu_result.records if r.get("latency_ms")]
    assert measured, cpu_result.summary()
    for record in measured:
        assert FIELDS <= set(record), FIELDS - set(record)
        lat = record["latency_ms"]
        assert set(lat) == {"median", "p90", "p99", "mean"}
        assert 0 < lat["median"] <= lat["p90"] <= lat["p99"]
        assert record["throughput"] > 0 and record["peak_memory_mb"] > 10
        assert record["peak_memory_method"] == "VmHWM reset after model load"
        assert record["threads"] == 1 and record["batch_size"] == 8
        assert record["device"] == "cpu"
        assert record["hardware"]["cores"] >= 1 and record["versions"]["paddlepaddle"] == "2.6.2"
        assert record["runtime"] in ("paddle-inference", "onnxruntime")
        assert record["backend"] == ("onednn" if record["runtime"] == "paddle-inference" else "ort-cpu")
    json.dumps(cpu_result.records)  # results.json takes them as they are


def test_paddle_fp32_for_float_programs_int8_for_quantized_ones(cpu_result):
    paddle_max = {(r["model"], r["precision"]) for r in cpu_result.find(runtime="paddle-inference", padding="max")}
    assert paddle_max == {("original", "fp32"), ("compressed", "int8")}
    for record in cpu_result.find(runtime="paddle-inference", padding="max"):
        assert (
            record["seq_len"] == 64 and record["repeats"] == 2 and record["warmup"] == 1 and record["timed_runs"] == 2
        )
    # The INT8 figure comes with how far its outputs are from the quantized program run in FP32.
    (int8,) = cpu_result.find(runtime="paddle-inference", precision="int8", padding="max")
    # The outputs are probabilities: a bound of 1 could not fail. The INT8 kernels must compute
    # what the program says up to rounding (far below 1e-6 on this fixture); a probability off
    # by 0.05 is another computation than the program asks for.
    assert 0 <= int8["int8_check"]["mean_abs_diff"] <= int8["int8_check"]["max_abs_diff"] < 0.05
    # ... and with proof that INT8 kernels ran: the ops the predictor marked INT8 in its optimized
    # program, and outputs that differ from the FP32-simulated program (equal outputs: no INT8 ran).
    assert int8["int8_ops"].get("fc", 0) > 0, int8["int8_ops"]
    assert int8["int8_check"]["max_abs_diff"] > 0
    assert "int8_check" not in cpu_result.find(runtime="paddle-inference", precision="fp32", padding="max")[0]


def test_padding_modes_time_the_same_texts(cpu_result, tiny):
    """Padded to max, to each batch's longest (original order) and length-bucketed: three
    figures of one sample of texts, so their ratio is like for like."""
    for model in ("original", "compressed"):
        by = {
            r["padding"]: r for r in cpu_result.find(model=model, runtime="paddle-inference") if r["padding"] != "max"
        }
        assert set(by) == {"to-max", "to-longest", "bucketed"}
        assert len({r["texts"] for r in by.values()}) == 1 and by["to-max"]["texts"] == 48, (
            "every mode times the whole (48-text) sample"
        )
        assert len({r["seq_len"] for r in by.values()}) == 1, "the same texts have the same mean real length"
        assert by["to-max"]["padded_len_mean"] == 64 and by["to-max"]["shapes"] == ["8x64"]
        assert by["bucketed"]["padded_len_mean"] < by["to-longest"]["padded_len_mean"] <= 64
        for record in by.values():
            assert record["timed_runs"] == record["batches"] * record["passes"] and record["throughput"] > 0
            assert all(int(shape.split("x")[1]) % 16 == 0 for shape in record["shapes"])


def test_padding_workload_holds_the_same_texts_in_each_mode(tiny, monkeypatch):
    from job.benchmark import TEXT_PADDINGS
    from job.benchmark import workload as workloads

    monkeypatch.setattr(workloads, "TEXT_BATCHES", 3)  # a sample smaller than the split: 24 of 48 texts
    task = tiny["task"]
    workload = workloads.build_workload(_cfg(), task, list(task.input_names))

    def rows(batches):
        return [
            tuple(ids[mask == 1])
            for batch in batches
            for ids, mask in zip(batch["input_ids"], batch["attention_mask"], strict=True)
        ]

    in_order = rows(workload["texts"]["to-max"])
    assert len(in_order) == len(workload["sample"]) == 24 and workload["sample"].max() > 40, (
        "the sample spreads over the split"
    )
    assert rows(workload["texts"]["to-longest"]) == in_order, "padding to the longest keeps the batches and their order"
    assert sorted(rows(workload["texts"]["bucketed"])) == sorted(in_order), "bucketing reorders the same texts"
    assert rows(workload["texts"]["bucketed"]) != in_order
    widths = [b["input_ids"].shape[1] for b in workload["texts"]["bucketed"]]
    assert widths == sorted(widths) and set(workload["texts"]) == set(TEXT_PADDINGS)


def test_onnx_runtime_peer_fp32_and_best_int8(cpu_result):
    ort = cpu_result.find(runtime="onnxruntime", padding="max")
    assert {r["precision"] for r in ort} == {"fp32", "int8"}
    for record in ort:
        assert record["model"] == "original", "the peer starts from the FP32 Paddle model"
        assert record.get("latency_ms"), record.get("error")
        tried = record["variants_tried"]
        assert record["variant"] in {t["variant"] for t in tried}
        timed = [t for t in tried if "median_ms" in t]
        assert record["latency_ms"]["median"] == pytest.approx(min(t["median_ms"] for t in timed), abs=0.01), (
            "the fastest variant is reported"
        )
    int8 = next(r for r in ort if r["precision"] == "int8")
    made = {t["variant"]: t for t in int8["variants_tried"]}
    assert {
        "int8-dynamic",
        "int8-dynamic-per-channel",
        "int8-static-qdq-per-channel",
        "int8-static-qoperator-per-channel",
    } <= set(made)
    assert all(t["quantized_nodes"] > 0 for t in made.values() if "median_ms" in t)
    assert all(t["max_abs_diff_vs_fp32"] < 0.5 for t in made.values() if "median_ms" in t)
    assert {r["padding"] for r in cpu_result.find(runtime="onnxruntime", precision="fp32")} == {"max"}, (
        "only the best INT8 is timed in the padding modes"
    )


def _same_texts_as_paddle(result, rows):
    """Peer padding rows time the very texts, batches and widths of Paddle's padding rows."""
    paddle = {
        r["padding"]: r for r in result.find(model="original", runtime="paddle-inference") if r["padding"] != "max"
    }
    assert {r["padding"] for r in rows} == set(paddle) == {"to-max", "to-longest", "bucketed"}
    for row in rows:
        like = paddle[row["padding"]]
        assert row.get("latency_ms"), row.get("error")
        for key in ("texts", "batches", "seq_len", "padded_len_mean", "shapes", "timed_runs"):
            assert row[key] == like[key], (row["padding"], key)


def test_onnx_runtime_best_int8_is_timed_in_the_padding_modes(cpu_result):
    (best,) = cpu_result.find(runtime="onnxruntime", precision="int8", padding="max")
    rows = [r for r in cpu_result.find(runtime="onnxruntime") if r["padding"] != "max"]
    assert {(r["precision"], r["variant"]) for r in rows} == {("int8", best["variant"])}
    _same_texts_as_paddle(cpu_result, rows)


def test_summary_lists_every_record(cpu_result):
    text = cpu_result.summary()
    assert "median ms" in text and "samples/s" in text and "versions: " in text
    assert text.count("paddle-inference") == 8 and text.count("onnxruntime") >= 5


def test_profile_names_the_op_types(cpu_result):
    paddle_rows = cpu_result.profile(cpu_result.find(model="compressed", padding="max")[0], runs=2, top=5)
    assert paddle_rows[-1]["op"] == "(wall time per run)" and len(paddle_rows) >= 3
    assert any(row["op"] in ("fc", "fused_matmul", "matmul_v2", "quantize") for row in paddle_rows)
    ort_rows = cpu_result.profile(
        cpu_result.find(runtime="onnxruntime", precision="int8", padding="max")[0], runs=2, top=5
    )
    assert all(row["ms_per_run"] >= 0 for row in ort_rows) and len(ort_rows) >= 3


def test_gpu_path_is_skipped_with_a_reason_and_no_numbers(tiny, caplog):
    from job import benchmark

    ok, _ = benchmark.gpu_available()
    if ok:
        pytest.skip("a GPU is present: the skip path does not apply")
    with caplog.at_level(logging.WARNING, logger="job.benchmark"):
        result = benchmark.run(
            _cfg(device="gpu", precisions=["fp32", "fp16", "int8"], onnx_peer=True),
            {"original": tiny["fp32"], "compressed": tiny["int8"]},
            tiny["task"],
        )
    assert any("GPU (TensorRT) measurements are skipped" in m for m in caplog.messages)
    paddle_records = result.find(runtime="paddle-inference")
    assert {(r["model"], r["precision"]) for r in paddle_records} == {
        ("original", "fp32"),
        ("original", "fp16"),
        ("compressed", "int8"),
    }
    for record in result.records:
        assert record["device"] == "gpu" and record["skipped"]
        assert record["latency_ms"] is None and record["throughput"] is None and record["peak_memory_mb"] is None
    assert all(r["backend"] == "tensorrt" for r in paddle_records)
    assert "skipped:" in result.summary()


def test_gpu_config_has_dynamic_shape_ranges(tiny):
    """The TensorRT configuration is built (not run) on CPU builds too."""
    from job.evaluate import Serving
    from job.runtime import paddle

    if not paddle.is_compiled_with_cuda():
        pytest.skip("this paddle build has no CUDA: enable_tensorrt_engine is refused")
    serving = Serving(device="gpu", precision="fp16", max_batch_size=8, max_seq_len=64, input_names=("input_ids",))
    assert serving.config(tiny["fp32"]).tensorrt_engine_enabled()


def test_precisions_by_program_and_device():
    from job.benchmark.paddle_inference import precisions as _precisions

    assert _precisions(_cfg(), quantized=False) == ["fp32"]
    assert _precisions(_cfg(), quantized=True) == ["int8"]
    assert _precisions(_cfg(precisions=["fp32", "fp16", "int8"], device="gpu"), quantized=False) == ["fp32", "fp16"]
    assert _precisions(_cfg(precisions=["fp16"]), quantized=False) == []


def test_in_process_mode_measures_the_same_way(tiny):
    from job import benchmark

    result = benchmark.run(
        _cfg(dynamic_padding=False), {"original": tiny["fp32"], "compressed": tiny["int8"]}, tiny["task"], isolate=False
    )
    isolated = benchmark.run(
        _cfg(dynamic_padding=False), {"original": tiny["fp32"], "compressed": tiny["int8"]}, tiny["task"]
    )
    assert [(r["model"], r["precision"], r["padding"]) for r in result.records] == [
        (r["model"], r["precision"], r["padding"]) for r in isolated.records
    ]
    for here, there in zip(result.records, isolated.records, strict=True):
        assert set(here) == set(there) and here["timed_runs"] == there["timed_runs"] == 2
        assert here.get("int8_ops") == there.get("int8_ops")


def test_onnx_export_moves_constant_weights_to_initializers(tiny, tmp_path: Path):
    import onnx

    from job.benchmark import export_onnx

    path = export_onnx(tiny["fp32"], tmp_path / "model.onnx")
    proto = onnx.load(str(path))
    big_constants = [
        n
        for n in proto.graph.node
        if n.op_type == "Constant" and any(a.t.dims and np.prod(a.t.dims) > 16 for a in n.attribute)
    ]
    assert not big_constants
    assert sum(np.prod(i.dims) for i in proto.graph.initializer) > 100_000


# --------------------------------------------------------------------------------------
# OpenVINO peer (optional package: bash scripts/setup.sh --openvino makes .venv-openvino)
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ov_result(tiny):
    from job import benchmark
    from job.benchmark import openvino_peer

    ok, why = openvino_peer.available()
    if not ok:  # the openvino tier runs in .venv-openvino: a missing package there is a failure
        pytest.fail(why)
    broken = tiny["root"] / "broken"
    if not broken.exists():
        import shutil

        shutil.copytree(tiny["fp32"].folder, broken)
        (broken / "inference.pdmodel").write_bytes(b"not a program")
    from job.model import ModelFiles

    models = {"original": tiny["fp32"], "compressed": tiny["int8"], "broken": ModelFiles(broken)}
    cfg = _cfg()
    entries = [
        *benchmark.plan(cfg, {"original": tiny["fp32"]}),
        benchmark.Planned("original", "openvino", options={"quantized": ("compressed", "broken")}),
    ]
    return benchmark.run(cfg, models, tiny["task"], entries, workdir=tiny["root"] / "bench-ov")


@pytest.mark.openvino
def test_openvino_rows_fp32_default_and_nncf_int8(ov_result):
    from job.benchmark import OPENVINO_VARIANTS

    rows = {r["variant"]: r for r in ov_result.find(runtime="openvino", model="original", padding="max")}
    assert set(rows) == set(OPENVINO_VARIANTS)
    for variant, record in rows.items():
        assert record.get("latency_ms"), record.get("error")
        assert FIELDS <= set(record), FIELDS - set(record)
        assert record["backend"] == "ov-cpu" and record["padding"] == "max" and record["threads"] == 1
        assert record["timed_runs"] == 2 and record["seq_len"] == 64 and record["batch_size"] == 8
        assert record["precision"] == OPENVINO_VARIANTS[variant][0]
        assert record["versions"]["openvino"] and record["versions"]["nncf"]
    # The f32 hint pins FP32 for whatever is not INT8; the default is what the CPU offers.
    assert rows["f32"]["inference_precision"] == rows["nncf-int8-f32"]["inference_precision"] == "f32"
    bf16 = "avx512_bf16" in rows["f32"]["hardware"]["isa"] or any(
        f.startswith("amx") for f in rows["f32"]["hardware"]["isa"]
    )
    assert rows["default"]["inference_precision"] == ("bf16" if bf16 else "f32")
    assert (
        rows["nncf-int8-f32"]["nncf"]["fake_quantize_nodes"] > 0
        and rows["nncf-int8-f32"]["nncf"]["calibration_batches"] > 0
    )


@pytest.mark.openvino
def test_openvino_measurements_each_in_their_own_worker(ov_result):
    import os

    pids = [r["worker_pid"] for r in ov_result.records if r.get("latency_ms") and r["padding"] == "max"]
    assert len(pids) >= 5 and len(set(pids)) == len(pids) and os.getpid() not in pids
    # The padding modes of one session share its worker, a worker of its own.
    padded = {r["worker_pid"] for r in ov_result.find(runtime="openvino") if r["padding"] != "max"}
    assert len(padded) == 2 and not padded & set(pids) and os.getpid() not in padded


@pytest.mark.openvino
def test_openvino_best_int8_and_default_are_timed_in_the_padding_modes_with_dynamic_shapes(ov_result):
    at_max = {r["variant"]: r for r in ov_result.find(runtime="openvino", model="original", padding="max")}
    fastest = min(("nncf-int8-f32", "nncf-int8-default"), key=lambda v: at_max[v]["latency_ms"]["median"])
    rows = [r for r in ov_result.find(runtime="openvino") if r["padding"] != "max"]
    assert {r["variant"] for r in rows} == {fastest, "default"}
    assert (
        all(r["shapes_compiled"] == "dynamic" for r in rows)
        and at_max["default"]["shapes_compiled"] == "per batch shape"
    )
    for variant in (fastest, "default"):
        _same_texts_as_paddle(ov_result, [r for r in rows if r["variant"] == variant])
        assert all(
            r["inference_precision"] == at_max[variant]["inference_precision"] for r in rows if r["variant"] == variant
        )


@pytest.mark.openvino
def test_openvino_runs_or_refuses_our_programs_as_rows(ov_result):
    from job.benchmark.openvino_peer import OURS_VARIANTS

    ours = {r["variant"]: r for r in ov_result.find(runtime="openvino", model="compressed")}
    assert set(ours) == set(OURS_VARIANTS), "our program at both settings: f32 and OpenVINO's default"
    assert all(r["precision"] == "int8" and (r.get("latency_ms") or r.get("error")) for r in ours.values())
    broken = ov_result.find(runtime="openvino", model="broken")
    assert len(broken) == len(OURS_VARIANTS)
    assert all(r["latency_ms"] is None and r["error"] and "\n" not in r["error"] for r in broken)
    assert "failed: " in ov_result.summary()


def test_openvino_refusal_picks_the_informative_line():
    from job.benchmark.openvino_peer import refusal

    message = (
        "Exception from src/inference/src/cpp/core.cpp:92:\nCheck 'false' failed\n"
        "Fail to convert dequantize_linear Exception Check 'false' failed at dequantize_linear.cpp:33:\nmore"
    )
    assert refusal(message).startswith("Fail to convert dequantize_linear")
    assert refusal("one line") == "one line"


def test_openvino_rows_are_skipped_with_a_reason_without_the_package(tiny, monkeypatch):
    from job import benchmark
    from job.benchmark import openvino_peer

    monkeypatch.setattr(openvino_peer, "available", lambda: (False, "openvino is not installed (test)"))
    cfg = _cfg(dynamic_padding=False, precisions=["int8"])
    entries = [
        *benchmark.plan(cfg, {"original": tiny["fp32"]}),
        benchmark.Planned("original", "openvino", options={"quantized": ("compressed",)}),
    ]
    result = benchmark.run(cfg, {"original": tiny["fp32"], "compressed": tiny["int8"]}, tiny["task"], entries)
    rows = result.find(runtime="openvino")
    assert len(rows) == len(openvino_peer.OPENVINO_VARIANTS) + len(openvino_peer.OURS_VARIANTS)
    assert all(r["skipped"] == "openvino is not installed (test)" and r["latency_ms"] is None for r in rows)


def test_onnx_conversions_are_reused_only_under_the_same_key(cpu_result, tiny, monkeypatch, tmp_path):
    import shutil

    from job.benchmark import calibration_batches, onnxruntime_peer

    folder = tmp_path / "onnx"  # a copy: the rebuild below must not take the fixture's files away
    shutil.copytree(tiny["root"] / "bench" / "onnx" / "original", folder)
    calibration = calibration_batches(tiny["task"], list(tiny["task"].input_names))

    import paddle2onnx

    def no_export(*args, **kwargs):
        raise AssertionError("exported again")

    # paddle2onnx's own entry point: the code in the key (export_onnx & co.) stays the same.
    monkeypatch.setattr(paddle2onnx, "export", no_export)
    made = onnxruntime_peer.candidates(tiny["fp32"], folder, calibration)  # same inputs: reused, no export
    assert {c[1] for c in made["candidates"]} >= {"fp32", "int8-dynamic"}
    other = [{k: v[:, :-1] for k, v in batch.items()} for batch in calibration]
    with pytest.raises(AssertionError, match="exported again"):
        onnxruntime_peer.candidates(tiny["fp32"], folder, other)  # other calibration data: rebuilt


def test_a_quantized_program_served_without_int8_ops_is_an_error(tiny, tmp_path, monkeypatch):
    """A program that is quantized in name only (weights dequantized in the graph, no
    activation pair left) runs entirely in float: evaluation must refuse to call it INT8."""
    import shutil

    from job.compress import int8
    from job.evaluate import NoInt8Error, create_predictor
    from job.model import ModelFiles
    from job.program import is_quantized

    folder = tmp_path / "no-int8"
    shutil.copytree(tiny["int8"].folder, folder)
    nothing = int8.Scope("none", lambda op, weights, origins: False)  # every activation pair goes
    assert int8.restrict(folder / "inference.pdmodel", nothing).kept == 0
    model = ModelFiles(folder).check()
    assert is_quantized(model)
    with pytest.raises(NoInt8Error, match="runs no op in INT8"):
        create_predictor(model)
    _, precision, ops = create_predictor(tiny["int8"])
    assert precision == "int8" and ops.get("fc", 0) > 0


# --------------------------------------------------------------------------------------
# The package's parts: the spec, the runtime protocol, light imports
# --------------------------------------------------------------------------------------


def test_a_measurement_crosses_into_the_worker_as_json():
    import dataclasses

    from job.benchmark import Measurement
    from job.benchmark.spec import Profile
    from job.evaluate import Serving

    serving = Serving(
        threads=2,
        precision="int8",
        delete_passes=("fc_fuse_pass",),
        input_names=("input_ids", "token_type_ids"),
    )
    spec = Measurement(
        runtime="paddle-inference",
        model="ptq",
        precision="int8",
        source="m/inference.pdmodel",
        params="m/inference.pdiparams",
        workload="w.npz",
        input_names=("input_ids", "token_type_ids"),
        threads=2,
        warmup=1,
        repeats=3,
        batch_size=8,
        max_seq_len=64,
        paddings=("max", "bucketed"),
        profile=Profile(2, 5),
        serving=serving,
        variant="bf16",
        bf16=True,
    )
    back = Measurement.from_json(spec.to_json())
    assert (
        back == spec
        and back.bf16
        and isinstance(back.serving, Serving)
        and back.serving.delete_passes == ("fc_fuse_pass",)
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.threads = 3  # type: ignore[misc]
    with pytest.raises(ValueError, match="unknown fields"):
        Measurement.from_json(json.dumps(dict(json.loads(spec.to_json()), colour="red")))


def test_bf16_is_a_measurement_option_the_jobs_serving_leaves_off(tiny, monkeypatch):
    import dataclasses

    from paddle import inference

    from job.benchmark import paddle_inference
    from job.evaluate import Serving, create_predictor

    calls = []

    class Recording(inference.Config):  # paddle's Config has no getter for BF16
        def enable_mkldnn_bfloat16(self):
            calls.append("bf16")
            super().enable_mkldnn_bfloat16()

    monkeypatch.setattr(inference, "Config", Recording)
    Serving().config(tiny["fp32"])
    assert calls == [], "the job's own serving (Taskflow's) has no BF16"
    assert "benchmark_bf16" not in {f.name for f in dataclasses.fields(Serving)}
    create_predictor(tiny["fp32"], Serving(threads=1), "fp32", configure=paddle_inference.enable_bf16)
    assert calls == ["bf16"]


def test_every_runtime_has_a_session_behind_one_protocol():
    from job.benchmark.session import RUNTIMES, session_class

    assert set(RUNTIMES) == {"paddle-inference", "onnxruntime", "openvino"}
    for runtime in RUNTIMES:
        cls = session_class(runtime)
        for method in ("open", "__call__", "versions", "facts", "checks", "profile"):
            assert callable(getattr(cls, method, None)), (runtime, method)
    with pytest.raises(ValueError, match="no benchmark runtime named"):
        session_class("tensorflow")


def test_the_benchmark_package_imports_no_runtime():
    """ONNX Runtime and OpenVINO workers import job.benchmark: it must not load paddle, nor
    any runtime before a measurement of it runs."""
    import subprocess
    import sys

    probe = (
        "import sys, job.benchmark, job.benchmark.measure; print(sorted({m.split('.')[0] for m in sys.modules} "
        "& {'paddle', 'paddlenlp', 'onnxruntime', 'openvino', 'nncf'}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stdout.strip() == "[]", done.stdout


def test_paddle_rows_are_served_with_the_serving_evaluation_uses(tiny, monkeypatch):
    from job import benchmark
    from job.benchmark import stage
    from job.evaluate import Serving

    specs = []
    monkeypatch.setattr(stage, "measure_into", lambda ctx, spec, extra=None: specs.append((spec, extra)))
    serving = Serving(delete_passes=("fc_gru_fuse_pass",), ir_optim=True)
    cfg = _cfg()
    models = {"original": tiny["fp32"], "compressed": tiny["int8"]}
    entries = [
        *benchmark.plan(cfg, models),
        benchmark.Planned("compressed", variant="bf16", options={"bf16": True}, label="benchmark only", padding=False),
    ]
    benchmark.run(cfg, models, tiny["task"], entries, serving=serving)
    assert [(s.model, s.variant, s.precision, s.bf16) for s, _ in specs] == [
        ("original", "", "fp32", False),
        ("compressed", "", "int8", False),
        ("compressed", "bf16", "int8", True),
    ]
    for spec, _ in specs:
        assert isinstance(spec.serving, Serving) and spec.serving.delete_passes == ("fc_gru_fuse_pass",)
        assert (spec.serving.threads, spec.serving.max_batch_size, spec.serving.max_seq_len) == (1, 8, 64)
    assert specs[0][0].paddings == ("max", "to-max", "to-longest", "bucketed") and specs[2][0].paddings == ("max",)
    assert specs[0][1] is None and specs[2][1] == {"served_as": "benchmark only"}


def test_the_jobs_plan_is_every_model_served_as_published_then_the_onnx_peer(tiny):
    from job import benchmark

    models = {"compressed": tiny["int8"], "original": tiny["fp32"]}
    assert benchmark.plan(_cfg(onnx_peer=True), models) == [
        benchmark.Planned("compressed", "paddle-inference", "int8"),
        benchmark.Planned("original", "paddle-inference", "fp32"),
        benchmark.Planned("original", "onnxruntime"),
    ]
    assert benchmark.plan(_cfg(onnx_peer=True), {"compressed": tiny["int8"]})[-1] == benchmark.Planned(
        "", "onnxruntime"
    ), "no float model: the peer is planned without a source, and run notes it as skipped"


def test_a_plan_naming_a_model_run_was_not_given_or_an_option_its_runtime_lacks_is_refused(tiny):
    from job import benchmark

    with pytest.raises(ValueError, match="names models not given to run: ptq-all"):
        benchmark.run(
            _cfg(),
            {"original": tiny["fp32"]},
            tiny["task"],
            [benchmark.Planned("original", "openvino", options={"quantized": ("ptq-all",)})],
        )
    with pytest.raises(ValueError, match=r"unknown options \['bf16'\]"):
        benchmark.run(
            _cfg(),
            {"original": tiny["fp32"]},
            tiny["task"],
            [benchmark.Planned("original", "onnxruntime", options={"bf16": True})],
        )
