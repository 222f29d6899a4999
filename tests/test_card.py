"""The model card (``job/card.py``): every figure read back from the card equals its
results.json, the loading code is there for UIE and classifiers and runs on real exports,
and the pipeline writes MODEL.md beside results.json."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from job import card
from job.results import (
    CompressedFigures,
    Evaluation,
    Gate,
    Latency,
    Models,
    OriginalFigures,
    RuntimeFigures,
    TaskResult,
    Timing,
)

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "results"


def schema3(**changes) -> TaskResult:
    """A complete schema-3 result whose every figure is distinct, so that a figure read
    from the wrong field cannot match by accident."""
    result = TaskResult(
        run_id="run-7",
        task="uie",
        strategy="ptq",
        act_strategies=["quant_post"],
        status="complete",
        metric="f1",
        before={"f1": 0.83071, "precision": 0.80926, "recall": 0.85512},
        after={"f1": 0.83384, "precision": 0.81891, "recall": 0.85146},
        delta_points=0.313,
        gate=Gate(tolerance=1.0, passed=True),
        model_name="uie-pico",
        models=Models(
            original=OriginalFigures(
                size_bytes=4858172,
                params=1194242,
                precision="fp32",
                split="test",
                examples=6097,
                serving="FP32 oneDNN: enable_mkldnn() (as Taskflow)",
                weight_bytes=4776968,
                source="trained",
            ),
            compressed=CompressedFigures(
                size_bytes=4932069,
                params=1194241,
                precision="int8",
                split="test",
                examples=6097,
                serving="INT8 oneDNN: enable_mkldnn() then enable_mkldnn_int8() with no op set (as Taskflow)",
                weight_bytes=1455321,
                int8_ops={"fc": 20, "fused_transpose": 3, "reshape2": 3},
                int8_scope={"scope": "linear", "kept": 31, "removed": 5, "rewired": 2, "folded": 12},
            ),
        ),
        evaluation=Evaluation(split="test", examples=6097, device="cpu"),
        versions={"paddlepaddle": "2.6.2", "paddleslim": "2.6.0", "paddlenlp": "2.8.1"},
        config={
            "Global": {"task_name": "uie", "dataset": "embedded", "max_seq_length": 128},
            "Job": {"output": "s3://ml-results/act", "run_id": "run-7", "strategy": "ptq"},
            "QuantPost": {"batch_nums": 10},
            "Distillation": {"alpha": 1.0},  # present in the config, not used by ptq
        },
        config_fingerprint="ab" * 32,
        latency=Latency(
            device="cpu",
            runtime="paddle-inference",
            backend="onednn",
            batch_size=40,
            seq_len=128,
            threads=2,
            warmup=3,
            repeats=10,
            hardware="AMD EPYC 9R14 (2 cores)",
            original=Timing(precision="fp32", latency_ms=61.234, p90_ms=63.456, throughput=653.2),
            compressed=Timing(precision="int8", latency_ms=25.811, p90_ms=27.023, throughput=1549.7),
            speedup=2.3724,
        ),
        created="2026-12-06T18:00:00+00:00",
    )
    for key, value in changes.items():
        setattr(result, key, value)
    return result


def table(markdown: str, heading: str) -> dict[str, list[str]]:
    """The rows of the first table under ``## heading``: first cell -> the other cells."""
    section = markdown.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        if line.startswith("| ") and not line.startswith("|---"):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


def number(text: str) -> float:
    return float(text.replace(",", "").replace("+", ""))


