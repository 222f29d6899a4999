#!/usr/bin/env bash
# Set up the project's environments (idempotent; reruns only when a requirements file changes):
#   .venv        the compression job, tests and linters (paddle 2.6 CPU build, pinned set)
#   .venv-light  the launcher and the pull script alone (pyyaml, boto3, kubernetes; no paddle)
#   .venv-openvino  only with --openvino: .venv plus the optional OpenVINO extra (openvino,
#                nncf), for the OpenVINO serving rows, their tests and make bench; .venv
#                itself never gets OpenVINO, so the README commands prove they do without it
# Needs only Python 3.11 (3.10 works too). Set PYTHON to choose the interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."

pick_python() {
  for candidate in "${PYTHON:-}" python3.11 python3 python; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if (3, 10) <= sys.version_info[:2] <= (3, 11) else 1)' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "setup: Python 3.10 or 3.11 is required (paddlepaddle 2.6 has no wheels for newer ones); set PYTHON=/path/to/python3.11" >&2
  return 1
}
PY=$(pick_python)

stamp() { cat requirements/*.txt scripts/setup.sh | sha256sum | cut -d' ' -f1; }
want=$(stamp)
pip_quiet=(--disable-pip-version-check --quiet --no-input)

if [ "$(cat .venv/.setup-stamp 2>/dev/null)" != "$want" ]; then
  echo "setup: creating .venv (paddle, paddleslim, paddlenlp; a few minutes the first time)"
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/python -m pip install "${pip_quiet[@]}" --upgrade "pip>=24" wheel
  .venv/bin/python -m pip install "${pip_quiet[@]}" -r requirements/paddle-cpu.txt -r requirements/job.txt -r requirements/dev.txt -c requirements/constraints.txt
  # PTQ's hyper-parameter search needs smac 1.4.0 (PaddleSlim asserts that version); its
  # dependency pyrfr builds from source with SWIG 4.0 and a C++ compiler. smac 1.4.0 calls
  # Configuration.is_valid_configuration, which ConfigSpace 0.7 and later dropped.
  if .venv/bin/python -m pip install "${pip_quiet[@]}" "swig==4.0.2" &&
     PATH="$PWD/.venv/bin:$PATH" .venv/bin/python -m pip install "${pip_quiet[@]}" --no-build-isolation "smac==1.4.0" "ConfigSpace==0.6.1" -c requirements/constraints.txt; then
    :
  else
    echo "setup: warning: smac 1.4.0 did not build (needs g++); strategy ptq_hpo will be unavailable" >&2
  fi
  echo "$want" > .venv/.setup-stamp
fi

if [ "$(cat .venv-light/.setup-stamp 2>/dev/null)" != "$want" ]; then
  echo "setup: creating .venv-light (launcher and pull script, no paddle)"
  [ -x .venv-light/bin/python ] || "$PY" -m venv .venv-light
  .venv-light/bin/python -m pip install "${pip_quiet[@]}" -r requirements/light.txt -c requirements/constraints.txt
  echo "$want" > .venv-light/.setup-stamp
fi
# --- .venv-tools: lint-only tools (checkov), used by tests/test_render.py and tests/test_docker.py.
# An environment of its own: checkov pins boto3/botocore older than the job's lock.
if [ "$(cat .venv-tools/.setup-stamp 2>/dev/null)" != "$want" ]; then
  echo "setup: creating .venv-tools (checkov, lint only)"
  [ -x .venv-tools/bin/python ] || "$PY" -m venv .venv-tools
  .venv-tools/bin/python -m pip install "${pip_quiet[@]}" -r requirements/tools.txt -c requirements/constraints-tools.txt
  echo "$want" > .venv-tools/.setup-stamp
fi
# --- end .venv-tools
if [ "${1:-}" = "--openvino" ]; then
  ov_want=$(printf '%s' "$want" | cat - requirements/extras/*.txt | sha256sum | cut -d' ' -f1)
  if [ "$(cat .venv-openvino/.setup-stamp 2>/dev/null)" != "$ov_want" ]; then
    echo "setup: creating .venv-openvino (.venv's packages plus openvino and nncf)"
    [ -x .venv-openvino/bin/python ] || "$PY" -m venv .venv-openvino
    # .venv's site-packages on this environment's path (a .pth line): pip sees paddle and
    # numpy as installed and adds only what the extra needs beyond them.
    base=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    own=$(.venv-openvino/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    echo "$base" > "$own/_act_venv.pth"
    .venv-openvino/bin/python -m pip install "${pip_quiet[@]}" -r requirements/extras/bench.txt -c requirements/constraints.txt
    echo "$ov_want" > .venv-openvino/.setup-stamp
  fi
fi
echo "setup: environments ready (.venv, .venv-light, .venv-tools${1:+, .venv-openvino})"
