"""The dict the job hands to PaddleSlim's AutoCompression (``job.compress.stage.act_config``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from job.config import load_config

DEMO = Path(__file__).resolve().parent.parent / "configs" / "uie_demo.yaml"
SCHEDULE = {"type": "CosineAnnealingDecay", "learning_rate": 2.0e-4, "T_max": 10}


def test_act_reading_a_schedule_leaves_the_jobs_config_whole():
    """ACT pops a schedule's ``type`` as it builds it; results.json records the job's config, which must keep it."""
    from paddleslim.auto_compression.create_compressed_program import _create_lr_scheduler

    from job.compress.stage import act_config

    cfg = load_config(
        DEMO,
        [
            "Job.strategies=[prune_ptq]",
            "TrainConfig.learning_rate={type: CosineAnnealingDecay, learning_rate: 2.0e-4, T_max: 10}",
        ],
    )
    given = act_config(cfg)
    scheduler = _create_lr_scheduler(given["TrainConfig"])
    assert type(scheduler).__name__ == "CosineAnnealingDecay" and "type" not in given["TrainConfig"]["learning_rate"]
    assert cfg.TrainConfig.learning_rate == SCHEDULE
    assert cfg.to_dict()["TrainConfig"]["learning_rate"] == SCHEDULE


def test_a_distillation_teacher_reaches_act_with_its_folder_and_both_file_names(tmp_path):
    """ACT reads a teacher folder given without file names as a path prefix (``<dir>.pdmodel``)."""
    from job.compress.stage import act_config
    from job.model import ModelFiles

    cfg = load_config(DEMO, ["Job.strategies=[prune_ptq]", f"Distillation.teacher_model_dir={tmp_path}"])
    teacher = ModelFiles(tmp_path / "pulled", "t.pdmodel", "t.pdiparams")
    distillation = act_config(cfg, teacher)["Distillation"]
    assert distillation["teacher_model_dir"] == str(tmp_path / "pulled")
    assert (distillation["teacher_model_filename"], distillation["teacher_params_filename"]) == (
        "t.pdmodel",
        "t.pdiparams",
    )
    # without a teacher of its own ACT distils from the original: no teacher keys at all
    assert not {
        key
        for key in act_config(load_config(DEMO, ["Job.strategies=[prune_ptq]"]))["Distillation"]
        if key.startswith("teacher_")
    }


@pytest.fixture(scope="module")
def teacher_and_student(tmp_path_factory):
    """The demo teacher (3 layers: linear_0 to linear_20) and a 2-layer student of it
    (linear_0 to linear_14), exported by lab/probe_depth.py."""
    from job.model import ModelFiles
    from lab.probe_depth import Experiment, build

    built = build(Experiment(out=str(tmp_path_factory.mktemp("depth"))))
    return ModelFiles(built.teacher), ModelFiles(built.student)


@pytest.mark.parametrize(
    ("nodes", "error"),
    [
        ([], None),
        (["squeeze_0.tmp_0", "squeeze_1.tmp_0"], None),  # the original's names, paired by name
        (["teacher_linear_20.tmp_1", "linear_14.tmp_1"], None),  # pairs as given
        (["no_such_var"], "'no_such_var' is not a variable of the original model .*, and a list of teacher/student"),
        (["squeeze_0.tmp_0", "linear_20.tmp_1"], "'linear_20.tmp_1' is not a variable of the original model"),
        (["teacher_linear_20.tmp_1", "linear_20.tmp_1"], "'linear_20.tmp_1' is not a variable of the original model"),
        (["teacher_linear_21.tmp_1", "linear_14.tmp_1"], "'teacher_linear_21.tmp_1' is not teacher_ and a variable"),
        (["linear_20.tmp_1", "linear_14.tmp_1"], "'linear_20.tmp_1' is not teacher_ and a variable of the teacher"),
    ],
)
def test_distillation_nodes_are_checked_against_both_programs(teacher_and_student, nodes, error):
    """ACT fails on a bad ``Distillation.node`` with an assertion deep in its graph merge."""
    from job.compress import check_distillation_nodes
    from job.errors import InputError

    teacher, student = teacher_and_student
    cfg = load_config(DEMO, ["Job.strategies=[qat_dis]", f"Distillation.node=[{','.join(nodes)}]"])
    if error is None:
        check_distillation_nodes(cfg, student, teacher)
    else:
        with pytest.raises(InputError, match=rf"^{DEMO}: Distillation\.node: {error}"):
            check_distillation_nodes(cfg, student, teacher)
    # a strategy that does not distil leaves the nodes unread
    check_distillation_nodes(load_config(DEMO, ["Job.strategies=[ptq]", "Distillation.node=[x]"]), student, teacher)
