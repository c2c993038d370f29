# Two commands for a newcomer: `make demo` (main job, CPU, minutes) and `make test` (the test suite).
# Both create the environment on first use. VENV may point elsewhere (CI reuses one keyed by DEPS_HASH).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEPS_HASH := $(shell cat pyproject.toml constraints-cpu.txt | sha256sum | cut -c1-16)
STAMP := $(VENV)/.deps-$(DEPS_HASH)
export WANDB_MODE ?= offline
export HF_HUB_OFFLINE := 1

.PHONY: install demo test lint bench clean-demo

$(STAMP):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade "setuptools>=61"
	$(BIN)/pip install -q -c constraints-cpu.txt -e ".[dev]"
	touch $@

# The editable install is redone every time so a shared venv always points at this checkout.
install: $(STAMP)
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .

demo: install
	$(BIN)/python -m conceptspace.demo

test: install
	WANDB_MODE=disabled $(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check conceptspace synthetic_shapes celeba tests bench hydra_plugins

bench: install
	$(BIN)/python bench/bench_renderer.py
