"""The progress bars Paddle's quantization code draws while ACT compresses ("Adding quant op
with weight", PTQ's "Run batch") follow the job's own pacing once compression starts
(``slim_patches.apply`` routes them through ``job.logs``): in a log that is not a terminal,
a redraw every 30 s, not every 0.1 s. A pod's log is such a log.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Two of the library's own bars, as its modules create them, each updated 300 times over
# about a second; stderr is a pipe, as in a pod.
_DRAW = """
import zlib, sys, time
sys.path.insert(0, {root!r})
if {route}:
    from job.compress import slim_patches
    slim_patches.apply()
from paddle.static.quantization import post_training_quantization, quantization_pass
for module, label in ((quantization_pass, "Adding quant op with weight"), \
(post_training_quantization, "Sampling stage, Run batch")):
    with module.tqdm(total=300, bar_format=label + ":|{{bar}}| {{n_fmt}}/{{total_fmt}}", ncols=80) as bar:
        for _ in range(300):
            time.sleep(0.003)
            bar.update()
"""


def _redraws(route: bool) -> dict[str, int]:
    done = subprocess.run(
        [sys.executable, "-c", _DRAW.format(root=str(ROOT), route=route)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return {
        label: done.stderr.count(label + ":") for label in ("Adding quant op with weight", "Sampling stage, Run batch")
    }


def test_library_bars_draw_like_the_jobs_own_in_a_log():
    unrouted = _redraws(route=False)
    assert all(count >= 5 for count in unrouted.values()), unrouted  # the flood this prevents
    routed = _redraws(route=True)
    # The first draw and the final one when the bar closes; nothing in between.
    assert all(count <= 2 for count in routed.values()), routed
