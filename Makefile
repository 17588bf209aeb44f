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

LAMBDA_ARCH ?= arm64
LAMBDA_RUNTIME ?= python3.12
build: $(STAMP) ## build the Lambda layer + function zips for AWS into build/ (LAMBDA_ARCH=arm64|x86_64, LAMBDA_RUNTIME=python3.12|python3.13: match lambda_architecture / lambda_runtime)
	$(BIN)/python -m scripts.package --arch $(LAMBDA_ARCH) --python-version $(patsubst python%,%,$(LAMBDA_RUNTIME))

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

# Vite and graphql-ws for tests/browser/test_ws_apps.py: pinned by the lock file, installed with npm ci
# (the only network use; the tests run offline). Needs Node >= 20.19 on PATH (Vite 8's engines).
WS_APPS := tests/browser/apps
WS_APPS_STAMP := $(WS_APPS)/node_modules/.installed
$(WS_APPS_STAMP): $(WS_APPS)/package.json $(WS_APPS)/package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "test-browser: FAILED: no node/npm on PATH (Node >= 20.19 runs Vite and graphql-ws)"; exit 1; }
	cd $(WS_APPS) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

test-browser: $(BROWSER_STAMP) $(WS_APPS_STAMP) build-local ## the inspector page, a static site and real WebSocket apps (Vite, graphql-ws) through the local stack, in headless Chromium (apt-get installs Debian's chromium when missing)
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

# Checked before any Python of ours runs: macOS ships Python 3.9, and Homebrew's own `terraform`
# formula stays at 1.5.7 (hashicorp/tap/terraform is current).
version-check: ## Python >= 3.11 and Terraform >= 1.11 (make deploy / make doctor run it first)
	@scripts/deploy/version_check.sh $(PYTHON)

DEPLOY_ARGS = $(if $(STATE_BUCKET),--state-bucket $(STATE_BUCKET)) $(if $(filter-out 0,$(ALLOW_LOW_CONCURRENCY)),--allow-low-concurrency)

doctor: version-check ## preflight for make deploy: one table of what would fail, each with its fix (exit 1 on a failure)
	@$(MAKE) --no-print-directory $(STAMP)
	$(BIN)/python -m scripts.deploy.doctor $(DEPLOY_ARGS)

deploy: version-check ## make doctor, then terraform apply to real AWS (AWS_PROFILE / AWS_REGION / the profile's region), then make smoke (SMOKE=0 skips it; STATE_BUCKET=b keeps state in S3; ALLOW_LOW_CONCURRENCY=1)
	@$(MAKE) --no-print-directory build
	$(BIN)/python -m scripts.deploy apply $(DEPLOY_ARGS)
	@if [ "$(SMOKE)" = "0" ]; then echo "SMOKE=0: smoke check skipped (run make smoke later)"; \
	else $(BIN)/python -m scripts.smoke $(SMOKE_ARGS); fi

smoke: $(STAMP) ## check the deployment end to end through its public URL (a 1 h token is minted unless TTF_TOKEN=...; SMOKE_ARGS=--endpoint wss://...)
	$(BIN)/python -m scripts.smoke $(SMOKE_ARGS)

token: $(STAMP) ## mint an agent token: make token SUB=alice [SUBDOMAINS=a,b] [TTL=30d] [STACK=1 for the local stack]
	@$(BIN)/python -m scripts.deploy.token --sub "$(SUB)" $(if $(SUBDOMAINS),--subdomains "$(SUBDOMAINS)") \
		$(if $(TTL),--ttl "$(TTL)") $(if $(STACK),--stack .local/stack.json)

destroy: ## terraform destroy on real AWS
	$(BIN)/python -m scripts.deploy destroy $(if $(STATE_BUCKET),--state-bucket $(STATE_BUCKET))

localstack-deploy: build ## deploy to a running LocalStack Pro (API Gateway v2, Docker, tflocal); untested here
	$(BIN)/python -m scripts.deploy localstack

clean: ## remove build outputs and local state (keeps the virtualenvs)
	rm -rf build .local .pytest_cache

.PHONY: help install lint build build-local stack dev test test-browser test-load bench version-check doctor deploy token smoke destroy localstack-deploy clean
