"""Selection (``job.select``, ``job.storage.selection``): the rule on typed candidates, the
Pareto set, selected.json published marker-last under ``<run>/<task>/_selected/`` from
real published folders (local and the moto S3 server), refusals, ``python -m job select``
and ``scripts/pull get --selected``."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from pathlib import Path

import pytest
from test_results import a_result

from job.__main__ import main as job_main
from job.config import StorageConfig
from job.errors import InputError
from job.results import RuntimeFigures, TaskResult, Timing
from job.select import RULE, SCHEMA, Candidate, Selection, candidates_of, choose
from job.storage import MANIFEST, MARKER, Storage, list_runs, publish, task_prefix
from job.storage.download import LOCK_NAME
from job.storage.selection import DEPLOY, FILE, read_selection, select_run, selection_prefix

REPO = Path(__file__).resolve().parent.parent
RUN = "r1"


def result(
    strategy: str,
    *,
    ms: float | None = 12.0,
    original_ms: float = 30.0,
    f1: float = 0.85,
    status: str = "complete",
    size: int = 120_000_000,
    task: str = "uie",
    rows: list[RuntimeFigures] | None = None,
) -> TaskResult:
    """a_result() as another strategy with these figures (speedup = original_ms / ms) and
    these runtime rows (none: a schema-3 result)."""
    base = a_result()
    latency = None
    if ms is not None:
        latency = dataclasses.replace(
            base.latency,
            original=Timing(precision="fp32", latency_ms=original_ms, p90_ms=original_ms, throughput=1.0),
            compressed=Timing(precision="int8", latency_ms=ms, p90_ms=ms, throughput=2.0),
            speedup=round(original_ms / ms, 4),
        )
    compressed = dataclasses.replace(base.models.compressed, size_bytes=size)
    return dataclasses.replace(
        base,
        run_id=RUN,
        task=task,
        strategy=strategy,
        status=status,
        after={**base.after, "f1": f1},
        delta_points=round((f1 - base.before["f1"]) * 100, 4),
        gate=dataclasses.replace(base.gate, passed=status == "complete"),
        models=dataclasses.replace(base.models, compressed=compressed),
        latency=latency,
        runtimes=list(rows or []),
    )


def pick(*results: TaskResult) -> Selection:
    return choose("uie", RUN, [c for r in results for c in candidates_of(r)], device="cpu")


def by_name(selection: Selection) -> dict[str, Candidate]:
    return {c.strategy: c for c in selection.candidates}


# --------------------------------------------------------------------------------------
# The rule
# --------------------------------------------------------------------------------------


def test_a_model_slower_than_its_original_is_never_selected():
    # the best score, but 2 % slower than its original: nothing is selected
    selection = pick(result("ptq", ms=30.6, original_ms=30.0, f1=0.86))
    assert selection.selected is None
    slow = by_name(selection)["ptq"]
    assert not slow.eligible
    assert slow.why == "not faster than the original: 1.02x slower on cpu"
    assert selection.reason == "no candidate is eligible: 1 not faster than the original"
    # beside a faster one of lower score, the faster one is selected
    selection = pick(result("ptq", ms=30.6, f1=0.86), result("qat_dis", ms=20.0, f1=0.845))
    assert selection.selected == "qat_dis"
    same = pick(result("ptq", ms=30.0, original_ms=30.0))
    assert same.selected is None and by_name(same)["ptq"].why.endswith("the same speed on cpu")


def test_a_gated_model_is_never_selected_even_when_fastest():
    selection = pick(result("ptq", ms=5.0, f1=0.70, status="gated"), result("qat_dis", ms=12.0))
    assert selection.selected == "qat_dis"
    gated = by_name(selection)["ptq"]
    assert not gated.eligible and gated.why.startswith("gated: failed the accuracy gate (-15.12 points of f1)")
    # a results.json that says complete but records no passed gate is treated as gated
    lying = result("prune_ptq", ms=4.0)
    lying.gate.passed = False
    selection = pick(lying, result("qat_dis", ms=12.0))
    assert selection.selected == "qat_dis" and by_name(selection)["prune_ptq"].status == "gated"


def test_a_result_without_latency_is_not_eligible():
    selection = pick(result("ptq", ms=None))
    assert selection.selected is None
    assert by_name(selection)["ptq"].why.startswith("no latency measured")


def test_the_fastest_eligible_is_selected_and_ties_go_to_the_higher_score_then_the_name():
    # 12.0 vs 12.05 ms: within 0.5 %, a tie: the higher score wins
    selection = pick(result("ptq", ms=12.0, f1=0.84), result("qat_dis", ms=12.05, f1=0.85))
    assert selection.selected == "qat_dis"
    assert "tied within 0.5% with ptq" in selection.reason
    # 12.0 vs 12.1 ms: 0.83 % apart, no tie: the faster wins despite its lower score
    assert pick(result("ptq", ms=12.0, f1=0.84), result("qat_dis", ms=12.1, f1=0.85)).selected == "ptq"
    # same latency, same score: by name, whatever the order given
    assert pick(result("qat_dis"), result("ptq")).selected == "ptq"
    assert pick(result("ptq"), result("qat_dis")).selected == "ptq"


def test_pareto_set_over_score_latency_and_size():
    selection = pick(
        result("accurate", ms=20.0, f1=0.86, size=100),  # best score
        result("fast", ms=10.0, f1=0.84, size=100),  # best latency
        result("small", ms=20.0, f1=0.84, size=50),  # best size
        result("dominated", ms=21.0, f1=0.855, size=100),  # worse than 'accurate' on all three
        result("gated", ms=25.0, f1=0.87, size=200, status="gated"),  # every candidate with figures counts
        result("untimed", ms=None, f1=0.99, size=1),  # no latency: not in the set
    )
    assert selection.pareto == [f"{name}/paddle-inference/default" for name in ("fast", "accurate", "small", "gated")]
    assert [c.strategy for c in selection.candidates if c.pareto] == ["accurate", "fast", "gated", "small"]
    assert selection.selected == "fast"


def test_selection_round_trip_and_its_checks():
    selection = pick(result("ptq"), result("qat_dis", ms=31.0))
    data = json.loads(selection.to_json())
    assert set(data) == {
        "schema", "run_id", "task", "rule", "selected", "runtime", "setting", "precision", "reason", "device",
        "candidates", "pareto",
    }  # fmt: skip
    assert data["schema"] == SCHEMA == 2 and data["rule"] == RULE
    assert (data["runtime"], data["setting"], data["precision"]) == ("paddle-inference", "default", "int8")
    assert set(data["candidates"][0]) == {
        "strategy", "runtime", "setting", "precision", "status", "eligible", "why", "metric", "score_points",
        "original_points", "delta_points",
        "latency_ms", "original_latency_ms", "speedup", "throughput", "size_bytes", "weight_bytes", "pareto",
    }  # fmt: skip
    assert Selection.from_dict(data) == selection
    bad = json.loads(selection.to_json())
    bad["selected"] = "qat_dis"  # not eligible: a reader must not take it
    with pytest.raises(ValueError, match="not an eligible candidate"):
        Selection.from_dict(bad)
    bad = json.loads(selection.to_json())
    bad["candidates"][0]["latency_ms"] = "12"
    with pytest.raises(ValueError, match=r"^candidates\[0\]\.latency_ms: expected float"):
        Selection.from_dict(bad)


# --------------------------------------------------------------------------------------
# Published folders: local and S3
# --------------------------------------------------------------------------------------


def publish_result(store: Storage, output: str, res: TaskResult, tmp: Path) -> str:
    """A task folder as the pipeline publishes it: model files and results.json, with the result's status."""
    folder = tmp / f"src-{res.task}-{res.strategy}"
    folder.mkdir(parents=True)
    (folder / "inference.pdmodel").write_bytes(os.urandom(2048))
    (folder / "inference.pdiparams").write_bytes(os.urandom(8192))
    (folder / "results.json").write_text(res.to_json(), encoding="utf-8")
    prefix = task_prefix(output, RUN, res.task, res.strategy)
    publish(store, folder, prefix, fingerprint="f" * 64, status=res.status, progress=False)
    return prefix


