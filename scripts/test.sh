#!/usr/bin/env bash
# Set everything up, then run the default (fast) test tier and the linter.
#   bash scripts/test.sh            fast tests (a few minutes)
#   bash scripts/test.sh -m slow    the slow end-to-end tier
#   bash scripts/test.sh --openvino the OpenVINO tier, in .venv-openvino (the optional extra)
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--openvino" ]; then
  shift
  bash scripts/setup.sh --openvino
  exec .venv-openvino/bin/python -m pytest -m openvino "$@"
fi
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/python -m pytest "$@"