def test_every_figure_in_the_card_equals_its_results_json():
    result = TaskResult.from_dict(json.loads(schema3().to_json()))  # as read back from the file
    text = card.render(result)
    orig, comp, lat = result.models.original, result.models.compressed, result.latency

    accuracy = table(text, "Accuracy")
    for key in ("f1", "precision", "recall"):
        before, after, change = (number(cell) for cell in accuracy[key])
        assert before == round(result.before[key] * 100, 2), key
        assert after == round(result.after[key] * 100, 2), key
        assert change == round((result.after[key] - result.before[key]) * 100, 2), key
    assert f"**{result.evaluation.split}** split ({result.evaluation.examples:,} examples)" in text
    assert comp.serving in text
    assert f"at most {result.gate.tolerance:.2f} points lost; passed" in text

    speed = table(text, "Serving, speed and size")
    assert speed["precision served"][0] == orig.precision
    assert speed["precision served"][1] == "int8 (26 INT8 ops: fc 20, fused_transpose 3, reshape2 3)"
    assert sum(comp.int8_ops.values()) == 26
    pairs = {
        "latency, median (ms per batch)": (lat.original.latency_ms, lat.compressed.latency_ms, 2),
        "latency, p90 (ms per batch)": (lat.original.p90_ms, lat.compressed.p90_ms, 2),
        "throughput (examples/s)": (lat.original.throughput, lat.compressed.throughput, 1),
        "folder size (bytes)": (orig.size_bytes, comp.size_bytes, 0),
        "served weight memory (bytes)": (orig.weight_bytes, comp.weight_bytes, 0),
        "parameters": (orig.params, comp.params, 0),
    }
    for label, (want_original, want_compressed, digits) in pairs.items():
        got_original, got_compressed = (number(cell) for cell in speed[label])
        assert got_original == round(want_original, digits), label
        assert got_compressed == round(want_compressed, digits), label
    speedup = re.search(r"Speedup ([0-9.]+)x \(original median / compressed median\): faster", text)
    assert speedup and float(speedup.group(1)) == round(lat.speedup, 2)
    assert (
        f"on {lat.hardware}: cpu, paddle-inference (onednn), batch {lat.batch_size}, "
        f"sequence length {lat.seq_len}, {lat.threads} threads, {lat.warmup} warm-up and {lat.repeats} timed runs"
    ) in text

    assert f"Run id: `{result.run_id}`" in text
    assert f"Config fingerprint: `{result.config_fingerprint}`" in text
    assert "ACT sections: QuantPost;" in text, "the strategy's sections present in the config, not every section"
    assert "ACT strategies run: quant_post" in text
    assert "Original model: uie-pico (source: trained)" in text
    assert "Published at: `s3://ml-results/act/run-7/uie/ptq`" in text
    assert "12 INT8 linear weights are stored as float32" in text
    assert "The folder is not smaller than the original's (4,932,069 bytes against 4,858,172)." in text


def test_latency_missing_says_not_measured_and_old_results_still_render():
    text = card.render(schema3(latency=None))
    speed = table(text, "Serving, speed and size")
    assert speed["latency, median (ms per batch)"] == ["not measured", "not measured"]
    assert speed["throughput (examples/s)"] == ["not measured", "not measured"]
    assert "Speedup" not in text
    assert "Its latency was not measured" in text

    old = TaskResult.from_dict(json.loads((FIXTURES / "uie_ptq.json").read_text(encoding="utf-8")))
    assert old.latency is None
    text = card.render(old)
    assert table(text, "Accuracy")["f1"][1] == f"{old.after['f1'] * 100:.2f}"
    assert table(text, "Serving, speed and size")["served weight memory (bytes)"] == ["-", "-"]


def test_a_slower_or_gated_model_says_so_in_its_limits():
    result = schema3(status="gated", delta_points=-2.5, gate=Gate(tolerance=1.0, passed=False))
    result.latency.speedup = 0.91
    text = card.render(result)
    assert "Status: **gated**" in text and "not for deployment" in text
    limits = text.split("## Known limits\n", 1)[1]
    assert "The accuracy gate failed: -2.50 points against a tolerance of 1.00" in limits
    assert "It was not faster than its original on AMD EPYC 9R14 (2 cores) (speedup 0.91x)" in limits
    assert "**not faster** than the original" in text


