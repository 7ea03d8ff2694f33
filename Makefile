# l2i-pipeline: every target bootstraps .venv itself, so `make demo` / `make test` work on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: help install test test-all demo bench bench-gpu bench-train lint clean image cluster-demo plan

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install: $(STAMP)  ## create .venv and install the package with its test tools

# Every package the image pins is installed at the image's version (infra/requirements-image.txt as pip
# constraints), so tests run what the image ships and a new upstream release changes neither.
$(STAMP): pyproject.toml infra/requirements-image.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c infra/requirements-image.txt -e ".[test]"
	touch $(STAMP)

test: lint  ## lint, then the fast test suite (CPU only; GPU tests skip without CUDA)
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

test-all: lint  ## lint, then every test including the slow ones (cluster, kill -9, node loss, Ray Train, browser)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

demo: install  ## the whole job offline on CPU: download, synthesize, stats, contact sheet in demo_out/
	$(BIN)/l2i demo --workdir demo_out

bench: install  ## saliency backends (IoU, no-object gate, cost), CPU throughput of each stage, `l2i synthesize` on a simulated GPU (both runners); active labeling
	$(BIN)/python bench/bench_saliency.py
	$(BIN)/python bench/bench_synthesize.py
	$(BIN)/python bench/bench_pipeline_sim.py
	$(BIN)/python bench/bench_active.py

bench-gpu: install  ## every GPU benchmark in one run (SD2 + MFU, end to end both runners, ICON, classifiers); needs CUDA
	PYTHON=$(BIN)/python bash bench/bench_gpu_all.sh

lint: install  ## ruff, import-linter (dependencies point one way, see pyproject.toml), hadolint over infra/Dockerfile
	$(BIN)/python -m ruff check l2i_pipeline stages classifiers annotations training tests bench infra
	$(BIN)/lint-imports
	$(BIN)/hadolint infra/Dockerfile

IMAGE   ?= l2i-pipeline
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
BASE_IMAGE ?= debian:bookworm-slim

image:  ## build the container image (BASE_IMAGE=l2i-base:bookworm: the local base of infra/make_base.sh); needs a Docker daemon
	@docker info >/dev/null 2>&1 || { echo "make image: no running Docker daemon here (docker info failed); nothing built" >&2; exit 2; }
	PYTHON=$(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON)) bash infra/build_inputs.sh
	DOCKER_BUILDKIT=0 docker build --network host -f infra/Dockerfile --build-arg BASE_IMAGE=$(BASE_IMAGE) -t $(IMAGE):$(VERSION) .
	docker run --rm --read-only --cap-drop ALL --network none $(IMAGE):$(VERSION) true

cluster-demo: install  ## two Ray nodes on 127.0.0.1, `l2i demo` sent with `ray job submit`, outputs checked, nodes stopped
	$(BIN)/python infra/cluster_demo.py --workdir cluster_demo_out

plan: install  ## cost of the paper-size run (600M inputs -> 57M kept) from bench/figures.json
	$(BIN)/l2i plan

bench-train: install  ## CaT2I-AE and LDM training samples/s, sampling images/s, encode samples/s: tiny on CPU; paper size on GPU
	$(BIN)/python bench/bench_train.py

clean:  ## remove .venv and outputs
	rm -rf $(VENV) demo_out bench_out cluster_demo_out .pytest_cache
