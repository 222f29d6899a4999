"""The light half of the project runs without paddle.

``scripts/launch`` and ``scripts/pull`` run from ``.venv-light`` (pyyaml, boto3,
kubernetes, tqdm; no paddle, no numpy). They import ``job.config``, ``job.errors``,
``job.storage``, ``job.kube.render`` and ``job.report``, so none of those may pull in paddle,
neither there (it would fail) nor in the job's own environment (it would cost seconds).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LIGHT_MODULES = (
    "job.config",
    "job.errors",
    "job.storage",
    "job.kube.render",
    "job.report",
    "job.storage.pull",
    "job.select",
    "job.storage.selection",
    "job.kube.launch",
)
HEAVY = ("paddle", "paddlenlp", "paddleslim")

# Imports each light module in turn and reports the heavy packages loaded after each.
_PROBE = f"""
import importlib, json, sys
heavy = {HEAVY!r}
seen = {{}}
for name in {LIGHT_MODULES!r}:
    importlib.import_module(name)
    seen[name] = sorted(m for m in sys.modules if m.split(".")[0] in heavy)
print(json.dumps(seen))
"""


def run(python: Path | str, *args: str, pythonpath: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    if pythonpath:
        env["PYTHONPATH"] = str(REPO)
    return subprocess.run([str(python), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def test_light_environment_has_no_paddle(light_python):
    """Otherwise the tests below would prove nothing."""
    proc = run(
        light_python,
        "-c",
        "import importlib.util as u, json; "
        "print(json.dumps([m for m in ('paddle', 'paddlenlp', 'paddleslim', 'numpy') if u.find_spec(m)]))",
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []


@pytest.mark.parametrize("where", ["venv-light", "venv"])
def test_light_modules_import_without_paddle(where, request):
    python = request.getfixturevalue("light_python") if where == "venv-light" else sys.executable
    proc = run(python, "-c", _PROBE)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout)
    assert list(seen) == list(LIGHT_MODULES)
    assert seen == {name: [] for name in LIGHT_MODULES}, seen


@pytest.mark.parametrize("script", ["scripts/launch", "scripts/pull"])
def test_script_help_runs_in_the_light_environment(script, light_python):
    proc = run(light_python, script, "--help", pythonpath=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert proc.stdout.startswith("usage: ")
    assert "exit codes" in proc.stdout