def test_uie_card_loads_through_taskflow_and_classifier_through_paddle_inference():
    uie = card.render(schema3())
    assert "scripts/pull get s3://ml-results/act --run run-7 --task uie --strategy ptq --dest pulled" in uie
    code = uie.split("```python\n", 1)[1].split("```", 1)[0]
    assert "from paddlenlp import Taskflow" in code
    assert "task_path='pulled/run-7/uie/ptq'" in code and "is_static_model=True" in code
    assert "max_seq_len=128" in code and "num_threads=2" in code
    assert "schema=['人名', '地名', '时间', '机构名']" in code, "the embedded data's prompts"

    cls = card.render(schema3(task="tnews", metric="accuracy"), prefix="/data/out")
    code = cls.split("```python\n", 1)[1].split("```", 1)[0]
    assert "scripts/pull" not in cls, "a local output needs no pull"
    assert "folder = '/data/out/run-7/tnews/ptq'" in code
    assert "inference.create_predictor(config)" in code
    lines = [line.strip() for line in code.splitlines()]
    assert any(line.startswith("config.enable_mkldnn_int8()") for line in lines), "served in INT8 as the job measured"
    assert "precision_mode=inference.PrecisionType.Int8" in code
    assert "Label ids (the order of the task's label set): 0: 100, 1: 101" in cls


def test_strategy_sections_match_the_config():
    from job.config import STRATEGIES

    assert card._STRATEGY_SECTIONS == STRATEGIES


def test_text_from_the_bucket_cannot_break_the_card():
    text = card.render(schema3(model_name="evil\n# injected | `x`\x1b[2J", strategy="ptq"))
    assert "\n# injected" not in text and "\x1b" not in text
    assert text.splitlines()[0].startswith("# evil # injected")


def test_pipeline_writes_the_card_beside_results_json(tmp_path: Path):
    from job.pipeline import _write_output

    source = tmp_path / "model"
    source.mkdir()
    for name in ("inference.pdmodel", "inference.pdiparams", "config.json", "vocab.txt"):
        (source / name).write_bytes(name.encode())
    model = SimpleNamespace(program=source / "inference.pdmodel", params=source / "inference.pdiparams", folder=source)
    result = schema3()
    _write_output(tmp_path / "out", model, model, result)
    written = (tmp_path / "out" / "MODEL.md").read_text(encoding="utf-8")
    assert written == card.render(TaskResult.from_dict(json.loads((tmp_path / "out" / "results.json").read_text())))


# --------------------------------------------------------------------------------------
# The loading code, run on real exports (tiny random models)
# --------------------------------------------------------------------------------------

