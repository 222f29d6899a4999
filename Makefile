# Developer shortcuts; each target is a documented command of the README.
.PHONY: setup demo test test-slow lint bench bench-quick sentiment teacher

setup:          ## create .venv, .venv-light and .venv-tools (idempotent)
	bash scripts/setup.sh

demo:           ## the main job on the embedded default (UIE: ptq, prune_ptq, qat_dis)
	bash scripts/demo.sh

test:           ## the default (fast) test tier and the linter
	bash scripts/test.sh

test-slow:      ## the slow end-to-end tier
	bash scripts/test.sh -m slow

lint:
	.venv/bin/ruff check .

# The benchmark runs in .venv-openvino (.venv plus the optional OpenVINO extra and NNCF,
# made by scripts/setup.sh --openvino): .venv itself never gets OpenVINO.

bench:          ## UIE-base latency: Paddle FP32/INT8/pruned INT8 vs OpenVINO and ONNX Runtime, targets, one JSON record (BENCH_ARGS: more flags)
	bash scripts/setup.sh --openvino && .venv-openvino/bin/python -m job lab bench_uie_base $(BENCH_ARGS)

bench-quick:
	bash scripts/setup.sh --openvino && .venv-openvino/bin/python -m job lab bench_uie_base --quick $(BENCH_ARGS)

sentiment:      ## offline CLUE-path check: sentiment task, pruning + distillation + PTQ
	bash scripts/setup.sh && .venv/bin/python -m job run --config configs/sentiment_demo.yaml

teacher:        ## retrain the demo teacher (about 2 hours)
	bash scripts/setup.sh && .venv/bin/python -m job teacher --config configs/uie_teacher.yaml --out teachers/uie-pico-pd199801