@pytest.fixture(params=["local", "s3"])
def place(request, tmp_path: Path) -> tuple[Storage, str]:
    if request.param == "local":
        return Storage(StorageConfig()), str(tmp_path / "out")
    endpoint = request.getfixturevalue("s3_server")
    return Storage(StorageConfig(endpoint_url=endpoint)), f"s3://{request.getfixturevalue('bucket')}/act"


def test_select_run_publishes_selected_json_marker_last_and_reads_it_back(place, tmp_path: Path):
    store, output = place
    publish_result(store, output, result("ptq", ms=31.0, f1=0.86), tmp_path)  # slower than its original
    publish_result(store, output, result("qat_dis", ms=12.0), tmp_path)
    publish_result(store, output, result("prune_ptq", ms=5.0, f1=0.7, status="gated"), tmp_path)  # no marker
    (selection,) = select_run(store, output, RUN)
    assert not selection.refused and selection.exit_code == 0
    assert selection.selected == "qat_dis"
    prefix = selection_prefix(output, RUN, "uie")
    assert selection.location == f"{prefix}/{FILE}"
    assert set(store.listing(prefix)) == {FILE, DEPLOY, MANIFEST, MARKER}
    assert read_selection(store, output, RUN, "uie") == selection
    assert {c.strategy: c.status for c in selection.candidates} == {
        "prune_ptq": "gated",
        "ptq": "complete",
        "qat_dis": "complete",
    }
    # the selection folder is not a strategy of the pull's listing
    assert [t.strategy for t in list_runs(store, output, run_id=RUN)] == ["prune_ptq", "ptq", "qat_dis"]


