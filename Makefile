# Burgo — developer and user entry points.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: demo test lint typecheck pytest bench clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

## demo: set up, install and start Burgo on ./burgo-data
demo: $(VENV)/.installed
	@echo "Burgo is starting at http://$(HOST):$(PORT)/  (Ctrl+C stops it)"
	$(BIN)/burgo serve --host $(HOST) --port $(PORT) --db ./burgo-data/burgo.db

## test: lint, type-check and run the whole test suite
test: lint typecheck pytest

lint: $(VENV)/.installed
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(VENV)/.installed
	$(BIN)/mypy

pytest: $(VENV)/.installed
	$(BIN)/pytest -q

## bench: the entity API benchmarks (needs wrk: apt-get install wrk)
bench: $(VENV)/.installed
	$(BIN)/python bench/bench_entities.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
