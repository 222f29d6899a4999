"""The typed config: every shipped config loads, mistakes fail as ``file:line: Key.path: message``.

Fast and in-process: only ``job.config`` (PyYAML) is imported, never paddle. The bad
configs live in ``tests/fixtures/bad/*.yaml``; each names the exact error it must raise on
a ``# expect:`` line (``{path}`` stands for the path the loader was given).
"""

from __future__ import annotations

import dataclasses
import re
import shlex
import shutil
import textwrap
import typing
from pathlib import Path

import pytest

from job.config import STRATEGIES, JobConfig, describe, load_config, parse_overrides
from job.errors import ConfigError, ExitCode, InputError

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "configs"
# The lab's experiments (configs/lab/*.yaml) are not job configs; its compression configs
# (configs/lab/compress/) are, and load with the job's.
LAB_EXPERIMENTS = sorted((CONFIGS / "lab").glob("*.yaml"))
SHIPPED = sorted(set(CONFIGS.rglob("*.yaml")) - set(LAB_EXPERIMENTS))
BAD = REPO / "tests" / "fixtures" / "bad"
BAD_CONFIGS = sorted(BAD.glob("*.yaml"))

ACT_SECTIONS = (
    "TrainConfig",
    "Distillation",
    "QuantAware",
    "QuantPost",
    "HyperParameterOptimization",
    "TransformerPrune",
)
TRAINING = ("qat_dis", "prune_dis", "prune_ptq")
OVERRIDE = re.compile(r"^[A-Za-z_]\w*(\.\w+)+=")

# The smallest valid top: local data files (the default dataset) named.
GLOBAL = "Global:\n  task_name: uie\n  dataset: local\n  train_data: train.txt\n  dev_data: dev.txt\n"