def test_an_incomplete_candidate_refuses_the_selection_and_other_tasks_go_on(place, tmp_path: Path):
    store, output = place
    running = publish_result(store, output, result("ptq", ms=10.0), tmp_path)
    store.delete(f"{running}/{MARKER}")  # as while a Job is still publishing
    publish_result(store, output, result("qat_dis", ms=12.0), tmp_path)
    publish_result(store, output, result("ptq", ms=10.0, task="tnews"), tmp_path)
    tnews, uie = select_run(store, output, RUN)  # in name order
    assert uie.task == "uie" and uie.exit_code == 2
    assert uie.refused == "r1/uie: refusing to select while results are incomplete or unsafe: ptq (incomplete)"
    assert store.listing(selection_prefix(output, RUN, "uie")) == {}, "nothing published before every marker exists"
    with pytest.raises(InputError, match="no published selection"):
        read_selection(store, output, RUN, "uie")
    assert tnews.selected == "ptq" and not tnews.refused


def test_an_unreadable_results_json_is_unsafe_and_refuses_the_selection(tmp_path: Path):
    store, output = Storage(StorageConfig()), str(tmp_path / "out")
    bad = result("ptq").to_dict()
    bad["latency"]["speedup"] = "fast"
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps(bad), encoding="utf-8")
    publish(store, folder, task_prefix(output, RUN, "uie", "ptq"), fingerprint="f" * 64, status="complete")
    (selection,) = select_run(store, output, RUN)
    assert selection.exit_code == 2 and "ptq (unsafe)" in selection.refused
    assert by_name(selection)["ptq"].why.startswith("unsafe: results.json: latency.speedup: expected a number")
    assert select_run(store, output, RUN, ["nosuch"])[0].refused.startswith("r1/nosuch: no strategy folders")


