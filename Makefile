# http-tunnel — `make help` lists the targets. Everything a test needs is installed from here.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
PROFILE ?= local
PYTEST_ARGS ?=
BASELINE ?=

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-z][a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

$(CHECKOV_STAMP): scripts/checkov-requirements.txt
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet -r scripts/checkov-requirements.txt
	touch $@

install: $(STAMP) ## create .venv and install the project with its dev tools

build: $(STAMP) ## build the Lambda layer + function zips for AWS (arm64) into build/
	$(BIN)/python -m scripts.build

build-local: $(STAMP) ## build the zips for the local stack (host arch) into build/local/
	$(BIN)/python -m scripts.build --local

stack: build-local ## run the local stack in the foreground (moto + terraform + API Gateway emulator)
	$(BIN)/python -m emulator.stack

dev: build-local ## local stack + sample app on :3000 + ttf forwarding to it; Ctrl-C stops all
	$(BIN)/python -m scripts.dev

lint: $(STAMP) ## ruff over the tree, mypy --strict on what ships (shared/, cli/)
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint build-local build $(CHECKOV_STAMP) ## the whole suite: lint, unit, cli, infra, end-to-end (what CI runs)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-load: build-local ## the slow load and fault suite (pytest -m load)
	$(BIN)/python -m pytest -m load -o addopts='-ra' $(PYTEST_ARGS)

bench: build-local ## benchmark vs direct and localtunnel; writes bench/results.json (PROFILE=aws: AWS latency model; BASELINE=<ref>: that commit's stack in the same run)
	$(BIN)/python -m scripts.bench --profile $(PROFILE) $(if $(BASELINE),--baseline $(BASELINE))

deploy: build ## terraform apply to real AWS (uses AWS_PROFILE / AWS_REGION)
	$(BIN)/python -m scripts.deploy apply

destroy: ## terraform destroy on real AWS
	$(BIN)/python -m scripts.deploy destroy

localstack-deploy: build ## deploy to a running LocalStack that has API Gateway v2 (tflocal)
	$(BIN)/python -m scripts.deploy localstack

clean: ## remove build outputs and local state (keeps the virtualenvs)
	rm -rf build .local .pytest_cache

.PHONY: help install lint build build-local stack dev test test-load bench deploy destroy localstack-deploy clean
