# The targets CI runs. `make test` is the README's test command: it installs
# what it needs (Debian packages when run as root, a virtualenv in .venv).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install system-deps test-deps lint typecheck test bench demo clean

$(BIN)/lianhu: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	@touch $@

install: $(BIN)/lianhu

system-deps:
	@scripts/system-deps

test-deps:
	@scripts/system-deps --tests

lint: install
	$(BIN)/ruff check bot tests bench
	$(BIN)/ruff format --check bot tests bench

typecheck: install
	$(BIN)/mypy

test: test-deps install lint typecheck
	$(BIN)/lianhu rules check routing_rules
	$(BIN)/lianhu org check
	$(BIN)/pytest

# The README's first command: the simulator on an embedded Redis (Ctrl-C stops it).
DEMO_ARGS ?= --seed
demo: system-deps install
	$(BIN)/lianhu demo $(DEMO_ARGS)

bench: install
	$(BIN)/python bench/classify.py
	$(BIN)/python bench/pipeline.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