def test_a_selection_changed_after_publishing_is_not_read(s3_server, bucket, s3_client, tmp_path: Path):
    store, output = Storage(StorageConfig(endpoint_url=s3_server)), f"s3://{bucket}/act"
    publish_result(store, output, result("ptq"), tmp_path)
    (selection,) = select_run(store, output, RUN)
    key = f"act/{RUN}/uie/_selected/{FILE}"
    tampered = selection.to_dict() | {"reason": "tampered"}
    s3_client.put_object(Bucket=bucket, Key=key, Body=json.dumps(tampered).encode())
    with pytest.raises(InputError, match="no published selection"):
        read_selection(store, output, RUN, "uie")


def test_job_select_command(tmp_path: Path, capsys):
    store, output = Storage(StorageConfig()), str(tmp_path / "out")
    publish_result(store, output, result("ptq", ms=12.0), tmp_path)
    publish_result(store, output, result("qat_dis", ms=31.0), tmp_path)
    assert job_main(["select", output, "--run", RUN]) == 0
    out = capsys.readouterr().out
    assert "== r1/uie: ptq ==" in out
    assert "not faster than the original: 1.03x slower on cpu" in out
    assert f"published: {output}/{RUN}/uie/_selected/{FILE}" in out
    assert "  serve with: paddle-inference (default, int8)" in out
    assert job_main(["select", output, "--run", RUN, "--task", "tnews"]) == 2
    assert "error: r1/tnews: no strategy folders" in capsys.readouterr().err


def test_pull_get_selected_pulls_exactly_the_selected_folder(s3_server, bucket, tmp_path: Path, light_python: Path):
    store, output = Storage(StorageConfig(endpoint_url=s3_server)), f"s3://{bucket}/act"
    publish_result(store, output, result("ptq", ms=20.0), tmp_path)
    # qat_dis is fastest read by OpenVINO with f32 pinned: the pull says to serve it so
    publish_result(store, output, result("qat_dis", ms=12.0, rows=[row("openvino", "f32", 10.0)]), tmp_path)
    publish_result(store, output, result("ptq", ms=12.0, task="tnews"), tmp_path)  # never selected
    select_run(store, output, RUN, ["uie"])
    # the deployment card beside selected.json names the runtime and gives its loading code
    deploy = store.get_bytes(f"{selection_prefix(output, RUN, 'uie')}/{DEPLOY}").decode("utf-8")
    assert "strategy `qat_dis`, served by **openvino**, setting `f32`, precision `int8`" in deploy
    assert 'config["INFERENCE_PRECISION_HINT"] = "f32"' in deploy and "core.read_model(" in deploy
    dest = tmp_path / "pulled"
    flags = ["--selected", "--dest", str(dest), "--endpoint-url", s3_server, "--no-progress"]
    proc = subprocess.run(
        [str(light_python), str(REPO / "scripts" / "pull"), "get", output, "--run", RUN, *flags],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert proc.returncode == 2, proc.stderr
    assert "error: r1/tnews: no published selection (absent)" in proc.stderr
    # the destination's lock file stays (job.storage.download.LOCK_NAME): nothing else but the folder
    pulled = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file() and p.name != LOCK_NAME)
    assert pulled == [
        f"{RUN}/uie/qat_dis/{name}"
        for name in sorted([MANIFEST, MARKER, "inference.pdiparams", "inference.pdmodel", "results.json"])
    ]
    assert "r1/uie: selected qat_dis" in proc.stdout
    assert (
        f"r1/uie: serve with openvino (f32, int8); its loading code: DEPLOY.md in {output}/{RUN}/uie/_selected/"
    ) in proc.stdout


