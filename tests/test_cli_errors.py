"""User mistakes through the real command line: ``python -m job ...`` in a subprocess.

Each mistake must end the process with exit code 2 (bad input, never retried in the
cluster), a last stderr line ``error: <file>[:<line>]: <what is wrong>`` and no traceback.
Data mistakes must stop the job in the data stage, before any model work: every run here
also names a model folder without its parameters, so a data file that slipped through
would fail at the model stage with another message instead of training a teacher.
Runs keep to ``tmp_path`` (``Job.cache_dir``, ``Job.output``) and one thread.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from jobrun import run_job

REPO = Path(__file__).resolve().parent.parent
BAD = REPO / "tests" / "fixtures" / "bad"
TIMEOUT = 120

GOOD_RECORDS = [
    {
        "content": "张三在北京大学工作",
        "result_list": [{"text": "北京大学", "start": 3, "end": 7}],
        "prompt": "机构名称",
    },
    {"content": "张三在北京大学工作", "result_list": [{"text": "张三", "start": 0, "end": 2}], "prompt": "人物"},
    {"content": "李四去了上海", "result_list": [], "prompt": "机构名称"},
]


def job(*args: str) -> subprocess.CompletedProcess:
    """``python -m job ARGS`` without the developer's ACT_JOB_CACHE."""
    return run_job(*args, timeout=TIMEOUT, env={k: v for k, v in os.environ.items() if k != "ACT_JOB_CACHE"})


def input_error(proc: subprocess.CompletedProcess) -> str:
    """The message of the one-line error a bad input must end with (``error: `` removed)."""
    assert proc.returncode == 2, f"exit code {proc.returncode}\n{proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines, "nothing on stderr"
    assert lines[-1].startswith("error: "), lines[-1]
    return lines[-1].removeprefix("error: ")


def expected_error(fixture: str, path: str) -> str:
    line = next(
        line for line in (BAD / fixture).read_text(encoding="utf-8").splitlines() if line.startswith("# expect: ")
    )
    return line.removeprefix("# expect: ").format(path=path)


def sandbox(tmp_path: Path) -> list[str]:
    return [f"Job.cache_dir={tmp_path / 'cache'}", f"Job.output={tmp_path / 'out'}", "Job.threads=1"]


class UIEJob:
    """A valid local UIE job in tmp_path (doccano train/dev/test) whose model folder lacks
    its parameters: valid data get as far as the model stage and fail there."""

    def __init__(self, tmp_path: Path):
        self.tmp = tmp_path
        self.data = tmp_path / "data"
        self.data.mkdir()
        for split in ("train", "dev", "test"):
            text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in GOOD_RECORDS)
            (self.data / f"{split}.txt").write_text(text, encoding="utf-8")
        self.model = tmp_path / "model"
        self.model.mkdir()
        (self.model / "inference.pdmodel").write_bytes(b"not really a program")
        self.config = tmp_path / "job.yaml"
        self.config.write_text(
            "Global:\n"
            "  task_name: uie\n"
            "  dataset: local\n"
            f"  model_dir: {self.model}\n"
            f"  train_data: {self.data / 'train.txt'}\n"
            f"  dev_data: {self.data / 'dev.txt'}\n"
            f"  test_data: {self.data / 'test.txt'}\n"
            "  max_seq_length: 64\n"
            "Job:\n"
            "  strategy: none\n",
            encoding="utf-8",
        )

    def run(self, *overrides: str) -> subprocess.CompletedProcess:
        return job("run", "--config", str(self.config), *sandbox(self.tmp), *overrides)


@pytest.fixture
def uie(tmp_path) -> UIEJob:
    return UIEJob(tmp_path)


def bad(name: str) -> str:
    return str(BAD / name)


# --------------------------------------------------------------------------------------
# Config mistakes (no paddle import: these fail in a fraction of a second)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--config", "--config_path"])
def test_missing_config_file(tmp_path, flag):
    missing = tmp_path / "missing.yaml"
    assert input_error(job("run", flag, str(missing), *sandbox(tmp_path))) == f"{missing}: config file not found"


@pytest.mark.parametrize("command", [["eval"], ["teacher", "--out", "OUT"]])
def test_missing_config_file_other_commands(tmp_path, command):
    missing = tmp_path / "missing.yaml"
    args = [str(tmp_path / "t") if a == "OUT" else a for a in command]
    assert input_error(job(*args, "--config_path", str(missing))) == f"{missing}: config file not found"
    assert not (tmp_path / "t").exists()


