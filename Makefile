# The three commands a newcomer needs; README.md shows them on its first screen.
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install test lint demo inject bench

install:  ## everything: system packages, the virtualenv, the Kubernetes binaries for the e2e tests
	bash scripts/install.sh

test:     ## unit, integration and e2e tests (the e2e suite starts a real control plane)
	$(BIN)/python -m pytest

lint:     ## ruff: the lint rules and the formatting
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

demo:     ## the main job, whole flow on this machine (no Docker): control plane, webhook, scheduler, router, pods, traffic
	$(BIN)/inferplane demo

inject:   ## the offline job with no cluster: what the webhook makes of the example Deployment
	$(BIN)/inferplane inject -f examples/deployment.yaml --catalog examples/catalog

bench:   ## each server's benchmark, printing its figures beside a same-run baseline
	$(BIN)/python bench/webhook.py
	$(BIN)/python bench/extender.py
	$(BIN)/python bench/router.py

.PHONY: kind-up kind-e2e
kind-up:  ## needs Docker + kind: build the image, create a kind cluster, install the chart (hack/kind/)
	bash hack/kind/up.sh

kind-e2e: ## needs `make kind-up` first: deploy the example model and score it through the router
	bash hack/kind/e2e.sh
