"""Running the real job in a subprocess, and the tiny UIE set-up the end-to-end tests share."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "fixtures" / "configs" / "uie_tiny.yaml"


def run_job(*args: str, timeout: int = 600, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``python -m job ARGS`` from the repository root."""
    full_env = {**(env if env is not None else os.environ), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "job", *args], cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=timeout
    )


def make_tiny(root: Path) -> dict:
    """A slice of the embedded benchmark as local files, and a cache holding the tiny
    teacher (trained once, here)."""
    from job.data.embedded import build_pd_benchmark

    full = root / "full"
    build_pd_benchmark(full, seed=42)
    data = root / "data"
    data.mkdir()
    for split, count in (("train", 3000), ("dev", 400), ("test", 400)):
        lines = (full / f"{split}.txt").read_text(encoding="utf-8").splitlines()[:count]
        (data / f"{split}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    overrides = [
        "Global.dataset=local",
        f"Global.train_data={data / 'train.txt'}",
        f"Global.dev_data={data / 'dev.txt'}",
        f"Global.test_data={data / 'test.txt'}",
        f"Job.cache_dir={root / 'cache'}",
    ]
    done = run_job("run", "--config", str(TINY), *overrides, "Job.strategy=none")
    assert done.returncode == 0, done.stderr[-3000:]
    return {"root": root, "data": data, "overrides": overrides}