_EXPORT = """
import sys
from pathlib import Path
from job.model.build import build_classifier, build_uie, build_vocab, export_model, save_tokenizer, SPECIAL_TOKENS
root = Path(sys.argv[1])
vocab = build_vocab(["江泽民主席1998年1月5日在北京会见了美国国务卿奥尔布赖特。人名地名一句要分类的话"])
save_tokenizer(vocab, root / "vocab")
export_model(build_classifier("ernie-tiny", len(vocab), num_labels=15), root / "vocab", root / "out/run-7/tnews/ptq")
export_model(build_uie("uie-tiny", len(vocab)), root / "vocab", root / "out/run-7/uie/ptq")
"""


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("exports")
    done = subprocess.run(
        [sys.executable, "-c", _EXPORT, str(root)], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return root


def run_card_code(markdown: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    code = markdown.split("```python\n", 1)[1].split("```", 1)[0]
    return subprocess.run(
        [sys.executable, "-c", "import zlib\n" + textwrap.dedent(code)],  # zlib first: see docs pitfalls
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_classifier_card_code_runs_on_the_folder(exports: Path):
    fp32 = schema3(task="tnews", metric="accuracy")
    fp32.models.compressed.precision = "fp32"
    fp32.models.compressed.int8_ops = {}
    done = run_card_code(card.render(fp32, prefix=str(exports / "out")), exports)
    assert done.returncode == 0, done.stderr[-3000:]
    assert re.fullmatch(r"\[\d+\]", done.stdout.strip().splitlines()[-1]), done.stdout


def test_uie_card_code_runs_in_taskflow(exports: Path):
    fp32 = schema3()
    fp32.models.compressed.precision = "fp32"
    done = run_card_code(card.render(fp32, prefix=str(exports / "out")), exports)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1].startswith("[{"), done.stdout


# --------------------------------------------------------------------------------------
# Runtimes: every row in MODEL.md, the OpenVINO loading code, and the selection's DEPLOY.md
# --------------------------------------------------------------------------------------


def with_runtimes() -> TaskResult:
    """schema3() with the CPU runtime rows of schema 4, every figure distinct."""
    rows = [
        RuntimeFigures(
            model="original",
            runtime="paddle-inference",
            precision="fp32",
            score_points=83.071,
            delta_points=0.0,
            int8_ops=0,
            timing=Timing(precision="fp32", latency_ms=61.234, p90_ms=63.456, throughput=653.2),
            speedup=1.0,
        ),
        RuntimeFigures(
            runtime="paddle-inference",
            precision="int8",
            score_points=83.384,
            delta_points=0.313,
            int8_ops=26,
            timing=Timing(precision="int8", latency_ms=25.811, p90_ms=27.023, throughput=1549.7),
            speedup=2.3724,
        ),
        RuntimeFigures(
            runtime="openvino",
            precision="int8+bf16",
            score_points=83.217,
            delta_points=0.146,
            int8_ops=20,
            timing=Timing(precision="int8+bf16", latency_ms=21.377, p90_ms=22.01, throughput=1871.2),
            speedup=2.8645,
        ),
        RuntimeFigures(
            runtime="openvino",
            setting="f32",
            precision="int8",
            status="gated",
            reason="lost 1.52 points in this runtime",
            score_points=81.551,
            delta_points=-1.52,
            int8_ops=19,
            timing=Timing(precision="int8", latency_ms=23.904, p90_ms=24.5, throughput=1673.4),
            speedup=2.5617,
        ),
    ]
    return schema3(runtimes=rows)


def test_every_runtime_row_is_in_the_card_with_its_results_json_figures():
    result = TaskResult.from_dict(json.loads(with_runtimes().to_json()))  # as read back from the file
    text = card.render(result)
    section = text.split("## Runtimes\n", 1)[1].split("\n## ", 1)[0]
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in section.splitlines()
        if line.startswith("| ") and not line.startswith("| model ")
    ]
    assert len(rows) == len(result.runtimes) == 4
    for cells, want in zip(rows, result.runtimes, strict=True):
        model, runtime, setting, status, precision, score, delta, latency, speedup, int8_ops, reason = cells
        assert (model, runtime, setting, status, precision) == (
            want.model,
            want.runtime,
            want.setting,
            want.status,
            want.precision,
        )
        assert number(score) == round(want.score_points, 2)
        assert number(delta) == round(want.delta_points, 2)
        assert number(latency) == round(want.timing.latency_ms, 2)
        assert number(speedup.rstrip("x")) == round(want.speedup, 2)
        assert number(int8_ops) == want.int8_ops
        assert reason == (want.reason or "-")
    # loading code for each runtime it was measured and passed in: Taskflow, OpenVINO default; not the gated f32
    blocks = text.split("## How to load it\n", 1)[1].split("```python\n")[1:]
    assert len(blocks) == 2
    assert "from paddlenlp import Taskflow" in blocks[0]
    openvino = blocks[1].split("```", 1)[0]
    assert 'model = core.read_model(f"{folder}/inference.pdmodel")' in openvino
    assert 'core.compile_model(model, "CPU", config)' in openvino
    assert 'INFERENCE_PRECISION_HINT"] = "f32"' not in openvino, "the default setting pins nothing"
    assert '"INFERENCE_NUM_THREADS": 2' in openvino and "folder = 'pulled/run-7/uie/ptq'" in openvino
    # once f32 passed too, it gets its own code, with the hint pinned
    result.runtimes[3].status, result.runtimes[3].reason = "measured", ""
    blocks = card.render(result).split("## How to load it\n", 1)[1].split("```python\n")[1:]
    assert len(blocks) == 3 and 'config["INFERENCE_PRECISION_HINT"] = "f32"' in blocks[2]
    # a result without rows says so
    assert "No runtime rows in this results.json" in card.render(schema3())


def deploy_selection(result: TaskResult):
    from job.select import candidates_of, choose

    return choose(result.task, result.run_id, candidates_of(result), device="cpu")


def test_deploy_card_names_the_runtime_and_its_figures_equal_results_json():
    result = TaskResult.from_dict(json.loads(with_runtimes().to_json()))
    selection = deploy_selection(result)
    assert (selection.selected, selection.runtime, selection.setting) == ("ptq", "openvino", "default")
    text = card.render_deploy(selection, result, prefix="s3://ml-results/act")
    assert "strategy `ptq`, served by **openvino**, setting `default`, precision `int8+bf16`" in text
    figures = {cells[0]: cells[1] for cells in ([c.strip() for c in line.strip("|").split("|")] for line in
               text.splitlines() if line.startswith("| ") and not line.startswith("| figure"))}  # fmt: skip
    row = result.runtimes[2]
    assert number(figures["f1 (points)"]) == round(row.score_points, 2)
    assert number(figures["change against the original (points)"]) == round(row.delta_points, 2)
    assert number(figures["latency, median (ms per batch)"]) == round(row.timing.latency_ms, 2)
    assert number(figures["speedup"].rstrip("x")) == round(row.speedup, 2)
    assert number(figures["throughput (examples/s)"]) == round(row.timing.throughput, 1)
    assert number(figures["the original on paddle-inference (ms per batch)"]) == round(
        result.latency.original.latency_ms, 2
    )
    assert number(figures["folder size (bytes)"]) == result.models.compressed.size_bytes
    assert "scripts/pull get s3://ml-results/act --run run-7 --task uie --selected --dest pulled" in text
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    assert "import openvino as ov" in code and "from paddlenlp import Taskflow" not in code
    # served by Paddle Inference: the Taskflow code as in MODEL.md
    for r in result.runtimes:
        if r.runtime == "openvino":
            r.status = "refused"
    selection = deploy_selection(result)
    assert selection.runtime == "paddle-inference"
    text = card.render_deploy(selection, result, prefix="/data/out")
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    assert "from paddlenlp import Taskflow" in code and "task_path='/data/out/run-7/uie/ptq'" in code
    # nothing selected: says why, no code
    result.latency.speedup = 0.5
    for r in result.runtimes:
        r.speedup = 0.5
    text = card.render_deploy(deploy_selection(result), result)
    assert "No model selected: no candidate is eligible" in text and "```" not in text


def test_deploy_card_code_runs_in_taskflow(exports: Path):
    fp32 = schema3()
    fp32.models.compressed.precision = "fp32"
    fp32.latency.compressed.precision = "fp32"
    text = card.render_deploy(deploy_selection(fp32), fp32, prefix=str(exports / "out"))
    done = run_card_code(text, exports)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1].startswith("[{"), done.stdout


