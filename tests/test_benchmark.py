"""The latency harness on a tiny UIE: Paddle Inference (oneDNN FP32 and INT8), the GPU
path (skipped without a GPU, never faked), dynamic padding, and the ONNX Runtime peer."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from job.config import BenchmarkConfig

# Record fields every measured record carries (item 1 of the benchmark's contract).
FIELDS = {
    "model", "runtime", "device", "backend", "precision", "padding", "batch_size", "seq_len", "threads",
    "warmup", "repeats", "latency_ms", "throughput", "peak_memory_mb", "hardware", "versions",
}
SENTENCE = "新华社北京一月一日电国家主席江泽民在人民大会堂发表新年讲话回顾过去一年的成就展望新世纪的发展前景"
PROMPTS = ("人名", "地名", "时间")


def _examples(count: int, where: str):
    from job.uie_data import UIEExample

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
    from job.model import ModelFiles, build_uie, build_vocab, export_uie, load_tokenizer, save_tokenizer
    from job.tasks import UIETask
    from job.uie_data import UIEData, encode

    root = tmp_path_factory.mktemp("bench")
    vocab_dir = root / "tokenizer"
    save_tokenizer(build_vocab([SENTENCE, *PROMPTS]), vocab_dir)
    tokenizer = load_tokenizer(vocab_dir)
    splits = {split: encode(UIEData(_examples(n, split)), tokenizer, 64) for split, n in (("train", 16), ("dev", 16), ("test", 48))}
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
    values = {"batch_size": 8, "max_seq_len": 64, "threads": 1, "warmup": 1, "repeats": 2, "dynamic_padding": True, "onnx_peer": False}
    values.update(overrides)
    return BenchmarkConfig(**values)


@pytest.fixture(scope="module")
def cpu_result(tiny):
    from job import benchmark

    cfg = _cfg(onnx_peer=True)
    return benchmark.run(cfg, {"original": tiny["fp32"], "compressed": tiny["int8"]}, tiny["task"], workdir=tiny["root"] / "bench")


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
        assert record["seq_len"] == 64 and record["repeats"] == 2 and record["warmup"] == 1 and record["timed_runs"] == 2
    # The INT8 figure comes with how far its outputs are from the quantized program run in FP32.
    (int8,) = cpu_result.find(runtime="paddle-inference", precision="int8", padding="max")
    assert 0 <= int8["int8_check"]["mean_abs_diff"] <= int8["int8_check"]["max_abs_diff"] < 1
    # ... and with proof that INT8 kernels ran: the ops the predictor marked INT8 in its optimized
    # program, and outputs that differ from the FP32-simulated program (equal outputs: no INT8 ran).
    assert int8["int8_ops"].get("fc", 0) > 0, int8["int8_ops"]
    assert int8["int8_check"]["max_abs_diff"] > 0
    assert "int8_check" not in cpu_result.find(runtime="paddle-inference", precision="fp32", padding="max")[0]


def test_dynamic_padding_records(cpu_result, tiny):
    dynamic = cpu_result.find(runtime="paddle-inference", padding="dynamic")
    assert {r["model"] for r in dynamic} == {"original", "compressed"}
    lengths = tiny["task"].lengths("test")
    for record in dynamic:
        assert record["pad_multiple"] == 16
        assert all(int(shape.split("x")[1]) % 16 == 0 and int(shape.split("x")[1]) <= 64 for shape in record["shapes"])
        assert len(record["shapes"]) > 1, "many lengths are covered"
        assert record["seq_len"] <= record["padded_len_mean"] <= 64
        assert abs(record["seq_len"] - np.mean(lengths)) < 12, "the timed batches are spread over the length distribution"
        assert record["timed_runs"] == record["batches"] * record["passes"]
        assert record["throughput"] > 0


def test_onnx_runtime_peer_fp32_and_best_int8(cpu_result):
    ort = cpu_result.find(runtime="onnxruntime", padding="max")
    assert {r["precision"] for r in ort} == {"fp32", "int8"}
    for record in ort:
        assert record["model"] == "original", "the peer starts from the FP32 Paddle model"
        assert record.get("latency_ms"), record.get("error")
        tried = record["variants_tried"]
        assert record["variant"] in {t["variant"] for t in tried}
        timed = [t for t in tried if "median_ms" in t]
        assert record["latency_ms"]["median"] == pytest.approx(min(t["median_ms"] for t in timed), abs=0.01), "the fastest variant is reported"
    int8 = next(r for r in ort if r["precision"] == "int8")
    made = {t["variant"]: t for t in int8["variants_tried"]}
    assert {"int8-dynamic", "int8-dynamic-per-channel", "int8-static-qdq-per-channel", "int8-static-qoperator-per-channel"} <= set(made)
    assert all(t["quantized_nodes"] > 0 for t in made.values() if "median_ms" in t)
    assert all(t["max_abs_diff_vs_fp32"] < 0.5 for t in made.values() if "median_ms" in t)
    assert {r["precision"] for r in cpu_result.find(runtime="onnxruntime", padding="dynamic")} == {"fp32", "int8"}


def test_summary_lists_every_record(cpu_result):
    text = cpu_result.summary()
    assert "median ms" in text and "samples/s" in text and "versions: " in text
    assert text.count("paddle-inference") == 4 and text.count("onnxruntime") >= 4


def test_profile_names_the_op_types(cpu_result):
    paddle_rows = cpu_result.profile(cpu_result.find(model="compressed", padding="max")[0], runs=2, top=5)
    assert paddle_rows[-1]["op"] == "(wall time per run)" and len(paddle_rows) >= 3
    assert any(row["op"] in ("fc", "fused_matmul", "matmul_v2", "quantize") for row in paddle_rows)
    ort_rows = cpu_result.profile(cpu_result.find(runtime="onnxruntime", precision="int8", padding="max")[0], runs=2, top=5)
    assert all(row["ms_per_run"] >= 0 for row in ort_rows) and len(ort_rows) >= 3


def test_gpu_path_is_skipped_with_a_reason_and_no_numbers(tiny, caplog):
    from job import benchmark

    ok, _ = benchmark.gpu_available()
    if ok:
        pytest.skip("a GPU is present: the skip path does not apply")
    with caplog.at_level(logging.WARNING, logger="job.benchmark"):
        result = benchmark.run(_cfg(device="gpu", precisions=["fp32", "fp16", "int8"], onnx_peer=True), {"original": tiny["fp32"], "compressed": tiny["int8"]}, tiny["task"])
    assert any("GPU (TensorRT) measurements are skipped" in m for m in caplog.messages)
    paddle_records = result.find(runtime="paddle-inference")
    assert {(r["model"], r["precision"]) for r in paddle_records} == {("original", "fp32"), ("original", "fp16"), ("compressed", "int8")}
    for record in result.records:
        assert record["device"] == "gpu" and record["skipped"]
        assert record["latency_ms"] is None and record["throughput"] is None and record["peak_memory_mb"] is None
    assert all(r["backend"] == "tensorrt" for r in paddle_records)
    assert "skipped:" in result.summary()


def test_gpu_config_has_dynamic_shape_ranges(tiny):
    """The TensorRT configuration is built (not run) on CPU builds too."""
    from job import benchmark
    from job.runtime import paddle

    if not paddle.is_compiled_with_cuda():
        pytest.skip("this paddle build has no CUDA: enable_tensorrt_engine is refused")
    spec = {"program": str(tiny["fp32"].program), "params": str(tiny["fp32"].params), "precision": "fp16", "device": "gpu", "batch_size": 8, "max_seq_len": 64, "input_names": ["input_ids"]}
    assert benchmark._paddle_config(spec).tensorrt_engine_enabled()


def test_precisions_by_program_and_device():
    from job.benchmark import _precisions

    assert _precisions(_cfg(), quantized=False) == ["fp32"]
    assert _precisions(_cfg(), quantized=True) == ["int8"]
    assert _precisions(_cfg(precisions=["fp32", "fp16", "int8"], device="gpu"), quantized=False) == ["fp32", "fp16"]
    assert _precisions(_cfg(precisions=["fp16"]), quantized=False) == []


def test_in_process_mode_measures_the_same_way(tiny):
    from job import benchmark

    result = benchmark.run(_cfg(dynamic_padding=False), {"original": tiny["fp32"], "compressed": tiny["int8"]}, tiny["task"], isolate=False)
    isolated = benchmark.run(_cfg(dynamic_padding=False), {"original": tiny["fp32"], "compressed": tiny["int8"]}, tiny["task"])
    assert [(r["model"], r["precision"], r["padding"]) for r in result.records] == [(r["model"], r["precision"], r["padding"]) for r in isolated.records]
    for here, there in zip(result.records, isolated.records, strict=True):
        assert set(here) == set(there) and here["timed_runs"] == there["timed_runs"] == 2
        assert here.get("int8_ops") == there.get("int8_ops")


def test_onnx_export_moves_constant_weights_to_initializers(tiny, tmp_path: Path):
    import onnx

    from job.benchmark import export_onnx

    path = export_onnx(tiny["fp32"], tmp_path / "model.onnx")
    proto = onnx.load(str(path))
    big_constants = [n for n in proto.graph.node if n.op_type == "Constant" and any(a.t.dims and np.prod(a.t.dims) > 16 for a in n.attribute)]
    assert not big_constants
    assert sum(np.prod(i.dims) for i in proto.graph.initializer) > 100_000