def write(tmp_path: Path, text: str, name: str = "job.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def error_of(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> str:
    """The one-line message of the ConfigError that loading must raise."""
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    message = str(info.value)
    assert "\n" not in message, message
    assert info.value.exit_code == ExitCode.INPUT
    return message


def expected_error(fixture: Path, path: str) -> str:
    lines = [line for line in fixture.read_text(encoding="utf-8").splitlines() if line.startswith("# expect: ")]
    assert len(lines) == 1, f"{fixture.name}: needs exactly one '# expect: ' line"
    return lines[0].removeprefix("# expect: ").format(path=path)


def header_of(path: Path) -> list[str]:
    """The comment lines the file opens with (blank lines allowed among them)."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            break
        lines.append(line.lstrip().lstrip("#").strip())
    return lines


def header_commands(path: Path) -> list[str]:
    """Command lines of the header (``python -m job ...`` or ``bash scripts/...``), continuations joined."""
    commands, pending = [], ""
    for line in header_of(path):
        if pending:
            line = pending + " " + line
            pending = ""
        elif not line.startswith(("python -m job", "bash scripts/")):
            continue
        if line.endswith("\\"):
            pending = line[:-1].strip()
        else:
            commands.append(line)
    return commands


# --------------------------------------------------------------------------------------
# Every shipped config
# --------------------------------------------------------------------------------------


def test_shipped_configs_are_found():
    assert len(SHIPPED) >= 8, [p.relative_to(REPO).as_posix() for p in SHIPPED]
    assert (CONFIGS / "clue" / "afqmc.yaml") in SHIPPED and (CONFIGS / "uie_teacher.yaml") in SHIPPED


def test_at_least_nine_shipped_configs():
    assert len(SHIPPED) >= 9, [p.relative_to(REPO).as_posix() for p in SHIPPED]


def test_configs_named_by_the_code_exist():
    """Every configs/*.yaml the launcher, the scripts, the manifests and the CLI help point at."""
    named = set()
    for source in [
        *(REPO / "scripts").iterdir(),
        *(REPO / "job").rglob("*.py"),
        *(REPO / "lab").rglob("*.py"),
        *(REPO / "k8s").glob("*.yaml"),
        *SHIPPED,
    ]:
        if source.is_file():
            named |= set(
                re.findall(
                    r"(?:(?<=/app/)|(?<![\w./-]))(configs/[\w/.-]+\.yaml)",
                    source.read_text(encoding="utf-8", errors="replace"),
                )
            )
    named.discard("configs/uie.yaml")  # job/config.py's docstring example of an error message
    assert named, "expected the code to name some configs"
    missing = sorted(name for name in named if not (REPO / name).is_file())
    assert not missing, missing


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.relative_to(CONFIGS).as_posix())
def test_shipped_config_loads_with_a_sensible_strategy(path):
    cfg = load_config(path)
    assert cfg.source == str(path)
    strategies = cfg.strategies
    assert all(strategy in (*STRATEGIES, "none") for strategy in strategies), strategies
    present = {name for name in ACT_SECTIONS if getattr(cfg, name) is not None}
    if strategies == ["none"]:
        assert not present, f"sections {sorted(present)} are written but strategy 'none' uses none of them"
        assert cfg.act_sections() == {}
        return
    used = set().union(*(cfg.for_strategy(strategy).act_sections() for strategy in strategies))
    ignored = present - used - {"TrainConfig"}
    assert not ignored, f"sections {sorted(ignored)} are written but strategies {strategies} ignore them"
    if set(strategies) & set(TRAINING):
        assert cfg.TrainConfig is not None and (cfg.TrainConfig.epochs or cfg.TrainConfig.train_iter)
    else:
        assert cfg.TrainConfig is None, f"TrainConfig is written but {strategies} do not train"


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.relative_to(CONFIGS).as_posix())
def test_shipped_config_header_names_its_command(path):
    relative = path.relative_to(REPO).as_posix()
    header = header_of(path)
    assert len([line for line in header if line]) >= 2, (
        f"{relative}: opens with no comment header saying what it compresses"
    )
    commands = header_commands(path)
    assert commands, f"{relative}: the header shows no `python -m job ...` or `bash scripts/...` command"
    naming = [command for command in commands if relative in shlex.split(command)]
    assert naming, f"{relative}: no header command names {relative}: {commands}"
    for command in naming:
        words = shlex.split(command)
        if words[:3] != ["python", "-m", "job"]:
            continue
        assert words[3] in ("run", "eval", "teacher"), command
        assert any(
            words[i] in ("--config", "--config_path") and words[i + 1] == relative for i in range(len(words) - 1)
        ), command
        # The overrides the header shows are valid ones.
        overrides = [word for word in words if OVERRIDE.match(word)]
        load_config(path, overrides)


# --------------------------------------------------------------------------------------
# Mistakes in files: one line, file:line: Key.path: message
# --------------------------------------------------------------------------------------


def test_bad_config_fixtures_are_found():
    assert len(BAD_CONFIGS) >= 15, [p.name for p in BAD_CONFIGS]


@pytest.mark.parametrize("fixture", BAD_CONFIGS, ids=lambda p: p.stem)
def test_bad_config_fails_with_its_exact_message(fixture):
    assert error_of(fixture) == expected_error(fixture, str(fixture))


def test_message_uses_the_path_as_given(monkeypatch):
    monkeypatch.chdir(REPO)
    relative = "tests/fixtures/bad/unknown_key.yaml"
    assert (
        error_of(relative)
        == "tests/fixtures/bad/unknown_key.yaml:10: TrainConfig.epoch: unknown key (did you mean epochs?)"
    )


def test_unknown_section_far_from_any_lists_the_known_ones(tmp_path):
    path = write(tmp_path, GLOBAL + "Pipeline:\n  steps: 3\n")
    message = error_of(path)
    assert message.startswith(f"{path}:6: Pipeline: unknown section; known: Global, TrainConfig, ")
    assert "did you mean" not in message


def test_unknown_key_far_from_any_lists_the_known_ones(tmp_path):
    path = write(tmp_path, GLOBAL + "Job:\n  colour: red\n")
    message = error_of(path)
    assert message.startswith(f"{path}:7: Job.colour: unknown key; known: strategy, strategies, output, run_id, ")


def test_missing_file(tmp_path):
    path = tmp_path / "nowhere.yaml"
    assert error_of(path) == f"{path}: config file not found"


def test_folder_given_as_config(tmp_path):
    assert error_of(tmp_path) == f"{tmp_path}: is a folder, not a config file"


def test_non_utf8_config(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(GLOBAL.encode() + "Job:\n  run_id: caf\xe9\n".encode("latin-1"))
    assert re.fullmatch(rf"{re.escape(str(path))}(:7)?: not UTF-8 text \(byte \d+.*\)", error_of(path))


def test_non_utf8_config_names_the_line(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(GLOBAL.encode() + "Job:\n  run_id: caf\xe9\n".encode("latin-1"))
    assert error_of(path).startswith(f"{path}:7: not UTF-8 text")


def test_utf8_bom_is_fine(tmp_path):
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + GLOBAL.encode())
    assert load_config(path).Global.train_data == "train.txt"


def test_empty_file_takes_the_defaults_then_needs_data(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_bytes(b"")
    assert error_of(path) == f"{path}: Global.train_data: is required when dataset is 'local'"
    cfg = load_config(path, ["Global.train_data=t.txt", "Global.dev_data=d.txt"])
    assert cfg.Global.model_dir == "" and cfg.Job.strategy == "auto" and cfg.strategy == "none"
    assert all(getattr(cfg, name) is None for name in ACT_SECTIONS)


def test_scalar_top_level(tmp_path):
    path = write(tmp_path, "just some text\n")
    assert error_of(path) == f"{path}: the top level must be a mapping of sections, got a string"


def test_int_given_for_a_float_is_fine(tmp_path):
    cfg = load_config(
        write(tmp_path, GLOBAL + "TrainConfig:\n  epochs: 1\n  learning_rate: 1\nJob:\n  gate_tolerance: 2\n")
    )
    assert cfg.TrainConfig.learning_rate == 1.0 and isinstance(cfg.TrainConfig.learning_rate, float)
    assert cfg.Job.gate_tolerance == 2.0 and isinstance(cfg.Job.gate_tolerance, float)


def test_zero_pruned_ratio_is_impossible_too(tmp_path):
    path = write(tmp_path, GLOBAL + "TransformerPrune:\n  pruned_ratio: 0\n")
    assert error_of(path) == f"{path}:7: TransformerPrune.pruned_ratio: must be between 0 and 1"


@pytest.mark.parametrize("value", ["1", "1.5", "-0.1", "half"])
def test_a_bad_ffn_pruned_ratio_is_one_line(tmp_path, value):
    path = write(tmp_path, GLOBAL + f"TransformerPrune:\n  pruned_ratio: 0.25\n  ffn_pruned_ratio: {value}\n")
    message = error_of(path)
    assert message.startswith(f"{path}:8: TransformerPrune.ffn_pruned_ratio: "), message


def test_ffn_pruned_ratio_and_importance_reach_no_act_section(tmp_path):
    """ACT's TransformerPrune takes pruned_ratio alone; the job applies the FFN's share
    (job.compress.ffn_width) and the pruner's loss (job.compress.importance)."""
    from job.compress.stage import act_config

    text = "TransformerPrune:\n  pruned_ratio: 0.25\n  ffn_pruned_ratio: 0.5\n  importance: task\n"
    cfg = load_config(write(tmp_path, GLOBAL + text), ["Job.strategy=prune_dis", "TrainConfig.train_iter=10"])
    assert act_config(cfg)["TransformerPrune"] == {"pruned_ratio": 0.25}
    assert (cfg.TransformerPrune.ffn_pruned_ratio, cfg.TransformerPrune.importance) == (0.5, "task")


def test_the_pruners_importance_is_paddleslims_unless_asked_and_a_bad_one_is_one_line(tmp_path):
    overrides = ["Job.strategy=prune_dis", "TrainConfig.train_iter=10"]
    cfg = load_config(write(tmp_path, GLOBAL + "TransformerPrune:\n  pruned_ratio: 0.25\n"), overrides)
    assert cfg.TransformerPrune.importance == "paddleslim"
    path = write(tmp_path, GLOBAL + "TransformerPrune:\n  pruned_ratio: 0.25\n  importance: labels\n")
    assert error_of(path) == f"{path}:8: TransformerPrune.importance: must be one of paddleslim, task"


def test_wrong_item_in_a_list_names_its_index(tmp_path):
    path = write(tmp_path, GLOBAL + "QuantPost:\n  quantize_op_types: [mul, 3]\n")
    message = error_of(path)
    assert re.fullmatch(
        rf"{re.escape(str(path))}:\d+: QuantPost\.quantize_op_types\[1\]: expected a string, got an integer 3", message
    ), message


def test_wrong_item_in_a_list_points_at_its_line(tmp_path):
    path = write(tmp_path, GLOBAL + "QuantPost:\n  batch_size: 4\n  quantize_op_types: [mul, 3]\n")
    assert error_of(path).startswith(f"{path}:8: QuantPost.quantize_op_types[1]:")


def test_float_with_exponent_written_yaml_style_loads(tmp_path):
    cfg = load_config(write(tmp_path, GLOBAL + "TrainConfig:\n  epochs: 1\n  learning_rate: 3.0e-5\n"))
    assert cfg.TrainConfig.learning_rate == pytest.approx(3e-5)


def test_float_with_exponent_override_loads(tmp_path):
    cfg = load_config(write(tmp_path, GLOBAL + "TrainConfig:\n  epochs: 1\n"), ["TrainConfig.learning_rate=1e-4"])
    assert cfg.TrainConfig.learning_rate == pytest.approx(1e-4)


# --------------------------------------------------------------------------------------
# Command-line overrides
# --------------------------------------------------------------------------------------


def test_override_creates_an_absent_section(tmp_path):
    path = write(tmp_path, GLOBAL)
    assert load_config(path).TrainConfig is None
    cfg = load_config(path, ["TrainConfig.epochs=1"])
    assert cfg.TrainConfig is not None and cfg.TrainConfig.epochs == 1
    assert cfg.TrainConfig.eval_iter == 1000  # the rest of the section: defaults


def test_override_replaces_a_value_of_the_file(tmp_path):
    path = write(tmp_path, GLOBAL + "TrainConfig:\n  epochs: 3\n")
    cfg = load_config(path, ["TrainConfig.epochs=5", "Global.max_seq_length=64", "Job.force=true", "Job.strategy=ptq"])
    assert (cfg.TrainConfig.epochs, cfg.Global.max_seq_length, cfg.Job.force, cfg.strategy) == (5, 64, True, "ptq")


def test_override_reaches_into_a_written_mapping(tmp_path):
    text = (
        GLOBAL
        + "TrainConfig:\n  epochs: 1\n  optimizer_builder:\n    optimizer: {type: AdamW}\n    weight_decay: 0.01\n"
    )
    cfg = load_config(write(tmp_path, text), ["TrainConfig.optimizer_builder.weight_decay=0.1"])
    assert cfg.TrainConfig.optimizer_builder == {"optimizer": {"type": "AdamW"}, "weight_decay": 0.1}


def test_override_reaches_into_a_default_mapping(tmp_path):
    path = write(tmp_path, GLOBAL + "TrainConfig:\n  epochs: 1\n")
    cfg = load_config(path, ["TrainConfig.optimizer_builder.optimizer.type=SGD"])
    assert cfg.TrainConfig.optimizer_builder == {"optimizer": {"type": "SGD"}, "weight_decay": 0.01}


def test_override_type_error_names_the_key(tmp_path):
    path = write(tmp_path, GLOBAL)
    message = error_of(path, ["TrainConfig.epochs=ten"])
    assert message.startswith(str(path)) and message.endswith(
        "TrainConfig.epochs: expected an integer, got a string 'ten'"
    )
    assert error_of(path, ["Job.force=sometimes"]).endswith(
        "Job.force: expected true or false, got a string 'sometimes'"
    )


def test_override_type_error_does_not_blame_the_file_line(tmp_path):
    path = write(tmp_path, GLOBAL + "TrainConfig:\n  epochs: 3\n")
    message = error_of(path, ["TrainConfig.epochs=ten"])
    assert not message.startswith(f"{path}:7:"), message
    assert "override" in message


def test_override_of_a_string_key_with_digits(tmp_path):
    cfg = load_config(write(tmp_path, GLOBAL), ["Job.run_id=2024", "Job.output=2024"])
    assert (cfg.Job.run_id, cfg.Job.output) == ("2024", "2024")


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("TrainConfig.epoch=1", "TrainConfig.epoch: unknown key (did you mean epochs?)"),
        ("Distilation.alpha=1", "Distilation: unknown section (did you mean Distillation?)"),
        ("Global.task=uie", "Global.task: unknown key (did you mean task_name?)"),
    ],
)
def test_unknown_override_key_suggests(tmp_path, override, expected):
    path = write(tmp_path, GLOBAL)
    message = error_of(path, [override])
    assert message.startswith(str(path)) and message.endswith(expected), message


@pytest.mark.parametrize("override", ["noequals", "=x", "a=b", "a.=b", ".a=b", "TrainConfig..epochs=1"])
def test_malformed_override(tmp_path, override):
    path = write(tmp_path, GLOBAL)
    expected = f"override {override!r}: expected Section.key=value, e.g. TrainConfig.epochs=1"
    assert error_of(path, [override]) == expected
    with pytest.raises(ConfigError, match=re.escape(expected)):
        parse_overrides([override])


def test_override_into_a_scalar_is_an_error(tmp_path):
    path = write(tmp_path, GLOBAL)
    assert (
        error_of(path, ["Global.task_name.x=1"]) == "override 'Global.task_name.x=1': Global.task_name is not a section"
    )


def test_good_overrides_pass_parse_overrides():
    items = ["TrainConfig.epochs=1", "Job.output=s3://b/p?x=1", "Global.model_dir="]
    assert parse_overrides(items) == items


# --------------------------------------------------------------------------------------
# Strategy resolution
# --------------------------------------------------------------------------------------

TRAIN = "TrainConfig:\n  epochs: 1\n"


@pytest.mark.parametrize(
    ("sections", "expected"),
    [
        (("QuantAware", "Distillation"), "qat_dis"),
        (("QuantPost", "HyperParameterOptimization"), "ptq_hpo"),
        (("TransformerPrune", "Distillation"), "prune_dis"),
        (("TransformerPrune", "Distillation", "QuantPost", "HyperParameterOptimization"), "prune_ptq"),
        (("QuantPost",), "ptq"),
        ((), "none"),
        pytest.param(
            ("TransformerPrune", "Distillation", "QuantPost"),
            "prune_ptq",
        ),
    ],
    ids=lambda v: ("+".join(v) or "no-sections") if isinstance(v, tuple) else v,
)
def test_auto_strategy_from_the_sections_present(tmp_path, sections, expected):
    text = GLOBAL + TRAIN + "".join(f"{name}: {{}}\n" for name in sections)
    cfg = load_config(write(tmp_path, text))
    assert cfg.Job.strategy == "auto"
    assert cfg.strategy == expected
    assert set(cfg.act_sections()) == {name for name in sections if name in STRATEGIES.get(expected, ())}


def test_empty_act_section_counts_as_present(tmp_path):
    cfg = load_config(write(tmp_path, GLOBAL + "QuantPost:\n"))
    assert cfg.strategy == "ptq"
    assert cfg.act_sections()["QuantPost"]["algo"] == "hist"


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_explicit_strategy_fills_absent_sections_with_defaults(tmp_path, strategy):
    cfg = load_config(write(tmp_path, GLOBAL + TRAIN), [f"Job.strategy={strategy}"])
    assert cfg.strategy == strategy
    sections = cfg.act_sections()
    expected = [
        name for name in STRATEGIES[strategy] if not (strategy == "prune_ptq" and name == "HyperParameterOptimization")
    ]
    assert list(sections) == expected
    for name in expected:
        assert getattr(cfg, name) is None  # nothing was written...
        assert sections[name] == dataclasses.asdict(_sections()[name]())  # ...so ACT gets the defaults


def test_explicit_strategy_keeps_written_values(tmp_path):
    cfg = load_config(write(tmp_path, GLOBAL + TRAIN + "QuantAware:\n  use_pact: true\n"), ["Job.strategy=qat_dis"])
    assert cfg.act_sections()["QuantAware"]["use_pact"] is True
    assert cfg.act_sections()["Distillation"]["loss"] == "l2"


def test_explicit_none_ignores_nothing_and_hands_nothing_to_act(tmp_path):
    cfg = load_config(write(tmp_path, GLOBAL), ["Job.strategy=none"])
    assert cfg.strategy == "none" and cfg.act_sections() == {}


# --------------------------------------------------------------------------------------
# Fingerprint
# --------------------------------------------------------------------------------------

FINGERPRINTED = GLOBAL + TRAIN + "QuantAware: {}\nDistillation: {}\nJob:\n  run_id: exp1\n"


def test_fingerprint_is_stable_across_loads_and_paths(tmp_path):
    path = write(tmp_path, FINGERPRINTED)
    first = load_config(path).fingerprint()
    assert re.fullmatch(r"[0-9a-f]{64}", first)
    assert load_config(path).fingerprint() == first
    copy = tmp_path / "elsewhere" / "same.yaml"
    copy.parent.mkdir()
    shutil.copy(path, copy)
    assert load_config(copy).fingerprint() == first


def test_fingerprint_ignores_force(tmp_path):
    path = write(tmp_path, FINGERPRINTED)
    assert load_config(path, ["Job.force=true"]).fingerprint() == load_config(path).fingerprint()


@pytest.mark.parametrize(
    "override",
    [
        "TrainConfig.epochs=2",
        "QuantAware.use_pact=true",
        "Global.max_seq_length=64",
        "Job.seed=7",
        "Job.strategy=ptq",
        "Benchmark.enabled=true",
    ],
)
def test_fingerprint_changes_with_a_value(tmp_path, override):
    path = write(tmp_path, FINGERPRINTED)
    assert load_config(path, [override]).fingerprint() != load_config(path).fingerprint()


@pytest.mark.parametrize(
    "override", ["Storage.max_attempts=9", "Storage.region=eu-west-1", "Job.cache_dir=/tmp/other-cache"]
)
def test_fingerprint_ignores_settings_that_do_not_change_results(tmp_path, override):
    path = write(tmp_path, FINGERPRINTED)
    assert load_config(path, [override]).fingerprint() == load_config(path).fingerprint()


# --------------------------------------------------------------------------------------
# describe() (python -m job config)
# --------------------------------------------------------------------------------------


def _section_class(tp):
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if args else tp


def _sections() -> dict[str, type]:
    hints = typing.get_type_hints(JobConfig)
    return {
        f.name: _section_class(hints[f.name]) for f in dataclasses.fields(JobConfig) if not f.metadata.get("internal")
    }


def test_describe_mentions_every_section_and_key():
    text = describe()
    sections = _sections()
    assert set(sections) == {"Global", *ACT_SECTIONS, "Job", "Teacher", "Benchmark", "Storage"}
    blocks = dict(re.findall(r"(?m)^(\w+):  # [^\n]*\n((?:  [^\n]*\n?)*)", text))
    assert list(blocks) == list(sections)
    for name, cls in sections.items():
        keys = re.findall(r"(?m)^  (\w+): ", blocks[name])
        assert keys == [f.name for f in dataclasses.fields(cls)], name
        for line in blocks[name].strip("\n").splitlines():
            assert re.search(r"  # \S.{5,}$", line), f"{name}: no help text in {line!r}"


def test_describe_output_loads_back_as_the_defaults(tmp_path):
    path = write(tmp_path, describe(), "described.yaml")
    cfg = load_config(path, ["TrainConfig.epochs=1", "Global.train_data=t.txt", "Global.dev_data=d.txt"])
    for name, cls in _sections().items():
        expected = dataclasses.asdict(cls())
        if name == "TrainConfig":
            expected["epochs"] = 1
        if name == "Global":
            expected.update(train_data="t.txt", dev_data="d.txt")
        assert dataclasses.asdict(getattr(cfg, name)) == expected, name


@pytest.mark.parametrize(
    ("name", "strategy", "ratio"),
    [("ptq", "ptq", None), ("prune_ptq", "prune_ptq", 0.25), ("prune050_ptq", "prune_ptq", 0.5)],
)
def test_the_benchmarks_compression_configs_validate_with_the_runs_settings(name, strategy, ratio):
    """lab/bench_uie_base.py compresses with configs/lab/compress/*.yaml, loaded by
    load_config with its settings as overrides: each is a valid job config of its strategy,
    and the overrides reach the config."""
    from lab import bench_uie_base as bench

    cfg = bench.compress_config(name, bench.Compression(), bench.QUICK, 2, "linear+pv")
    assert cfg.Job.strategy == strategy and cfg.Global.max_seq_length == 128 and cfg.Job.int8_scope == "linear+pv"
    assert cfg.QuantPost.batch_nums == bench.QUICK.calib_batches and cfg.Job.threads == 2
    if ratio is not None:
        assert cfg.TrainConfig.train_iter == bench.QUICK.train_iter and cfg.TransformerPrune.pruned_ratio == ratio
    with pytest.raises(ConfigError, match=r"Job\.strategy is ptq, but it is the prune_ptq config"):
        bench.compress_config(
            "prune_ptq", bench.Compression(prune_ptq=bench.Compression().ptq), bench.FULL, 2, "linear"
        )


# --------------------------------------------------------------------------------------
# The lab's experiments (configs/lab/*.yaml): typed like the job's configs
# --------------------------------------------------------------------------------------


def _experiment_module(path: Path):
    import importlib

    from lab.cli import EXPERIMENTS

    assert path.stem in EXPERIMENTS, f"{path.name}: no lab experiment of that name ({', '.join(EXPERIMENTS)})"
    return importlib.import_module(EXPERIMENTS[path.stem])


def test_every_lab_experiment_has_its_config():
    from lab.cli import EXPERIMENTS

    assert sorted(p.stem for p in LAB_EXPERIMENTS) == sorted(EXPERIMENTS)


@pytest.mark.parametrize("path", LAB_EXPERIMENTS, ids=lambda p: p.name)
def test_lab_experiment_config_loads_as_the_experiments_defaults(path):
    """Every configs/lab/*.yaml loads into its experiment's dataclass, and states exactly
    the defaults: running without --config and with it is the same run."""
    from job.config import load_dataclass

    module = _experiment_module(path)
    assert module.DEFAULT_CONFIG == path.relative_to(REPO).as_posix()
    assert load_dataclass(path, module.Experiment) == module.Experiment()
    for cls in (
        module.Experiment,
        *(t for t in typing.get_type_hints(module.Experiment).values() if dataclasses.is_dataclass(t)),
    ):
        assert not _undocumented_fields(cls), f"{cls.__name__}: fields without a docstring: {_undocumented_fields(cls)}"


def _undocumented_fields(cls) -> list[str]:
    """Fields of a dataclass not followed by a docstring in its source."""
    import ast
    import inspect
    import itertools

    body = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0].body
    documented = {
        node.target.id
        for node, after in itertools.pairwise(body)
        if isinstance(node, ast.AnnAssign)
        and isinstance(after, ast.Expr)
        and isinstance(after.value, ast.Constant)
        and isinstance(after.value.value, str)
    }
    return [f.name for f in dataclasses.fields(cls) if f.name not in documented]


@pytest.mark.parametrize("path", LAB_EXPERIMENTS, ids=lambda p: p.name)
def test_lab_experiment_header_names_its_command(path):
    relative = path.relative_to(REPO).as_posix()
    assert len([line for line in header_of(path) if line]) >= 2, f"{relative}: no header saying what it measures"
    commands = [line for line in header_of(path) if line.startswith("python -m job lab ")]
    assert any(shlex.split(c)[4:6] == [path.stem, "--config"] and relative in shlex.split(c) for c in commands), (
        f"{relative}: the header shows no `python -m job lab {path.stem} --config {relative}`"
    )


def test_bench_experiments_settings_are_the_runs_full_and_quick_shapes():
    from job.config import load_dataclass
    from lab import bench_uie_base as bench

    loaded = load_dataclass(CONFIGS / "lab" / "bench_uie_base.yaml", bench.Experiment)
    assert (loaded.full, loaded.quick) == (bench.FULL, bench.QUICK)
    assert bench.FULL.shape == "uie-base" and (bench.FULL.batch_size, bench.FULL.repeats) == (40, 10)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("threads: 2\nrepeat: 3\n", "{path}:2: repeat: unknown key; known: out, record, threads, int8_scope"),
        ("full:\n  shape: uie-base\n  batch: 8\n", "{path}:3: full.batch: unknown key (did you mean batch_size?)"),
        ("full:\n  repeats: 0\n", "{path}:2: full.repeats: must be >= 1"),
        ("int8_scope: everything\n", "{path}:1: int8_scope: must be one of ['linear', 'linear+pv', 'all']"),
        ("threads: two\n", "{path}:1: threads: expected an integer, got a string 'two'"),
        ("- out\n", "{path}: the top level must be a mapping of keys, got a list"),
        (
            "full:\n  teacher_overrides:\n    ptq: [Job.seed=1]\n",
            "{path}:3: full.teacher_overrides.ptq: not a pruned entry; "
            "pruned entries: ['prune_ptq', 'prune050_ptq', 'prune_ffn_ptq', 'prune_ffn0625_ptq']",
        ),
    ],
)
def test_a_bad_lab_experiment_is_one_line_naming_file_line_and_key(tmp_path, text, message):
    from job.config import load_dataclass
    from lab import bench_uie_base as bench

    path = write(tmp_path, text, "bench.yaml")
    with pytest.raises(ConfigError) as info:
        load_dataclass(path, bench.Experiment)
    assert str(info.value).startswith(message.format(path=path)), str(info.value)
    assert "\n" not in str(info.value) and info.value.exit_code == ExitCode.INPUT


def test_a_demo_table_strategy_must_be_a_strategy_with_a_list_of_overrides(tmp_path):
    from job.config import load_dataclass
    from lab import demo_table

    path = write(tmp_path, "strategies:\n  ptq: []\n  qat: []\n", "demo.yaml")
    with pytest.raises(ConfigError, match=r":3: strategies\.qat: not a strategy"):
        load_dataclass(path, demo_table.Experiment)
    path = write(tmp_path, "strategies:\n  ptq: Job.seed=1\n", "demo.yaml")
    with pytest.raises(ConfigError, match=r":2: strategies\.ptq: expected a list of Section.key=value overrides"):
        load_dataclass(path, demo_table.Experiment)


# --------------------------------------------------------------------------------------
# Several strategies in one run (Job.strategies, --strategies)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("job", "message"),
    [
        ("strategies: [ptq, nope]", "Job.strategies: unknown strategy 'nope'"),
        ("strategies: [ptq, auto]", "Job.strategies: unknown strategy 'auto'"),
        ("strategies: [none, ptq]", "Job.strategies: unknown strategy 'none'"),
        ("strategies: [ptq, ptq_hpo, ptq]", "Job.strategies: names ptq twice"),
        ("strategy: ptq\n  strategies: [ptq_hpo]", "Job.strategies: is set, and so is Job.strategy ('ptq')"),
    ],
)
def test_strategies_are_known_distinct_and_not_mixed_with_strategy(tmp_path, job, message):
    path = write(tmp_path, GLOBAL + "Job:\n  " + job + "\n")
    line = 7 + job.count("\n")  # the line of Job.strategies
    assert error_of(path).startswith(f"{path}:{line}: {message}")


def test_a_training_strategy_in_the_list_needs_training_settings(tmp_path):
    path = write(tmp_path, GLOBAL + "Job:\n  strategies: [ptq, prune_dis]\n")
    assert "strategy prune_dis trains: set TrainConfig.epochs" in error_of(path)


def test_several_strategies_each_get_the_config_and_fingerprint_of_a_run_of_it_alone(tmp_path):
    path = write(tmp_path, GLOBAL + TRAIN + "Job:\n  strategies: [ptq, qat_dis]\n")
    cfg = load_config(path)
    assert cfg.strategies == ["ptq", "qat_dis"]
    with pytest.raises(ValueError, match="names 2 strategies"):
        cfg.strategy  # noqa: B018 - a config of several strategies has no one strategy
    for name in ("ptq", "qat_dis"):
        one = cfg.for_strategy(name)
        alone = load_config(path, [f"Job.strategy={name}"])
        assert (one.strategy, one.strategies, one.Job.strategies) == (name, [name], [])
        assert one.fingerprint() == alone.fingerprint()
        assert one.act_sections() == alone.act_sections()
    assert cfg.fingerprint() != cfg.for_strategy("ptq").fingerprint()
    # ACT pops the optimizer's type from what it is given: one strategy's config must not
    # share sections with the next (the demo's qat_dis failed with KeyError 'type').
    cfg.for_strategy("ptq").TrainConfig.optimizer_builder["optimizer"].pop("type")
    assert cfg.for_strategy("qat_dis").TrainConfig.optimizer_builder["optimizer"]["type"] == "AdamW"
    with pytest.raises(ValueError, match="not one of this config's strategies"):
        cfg.for_strategy("prune_dis")


def test_the_command_line_names_what_runs(tmp_path):
    listing = write(tmp_path, GLOBAL + TRAIN + "Job:\n  strategies: [ptq, qat_dis]\n", "listing.yaml")
    one = load_config(listing, ["Job.strategy=ptq"])  # the lab's and the launcher's per-strategy runs
    assert (one.Job.strategies, one.strategy) == ([], "ptq")
    single = write(tmp_path, GLOBAL + TRAIN + "Job:\n  strategy: qat_dis\n", "single.yaml")
    several = load_config(single, ["Job.strategies=[ptq, qat_dis]"])
    assert (several.Job.strategy, several.strategies) == ("auto", ["ptq", "qat_dis"])
    assert "set one of them" in error_of(single, ["Job.strategies=[ptq]", "Job.strategy=qat_dis"])


def test_run_strategies_flag_sets_the_list():
    from job.__main__ import build_parser, load_run_config

    args = build_parser().parse_args(
        ["run", "--config", str(CONFIGS / "uie_demo.yaml"), "--strategies", "qat_dis, ptq,prune_ptq"]
    )
    assert load_run_config(args).strategies == ["qat_dis", "ptq", "prune_ptq"]
    for flag, message in (("ptq,,ptq", "expected names separated by commas"), ("ptq,x", "unknown strategy 'x'")):
        bad = build_parser().parse_args(["run", "--config", str(CONFIGS / "uie_demo.yaml"), "--strategies", flag])
        with pytest.raises(InputError, match=message):
            load_run_config(bad)


def test_describe_documents_strategies_and_the_quick_latency():
    text = describe()
    assert "  strategies: []  # Several strategies for one run" in text
    assert "  quick: true  # Time the original (once per run)" in text


def test_nested_defaults_are_not_shared_between_configs():
    """ACT pops the optimizer's 'type' from the TrainConfig it is handed: a second
    compression in the same process (the bench's two pruned entries) must still see it."""
    from job.config import TrainConfig

    first, second = TrainConfig(), TrainConfig()
    first.optimizer_builder["optimizer"].pop("type")
    assert second.optimizer_builder["optimizer"] == {"type": "AdamW"}
    assert TrainConfig().optimizer_builder["optimizer"] == {"type": "AdamW"}
