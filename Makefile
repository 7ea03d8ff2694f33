# l2i-pipeline: every target bootstraps .venv itself, so `make demo` / `make test` work on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: help install test test-all demo bench bench-gpu bench-train lint clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install: $(STAMP)  ## create .venv and install the package with its test tools

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

test: install  ## run the test suite (CPU only; GPU tests are skipped without CUDA)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

demo: install  ## the whole job offline on CPU: download, synthesize, stats, contact sheet in demo_out/
	$(BIN)/l2i demo --workdir demo_out

bench: install  ## CPU throughput of each stage and of `l2i synthesize` vs a single-process loop
	$(BIN)/python bench/bench_synthesize.py

bench-gpu: install  ## GPU benchmarks (ICON, SD2 inpainting, classifiers); needs CUDA
	$(BIN)/python bench/bench_icon_gpu.py
	$(BIN)/python bench/bench_sd2_gpu.py
	$(BIN)/python bench/bench_classifiers.py --device cuda

bench-train: install  ## CaT2I-AE training samples/s: tiny preset on CPU; paper size at 256/512 with FLOP/step, MFU on GPU
	$(BIN)/python bench/bench_train.py

lint: install  ## ruff over the packages
	$(BIN)/python -m ruff check l2i_pipeline stages classifiers annotations training tests bench

clean:  ## remove .venv and outputs
	rm -rf $(VENV) demo_out bench_out .pytest_cache
