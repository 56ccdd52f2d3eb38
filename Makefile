# Single entry points: setup, gen, lint, typecheck, test, run, bench. CI calls `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PROTO_FILES := $(shell find proto -name '*.proto' | sort)

.PHONY: setup gen gen-check lint format typecheck browser test test-only run bench bench-scale clean

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,devstack]'
	@touch $(STAMP)

setup: $(STAMP)

# Generated Python stubs, type stubs and the Envoy descriptor set, all from proto/.
gen: setup
	@$(PY) tools/gen.py gen

# Fails when gen/ differs from what proto/ generates (CI runs this).
gen-check: setup
	@$(PY) tools/gen.py check

lint: setup
	$(BIN)/ruff check otao tests bench tools
	$(BIN)/ruff format --check otao tests bench tools
	$(BIN)/buf lint

format: setup
	$(BIN)/ruff format otao tests bench tools
	$(BIN)/ruff check --fix otao tests bench tools

# otao/ strictly; tests/, bench/ and tools/ with every body checked but annotations optional
# (pyproject.toml's override for tests.*, bench.*, tools.*).
typecheck: setup
	$(BIN)/mypy --strict otao
	$(BIN)/mypy --explicit-package-bases tests bench tools

# Debian's Chromium for the console's browser tests (tests/console/), installed when this runs as
# root with apt-get (as in CI). Otherwise those tests skip with one loud line; under CI=true they
# fail instead of skipping (tests/support/browser.py).
CHROMIUM ?= /usr/bin/chromium
browser:
	@if [ -x "$(CHROMIUM)" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Chromium (apt-get install chromium) for the browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
		echo "!!! no Chromium at $(CHROMIUM) and no root + apt-get to install it: the browser tests (tests/console/) will be SKIPPED (they fail under CI=true) !!!"; \
	fi

# Fast checks first (seconds), then the whole suite against real processes.
test: setup gen-check lint typecheck browser test-only

test-only: setup
	$(BIN)/pytest -q

run: setup gen
	$(PY) -m otao.devstack

bench: setup gen
	$(PY) -m bench

# Up to 1,000,000 known endpoints (bench/README.md, "make bench-scale"); SCALE_ARGS, e.g.
# SCALE_ARGS="--max-size 100000", passes options.
bench-scale: setup gen
	$(PY) -m bench.scale $(SCALE_ARGS)

clean:
	rm -rf var/ .pytest_cache .mypy_cache .ruff_cache
