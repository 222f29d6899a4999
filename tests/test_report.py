"""``python -m job report``: results.json files (a folder, or an s3:// prefix) into the
reference example's accuracy and latency tables, report.json and report.png."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from jobrun import run_job

from job import report
from job.results import TaskResult

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "results"
CLUE_FIXTURES = (
    "clue_afqmc_prune_ptq.json",
    "clue_tnews_prune_ptq.json",
    "clue_iflytek_prune_ptq.json",
    "clue_cmnli_prune_ptq.json",
    "clue_ocnli_prune_ptq.json",
    "clue_cluewsc2020_prune_ptq_gpu_skipped.json",
    "clue_csl_qat_dis_gpu.json",
    "clue_cmnli_ptq_slow_int8.json",
)
ACCURACY_HEADER = "| 模型 | 策略 | AFQMC | TNEWS | IFLYTEK | CMNLI | OCNLI | CLUEWSC2020 | CSL | AVG |"
LATENCY_HEADER = "| 模型 | 策略 | Accuracy（avg） | 时延(ms) | 加速比 |"


def lay_out(root: Path, names: tuple[str, ...] | list[str]) -> Path:
    """Fixtures as the job publishes them: <run>/<task>/<strategy>/results.json."""
    for name in names:
        data = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
        folder = root / data["run_id"] / data["task"] / f"{data['strategy']}-{Path(name).stem}"
        folder.mkdir(parents=True)
        shutil.copy(FIXTURES / name, folder / "results.json")
    return root


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m job report ARGS`` with ``env`` added to the environment."""
    return run_job("report", *args, timeout=120, env={**os.environ, **(env or {})})


def table_headers(markdown: str) -> list[str]:
    lines = markdown.splitlines()
    return [line for i, line in enumerate(lines[:-1]) if line.startswith("| ") and lines[i + 1].startswith("|:")]


@pytest.fixture
def clue_dir(tmp_path: Path) -> Path:
    return lay_out(tmp_path / "runs", CLUE_FIXTURES)


def test_clue_report_has_the_reference_tables(clue_dir: Path, tmp_path: Path):
    out = tmp_path / "report"
    assert report.cli(str(clue_dir), out) == 0
    markdown = (out / "report.md").read_text(encoding="utf-8")
    headers = table_headers(markdown)
    assert headers[0] == ACCURACY_HEADER, "no UIE results: exactly the reference example's columns"
    assert headers[1].startswith(
        LATENCY_HEADER + " FP32(ms) | FP16(ms) | INT8(ms) | 加速比(vs FP32) | 加速比(vs FP16) |"
    )

    # Base row from `before`, strategy rows from `after`, points with 2 decimals.
    assert "| ernie-3.0-medium | Base模型 | 75.35 | 57.45 | 60.17 | 81.16 | 77.19 | 80.59 | 79.70 | 73.09 |" in markdown
    assert (
        "| ernie-3.0-medium | 剪枝蒸馏+离线量化 (prune_ptq) "
        "| 74.17 | 56.09 | 59.49 | 80.50 | 76.28 | 81.86 | - | 71.40 (6/7) |" in markdown
    )

    data = json.loads((out / "report.json").read_text(encoding="utf-8"))
    rows = {(r["model"], r["strategy_key"], r["environment"]): r for r in data["latency"]["rows"]}
    # CPU: two results files measured the original, the median of their medians is shown.
    cpu_base = rows[("ernie-3.0-medium", "base", "E1")]
    assert cpu_base["latency_ms"] == {"fp32": pytest.approx((1961.4 + 1958.0) / 2)}
    pruned = rows[("ernie-3.0-medium", "prune_ptq", "E1")]
    assert pruned["served_precision"] == "int8"
    assert pruned["speedup_vs_fp32"] == pytest.approx(cpu_base["latency_ms"]["fp32"] / pruned["served_ms"], rel=1e-3)
    assert pruned["speedup_vs_fp16"] is None
    # GPU: speedup against both FP32 and FP16 (the reference's 29.25 / 12.22 = 2.39).
    gpu = next(r for r in data["latency"]["rows"] if r["strategy_key"] == "qat_dis")
    assert gpu["speedup"] == pytest.approx(2.394, abs=1e-3) and gpu["speedup_vs_fp16"] == pytest.approx(2.394, abs=1e-3)
    assert gpu["speedup_vs_fp32"] == pytest.approx(61.2 / 12.22, rel=1e-3)
    assert (
        "| ernie-3.0-medium | 量化训练+蒸馏 (qat_dis) "
        "| 78.41 (1/7) | 12.22 (int8) | 2.39 | - | - | 12.22 | 5.01 | 2.39 |" in markdown
    )

    # Skipped GPU measurements are listed with their reason, without numbers.
    skipped = [b for b in data["benchmarks"] if b.get("skipped")]
    assert len(skipped) == 3 and all(b["latency_ms"] is None for b in skipped)
    assert "skipped: this paddlepaddle build has no CUDA" in markdown

    # The ONNX Runtime peer stays in the measurement table, not in the Paddle summary.
    assert "| onnxruntime | ort-cpu | int8 | int8-dynamic-per-channel | max |" in markdown


