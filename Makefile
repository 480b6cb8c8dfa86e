# The targets CI runs. `make test` is the README's test command: it installs
# what it needs (Debian packages when run as root, a virtualenv in .venv).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install install-dev system-deps test-deps lint typecheck test test-pythons chaos bench demo lock lock-upgrade clean

# Installs come from the lock files requirements.txt and requirements-dev.txt (exact versions
# with their hashes), never from pyproject.toml's ranges: what runs is what was tested.
# `make lock` refreshes them.
$(VENV)/.run: requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r requirements.txt
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@

$(VENV)/.dev: requirements-dev.txt $(VENV)/.run
	$(BIN)/pip install --quiet --require-hashes -r requirements-dev.txt
	@touch $@

install: $(VENV)/.run

install-dev: $(VENV)/.dev

# Bring the lock files in line with pyproject.toml (a dependency added, a range changed), keeping
# every pin that still fits; `make lock-upgrade` resolves everything afresh to the newest releases.
# Run either on purpose, then `make test`, and commit the lock files with the fixes they need.
LOCK := $(BIN)/uv pip compile pyproject.toml requirements-build.in --universal \
	--python-version 3.11 --generate-hashes --quiet
lock: install-dev
	$(LOCK) $(UPGRADE) --extra dev -o requirements-dev.txt
	$(LOCK) $(UPGRADE) -c requirements-dev.txt -o requirements.txt

lock-upgrade:
	$(MAKE) lock UPGRADE=--upgrade

system-deps:
	@scripts/system-deps

test-deps:
	@scripts/system-deps --tests

lint: install-dev
	$(BIN)/ruff check bot tests bench
	$(BIN)/ruff format --check bot tests bench

typecheck: install-dev
	$(BIN)/mypy

test: test-deps install-dev lint typecheck
	$(BIN)/lianhu rules check routing_rules
	$(BIN)/lianhu org check
	$(BIN)/pytest

# The long chaos tests: 1,000 reports with the bot, the worker and Redis killed many times
# (tests/test_chaos.py), and 1,000 reports with two receivers and two workers killed and a
# Sentinel-managed Redis failed over twice (tests/test_chaos_scale.py); `make test` runs
# their short versions. LIANHU_CHAOS_SEED=<n> replays a run.
chaos: test-deps install-dev
	LIANHU_CHAOS=long $(BIN)/pytest -s tests/test_chaos.py tests/test_chaos_scale.py

# The suite on the other Pythons the README claims (3.12, 3.13), each in .venv-3.X from the lock.
test-pythons: test-deps
	@scripts/test-pythons

# The README's first command: the simulator on an embedded Redis (Ctrl-C stops it).
DEMO_ARGS ?= --seed
demo: system-deps install
	$(BIN)/lianhu demo $(DEMO_ARGS)

bench: install
	$(BIN)/python bench/classify.py
	$(BIN)/python bench/pipeline.py
	$(BIN)/python bench/scale.py

clean:
	rm -rf $(VENV) .venv-3.* .pytest_cache .mypy_cache .ruff_cache
