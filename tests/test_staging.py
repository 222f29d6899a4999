"""Staged stages (job.storage.staging): reused only for the same fingerprint and verified
content, on a local output and on the local S3 server; never seen as a published result."""

from __future__ import annotations

import dataclasses
import logging

import pytest
from test_results import a_result

from job.storage import Storage, list_runs, pull_task, staging
from job.storage.locations import join

FP = "a" * 64


def _files(tmp_path):
    folder = tmp_path / "made"
    folder.mkdir()
    (folder / "inference.pdmodel").write_bytes(b"program" * 100)
    (folder / "inference.pdiparams").write_bytes(b"\x00\x01" * 500)
    return {"inference.pdmodel": folder / "inference.pdmodel", "inference.pdiparams": folder / "inference.pdiparams"}


@pytest.fixture(params=["local", "s3"])
def output(request, tmp_path, monkeypatch):
    if request.param == "local":
        return str(tmp_path / "out")
    monkeypatch.setenv("AWS_ENDPOINT_URL", request.getfixturevalue("s3_server"))
    return f"s3://{request.getfixturevalue('bucket')}/act"


def test_roundtrip_then_clear(output, tmp_path, caplog):
    store = Storage()
    dest = join(output, "run1", "uie", "ptq")
    staging.save(store, dest, "compress", FP, _files(tmp_path), {"evaluation": {"f1": 0.5}})
    with caplog.at_level(logging.INFO, logger="job.storage.staging"):
        record = staging.load(store, dest, "compress", FP, tmp_path / "w" / "compressed")
    assert record == {"evaluation": {"f1": 0.5}}
    assert (tmp_path / "w" / "compressed" / "inference.pdiparams").read_bytes() == b"\x00\x01" * 500
    assert sorted(p.name for p in (tmp_path / "w" / "compressed").iterdir()) == [
        "inference.pdiparams",
        "inference.pdmodel",
    ]
    assert "reused staged stage compress" in caplog.text
    assert staging.clear(store, dest) == 5
    assert store.listing(dest) == {}
    assert staging.load(store, dest, "compress", FP, tmp_path / "w2" / "compressed") is None


def test_tampered_file_is_not_reused(output, tmp_path):
    store = Storage()
    dest = join(output, "run1", "uie", "ptq")
    staging.save(store, dest, "compress", FP, _files(tmp_path), {"x": 1})
    # Same size, other content: only the SHA-256 can tell.
    store.put_bytes(b"\x00\x02" * 500, join(dest, "_staging", "compress", "inference.pdiparams"))
    assert staging.load(store, dest, "compress", FP, tmp_path / "w" / "compressed") is None
    assert not (tmp_path / "w" / "compressed").exists()


def test_changed_fingerprint_ignores_staging(output, tmp_path):
    store = Storage()
    dest = join(output, "run1", "uie", "ptq")
    staging.save(store, dest, "compress", FP, _files(tmp_path), {"x": 1})
    assert staging.load(store, dest, "compress", "b" * 64, tmp_path / "w" / "compressed") is None


def test_unfinished_staging_without_marker_is_ignored(output, tmp_path):
    store = Storage()
    dest = join(output, "run1", "uie", "ptq")
    staging.save(store, dest, "compress", FP, _files(tmp_path), {"x": 1})
    store.delete(join(dest, "_staging", "compress", staging.MARKER))
    assert staging.load(store, dest, "compress", FP, tmp_path / "w" / "compressed") is None


def test_staging_is_invisible_to_pull(output, tmp_path):
    from job.errors import InputError

    store = Storage()
    dest = join(output, "run1", "uie", "ptq")
    staging.save(store, dest, "compress", FP, _files(tmp_path), {"x": 1})
    (status,) = list_runs(store, output)
    assert (status.name, status.state) == ("run1/uie/ptq", "incomplete")
    with pytest.raises(InputError, match=r"no manifest\.json"):
        pull_task(store, dest, tmp_path / "pulled", progress=False)


def test_compress_stage_roundtrip_returns_the_same_typed_results(tmp_path, caplog):
    """The pipeline's call: the second run with the same fingerprint never compresses and
    gets the same CompressResult and EvalResult, its model files byte for byte."""
    from job.compress.int8 import RestrictResult
    from job.compress.stage import Calibration, CompressResult
    from job.evaluate import EvalResult, ModelFiles

    store = Storage()
    dest = join(str(tmp_path / "out"), "run1", "uie", "ptq")
    files = _files(tmp_path)
    made = CompressResult(
        ModelFiles(files["inference.pdmodel"].parent),
        "ptq",
        ["ptq"],
        12.5,
        0.61,
        ("recover_dropout",),
        ["a note"],
        int8_scope=RestrictResult("linear", 31, 4, 2, 1),
        calibration=Calibration(10, 32, True, 320),
    )
    after = EvalResult("f1", {"f1": 0.6, "precision": 0.7}, 400, "int8", 3.2, {"matmul": 20}, "test", "INT8 oneDNN")
    first = staging.compressed_or_run(store, dest, FP, tmp_path / "w1", lambda: (made, after))
    assert first == (made, after)

    def must_not_run():
        raise AssertionError("compressed again although a valid staging was there")

    with caplog.at_level(logging.INFO, logger="job.storage.staging"):
        compressed, evaluated = staging.compressed_or_run(store, dest, FP, tmp_path / "w2", must_not_run)
    assert "reused staged stage compress" in caplog.text
    assert evaluated == after
    assert compressed.model.folder == tmp_path / "w2" / "compressed"
    assert compressed == CompressResult(**{**made.__dict__, "model": compressed.model})
    assert compressed.model.params.read_bytes() == files["inference.pdiparams"].read_bytes()
    with pytest.raises(AssertionError, match="compressed again"):
        staging.compressed_or_run(store, dest, FP, tmp_path / "w3", must_not_run, reuse=False)


def test_staging_left_beside_a_published_result_is_not_pulled_or_reported(output, tmp_path):
    """A run killed between publish and clear: the result is complete and pulls exactly its
    manifest's files; the report reads only the published results.json, not the staged record."""
    from job.report import gather
    from job.storage import publish

    store = Storage()
    dest = join(output, "run1", "uie", "ptq")
    staging.save(store, dest, "compress", FP, _files(tmp_path), {"after": {"f1": 0.5}})
    folder = tmp_path / "published"
    folder.mkdir()
    (folder / "inference.pdmodel").write_bytes(b"published program")
    published = dataclasses.replace(a_result(), run_id="run1", task="uie", strategy="ptq")
    (folder / "results.json").write_text(published.to_json(), encoding="utf-8")  # pull checks it as a TaskResult
    publish(store, folder, dest, fingerprint=FP, status="complete", progress=False)

    (status,) = list_runs(store, output)
    assert (status.name, status.state) == ("run1/uie/ptq", "complete")
    pull_task(store, dest, tmp_path / "pulled", progress=False)
    assert sorted(p.name for p in (tmp_path / "pulled").rglob("*")) == [
        "_SUCCESS",
        "inference.pdmodel",
        "manifest.json",
        "results.json",
    ]
    found, warnings = gather(output)
    seen = [where for where, _ in found] + [w.split(": ", 1)[0] for w in warnings]
    assert seen == [join(dest, "results.json")]  # the published one, never the staged record