def test_int8_slower_than_fp32_is_flagged_never_silently_listed(clue_dir: Path, tmp_path: Path):
    out = tmp_path / "report"
    report.cli(str(clue_dir), out)
    markdown = (out / "report.md").read_text(encoding="utf-8")
    slow_row = next(
        line for line in markdown.splitlines() if line.startswith("| ppminilm-6l-768h | 离线量化 (ptq) | 80.80 (1/7) |")
    )
    assert slow_row.rstrip().endswith("| ⚠ INT8 not faster than FP32 |")
    assert "| 0.90 |" in slow_row
    flags_section = markdown.split("## Flags", 1)[1]
    assert (
        "⚠ INT8 not faster than FP32: ppminilm-6l-768h" in flags_section
        and "INT8 455.90 ms vs FP32 410.50 ms" in flags_section
    )
    data = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert [(f["model"], f["task"], f["int8_ms"], f["fp32_ms"]) for f in data["flags"]] == [
        ("ppminilm-6l-768h", "cmnli", 455.9, 410.5)
    ]
    # Every faster INT8 measurement carries no flag.
    assert all(not b["flags"] for b in data["benchmarks"] if b["model_name"] == "ernie-3.0-medium")


def test_every_figure_names_its_environment(clue_dir: Path, tmp_path: Path):
    out = tmp_path / "report"
    report.cli(str(clue_dir), out)
    markdown = (out / "report.md").read_text(encoding="utf-8")
    data = json.loads((out / "report.json").read_text(encoding="utf-8"))
    section = markdown.split("## 测试环境 (benchmark environments)", 1)[1].split("## Flags", 1)[0]
    for env in data["environments"]:
        line = next(line for line in section.splitlines() if line.startswith(f"- **{env['id']}**"))
        for needle in ("device", "threads", "batch", "versions: ", "paddleslim 2.6.0"):
            assert needle in line, (env["id"], needle)
    cpu = next(
        line for line in section.splitlines() if "batch 40; sequence length 128, warm-up 3, 10 timed runs" in line
    )
    assert (
        "Intel(R) Xeon(R) Processor (2 cores, AVX-512 VNNI yes)" in cpu
        and "threads 2" in cpu
        and "paddlepaddle 2.6.2" in cpu
    )
    assert any("GPU Tesla T4" in line and "paddlepaddle-gpu 2.6.2" in line for line in section.splitlines())
    measured = [b for b in data["benchmarks"] if b.get("latency_ms")]
    assert all(b["environment"] in {e["id"] for e in data["environments"]} for b in measured)


