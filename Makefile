# Two commands do all set-up on a fresh machine:
#   make demo   real fine-tune of the debug model on the bundled example (offline), one clip
#   make test   lint, type checks and the whole test suite
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# Test workers: one test file at a time per worker (they start servers, clusters, daemons).
TEST_WORKERS ?= 2
export USER ?= $(shell id -un 2>/dev/null || echo musicgen-ft)

.PHONY: setup demo serve-demo test lint pytest bench bench-train-tiny clean image image-test

setup:
	@bash scripts/setup.sh

demo: setup
	HF_HUB_OFFLINE=1 $(PY) scripts/demo.py

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy musicgen_ft preprocessing labeling training inference serving evaluation train.py predict.py

# The server and its web page on 127.0.0.1:8000, with a fresh token and the example dataset.
serve-demo: setup
	$(PY) scripts/serve_demo.py

pytest: setup
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -ra --durations=20 -n $(TEST_WORKERS) --dist loadfile

test: lint pytest
	@$(MAKE) --no-print-directory bench-train-tiny

# LM training throughput of a tiny shape on CPU (bench/training.md): printed by `make test`,
# figures not asserted; a crash of the script fails the target.
bench-train-tiny: setup
	HF_HUB_OFFLINE=1 $(PY) bench/train_throughput.py --tiny --out test-artifacts/bench_train_tiny.json

bench: setup
	MUSICGEN_FT_BENCH=1 bash scripts/setup.sh
	$(PY) bench/bench_prep.py
	$(PY) bench/bench_prep.py --model_version stereo-small
	$(PY) bench/bench_labels.py
	$(PY) bench/bench_labels.py --seed 8

clean:
	rm -rf demo runs .pytest_cache .mypy_cache .ruff_cache

# The container image musicgen-ft:latest (docker when its daemon answers, else buildah; no
# Docker needed), and the same build checked from the inside: a debug fine-tune, a clip, the
# API server and Cog's server, offline (docs/cog.md). Neither needs `make setup`.
image:
	@bash scripts/image.sh build

image-test:
	@bash scripts/image.sh test
