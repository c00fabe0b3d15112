# pkiwarden — the README's commands. Every target installs what it needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test test-fast lint crds docs controlplane demo demo-down bench bench-validation bench-webhook bench-issuer bench-chaos bench-scale clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

controlplane:
	deploy/local/build.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy shared webhook issuer pkiwarden
	$(BIN)/hadolint Dockerfile

test: $(STAMP) controlplane lint
	$(BIN)/pytest

test-fast: $(STAMP) lint
	$(BIN)/pytest -m "not e2e"

crds: $(STAMP)
	$(BIN)/python -m shared.crds deploy/crds

demo: $(STAMP) controlplane
	$(BIN)/python -m pkiwarden.demo

demo-down: $(STAMP)
	$(BIN)/pkiwarden local down --dir .local/demo

bench: bench-validation bench-webhook bench-issuer bench-chaos

bench-validation: $(STAMP)
	$(BIN)/python benchmarks/validation.py

bench-webhook: $(STAMP) controlplane
	$(BIN)/python benchmarks/webhook.py

bench-issuer: $(STAMP) controlplane
	$(BIN)/python benchmarks/issuer.py

bench-chaos: $(STAMP) controlplane
	$(BIN)/python benchmarks/chaos_issuer.py

# Not part of `make bench`: it fills a control plane with 10,000 Pkis and
# 70,000 other objects and takes many minutes. SCALE=0.05 runs a twentieth.
bench-scale: $(STAMP) controlplane
	$(BIN)/python -P benchmarks/bench_scale.py --scale $(or $(SCALE),1)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .local

docs: $(STAMP)
	$(BIN)/python -m shared.reference README.md
