# The two commands: `make run` (install, then serve on the embedded PostgreSQL) and `make test`
# (install, then ruff, mypy --strict and the whole pytest suite on a real PostgreSQL).
# `make smoke PYTHON=python3.13 VENV=.venv-3.13`: install on another Python, migrate, serve, play Kherson.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test smoke lint openapi bench

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

run: $(BIN)/.installed
	$(BIN)/liveline serve --host $(HOST) --port $(PORT)

lint: $(BIN)/.installed
	$(BIN)/ruff check service
	$(BIN)/ruff format --check service
	$(BIN)/mypy service

test: lint
	$(BIN)/pytest

smoke: $(BIN)/.installed
	$(BIN)/pytest -p no:cacheprovider -rs tests/e2e/test_smoke.py

openapi: $(BIN)/.installed
	$(BIN)/python -m service.openapi > openapi/openapi.json

bench: $(BIN)/.installed
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python -m bench.polls
	$(BIN)/python -m bench.fanout --subscribers 2000 10000