_INT8_FOLDER = """
import zlib  # before paddle: see the pitfalls
import sys
from pathlib import Path
from job import compress
from job.config import load_config
from job.data.tasks import UIETask
from job.data.uie import UIEData, UIEExample, encode
from job.model import ModelFiles, build_uie, build_vocab, export_uie, load_tokenizer, save_tokenizer
from job.pipeline import _write_output
from job.results import TaskResult

root = Path(sys.argv[1])
text = "新华社北京一月一日电国家主席江泽民在人民大会堂发表新年讲话"
text += "江泽民主席1998年1月5日在北京会见了美国国务卿奥尔布赖特。"
prompts = ("人名", "地名", "时间")
save_tokenizer(build_vocab([text, *prompts]), root / "vocab")
tokenizer = load_tokenizer(root / "vocab")


def examples(n, split):
    cut = lambda i: text[i % 10 : i % 10 + 4 + (i * 7) % 40]
    return UIEData([UIEExample(cut(i), prompts[i % 3], (), f"{split}:{i + 1}") for i in range(n)])


task = UIETask({split: encode(examples(16, split), tokenizer, 64) for split in ("train", "dev", "test")})
fp32 = ModelFiles(export_uie(build_uie("uie-tiny", len(tokenizer.vocab), seed=1), root / "vocab", root / "fp32"))
(root / "ptq.yaml").write_text(
    "Global: {task_name: uie, dataset: embedded, batch_size: 8, max_seq_length: 64}\\n"
    "QuantPost: {batch_size: 8, batch_nums: 1, algo: abs_max, onnx_format: true}\\n"
    "Job: {strategy: ptq, threads: 1}\\n",
    encoding="utf-8",
)
(root / "ptq").mkdir()
int8 = compress.run(load_config(root / "ptq.yaml"), fp32.check(), task, root / "ptq").model
_write_output(root / "out/run-7/uie/ptq", int8, fp32, TaskResult(task="uie", strategy="ptq"))
"""