def test_uie_column_sentiment_column_gate_and_failures(tmp_path: Path):
    root = lay_out(
        tmp_path / "runs", ["uie_ptq.json", "tnews_qat_dis.json", "sentiment_ptq_gated.json", "ocnli_failed.json"]
    )
    out = tmp_path / "report"
    assert report.cli(str(root), out) == 0
    markdown = (out / "report.md").read_text(encoding="utf-8")
    assert table_headers(markdown)[0] == ACCURACY_HEADER + " UIE F1 | SENTIMENT |"
    assert "| 84.77 | 88.74† |" in markdown, "UIE F1 after PTQ; the gated sentiment result is marked"
    assert "| 85.12 | 91.02 |" in markdown, "base row from the `before` metrics"
    assert "failed" in markdown.split("## Failed tasks", 1)[1]
    png = out / "report.png"
    assert png.is_file()


def test_png_is_a_valid_image(clue_dir: Path, tmp_path: Path):
    from PIL import Image

    out = tmp_path / "report"
    report.cli(str(clue_dir), out)
    with Image.open(out / "report.png") as image:
        image.verify()
    with Image.open(out / "report.png") as image:
        assert image.format == "PNG" and image.size[0] > 300 and image.size[1] > 200


def test_unreadable_results_are_skipped_with_a_warning(clue_dir: Path, tmp_path: Path, caplog):
    bad = clue_dir / "broken" / "uie" / "ptq"
    bad.mkdir(parents=True)
    (bad / "results.json").write_text("{not json", encoding="utf-8")
    other = clue_dir / "other" / "results.json"
    other.parent.mkdir()
    other.write_text(json.dumps({"hello": "world"}), encoding="utf-8")
    out = tmp_path / "report"
    assert report.cli(str(clue_dir), out) == 0
    data = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert len(data["sources"]) == len(CLUE_FIXTURES)
    assert any("broken/uie/ptq/results.json: skipped, not readable as JSON" in w for w in data["warnings"])
    assert any("other/results.json: skipped, not a results.json" in w for w in data["warnings"])
    assert "## Skipped files" in (out / "report.md").read_text(encoding="utf-8")


def test_newest_result_wins_when_a_task_ran_twice(tmp_path: Path):
    root = lay_out(tmp_path / "runs", ["clue_tnews_prune_ptq.json"])
    newer = json.loads((FIXTURES / "clue_tnews_prune_ptq.json").read_text(encoding="utf-8"))
    newer["after"] = {"accuracy": 0.5700}
    newer["created"] = "2026-11-21T10:00:00+00:00"
    folder = root / "clue-2" / "tnews" / "prune_ptq"
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(newer), encoding="utf-8")
    found, warnings = report.gather(str(root))
    built = report.build(found, warnings)
    row = next(r for r in built["accuracy"]["rows"] if r["strategy_key"] == "prune_ptq")
    assert row["tasks"]["tnews"] == pytest.approx(57.0)
    assert any("holds a newer result" in w for w in built["warnings"])


def test_report_from_s3(s3_server: str, s3_client, bucket: str, tmp_path: Path, monkeypatch):
    for name in ("clue_afqmc_prune_ptq.json", "clue_cmnli_ptq_slow_int8.json"):
        data = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
        s3_client.put_object(
            Bucket=bucket,
            Key=f"act/{data['run_id']}/{data['task']}/{data['strategy']}/results.json",
            Body=(FIXTURES / name).read_bytes(),
        )
    s3_client.put_object(Bucket=bucket, Key="act/clue-1/afqmc/prune_ptq/inference.pdmodel", Body=b"not json, not read")
    s3_client.put_object(Bucket=bucket, Key="act/junk/results.json", Body=b"\xff\xfe")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    out = tmp_path / "report"
    assert report.cli(f"s3://{bucket}/act", out) == 0
    data = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert sorted(data["sources"]) == [
        f"s3://{bucket}/act/clue-1/afqmc/prune_ptq/results.json",
        f"s3://{bucket}/act/clue-1/cmnli/ptq/results.json",
    ]
    assert any("act/junk/results.json: skipped" in w for w in data["warnings"])
    assert len(data["flags"]) == 1
    # The same through the command line, with the endpoint from the environment.
    done = run_cli(f"s3://{bucket}/act", "--out", str(tmp_path / "cli"), env={"AWS_ENDPOINT_URL": s3_server})
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "cli" / "report.md").is_file()


