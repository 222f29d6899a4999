"""End-to-end compression on a tiny UIE: every strategy through the real job
(``python -m job run`` in a subprocess), PaddleSlim ACT included, evaluated through Paddle
Inference, published to a local output folder, and loaded by PaddleNLP's Taskflow."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from jobrun import ROOT, TINY, run_job

# The committed demo teacher (test F1 83) on the tiny data slice: for the tests that check
# F1 against a real gate. The tiny teacher is barely trained (its F1 says little), so
# tests/fixtures/configs/uie_tiny.yaml leaves its gate open and the tests below that are
# about F1 use this teacher instead.
PICO = ("Teacher.shape=uie-pico", "Teacher.checkpoint=teachers/uie-pico-pd199801")


def compress(tiny, strategy: str, *extra: str, output: Path | None = None) -> tuple[subprocess.CompletedProcess, Path]:
    out = output or tiny["root"] / f"out-{strategy}"
    done = run_job(
        "run", "--config", str(TINY), *tiny["overrides"], f"Job.strategy={strategy}", f"Job.output={out}", *extra
    )
    return done, out / "tiny" / "uie" / strategy


def load_in_real_clients(folder: Path, expect: dict[str, str] | None = None) -> dict:
    """Load a published folder the way users do, in a fresh interpreter: ``paddle.jit.load``
    (which Taskflow calls first to tell INT8 models) and PaddleNLP's Taskflow, which then
    extracts from one sentence. Returns what Taskflow reported: one answer for the one
    sentence. ``expect`` (prompt -> text), for a trained model: spans Taskflow must find."""
    sentence = "江泽民主席一九九七年十二月三十一日在北京发表新年讲话。"
    code = (
        "import zlib, json, sys\n"
        "import paddle\n"
        f"layer = paddle.jit.load({str(folder / 'inference')!r})\n"
        "from paddlenlp import Taskflow\n"
        "ie = Taskflow('information_extraction', schema=['人名', '地名', '时间'], "
        f"task_path={str(folder)!r}, is_static_model=True, max_seq_len=64)\n"
        "print(json.dumps({'precision': ie.task_instance._infer_precision, "
        f"'result': ie({sentence!r})}}, ensure_ascii=False))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    (spans,) = answer["result"]  # one sentence in, one answer out
    for prompt, text in (expect or {}).items():
        found = [span["text"] for span in spans.get(prompt, [])]
        assert text in found, (prompt, text, spans)
    return answer


def assert_int8_served(results: dict) -> None:
    """The compressed model was served in INT8 and its predictor really ran INT8 ops."""
    compressed = results["models"]["compressed"]
    assert compressed["precision"] == "int8"
    assert compressed["int8_ops"].get("fc", 0) > 0, compressed["int8_ops"]
    assert compressed["int8_scope"]["scope"] == "linear" and compressed["int8_scope"]["kept"] > 0


def assert_measured_alike(results: dict, compressed: str) -> None:
    """The published results.json: both models scored on the same split and examples (the
    gate's), each labelled with the serving its own predictor used (FP32 oneDNN for the
    original; ``compressed`` for the compressed model: INT8 or FP32)."""
    assert results["schema"] == 4
    models, evaluation = results["models"], results["evaluation"]
    # The runtimes rows (job.serve): Paddle Inference's is the gate's evaluation; without the
    # OpenVINO extra (this tier) each OpenVINO setting is a skipped row saying why.
    rows = {(r["model"], r["runtime"], r["setting"]): r for r in results["runtimes"]}
    paddle = rows[("compressed", "paddle-inference", "default")]
    assert paddle["score_points"] == round(results["after"][results["metric"]] * 100, 4)
    assert paddle["precision"] == compressed.lower()
    assert [rows[("compressed", "openvino", s)]["status"] for s in ("default", "f32")] == ["skipped", "skipped"]
    assert models["original"]["split"] == models["compressed"]["split"] == evaluation["split"] == "test"
    assert models["original"]["examples"] == models["compressed"]["examples"] == evaluation["examples"] > 0
    assert models["original"]["precision"] == "fp32"
    assert models["original"]["serving"].startswith("FP32 oneDNN"), models["original"]["serving"]
    assert models["compressed"]["precision"] == compressed.lower()
    assert models["compressed"]["serving"].startswith(f"{compressed} oneDNN"), models["compressed"]["serving"]
    if compressed == "INT8":
        assert "enable_mkldnn_int8()" in models["compressed"]["serving"]
    else:
        assert "int8" not in models["compressed"]["serving"].lower()


def test_qat_with_distillation_keeps_f1_and_gives_an_int8_model_taskflow_loads(tiny):
    done, folder = compress(tiny, "qat_dis", *PICO, "Job.gate_tolerance=2.0", output=tiny["root"] / "out-qat-pico")
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    assert results["status"] == "complete" and results["gate"] == {"tolerance": 2.0, "passed": True}
    assert results["before"]["f1"] > 0.75, "the committed teacher scores about 83 F1"
    assert results["delta_points"] >= -2.0
    assert results["act_strategies"] == ["qat_dis"]
    assert results["models"]["original"]["precision"] == "fp32"
    assert_int8_served(results)
    assert {"precision", "recall", "f1"} <= set(results["before"]) and results["metric"] == "f1"
    assert set(results["patches"]) == {"dropout_mask", "xshape", "scalar_mean", "ptq_after_prune"}
    assert results["versions"]["paddleslim"] == "2.6.0"
    assert_measured_alike(results, "INT8")
    assert results["evaluation"]["split"] == "test" and results["evaluation"]["selection"]["split"] == "dev"
    assert (folder / "_SUCCESS").is_file()
    for name in (
        "inference.pdmodel",
        "inference.pdiparams",
        "config.json",
        "vocab.txt",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "manifest.json",
    ):
        assert (folder / name).is_file(), name
    assert "== uie / qat_dis" in done.stdout and "accuracy gate" in done.stdout
    # The committed teacher finds this sentence's person and place; a broken INT8 folder would not.
    assert load_in_real_clients(folder, expect={"人名": "江泽民", "地名": "北京"})["precision"] == "int8"


def test_ptq_with_hyper_parameter_search(tiny):
    done, folder = compress(
        tiny,
        "ptq_hpo",
        "HyperParameterOptimization.max_quant_count=6",
        "HyperParameterOptimization.batch_num=[1,2]",
        "HyperParameterOptimization.ptq_algo=[hist,avg]",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    assert results["act_strategies"] == ["ptq_hpo"]
    assert_int8_served(results)
    assert (folder / "_SUCCESS").is_file()
    assert load_in_real_clients(folder)["precision"] == "int8"


def test_pruning_with_distillation_removes_parameters(tiny):
    done, folder = compress(tiny, "prune_dis")
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    original, pruned = results["models"]["original"]["params"], results["models"]["compressed"]["params"]
    assert results["act_strategies"] == ["transformer_prune_dis"]
    # 4 heads x 0.25 = 1 head and a quarter of the FFN width in each of the 2 layers
    assert pruned < original
    assert original - pruned >= 2 * (64 * 16 * 3 + 64 * 16 + 64 * 64 * 2 // 4)
    assert results["models"]["compressed"]["precision"] == "fp32"
    assert_measured_alike(results, "FP32")
    assert load_in_real_clients(folder)["precision"] == "fp32"


def test_ffn_width_pruned_apart_from_the_heads(tiny):
    """``TransformerPrune.ffn_pruned_ratio``: a quarter of the heads (1 of 4, 16 of 64 dims)
    and half the FFN (128 of 256 neurons) leave each of the 2 layers exactly this much
    smaller: Q, K and V lose 64 x 16 weights and 16 biases each, the output projection
    16 x 64, the FFN 64 x 128 + 128 in and 128 x 64 out."""
    out = tiny["root"] / "out-prune-ffn"  # its own: another prune_dis config publishes to out-prune_dis
    done, folder = compress(tiny, "prune_dis", "TransformerPrune.ffn_pruned_ratio=0.5", output=out)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    original, pruned = results["models"]["original"]["params"], results["models"]["compressed"]["params"]
    per_layer = 3 * (64 * 16 + 16) + 16 * 64 + (64 * 128 + 128) + 128 * 64
    assert original - pruned == 2 * per_layer
    assert results["config"]["TransformerPrune"] == {
        "pruned_ratio": 0.25,
        "ffn_pruned_ratio": 0.5,
        "importance": "paddleslim",
    }
    assert "heads keep 75%, FFN neurons keep 50%" in done.stderr
    assert load_in_real_clients(folder)["precision"] == "fp32"


def test_pruning_scored_by_the_tasks_loss_through_the_job(tiny):
    """``TransformerPrune.importance=task`` reaches the pruner through the job's compression
    stage (mutation: call ACT outside ``importance.scored`` -> no log line, fails), cuts the
    same shapes, and the published folder still serves in the real clients."""
    out = tiny["root"] / "out-prune-task"
    done, folder = compress(tiny, "prune_dis", "TransformerPrune.importance=task", output=out)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "scores heads and FFN neurons by the task's loss" in done.stderr
    results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    assert results["config"]["TransformerPrune"]["importance"] == "task"
    assert results["act_strategies"] == ["transformer_prune_dis"]
    per_layer = 3 * (64 * 16 + 16) + 16 * 64 + (64 * 64 + 64) + 64 * 64  # a quarter of heads and FFN
    assert results["models"]["original"]["params"] - results["models"]["compressed"]["params"] == 2 * per_layer
    assert load_in_real_clients(folder)["precision"] == "fp32"


def test_pruning_then_quantization(tiny):
    done, folder = compress(tiny, "prune_ptq", "QuantPost.batch_nums=2")
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    assert results["act_strategies"] == ["transformer_prune_dis", "quant_post"]
    assert results["models"]["compressed"]["params"] < results["models"]["original"]["params"]
    assert_int8_served(results)
    # after pruning, PTQ reads 2 batches of the (shuffled) training loader; the summary says so
    calibration = results["models"]["compressed"]["calibration"]
    assert calibration["batches"] == 2 and calibration["fixed"] is False
    assert re.search(rf"PTQ calibration\s+{calibration['examples']} examples", done.stdout), done.stdout[-2000:]
    assert results["models"]["compressed"]["compress_seconds"] > 0
    assert_measured_alike(results, "INT8")
    assert load_in_real_clients(folder)["precision"] == "int8"


def test_distillation_from_a_teacher_of_its_own(tiny, tmp_path):
    """``Distillation.teacher_model_dir``: a one-layer student (lab/probe_depth.py: the tiny
    teacher's second layer, embeddings and heads) distilled from the two-layer teacher, given
    as a folder alone (its file names are the original's defaults); ACT reads a folder given
    without them as ``<dir>.pdmodel``."""
    from lab.probe_depth import Experiment, build

    (checkpoint,) = (tiny["root"] / "cache" / "teachers").glob("uie-tiny-*/checkpoint")
    built = build(Experiment(teacher=str(checkpoint), keep=[1], out=str(tmp_path)))
    done, folder = compress(tiny, "qat_dis", *built.overrides, output=tiny["root"] / "out-own-teacher")
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    assert results["config"]["Distillation"]["teacher_model_dir"] == str(built.teacher)
    # the original is the one-layer student, not the teacher
    student, teacher = count_params_of(built.student / "inference"), count_params_of(built.teacher / "inference")
    assert results["models"]["original"]["params"] == student < teacher
    assert_int8_served(results)


def test_a_bad_distillation_node_is_one_line_before_the_original_is_evaluated(tiny):
    out = tiny["root"] / "out-bad-node"  # its own: out-qat_dis holds another qat_dis config's run
    done, folder = compress(tiny, "qat_dis", "Distillation.node=[no_such_var]", output=out)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "evaluate original" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(f"error: {TINY}: Distillation.node: 'no_such_var' is not")
    assert not folder.exists()


def count_params_of(prefix: Path) -> int:
    from job.program import model_params, read_program

    return model_params(read_program(prefix.with_suffix(".pdmodel")))


def test_accuracy_gate_failure_publishes_nothing_as_good(tiny):
    # A real failure: INT8 on every tensor PTQ marked (Q x K^T included) collapses the
    # committed teacher's F1 in oneDNN, far beyond a 1-point gate.
    done, _ = compress(
        tiny,
        "ptq",
        *PICO,
        "Job.int8_scope=all",
        "Job.gate_tolerance=1.0",
        "QuantPost.batch_nums=2",
        "Job.run_id=gated",
        output=tiny["root"] / "out-gate",
    )
    folder = tiny["root"] / "out-gate" / "gated" / "uie" / "ptq"
    assert done.returncode == 3, done.stderr[-3000:]
    results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    assert results["status"] == "gated" and results["gate"]["passed"] is False
    assert results["delta_points"] < -1.0 and results["models"]["compressed"]["int8_ops"].get("fused_matmul", 0) > 0
    assert not (folder / "_SUCCESS").exists()
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: the compressed model changed f1 by") and "Job.gate_tolerance" in last
    assert "Traceback" not in done.stderr


def test_rerun_with_the_same_config_is_skipped_and_a_changed_one_refused(tiny):
    out = tiny["root"] / "out-rerun"
    done, folder = compress(tiny, "ptq", "QuantPost.batch_nums=1", output=out)
    assert done.returncode == 0, done.stderr[-3000:]
    assert_measured_alike(json.loads((folder / "results.json").read_text(encoding="utf-8")), "INT8")
    assert load_in_real_clients(folder)["precision"] == "int8"
    stamp = (folder / "_SUCCESS").stat().st_mtime_ns
    again, _ = compress(tiny, "ptq", "QuantPost.batch_nums=1", output=out)
    assert again.returncode == 0 and "already complete" in again.stdout
    assert (folder / "_SUCCESS").stat().st_mtime_ns == stamp
    changed, _ = compress(tiny, "ptq", "QuantPost.batch_nums=2", output=out)
    assert changed.returncode == 2 and "different config" in changed.stderr.strip().splitlines()[-1]
    forced, _ = compress(tiny, "ptq", "QuantPost.batch_nums=2", "--force", output=out)
    assert forced.returncode == 0, forced.stderr[-3000:]
    assert (folder / "_SUCCESS").stat().st_mtime_ns != stamp


def test_evaluate_only_mode_with_the_reference_flags(tiny):
    model = next((tiny["root"] / "cache" / "teachers").glob("uie-tiny-*[!p]"))
    done = run_job("run", "--config_path", str(TINY), *tiny["overrides"], f"Global.model_dir={model}", "--eval", "True")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().startswith("model (fp32") and "f1" in done.stdout


def test_origin_metric_is_checked_before_compressing(tiny):
    done, _ = compress(tiny, "qat_dis", "TrainConfig.origin_metric=0.99", output=tiny["root"] / "out-origin")
    assert done.returncode == 2, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert "TrainConfig.origin_metric is 0.9900 but the original model scores" in last


def run_without_patch(missing: str, argv: list[str]) -> subprocess.CompletedProcess:
    """``python -m job ARGV`` in a fresh interpreter with one of the PaddleSlim patches left out."""
    code = f"""
import sys
sys.argv = ["job"]
from job.compress import slim_patches
original = slim_patches.apply
slim_patches.apply = lambda: original(tuple(p for p in slim_patches.PATCHES if p != {missing!r}))
from job.__main__ import main
sys.exit(main({argv!r}))
"""
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("missing", "strategy", "error"),
    [
        ("dropout_mask", "qat_dis", "should set: [Mask]"),
        ("xshape", "prune_dis", "XShape"),
        ("scalar_mean", "prune_dis", "reduce_mean"),
    ],
)
def test_each_paddleslim_patch_is_needed(tiny, tmp_path, missing, strategy, error):
    """Run ACT in-process with one patch left out: the failure upstream reported returns."""
    argv = ["run", "--config", str(TINY), *tiny["overrides"], f"Job.strategy={strategy}", f"Job.output={tmp_path}"]
    done = run_without_patch(missing, argv)
    assert done.returncode != 0
    assert error in done.stderr


@pytest.mark.slow
def test_without_the_ptq_after_prune_patch_the_pruning_is_lost(tiny, tmp_path):
    """ACT 2.6.0 quantizes the original model after pruning; the patch quantizes the pruned one."""
    argv = ["run", "--config", str(TINY), *tiny["overrides"], "Job.strategy=prune_ptq", "QuantPost.batch_nums=2"]
    done = run_without_patch("ptq_after_prune", [*argv, f"Job.output={tmp_path}"])
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "tiny" / "uie" / "prune_ptq" / "results.json").read_text(encoding="utf-8"))
    assert results["models"]["compressed"]["params"] == results["models"]["original"]["params"]
