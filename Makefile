# rwscaler — `make help` lists the targets. Every target bootstraps the virtualenv it needs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export RWSCALER_CACHE ?= $(HOME)/.cache/rwscaler

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | sort | \
	  awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

.PHONY: venv
venv: $(VENV)/.installed ## Create .venv with the package and its dev tools

.PHONY: simulate
simulate: venv ## Run the simulator's default scenario with every policy (the embedded default)
	$(VENV)/bin/rwscaler simulate

.PHONY: lint
lint: venv ## ruff, mypy --strict and the import-layer contracts
	$(VENV)/bin/ruff check operator tests tools
	$(VENV)/bin/ruff format --check operator tests tools
	$(VENV)/bin/mypy operator/rwscaler
	$(VENV)/bin/lint-imports

.PHONY: fmt
fmt: venv ## Format the code with ruff
	$(VENV)/bin/ruff format operator tests tools
	$(VENV)/bin/ruff check --fix operator tests tools

.PHONY: test
test: venv ## The README's test command: install and start what the tests need, then every tier, nothing skipped
	bash hack/test-all.sh $(PYTEST_ARGS)

.PHONY: test-unit
test-unit: venv ## The unit tests only (fast; for development, not the README's test command)
	$(PY) -m pytest tests/unit

.PHONY: bench
bench: venv ## Every policy on every scenario, one table
	$(VENV)/bin/rwscaler bench

.PHONY: clean
clean: ## Remove the virtualenv and caches in the checkout
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis

-include mk/*.mk
