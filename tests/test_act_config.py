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
