# Burgo — developer and user entry points. `make help` lists them.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
DB ?= ./burgo-data/burgo.db
DEMO_DIR ?= ./burgo-demo
HISTORY ?= 30d
# Quiet pip, but its warnings and errors still show.
PIP := $(BIN)/python -m pip --quiet --disable-pip-version-check --no-input
# Only the folders that exist: git does not keep empty ones, and ruff fails on a missing path.
LINT_PATHS := $(wildcard src tests bench)

.DEFAULT_GOAL := help
.DELETE_ON_ERROR:
.PHONY: help install services demo serve test lint typecheck pytest bench messages clean
# System packages the tests use as real peers; `make services` installs the missing ones.
# The tests start private instances of them (their own port and data folder), never the system's.
SYSTEM_PACKAGES := mosquitto postgresql postgresql-15-postgis-3 chromium

## help: list these targets
help:
	@echo "Burgo — make targets:"
	@sed -n 's/^## \([a-z-]*\): \(.*\)/\1|\2/p' $(MAKEFILE_LIST) | \
	  awk -F'|' '{ printf "  make %-10s %s\n", $$1, $$2 }'
	@echo "Variables: PYTHON=$(PYTHON) VENV=$(VENV) HOST=$(HOST) PORT=$(PORT) DB=$(DB)"
	@echo "           DEMO_DIR=$(DEMO_DIR) HISTORY=$(HISTORY)"

# The virtual environment, created once. The stamp is written only when pip works in it, so a
# half-made .venv (no ensurepip, no network) is made again on the next run instead of trusted.
$(VENV)/.created:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
	  echo "Burgo needs Python 3.11 or newer; '$(PYTHON)' is missing or older." >&2; \
	  echo "Install it, or run: make PYTHON=python3.11 ..." >&2; exit 1; }
	@if ! $(BIN)/python -m pip --version >/dev/null 2>&1; then \
	  echo "Creating the virtual environment in $(VENV)"; \
	  $(PYTHON) -m venv --clear $(VENV) || { \
	    echo "Cannot create $(VENV). On Debian or Ubuntu: apt-get install python3-venv" >&2; \
	    exit 1; }; \
	  $(PIP) install --upgrade pip; \
	fi
	@touch $@

# Burgo and the test tools, installed again whenever pyproject.toml changes.
$(VENV)/.installed: pyproject.toml $(VENV)/.created
	$(PIP) install -e '.[test]'
	@touch $@

# Burgo alone, without the test tools: what the demo needs, quicker to install. An environment
# that already has the test tools is used as it is.
$(VENV)/.app: pyproject.toml $(VENV)/.created
	$(PIP) install -e .
	@touch $@
RUNNABLE := $(if $(wildcard $(VENV)/.installed),$(VENV)/.installed,$(VENV)/.app)

## install: create .venv and install Burgo into it, without starting it
install: $(VENV)/.installed

## demo: set up, install and start Burgo with a simulated town, 30 days of history (Ctrl+C stops)
demo: $(RUNNABLE)
	$(BIN)/burgo demo --host $(HOST) --port $(PORT) --dir $(DEMO_DIR) --history $(HISTORY)

## serve: start Burgo on DB (./burgo-data/burgo.db), with no demo town (Ctrl+C stops it)
serve: $(RUNNABLE)
	@echo "Burgo is starting at http://$(HOST):$(PORT)/  (Ctrl+C stops it)"
	$(BIN)/burgo serve --host $(HOST) --port $(PORT) --db $(DB)

## services: install the system packages the tests talk to (Mosquitto, PostgreSQL, Chromium), where missing
services:
	@missing=""; for pkg in $(SYSTEM_PACKAGES); do \
	  dpkg -s $$pkg >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "Missing system packages:$$missing (tests that need them are skipped; in CI they fail)"; \
	  fi; \
	fi

## test: lint, type-check and run the whole test suite (what CI runs)
test: services lint typecheck pytest

## lint: ruff check and ruff format --check
lint: $(VENV)/.installed
	@status=0; \
	  echo "ruff check $(LINT_PATHS)"; $(BIN)/ruff check $(LINT_PATHS) || status=1; \
	  echo "ruff format --check $(LINT_PATHS)"; $(BIN)/ruff format --check $(LINT_PATHS) || status=1; \
	  exit $$status

## typecheck: mypy (strict) on src/burgo
typecheck: $(VENV)/.installed
	$(BIN)/mypy

## pytest: the tests only (no tests collected is a failure)
pytest: $(VENV)/.installed
	$(BIN)/pytest -q

## bench: the entity API benchmarks (needs wrk: apt-get install wrk)
bench: $(VENV)/.installed
	$(BIN)/python bench/bench_entities.py

## messages: extract the dashboard's texts into its catalogues and compile them (after editing)
messages: $(VENV)/.installed
	$(BIN)/pybabel extract -F src/burgo/web/locale/babel.cfg -o src/burgo/web/locale/burgo.pot \
	  --no-location --omit-header --sort-output .
	$(BIN)/pybabel update -i src/burgo/web/locale/burgo.pot -d src/burgo/web/locale -D burgo \
	  --no-location
	$(BIN)/pybabel compile -d src/burgo/web/locale -D burgo --statistics

## clean: remove the virtual environment and caches (never ./burgo-data or ./burgo-demo)
clean:
	rm -rf $(VENV) build dist *.egg-info src/*.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