def test_cli_exit_codes(clue_dir: Path, tmp_path: Path):
    done = run_cli(str(clue_dir), "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert ACCURACY_HEADER in done.stdout
    for name in ("report.md", "report.json", "report.png"):
        assert (tmp_path / "out" / name).is_file(), name

    empty = tmp_path / "empty"
    (empty / "some" / "folder").mkdir(parents=True)
    done = run_cli(str(empty), "--out", str(tmp_path / "out2"))
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: {empty}: no readable results.json found"
    assert not (tmp_path / "out2").exists()

    done = run_cli(str(tmp_path / "missing"), "--out", str(tmp_path / "out3"))
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "no such folder" in done.stderr


def test_summary_table_still_there():
    results = [
        TaskResult.from_dict(json.loads((FIXTURES / n).read_text(encoding="utf-8")))
        for n in ("uie_ptq.json", "ocnli_failed.json")
    ]
    lines = report.summary_table(results).splitlines()
    assert lines[0] == (
        "| task | strategy | status | metric | before | after | delta points | original size MB | compressed size MB |"
    )
    assert lines[2] == "| uie | ptq | complete | f1 | 85.12 | 84.77 | -0.35 | 470.1 | 120.5 |"


def test_published_config_hides_url_passwords():
    from job.results import _without_url_credentials

    config = {
        "Storage": {"endpoint_url": "https://ak:secret@s3.example.internal"},
        "Global": {"model_dir": "s3://m/x", "batch": [1, "http://u:p@h/x"]},
    }
    clean = _without_url_credentials(config)
    assert clean == {
        "Storage": {"endpoint_url": "https://***@s3.example.internal"},
        "Global": {"model_dir": "s3://m/x", "batch": [1, "http://***@h/x"]},
    }
    assert "secret" not in repr(clean)


def test_a_file_failing_the_schema_is_skipped_naming_the_file_and_the_key(clue_dir: Path, tmp_path: Path):
    typed = clue_dir / "typed" / "tnews" / "ptq" / "results.json"
    typed.parent.mkdir(parents=True)
    upgraded = TaskResult.from_dict(json.loads((FIXTURES / "tnews_qat_dis.json").read_text(encoding="utf-8")))
    upgraded.model_name, upgraded.strategy = "schema-two", "ptq"
    typed.write_text(upgraded.to_json(), encoding="utf-8")  # a schema 2 file reads beside schema 1 ones
    bad = json.loads((FIXTURES / "uie_ptq.json").read_text(encoding="utf-8"))
    bad["models"]["compressed"]["size_bytes"] = "120456789"
    target = clue_dir / "bad" / "uie" / "ptq" / "results.json"
    target.parent.mkdir(parents=True)
    target.write_text(json.dumps(bad), encoding="utf-8")
    found, warnings = report.gather(str(clue_dir))
    assert sorted(where for where, _ in found) == sorted(str(p) for p in clue_dir.rglob("results.json") if p != target)
    assert warnings == [
        f"{target}: skipped, not a results.json of this job "
        "(models.compressed.size_bytes: expected an integer, got text)"
    ]
    built = report.build(found, warnings)
    assert any(row["model"] == "schema-two" and row["tasks"] == {"tnews": 57.52} for row in built["accuracy"]["rows"])


# --------------------------------------------------------------------------------------
# Selections (<run>/<task>/_selected/selected.json, written by `select`): fixtures made to its schema
# --------------------------------------------------------------------------------------

# tnews in run sel-1, three strategies: (after accuracy, latency ms, size bytes, status)
_TNEWS = {
    "qat_dis": (0.5690, 520.0, 80_000_000, "complete"),
    "ptq": (0.5650, 400.0, 78_000_000, "complete"),
    "prune_ptq": (0.5500, 300.0, 60_000_000, "gated"),
}
_ORIGINAL_MS = 1950.0


def candidate(strategy: str, **changes) -> dict:
    after, latency, size, status = _TNEWS[strategy]
    item = {
        "strategy": strategy,
        "status": status,
        "eligible": status == "complete",
        "why": "passes the gate and is faster" if status == "complete" else "gated: lost 2.45 points",
        "metric": "accuracy",
        "score_points": round(after * 100, 4),
        "original_points": 57.45,
        "delta_points": round((after - 0.5745) * 100, 4),
        "latency_ms": latency,
        "original_latency_ms": _ORIGINAL_MS,
        "speedup": round(_ORIGINAL_MS / latency, 4),
        "throughput": round(40 / latency * 1000, 2),
        "size_bytes": size,
        "weight_bytes": size // 2,
        "pareto": strategy in ("ptq", "qat_dis"),
    }
    item.update(changes)
    return item


def selection(selected: str | None = "ptq", **changes) -> dict:
    data = {
        "schema": 1,
        "run_id": "sel-1",
        "task": "tnews",
        "rule": "passes the gate, faster than the original, then the fastest; ties by accuracy",
        "selected": selected,
        "reason": "ptq: the fastest eligible (400.00 ms, 4.88x)",
        "device": "cpu",
        "candidates": [candidate(name) for name in _TNEWS],
        "pareto": ["qat_dis", "ptq"],
    }
    data.update(changes)
    return data


def lay_out_run(root: Path) -> Path:
    """Run sel-1: tnews compressed three ways (results.json per strategy) and its selection."""
    base = json.loads((FIXTURES / "clue_tnews_prune_ptq.json").read_text(encoding="utf-8"))
    for strategy, (after, *_rest, status) in _TNEWS.items():
        data = {**base, "run_id": "sel-1", "strategy": strategy, "status": status, "after": {"accuracy": after}}
        folder = root / "sel-1" / "tnews" / strategy
        folder.mkdir(parents=True)
        (folder / "results.json").write_text(json.dumps(data), encoding="utf-8")
    write_selection(root, selection())
    return root


def write_selection(root: Path, data, run: str = "sel-1", task: str = "tnews") -> Path:
    path = root / run / task / "_selected" / "selected.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def test_report_with_selections_marks_the_selected_model_and_draws_the_pareto_plot(tmp_path: Path):
    from PIL import Image

    root = lay_out_run(tmp_path / "runs")
    out = tmp_path / "report"
    assert report.cli(str(root), out) == 0
    markdown = (out / "report.md").read_text(encoding="utf-8")

    section = markdown.split("## 选中模型 (selected models)", 1)[1].split("## (a)", 1)[0]
    headers = table_headers(section)
    assert headers[0] == ACCURACY_HEADER
    assert headers[1].startswith(LATENCY_HEADER + " 任务 | 运行时 | 原模型时延(ms) |")
    assert "| ernie-3.0-medium | Base模型 (run sel-1) | - | 57.45 | - | - | - | - | - | 57.45 (1/7) |" in section
    assert "| ernie-3.0-medium | 选中模型 (run sel-1) | - | 56.50 (ptq) | - | - | - | - | - | 56.50 (1/7) |" in section
    assert (
        "| ernie-3.0-medium | 离线量化 (ptq) | 56.50 | 400.00 | 4.88 | tnews | paddle-inference (default, precision "
        "not recorded) | 1950.00 | 100.0 | 78.00 | 39.00 | cpu | sel-1 |" in section
    )
    assert "Rule: passes the gate, faster than the original, then the fastest; ties by accuracy" in section

    # Table (a): only the selected strategy's tnews cell carries the mark.
    accuracy = markdown.split("## (a)", 1)[1].split("## (b)", 1)[0]
    assert "| ernie-3.0-medium | 离线量化 (ptq) | - | 56.50 ★ |" in accuracy
    assert "| ernie-3.0-medium | 量化训练+蒸馏 (qat_dis) | - | 56.90 |" in accuracy
    assert accuracy.count("★") == 2, "one marked cell and the legend"

    data = json.loads((out / "report.json").read_text(encoding="utf-8"))
    [chosen] = data["selection"]["tasks"]
    assert chosen["selected"] == "ptq" and chosen["figures"]["latency_ms"] == 400.0
    assert [r["selected"] for r in data["accuracy"]["rows"] if r["strategy_key"] == "ptq"] == [["tnews"]]

    with Image.open(out / "pareto.png") as image:
        image.verify()
    with Image.open(out / "pareto.png") as image:
        assert image.format == "PNG" and image.size[0] > 300
    figure = report.pareto_figure(data)
    texts = [t.get_text() for t in figure.axes[0].texts]
    assert "selected: ptq" in texts and "original" in texts and {"qat_dis", "prune_ptq"} <= set(texts)
    star = [c for c in figure.axes[0].collections if c.get_offsets().tolist() == [[400.0, 56.5]]]
    assert len(star) == 2, "the ptq candidate and the star over it"


def test_a_selection_served_by_openvino_shows_its_runtime_and_that_runtimes_figures(tmp_path: Path):
    root = lay_out_run(tmp_path / "runs")
    runtimes = {"runtime": "paddle-inference", "setting": "default", "precision": "int8"}
    candidates = [{**candidate(name), **runtimes} for name in _TNEWS]
    # ptq read by OpenVINO (default precision): faster than ptq on Paddle Inference (400 ms)
    openvino = {**candidate("ptq", latency_ms=350.0, speedup=round(_ORIGINAL_MS / 350.0, 4), score_points=56.4)}
    openvino.update(runtime="openvino", setting="default", precision="int8+bf16")
    data = selection(schema=2, candidates=[*candidates, openvino], runtime="openvino", setting="default")
    data.update(precision="int8+bf16", pareto=["ptq/openvino/default", "qat_dis/paddle-inference/default"])
    write_selection(root, data)
    out = tmp_path / "report"
    assert report.cli(str(root), out) == 0
    section = (out / "report.md").read_text(encoding="utf-8").split("## 选中模型 (selected models)", 1)[1]
    assert (
        "| ernie-3.0-medium | 离线量化 (ptq) | 56.40 | 350.00 | 5.57 | tnews | openvino (default, int8+bf16) "
        "| 1950.00 |" in section
    )
    assert "| 56.40 (ptq) |" in section, "the accuracy table shows the served runtime's score"
    figure = report.pareto_figure(json.loads((out / "report.json").read_text(encoding="utf-8")))
    texts = [t.get_text() for t in figure.axes[0].texts]
    assert "selected: ptq (openvino, default)" in texts and "ptq" in texts


def test_a_task_without_a_selected_model_says_why(tmp_path: Path):
    root = lay_out_run(tmp_path / "runs")
    write_selection(root, selection(None, reason="no candidate is faster than the original"))
    out = tmp_path / "report"
    assert report.cli(str(root), out) == 0
    markdown = (out / "report.md").read_text(encoding="utf-8")
    assert "| ernie-3.0-medium | 选中模型 (run sel-1) | - | none |" in markdown
    assert "- sel-1 / tnews: no model selected (no candidate is faster than the original)" in markdown
    assert " ★ |" not in markdown.split("## (a)", 1)[1].split("## (b)", 1)[0], "no cell marked"
    assert (out / "pareto.png").is_file()


def test_without_selections_the_report_is_as_before(clue_dir: Path, tmp_path: Path):
    out = tmp_path / "report"
    assert report.cli(str(clue_dir), out) == 0
    markdown = (out / "report.md").read_text(encoding="utf-8")
    assert "选中模型" not in markdown and "★" not in markdown
    assert not (out / "pareto.png").exists()
    assert json.loads((out / "report.json").read_text(encoding="utf-8"))["selection"]["tasks"] == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not a selected.json of this job"),
        (json.dumps([1, 2]), "(selected.json: not a JSON object)"),
        (json.dumps(selection(schema=3)), "(schema: 3 is not a selected.json schema this job reads (1, 2))"),
        (json.dumps(selection(schema=2)), "(precision: missing)"),
        (
            json.dumps(selection(selected="prune_dis")),
            "(selected: 'prune_dis' on 'paddle-inference' ('default') is not one of the candidates)",
        ),
        (json.dumps(selection(selected="prune_ptq")), "(selected: 'prune_ptq' is not an eligible candidate)"),
        (json.dumps(selection(selected=["ptq"])), "(selected: expected str, got list)"),
        (json.dumps(selection(candidates={"ptq": 1})), "(candidates: expected a list)"),
        (json.dumps(selection(task="afqmc")), "(run_id/task sel-1/afqmc is not the folder it was found in)"),
        (json.dumps(selection(run_id="../sel-1")), "(run_id/task ../sel-1/tnews is not the folder it was found in)"),
        (
            json.dumps(selection(candidates=[candidate("ptq")] * 2)),
            "(candidates: a (strategy, runtime, setting) is listed twice)",
        ),
        (json.dumps(selection(reason={"a": 1})), "(reason: expected str, got dict)"),
        (
            json.dumps(selection(candidates=[candidate("ptq"), candidate("qat_dis", latency_ms="fast")])),
            "(candidates[1].latency_ms: expected float, got str)",
        ),
        (
            json.dumps(selection(candidates=[candidate("ptq"), candidate("prune_ptq", size_bytes=-1)])),
            "(candidates[1].size_bytes: negative)",
        ),
        (
            json.dumps(selection(candidates=[candidate("ptq"), candidate("qat_dis", speedup=float("nan"))])),
            "(candidates[1].speedup: not a finite number)",
        ),
        (json.dumps(selection(candidates=["\x1b[31mnot a candidate"])), "(candidates[0]: expected an object)"),
        ('{"schema": 1, "pad": "' + "x" * (1 << 20) + '"}', "more than a selection holds"),
        ("[" * 100_000 + "]" * 100_000, "not a selected.json of this job"),
    ],
)
def test_a_bad_selected_json_is_skipped_with_one_warning(tmp_path: Path, content: str, message: str):
    root = lay_out_run(tmp_path / "runs")
    path = write_selection(root, content)
    out = tmp_path / "report"
    assert report.cli(str(root), out) == 0
    data = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert data["selection"]["tasks"] == [] and not (out / "pareto.png").exists()
    [warning] = [w for w in data["warnings"] if "selected.json" in w]
    assert warning.startswith(f"{path}: skipped, not a selected.json of this job") and message in warning
    assert "\n" not in warning and len(warning) < len(str(path)) + 300


def test_selections_are_read_from_s3(s3_server: str, s3_client, bucket: str, tmp_path: Path, monkeypatch):
    root = lay_out_run(tmp_path / "runs")
    for path in root.rglob("*.json"):
        s3_client.put_object(Bucket=bucket, Key=f"act/{path.relative_to(root).as_posix()}", Body=path.read_bytes())
    s3_client.put_object(Bucket=bucket, Key="act/sel-1/uie/_selected/selected.json", Body=b"\xff")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    found, warnings = report.gather_selections(f"s3://{bucket}/act")
    assert [(s["source"], s["selected"]) for s in found] == [
        (f"s3://{bucket}/act/sel-1/tnews/_selected/selected.json", "ptq")
    ]
    assert warnings == [
        f"s3://{bucket}/act/sel-1/uie/_selected/selected.json: skipped, not a selected.json of this job "
        "('utf-8' codec can't decode byte 0xff in position 0: invalid start byte)"
    ]
