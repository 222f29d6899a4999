"""The dict the job hands to PaddleSlim's AutoCompression (``job.compress.stage.act_config``)."""

from __future__ import annotations

from pathlib import Path

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
