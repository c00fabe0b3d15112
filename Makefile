# pkiwarden — the README's commands. Every target installs what it needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test test-fast lint crds docs monitoring controlplane node helm chart release prometheus demo demo-down bench bench-validation bench-webhook bench-issuer bench-chaos bench-rotation bench-scale bench-scrape bench-fairness bench-podcerts clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

controlplane:
	deploy/local/build.sh

# Helm v4 from the Go module proxy, cached like the control plane.
helm:
	deploy/local/build-helm.sh

# The chart in deploy/charts/pkiwarden, regenerated from deploy/ (run it after
# a change there; a test fails while the two differ).
chart: $(STAMP) controlplane
	$(BIN)/python -m pkiwarden.release.chart --kubectl "$$(deploy/local/build.sh)/kubectl"

# dist/: the single-file manifest, the chart package, the image as an OCI
# archive with its digest, SHA256SUMS. VERSION must be pyproject.toml's version.
release: $(STAMP) controlplane helm
	$(BIN)/python -m pkiwarden.release $(if $(VERSION),--version $(VERSION)) $(if $(REPOSITORY),--repository $(REPOSITORY))

# The local node: kubelet, containerd, runc, CNI plugins and the images Pods
# run (a C compiler, pkg-config and libseccomp's headers installed if missing).
node:
	deploy/local/build-node.sh
	deploy/local/build-images.sh

# promtool and prometheus for the alert tests (Debian's package, if missing).
prometheus:
	deploy/monitoring/install-prometheus.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy shared webhook issuer pkiwarden
	$(BIN)/lint-imports
	$(BIN)/hadolint Dockerfile

# image: pkiwarden's Deployments run as Pods from it on the local node.
test: $(STAMP) controlplane node helm prometheus image lint
	$(BIN)/pytest

test-fast: $(STAMP) lint
	$(BIN)/pytest -m "not e2e"

.PHONY: image image-lock test-image
# The container image the Deployments name (podman; tools installed if missing).
image:
	deploy/image/build.sh

# Re-pin the image's dependencies after a change in pyproject.toml.
image-lock:
	deploy/image/lock.sh $(ARGS)

# The image run as the Deployments run it, against the local control plane.
test-image: $(STAMP) controlplane helm image
	$(BIN)/pytest -m image

crds: $(STAMP)
	$(BIN)/python -m pkiwarden.generate.crds deploy/crds

demo: $(STAMP) controlplane node image
	$(BIN)/python -m pkiwarden.local.demo

demo-down: $(STAMP)
	$(BIN)/pkiwarden local down --dir .local/demo

bench: bench-validation bench-webhook bench-issuer bench-chaos

bench-validation: $(STAMP)
	$(BIN)/python benchmarks/bench_validation.py

bench-webhook: $(STAMP) controlplane
	$(BIN)/python benchmarks/bench_webhook.py

bench-issuer: $(STAMP) controlplane
	$(BIN)/python benchmarks/bench_issuer.py

bench-chaos: $(STAMP) controlplane
	$(BIN)/python benchmarks/bench_chaos_issuer.py

bench-rotation: $(STAMP) controlplane
	$(BIN)/python benchmarks/bench_ca_rotation.py

# A quiet namespace's create -> Ready during another's burst, fifo then fair
# queue order (BURST=5000 by default; BURST=200 for a quick look).
bench-fairness: $(STAMP) controlplane
	$(BIN)/python benchmarks/bench_fairness.py --burst $(or $(BURST),5000)

# One /metrics scrape's CPU over 100,000 Pkis' series, plain and gzip (no cluster).
bench-scrape: $(STAMP)
	$(BIN)/python benchmarks/bench_scrape.py --pkis $(or $(PKIS),100000)

# Not part of `make bench`: it fills a control plane with 10,000 Pkis and
# 70,000 other objects and takes many minutes. SCALE=0.05 runs a twentieth;
# SCALE=10 runs 100,000 Pkis (hours: its rotation at the default 10/s alone
# takes 10,000 s; ROTATION_LIMIT=600 watches that phase 600 s and projects it).
bench-scale: $(STAMP) controlplane
	$(BIN)/python benchmarks/bench_scale.py --scale $(or $(SCALE),1) \
		$(if $(ROTATE),--rotate $(ROTATE)) $(if $(ROTATION_LIMIT),--rotation-limit $(ROTATION_LIMIT))

# Not part of `make bench`: 100 Pods with Pod certificates on the one node, beside
# 100 with a Pki each (PODS=10 for a quick look).
bench-podcerts: $(STAMP) controlplane node
	$(BIN)/python benchmarks/bench_pod_certificates.py --pods $(or $(PODS),100)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .local

docs: $(STAMP)
	$(BIN)/python -m pkiwarden.generate.reference README.md

monitoring: $(STAMP)
	$(BIN)/python -m pkiwarden.monitoring deploy/monitoring
