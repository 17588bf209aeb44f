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
SMOKE ?= 1
SMOKE_ARGS ?=

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-z][a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

# httpbin + gunicorn for tests/e2e/test_realapp.py: their own virtualenv, as httpbin pins
# greenlet<3 on Python < 3.12 and Playwright (the browser extra) needs greenlet 3.
REALAPP_VENV := .venv-realapp
REALAPP_STAMP := $(REALAPP_VENV)/.installed
$(REALAPP_STAMP): tests/realapp/requirements.txt
	$(PYTHON) -m venv $(REALAPP_VENV)
	$(REALAPP_VENV)/bin/pip install --quiet -r tests/realapp/requirements.txt
	touch $@

$(CHECKOV_STAMP): scripts/checkov-requirements.txt
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet -r scripts/checkov-requirements.txt
	touch $@

install: $(STAMP) ## create .venv and install the project with its dev tools

build: $(STAMP) ## build the Lambda layer + function zips for AWS (arm64) into build/
	$(BIN)/python -m scripts.package

build-local: $(STAMP) ## build the zips for the local stack (host arch) into build/local/
	$(BIN)/python -m scripts.package --local

stack: build-local ## run the local stack in the foreground (moto + terraform + API Gateway emulator)
	$(BIN)/python -m emulator.stack

dev: build-local ## local stack + sample app on :3000 + ttf forwarding to it; Ctrl-C stops all
	$(BIN)/python -m scripts.dev

lint: $(STAMP) ## ruff over the tree, mypy --strict on what ships (shared/, cli/)
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint build-local build $(CHECKOV_STAMP) $(REALAPP_STAMP) ## the whole suite: lint, unit, cli, infra, end-to-end (what CI runs)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

BROWSER_STAMP := $(VENV)/.browser-installed
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

$(BROWSER_STAMP): $(STAMP) pyproject.toml constraints.txt
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,browser]'
	touch $@

test-browser: $(BROWSER_STAMP) build-local ## the inspector page, and a static site through the local stack, in headless Chromium (apt-get installs Debian's chromium when missing)
	@if ! command -v chromium >/dev/null 2>&1 || ! command -v curl >/dev/null 2>&1; then \
	  echo "test-browser: installing Debian's chromium and curl with apt-get"; \
	  $(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends chromium curl \
	    || { echo "test-browser: FAILED: chromium could not be installed (needs root and Debian's package lists)"; exit 1; }; \
	fi
	@command -v chromium >/dev/null 2>&1 || { echo "test-browser: FAILED: no chromium on PATH after installing it"; exit 1; }
	$(BIN)/python -m pytest tests/browser -m browser -o addopts='-ra' $(PYTEST_ARGS)

test-load: build-local ## the slow load and fault suite (pytest -m load)
	$(BIN)/python -m pytest -m load -o addopts='-ra' $(PYTEST_ARGS)

bench: build-local ## benchmark vs direct and localtunnel; writes bench/results.json (PROFILE=aws: AWS latency model; BASELINE=<ref>: that commit's stack in the same run)
	$(BIN)/python -m scripts.bench --profile $(PROFILE) $(if $(BASELINE),--baseline $(BASELINE))

deploy: build ## terraform apply to real AWS (uses AWS_PROFILE / AWS_REGION), then make smoke (SMOKE=0 skips it)
	$(BIN)/python -m scripts.deploy apply
	@if [ "$(SMOKE)" = "0" ]; then echo "SMOKE=0: smoke check skipped (run make smoke later)"; \
	else $(BIN)/python -m scripts.smoke $(SMOKE_ARGS); fi

smoke: $(STAMP) ## check the deployment end to end through its public URL (a 1 h token is minted unless TTF_TOKEN=...; SMOKE_ARGS=--endpoint wss://...)
	$(BIN)/python -m scripts.smoke $(SMOKE_ARGS)

token: $(STAMP) ## mint an agent token: make token SUB=alice [SUBDOMAINS=a,b] [TTL=30d] [STACK=1 for the local stack]
	@$(BIN)/python -m scripts.deploy.token --sub "$(SUB)" $(if $(SUBDOMAINS),--subdomains "$(SUBDOMAINS)") \
		$(if $(TTL),--ttl "$(TTL)") $(if $(STACK),--stack .local/stack.json)

destroy: ## terraform destroy on real AWS
	$(BIN)/python -m scripts.deploy destroy

localstack-deploy: build ## deploy to a running LocalStack Pro (API Gateway v2, Docker, tflocal); untested here
	$(BIN)/python -m scripts.deploy localstack

clean: ## remove build outputs and local state (keeps the virtualenvs)
	rm -rf build .local .pytest_cache

.PHONY: help install lint build build-local stack dev test test-browser test-load bench deploy token smoke destroy localstack-deploy clean
