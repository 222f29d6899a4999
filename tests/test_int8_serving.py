"""How quantized models are served on CPU decides the accuracy users get. On the committed
demo teacher, PTQ then oneDNN INT8 on the linear layers (the default) stays close to the
FP32 teacher, while letting oneDNN quantize everything it supports (its attention
matmuls among them) collapses F1: the reason for the default ``Job.int8_ops: [fc]``."""

from __future__ import annotations

import json

import pytest
from jobrun import ROOT, run_job

DEMO = ROOT / "configs" / "uie_demo.yaml"


@pytest.mark.slow
def test_default_int8_serving_keeps_accuracy_and_all_ops_do_not(tmp_path):
    common = [f"Job.cache_dir={tmp_path / 'cache'}", f"Job.output={tmp_path / 'out'}", "Job.gate_tolerance=100"]
    done = run_job("run", "--config", str(DEMO), "Job.strategy=ptq", "QuantPost.batch_nums=4", *common)
    assert done.returncode == 0, done.stderr[-3000:]
    folder = tmp_path / "out" / "demo" / "uie" / "ptq"
    results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    teacher_f1 = results["before"]["f1"]
    assert teacher_f1 > 0.8, "the committed teacher scores 83 F1 on the test split"
    assert results["models"]["compressed"]["precision"] == "int8"
    assert results["delta_points"] > -3.0, f"INT8 on fc lost {results['delta_points']} points"

    everything = run_job("eval", "--config", str(DEMO), "--model", str(folder), "Job.int8_ops=[]", *common[:1])
    assert everything.returncode == 0, everything.stderr[-3000:]
    f1 = float(everything.stdout.split("f1 ")[1].split()[0].rstrip(",")) / 100
    assert f1 < teacher_f1 - 0.2, f"oneDNN INT8 on every op type now scores {f1:.3f}: revisit DEFAULT_INT8_OPS"