def test_a_gated_results_json_changed_after_publishing_is_unsafe(tmp_path: Path):
    # a gated folder has no marker, so only the manifest's SHA-256 vouches for its results.json
    store, output = Storage(StorageConfig()), str(tmp_path / "out")
    prefix = publish_result(store, output, result("ptq", f1=0.70, status="gated"), tmp_path)
    path = Path(prefix) / "results.json"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace('"status": "gated"', '"status": "xgated"'), encoding="utf-8")  # same size
    (selection,) = select_run(store, output, RUN)
    assert selection.exit_code == 2 and "ptq (unsafe)" in selection.refused
    assert by_name(selection)["ptq"].why.endswith("results.json: does not match its SHA-256 in the manifest")


def test_the_candidates_table_escapes_text_from_the_bucket():
    hostile = result("ptq", status="gated")
    hostile.metric = "f1\x1b[2J" + "x" * 300
    lines = pick(hostile, result("qat_dis")).table()
    assert not any("\x1b" in line for line in lines)
    assert any("f1\\x1b[2J" in line and line.endswith("...") for line in lines)


def test_a_selection_made_before_a_new_result_is_stale(tmp_path: Path):
    store, output = Storage(StorageConfig()), str(tmp_path / "out")
    publish_result(store, output, result("ptq", ms=20.0), tmp_path)
    assert select_run(store, output, RUN)[0].selected == "ptq"
    assert read_selection(store, output, RUN, "uie").selected == "ptq"
    publish_result(store, output, result("qat_dis", ms=10.0), tmp_path)  # a faster one ends after the selection
    with pytest.raises(InputError, match=r"^r1/uie: the published selection is stale"):
        read_selection(store, output, RUN, "uie")
    assert select_run(store, output, RUN)[0].selected == "qat_dis"
    assert read_selection(store, output, RUN, "uie").selected == "qat_dis"


def test_an_unsafe_strategy_folder_refuses_its_task(s3_server, bucket, s3_client, tmp_path: Path):
    store, output = Storage(StorageConfig(endpoint_url=s3_server)), f"s3://{bucket}/act"
    publish_result(store, output, result("qat_dis", ms=12.0), tmp_path)
    publish_result(store, output, result("prune_dis", status="failed"), tmp_path)  # final: does not block
    s3_client.put_object(Bucket=bucket, Key=f"act/{RUN}/uie/../results.json", Body=b"{}")
    selections = {s.task: s for s in select_run(store, output, RUN)}
    uie = selections["uie"]
    assert uie.exit_code == 2 and uie.refused.endswith("'..' (unsafe)"), uie.refused
    assert by_name(uie)["prune_dis"].status == "failed"
    assert store.listing(selection_prefix(output, RUN, "uie")) == {}
    assert all(s.exit_code == 2 for s in selections.values())


# --------------------------------------------------------------------------------------
# Runtimes: a candidate per (strategy, runtime, setting)
# --------------------------------------------------------------------------------------


def row(runtime: str, setting: str, ms: float | None, *, status: str = "measured", **changes) -> RuntimeFigures:
    """A compressed-model runtime row timed at ``ms`` against the original's 30 ms on Paddle Inference."""
    precision = changes.pop("precision", "int8+bf16" if (runtime, setting) == ("openvino", "default") else "int8")
    timing = None if ms is None else Timing(precision=precision, latency_ms=ms, p90_ms=ms, throughput=40 / ms * 1000)
    return RuntimeFigures(
        runtime=runtime,
        setting=setting,
        precision=precision,
        status=status,
        score_points=changes.pop("score_points", 84.77),
        delta_points=changes.pop("delta_points", -0.35),
        int8_ops=20,
        timing=timing,
        speedup=None if ms is None else round(30.0 / ms, 4),
        **changes,
    )


