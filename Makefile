# Developer shortcuts; each target is a documented command of the README.
.PHONY: setup demo test test-slow lint bench bench-quick sentiment teacher

setup:          ## create .venv, .venv-light and .venv-tools (idempotent)
	bash scripts/setup.sh

demo:           ## the main job on the embedded default (UIE, QAT + distillation)
	bash scripts/demo.sh

test:           ## the default (fast) test tier and the linter
	bash scripts/test.sh

test-slow:      ## the slow end-to-end tier
	bash scripts/test.sh -m slow

lint:
	.venv/bin/ruff check .

bench:          ## UIE-base latency: FP32 vs PTQ INT8 vs pruned INT8 vs ONNX Runtime, one run
	bash scripts/setup.sh && .venv/bin/python scripts/bench_uie_base.py

bench-quick:
	bash scripts/setup.sh && .venv/bin/python scripts/bench_uie_base.py --quick

sentiment:      ## offline CLUE-path check: sentiment task, pruning + distillation + PTQ
	bash scripts/setup.sh && .venv/bin/python -m job run --config configs/sentiment_demo.yaml

teacher:        ## retrain the demo teacher (about 2 hours)
	bash scripts/setup.sh && .venv/bin/python -m job teacher --config configs/uie_teacher.yaml --out teachers/uie-pico-pd199801
