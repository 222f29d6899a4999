#!/usr/bin/env bash
# Set everything up, then run the default (fast) test tier and the linter.
#   bash scripts/test.sh            fast tests (a few minutes)
#   bash scripts/test.sh -m slow    the slow end-to-end tier
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/python -m pytest "$@"