def test_a_faster_openvino_row_is_selected_and_named_with_its_runtime():
    rows = [row("paddle-inference", "default", 12.0), row("openvino", "default", 9.0), row("openvino", "f32", 10.5)]
    selection = pick(result("ptq", ms=12.0, rows=rows), result("qat_dis", ms=11.0))
    assert (selection.selected, selection.runtime, selection.setting) == ("ptq", "openvino", "default")
    assert selection.precision == "int8+bf16"
    assert selection.reason.startswith(
        "ptq served by openvino (default, int8+bf16): the fastest eligible model, 9.0 ms"
    )
    assert selection.chosen.speedup == round(30.0 / 9.0, 4) and selection.chosen.latency_ms == 9.0
    assert [c.key for c in selection.candidates] == [
        "ptq/paddle-inference/default",
        "ptq/openvino/default",
        "ptq/openvino/f32",
        "qat_dis/paddle-inference/default",
    ]
    assert all(c.eligible for c in selection.candidates)
    chosen_line = next(line for line in selection.table() if line.lstrip().startswith("*"))
    assert "ptq" in chosen_line and "openvino" in chosen_line and "int8+bf16" in chosen_line
    assert Selection.from_dict(json.loads(selection.to_json())) == selection
    # the same figures on Paddle Inference only (a schema-3 result): Paddle's ptq, not the OpenVINO row
    assert pick(result("ptq", ms=12.0), result("qat_dis", ms=11.0)).selected == "qat_dis"


def test_gated_refused_and_skipped_rows_are_never_selected():
    rows = [
        row("paddle-inference", "default", 12.0),
        row("openvino", "default", 5.0, status="gated", score_points=80.1, delta_points=-5.02),  # fastest, lost 5
        row("openvino", "f32", None, status="refused", precision="", reason="Fail to convert dequantize_linear"),
    ]
    skipped = [row("paddle-inference", "default", 11.0), row("openvino", "default", None, status="skipped")]
    skipped[1].reason, skipped[1].precision = "openvino is not installed", ""
    selection = pick(result("ptq", rows=rows), result("qat_dis", ms=11.0, rows=skipped))
    assert (selection.selected, selection.runtime) == ("qat_dis", "paddle-inference")
    why = {c.key: (c.status, c.eligible, c.why) for c in selection.candidates}
    assert why["ptq/openvino/default"] == (
        "gated",
        False,
        "gated: lost more than the gate in openvino (default) (-5.02 points of f1)",
    )
    assert why["ptq/openvino/f32"] == (
        "refused",
        False,
        "refused: openvino (f32) could not read or run the program: Fail to convert dequantize_linear",
    )
    assert why["qat_dis/openvino/default"] == (
        "skipped",
        False,
        "skipped: not measured in openvino (default): openvino is not installed",
    )
    # a measured row of a result that failed its gate (in Paddle Inference) is not eligible either
    gated_task = result("prune_ptq", f1=0.70, status="gated", rows=[row("openvino", "f32", 4.0)])
    selection = pick(gated_task, result("qat_dis", ms=11.0))
    assert selection.selected == "qat_dis"
    assert [c.status for c in selection.candidates if c.strategy == "prune_ptq"] == ["gated", "gated"]
    # a measured row slower than the original as Paddle Inference serves it is not eligible
    slow = pick(result("ptq", ms=None, rows=[row("openvino", "f32", 31.0)]))
    assert slow.selected is None
    assert by_name_key(slow)["ptq/openvino/f32"].why == "not faster than the original: 1.03x slower on cpu"


def by_name_key(selection: Selection) -> dict[str, Candidate]:
    return {c.key: c for c in selection.candidates}


def test_a_schema_3_result_is_still_selected_as_before():
    data = json.loads(result("ptq", ms=12.0).to_json())
    data["schema"] = 3
    del data["runtimes"]
    old = TaskResult.from_dict(data)
    (candidate,) = candidates_of(old)
    assert (candidate.runtime, candidate.setting, candidate.precision) == ("paddle-inference", "default", "int8")
    selection = choose("uie", RUN, [candidate], device="cpu")
    assert (selection.selected, selection.runtime, selection.setting) == ("ptq", "paddle-inference", "default")
    assert selection.chosen.latency_ms == 12.0 and selection.chosen.speedup == round(30.0 / 12.0, 4)