@pytest.mark.parametrize(
    "fixture",
    [
        "malformed_tab.yaml",
        "malformed_indent.yaml",
        "unknown_section.yaml",
        "unknown_key.yaml",
        "wrong_type_int.yaml",
        "wrong_type_bool.yaml",
        "negative_epochs.yaml",
    ],
)
def test_bad_config_file(tmp_path, fixture):
    relative = f"tests/fixtures/bad/{fixture}"
    message = input_error(job("run", "--config", relative, *sandbox(tmp_path)))
    assert message == expected_error(fixture, relative)
    assert not (tmp_path / "cache").exists() and not (tmp_path / "out").exists()


def test_bad_override(tmp_path, uie):
    message = input_error(uie.run("TrainConfig.epochs=ten"))
    assert message.startswith(str(uie.config)) and message.endswith(
        "TrainConfig.epochs: expected an integer, got a string 'ten'"
    )
    assert input_error(uie.run("TrainConfig.epoch=1")).endswith("TrainConfig.epoch: unknown key (did you mean epochs?)")
    assert (
        input_error(uie.run("noequals")) == "override 'noequals': expected Section.key=value, e.g. TrainConfig.epochs=1"
    )


# --------------------------------------------------------------------------------------
# Flag mistakes
# --------------------------------------------------------------------------------------


def test_unknown_flag(uie):
    message = input_error(job("run", "--config", str(uie.config), "--bogus", *sandbox(uie.tmp)))
    assert "unrecognized arguments: --bogus" in message and "--help" in message


def test_bad_boolean_for_eval(uie):
    message = input_error(job("run", "--config", str(uie.config), "--eval", "maybe", *sandbox(uie.tmp)))
    assert message == "python -m job run: argument --eval: expected true or false, got 'maybe' (see --help)"


def test_missing_required_config_flag():
    assert "--config" in input_error(job("run"))


def test_unknown_command():
    assert "invalid choice: 'compress'" in input_error(job("compress"))


def test_save_dir_alias_sets_job_output(uie):
    # A blank folder name is refused: the message shows where --save_dir went.
    message = input_error(job("run", "--config", str(uie.config), "--save_dir", " ", *sandbox(uie.tmp)))
    assert message.startswith(str(uie.config)) and message.endswith("Job.output: must not be empty")


def test_save_dir_takes_any_folder_name(uie):
    message = input_error(
        job(
            "run",
            "--config",
            str(uie.config),
            "--save_dir",
            "2024",
            "Global.train_data=/no/such/train.txt",
            *sandbox(uie.tmp),
        )
    )
    assert "Job.output" not in message
    assert message.startswith("/no/such/train.txt")


def test_eval_true_is_accepted(uie):
    """``--eval True`` (the reference example's spelling) parses; the run then stops at the model folder."""
    message = input_error(job("run", "--config", str(uie.config), "--eval", "True", *sandbox(uie.tmp)))
    assert message.startswith(f"{uie.model}: model folder without its parameters")


# --------------------------------------------------------------------------------------
# The model folder (reached only with valid data)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "strategy", [["Job.strategy=none"], ["Job.strategy=qat_dis", "TrainConfig.epochs=1"]], ids=["none", "qat_dis"]
)
def test_model_folder_without_parameters(uie, strategy):
    message = input_error(uie.run(*strategy))
    assert message == f"{uie.model}: model folder without its parameters (inference.pdiparams missing)"
    assert not (uie.tmp / "out").exists()


def test_missing_model_folder(uie):
    missing = uie.tmp / "no-model"
    assert input_error(uie.run(f"Global.model_dir={missing}")) == f"{missing}: no such file or folder"


def test_missing_distillation_teacher_folder_stops_before_the_data(uie):
    missing = uie.tmp / "no-teacher"
    proc = uie.run("Job.strategy=qat_dis", "TrainConfig.epochs=1", f"Distillation.teacher_model_dir={missing}")
    assert input_error(proc) == f"{missing}: no such file or folder"
    assert "phase data" not in proc.stderr


