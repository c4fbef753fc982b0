# The two commands of the README: `make run` and `make test`. CI runs `make test` (through .ci/run).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install run test lint typecheck pytest bench-intake bench-delivery bench-audit clean

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)  ## Create .venv and install the pinned dependencies

run: $(STAMP)  ## Initialise on first run (SQLite, dev PKI, demo participants) and serve on 127.0.0.1:8080 (port: GATEWAY_PORT)
	$(BIN)/gateway init --demo
	$(BIN)/gateway serve

test: lint typecheck pytest  ## ruff, mypy --strict and the whole pytest suite (what CI runs)

lint: $(STAMP)  ## ruff: the lint rules and the formatting (`ruff format .` fixes the latter)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)  ## mypy --strict on gateway/, connectors/, agencies/ and tools/
	$(BIN)/mypy

pytest: $(STAMP)  ## the pytest suite only
	$(BIN)/pytest -n 2 $(PYTEST_ARGS)

bench-intake: $(STAMP)  ## bench/intake: gateway intake vs parse+XSD, +signxml and +its own signature check baselines (BENCH_ARGS=...)
	$(BIN)/python bench/intake/run.py $(BENCH_ARGS)

bench-delivery: $(STAMP)  ## bench/delivery: delivered/s (embedded; PostgreSQL+Redis) vs raw dramatiq drain
	$(BIN)/python bench/delivery/run.py

bench-audit: $(STAMP)  ## bench/audit: append rate, proof times (1M entries), verify rate, each beside a baseline
	$(BIN)/python bench/audit/run.py $(BENCH_ARGS)

clean:  ## Remove the virtual environment and caches (not data/ or keys/)
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