def schema_1(selection: Selection) -> dict:
    """``selection`` as selected.json schema 1 wrote it (before runtimes)."""
    data = selection.to_dict()
    data["schema"] = 1
    for key in ("runtime", "setting", "precision"):
        del data[key]
        for candidate in data["candidates"]:
            del candidate[key]
    data["pareto"] = [key.split("/")[0] for key in data["pareto"]]
    return data


def test_selected_json_schema_1_is_still_read(tmp_path: Path):
    store, output = Storage(StorageConfig()), str(tmp_path / "out")
    publish_result(store, output, result("ptq", ms=20.0), tmp_path)
    publish_result(store, output, result("qat_dis", ms=12.0), tmp_path)
    (fresh,) = select_run(store, output, RUN)
    old = Selection.from_dict(schema_1(fresh))
    assert (old.selected, old.runtime, old.setting, old.precision) == ("qat_dis", "paddle-inference", "default", "")
    assert old.read_schema == 1 and old.chosen.latency_ms == 12.0
    # published as an older job published it: read back through the verified path, not stale
    folder = tmp_path / "old-selection"
    folder.mkdir()
    (folder / FILE).write_text(json.dumps(schema_1(fresh)), encoding="utf-8")
    publish(
        store, folder, selection_prefix(output, RUN, "uie"), fingerprint="e" * 64, status="complete", progress=False
    )
    read = read_selection(store, output, RUN, "uie")
    assert (read.selected, read.runtime, read.read_schema) == ("qat_dis", "paddle-inference", 1)
    # and still stale when the results changed since
    publish_result(store, output, result("prune_ptq", ms=5.0), tmp_path)
    with pytest.raises(InputError, match=r"^r1/uie: the published selection is stale"):
        read_selection(store, output, RUN, "uie")


@pytest.mark.parametrize(
    ("key", "value"),
    [("runtime", "tensorrt\x1b[2J"), ("setting", "bf16"), ("precision", "int4"), ("status", "great"), ("model", "x")],
)
def test_unknown_runtime_strings_from_the_bucket_are_refused_naming_the_key(key: str, value: str, tmp_path: Path):
    bad = row("openvino", "default", 9.0)
    setattr(bad, key, value)
    res = result("ptq", rows=[row("paddle-inference", "default", 12.0), bad])
    with pytest.raises(ValueError, match=rf"^runtimes\[1\]\.{key}: "):
        candidates_of(res)
    store, output = Storage(StorageConfig()), str(tmp_path / "out")
    publish_result(store, output, res, tmp_path)
    publish_result(store, output, result("qat_dis", ms=12.0), tmp_path)
    (selection,) = select_run(store, output, RUN)
    assert selection.exit_code == 2 and "ptq (unsafe)" in selection.refused
    why = by_name(selection)["ptq"].why
    assert why.startswith(f"unsafe: results.json: runtimes[1].{key}: ") and "\x1b" not in why and "\n" not in why


def test_a_selected_json_naming_an_unknown_or_unchosen_runtime_is_refused():
    selection = pick(result("ptq", ms=12.0, rows=[row("openvino", "f32", 10.0)]))
    assert (selection.runtime, selection.setting) == ("openvino", "f32")
    for change, message in (
        ({"runtime": "onnxruntime"}, r"^runtime: 'onnxruntime' is not one of paddle-inference, openvino$"),
        ({"setting": "default"}, r"^selected: 'ptq' on 'openvino' \('default'\) is not one of the candidates$"),
        ({"precision": "fp32"}, r"^precision: 'fp32' is not the selected candidate's$"),
    ):
        bad = {**json.loads(selection.to_json()), **change}
        with pytest.raises(ValueError, match=message):
            Selection.from_dict(bad)
    bad = json.loads(selection.to_json())
    bad["candidates"][1]["setting"] = "\x07"
    with pytest.raises(ValueError, match=r"^candidates\[1\]\.setting: '\\x07' is not one of default, f32$"):
        Selection.from_dict(bad)