def test_distillation_teacher_without_its_named_program(uie):
    """The teacher's file names default to the original's; given ones are checked, by name."""
    teacher = uie.tmp / "teacher"
    teacher.mkdir()
    (teacher / "inference.pdmodel").write_bytes(b"not really a program")
    (teacher / "inference.pdiparams").write_bytes(b"not really parameters")
    named = ("Distillation.teacher_model_filename=t.pdmodel", "Distillation.teacher_params_filename=t.pdiparams")
    proc = uie.run("Job.strategy=qat_dis", "TrainConfig.epochs=1", f"Distillation.teacher_model_dir={teacher}", *named)
    assert input_error(proc).startswith(f"{teacher}: ") and "t.pdmodel" in input_error(proc)
    # with the default names the teacher passes, and the run stops at the original's folder
    proc = uie.run("Job.strategy=qat_dis", "TrainConfig.epochs=1", f"Distillation.teacher_model_dir={teacher}")
    assert input_error(proc) == f"{uie.model}: model folder without its parameters (inference.pdiparams missing)"


def test_progress_logs_show_the_data_stage_passed(uie):
    proc = uie.run()
    input_error(proc)
    assert "phase data: done" in proc.stderr


# --------------------------------------------------------------------------------------
# Data mistakes: file:line, before any model work
# --------------------------------------------------------------------------------------


def test_non_utf8_data_line(uie):
    path = bad("uie_non_utf8.txt")
    message = input_error(uie.run(f"Global.test_data={path}"))
    assert message.startswith(f"{path}:2: not UTF-8 text"), message


def test_jsonl_line_not_json(uie):
    path = bad("uie_not_json.txt")
    assert input_error(uie.run(f"Global.train_data={path}")).startswith(f"{path}:2: not valid JSON")


def test_span_outside_its_content(uie):
    path = bad("uie_span_outside.txt")
    message = input_error(uie.run(f"Global.dev_data={path}"))
    assert message == f"{path}:2: result_list[0] span [4, 9) lies outside its content of 6 characters"


@pytest.mark.parametrize("name", ["uie_empty.txt", "uie_blank_lines.txt"])
def test_empty_data_set(uie, name):
    path = bad(name)
    assert input_error(uie.run(f"Global.train_data={path}")) == f"{path}: no usable examples (empty data set)"


def test_max_seq_len_too_small_for_the_prompt(uie):
    path = bad("uie_prompt_too_long.txt")
    message = input_error(uie.run(f"Global.train_data={path}", "Global.max_seq_length=8"))
    assert message.startswith(
        f"{path}:1: max_seq_len 8 is too small for the prompt '机构名称名称' (6 characters + 3 special tokens)"
    )
    assert "Global.max_seq_length" in message


def test_missing_data_file(uie):
    missing = uie.tmp / "data" / "nope.txt"
    assert input_error(uie.run(f"Global.dev_data={missing}")) == f"{missing}: no such file or folder"


def test_clue_label_outside_the_label_set(uie):
    path = bad("afqmc_bad_label.json")
    dev = REPO / "tests" / "fixtures" / "clue" / "afqmc" / "dev.json"
    message = input_error(
        uie.run(
            "Global.task_name=afqmc", f"Global.train_data={path}", f"Global.dev_data={dev}", f"Global.test_data={dev}"
        )
    )
    assert message == f"{path}:2: label '2' is not one of the afqmc labels (0, 1)"


# --------------------------------------------------------------------------------------
# Help and the config reference exit 0
# --------------------------------------------------------------------------------------


def _ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    return proc.stdout


def test_top_level_help():
    text = _ok(job("--help"))
    for word in (
        "run",
        "eval",
        "data",
        "report",
        "teacher",
        "config",
        "exit codes",
        "2 bad input",
        "Section.key=value",
    ):
        assert word in text, word


def test_run_help():
    text = _ok(job("run", "--help"))
    for word in (
        "--config_path",
        "--save_dir",
        "--eval",
        "--force",
        "exit codes",
        "3 accuracy gate failed",
        "Unknown keys are errors",
    ):
        assert word in text, word


def test_config_reference():
    text = _ok(job("config"))
    for section in (
        "Global",
        "TrainConfig",
        "Distillation",
        "QuantAware",
        "QuantPost",
        "HyperParameterOptimization",
        "TransformerPrune",
        "Job",
        "Teacher",
        "Benchmark",
        "Storage",
    ):
        assert f"\n{section}:  # " in f"\n{text}", section
    assert "  max_seq_length: 128  # " in text
