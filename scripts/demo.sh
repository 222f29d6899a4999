#!/usr/bin/env bash
# Set everything up, then run the main job on the embedded default:
# build the People's Daily extraction benchmark, build (or reuse) the UIE teacher,
# compress it and print the summary. Extra arguments are config overrides, e.g.
#   bash scripts/demo.sh Job.strategy=ptq
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m job run --config configs/uie_demo.yaml "$@"