@pytest.mark.openvino
def test_openvino_loading_code_of_the_cards_runs_on_a_published_int8_folder(tmp_path: Path):
    """The OpenVINO code of MODEL.md and DEPLOY.md, executed on a folder published as the job
    publishes it (PTQ INT8 of a tiny UIE, the default INT8 scope): it runs and OpenVINO
    compiles INT8 layers from it."""
    pytest.importorskip("openvino", reason="OpenVINO is an optional extra: bash scripts/setup.sh --openvino")
    done = subprocess.run(
        [sys.executable, "-c", _INT8_FOLDER, str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    folder = tmp_path / "out" / "run-7" / "uie" / "ptq"
    assert (folder / "inference.pdmodel").is_file() and (folder / "vocab.txt").is_file()
    result = with_runtimes()
    result.config["Global"]["max_seq_length"] = 64
    result.runtimes[3].status, result.runtimes[3].reason = "measured", ""  # f32 passed too: both settings' code
    model_card = card.render(result, prefix=str(tmp_path / "out"))
    result.runtimes[2].status = "refused"  # the selection then serves with OpenVINO f32
    selection = deploy_selection(result)
    assert (selection.runtime, selection.setting) == ("openvino", "f32")
    deploy = card.render_deploy(selection, result, prefix=str(tmp_path / "out"))
    blocks = [b.split("```", 1)[0] for b in model_card.split("```python\n")[2:]]
    blocks.append(deploy.split("```python\n", 1)[1].split("```", 1)[0])
    assert len(blocks) == 3 and all("import openvino" in b for b in blocks)
    hints = []
    for code in blocks:
        probe = code + (
            "\ndef info(op, key):\n"
            "    rt = op.get_rt_info()\n"
            "    return rt[key].astype(str) if key in rt else ''\n"
            "ops = compiled.get_runtime_model().get_ordered_ops()\n"
            "linear = [info(op, 'runtimePrecision') for op in ops if info(op, 'layerType') == 'FullyConnected']\n"
            "print('int8 linear layers', linear.count('i8'))\n"
        )
        run = run_card_code(f"```python\n{probe}```", tmp_path)
        assert run.returncode == 0, run.stderr[-3000:]
        lines = run.stdout.strip().splitlines()
        shape, start, end = re.fullmatch(r"\((\d+), (\d+)\) (\d+) (\d+)", lines[-3]).group(0, 3, 4)
        assert int(start) < 64 and int(end) < 64, shape
        hints.append(lines[-2])
        assert int(lines[-1].rsplit(" ", 1)[1]) > 0, "OpenVINO compiled no linear layer in INT8 from the folder"
    assert hints[1] == hints[2] == "f32", "the f32 setting's code pins FP32 (MODEL.md's and DEPLOY.md's)"
    assert hints[0] in ("bf16", "f16", "f32"), hints[0]
