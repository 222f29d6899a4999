"""Models: named shapes, the export signature, teacher checkpoints, and a model folder made
by PaddleNLP's own code accepted as input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from jobrun import TINY, run_job

UIE_INPUTS = ["input_ids", "token_type_ids", "position_ids", "attention_mask"]


def teacher_folder(tiny):
    return next(p for p in (tiny["root"] / "cache" / "teachers").iterdir() if p.is_dir() and not p.name.startswith("."))


def test_named_shapes():
    from job.model import SHAPES

    assert (SHAPES["uie-base"].layers, SHAPES["uie-base"].hidden, SHAPES["uie-base"].heads) == (12, 768, 12)
    assert (SHAPES["uie-medium"].layers, SHAPES["uie-medium"].hidden) == (6, 768)
    assert (SHAPES["uie-mini"].layers, SHAPES["uie-mini"].hidden) == (6, 384)
    assert (SHAPES["uie-micro"].layers, SHAPES["uie-micro"].hidden) == (4, 384)
    assert (SHAPES["uie-nano"].layers, SHAPES["uie-nano"].hidden) == (4, 312)
    assert (SHAPES["ernie-3.0-medium"].layers, SHAPES["ernie-3.0-medium"].hidden) == (6, 768)
    assert (SHAPES["ppminilm-6l-768h"].layers, SHAPES["ppminilm-6l-768h"].hidden) == (6, 768)
    for shape in SHAPES.values():
        assert shape.hidden % shape.heads == 0
        assert (shape.heads * 0.25).is_integer(), "a 0.25 pruning ratio must remove whole heads"


def test_vocabulary_splits_non_cjk_runs_into_characters(tmp_path):
    from job.model import build_vocab, load_tokenizer, save_tokenizer

    save_tokenizer(build_vocab(["江泽民一九九七年", "１９９８年"], min_freq=1), tmp_path)
    tokenizer = load_tokenizer(tmp_path)
    assert tokenizer.tokenize("１９９８年ABC") == ["１", "##９", "##９", "##８", "年", "abc"[0], "##b", "##c"]


def test_the_built_teacher_is_exported_with_paddlenlps_uie_signature(tiny):
    from job.model import ModelFiles
    from job.program import program_inputs

    folder = teacher_folder(tiny)
    model = ModelFiles(folder).check()
    assert program_inputs(model) == UIE_INPUTS
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    assert config["architectures"] == ["UIE"]
    for name in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        assert (folder / name).is_file()
    meta = json.loads((folder / "teacher.json").read_text(encoding="utf-8"))
    assert meta["source"] == "trained" and meta["train"]["steps"] == 60 and meta["train"]["history"]
    sums = (folder / "checkpoint" / "SHA256SUMS").read_text(encoding="utf-8")
    assert "model_state.pdparams" in sums


def test_checkpoint_round_trip_and_tampering(tiny, tmp_path):
    from job.errors import InputError
    from job.model import load_checkpoint

    checkpoint = tmp_path / "checkpoint"
    shutil.copytree(teacher_folder(tiny) / "checkpoint", checkpoint)
    model = load_checkpoint(checkpoint)
    assert type(model).__name__ == "UIE"
    data = bytearray((checkpoint / "model_state.pdparams").read_bytes())
    data[-1] ^= 0xFF
    (checkpoint / "model_state.pdparams").write_bytes(bytes(data))
    with pytest.raises(InputError, match="checksum does not match"):
        load_checkpoint(checkpoint)


def test_teacher_command_writes_a_reproducible_checkpoint(tiny, tmp_path):
    out = tmp_path / "teacher"
    done = run_job(
        "teacher",
        "--config",
        str(TINY),
        *tiny["overrides"],
        "Job.strategy=none",
        "Teacher.steps=20",
        "Teacher.eval_every=10",
        f"Job.cache_dir={tmp_path / 'cache'}",
        "--out",
        str(out),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    readme = (out / "README.md").read_text(encoding="utf-8")
    assert f"python -m job teacher --config {TINY}" in readme and "F1" in readme.upper()
    assert "teacher (fp32" in done.stdout
    # The checkpoint is a valid Teacher.checkpoint: the job rebuilds the same model from it.
    again = run_job(
        "run",
        "--config",
        str(TINY),
        *tiny["overrides"],
        "Job.strategy=none",
        f"Teacher.checkpoint={out}",
        f"Job.cache_dir={tmp_path / 'cache2'}",
    )
    assert again.returncode == 0, again.stderr[-3000:]
    first = done.stdout.strip().splitlines()[0].split(":", 1)[1]
    second = again.stdout.strip().splitlines()[0].split(":", 1)[1]
    assert first == second, "the same checkpoint must give the same test metrics"


def test_a_model_folder_made_by_paddlenlp_itself_is_accepted(tiny, tmp_path):
    """PaddleNLP's Taskflow turns a dygraph UIE checkpoint into its own static export
    (task_path/static/inference.*); the job evaluates that folder like its own."""
    dygraph = tmp_path / "dygraph"
    dygraph.mkdir()
    checkpoint = teacher_folder(tiny) / "checkpoint"
    for path in checkpoint.iterdir():
        if path.name not in ("SHA256SUMS", "train_log.json"):
            shutil.copy2(path, dygraph / path.name)
    code = (
        "import zlib\n"
        "from paddlenlp import Taskflow\n"
        f"Taskflow('information_extraction', schema=['人名'], task_path={str(dygraph)!r})\n"
    )
    made = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr[-3000:]
    static = dygraph / "static"
    assert (static / "inference.pdmodel").is_file()
    for name in ("config.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy2(dygraph / name, static / name)
    theirs = run_job("eval", "--config", str(TINY), *tiny["overrides"], "--model", str(static))
    ours = run_job("eval", "--config", str(TINY), *tiny["overrides"], "--model", str(teacher_folder(tiny)))
    assert theirs.returncode == 0, theirs.stderr[-3000:]
    assert ours.returncode == 0, ours.stderr[-3000:]
    assert theirs.stdout.split(":", 1)[1] == ours.stdout.split(":", 1)[1]


def test_the_teacher_key_follows_its_data_settings_code_and_versions(tmp_path, monkeypatch):
    """No hand-bumped version: a change to the code that trains and exports, to the data,
    to the settings or to Paddle's version is a new key (a new teacher folder)."""
    from types import SimpleNamespace

    from job import cache, model
    from job.config import load_config
    from job.model import stage as model_stage

    train, dev = tmp_path / "train.txt", tmp_path / "dev.txt"
    train.write_text("one\n", encoding="utf-8")
    dev.write_text("dev\n", encoding="utf-8")
    raw = SimpleNamespace(files={"train": str(train), "dev": str(dev), "test": str(dev)})
    cfg = load_config(TINY)
    monkeypatch.setattr(cache, "_SOURCES", {})
    first = model.teacher_key(cfg, raw)
    assert model.teacher_key(cfg, raw) == first
    assert model.teacher_key(load_config(TINY, ["Teacher.steps=61"]), raw) != first
    train.write_text("other\n", encoding="utf-8")
    assert model.teacher_key(cfg, raw) != first, "the data's content"
    train.write_text("one\n", encoding="utf-8")
    assert model.teacher_key(cfg, raw) == first
    source = str((Path(model.__file__).parent / "train.py").resolve())
    monkeypatch.setitem(cache._SOURCES, source, cache._SOURCES[source] + "\n# training changed\n")
    edited = model.teacher_key(cfg, raw)
    assert edited != first, "the code that trains and exports"
    monkeypatch.setattr(model_stage, "versions", lambda *names: {"paddlepaddle": "0.0-test"})
    assert model.teacher_key(cfg, raw) not in (first, edited), "Paddle's version"
