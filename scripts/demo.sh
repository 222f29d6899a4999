#!/usr/bin/env bash
# Set everything up, then run the main job on the embedded default:
# build the People's Daily extraction benchmark, build (or reuse) the UIE teacher,
# compress it with ptq, prune_ptq and qat_dis one after the other (configs/uie_demo.yaml)
# and print each summary and one table of all three against the original.
# Extra arguments are config overrides or flags of `python -m job run`, e.g.
#   bash scripts/demo.sh Job.strategy=ptq            (one strategy)
#   bash scripts/demo.sh --strategies ptq,prune_dis
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m job run --config configs/uie_demo.yaml "$@"
