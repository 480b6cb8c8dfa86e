# The targets CI runs. `make test` is the README's test command: it installs
# what it needs (Debian packages when run as root, a virtualenv in .venv).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install system-deps lint typecheck test bench demo clean

$(BIN)/lianhu: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	@touch $@

install: $(BIN)/lianhu

system-deps:
	@scripts/system-deps

lint: install
	$(BIN)/ruff check bot tests bench
	$(BIN)/ruff format --check bot tests bench

typecheck: install
	$(BIN)/mypy

test: system-deps install lint typecheck
	$(BIN)/lianhu rules check routing_rules
	$(BIN)/lianhu org check
	$(BIN)/pytest

demo: system-deps install
	$(BIN)/lianhu rules check routing_rules
	$(BIN)/lianhu org show
	@printf '%s\n' \
	  '{"id": "a", "text": "5棟地下車庫著火了，快叫消防"}' \
	  '{"id": "b", "text": "又停水了，成棟樓冇水"}' \
	  '{"id": "c", "text": "樓下間卡拉OK日日唱到兩三點，嘈到瞓唔到"}' \
	  '{"id": "d", "text": "谢谢网格员，路灯已经修好了"}' \
	  '{"id": "e", "text": "Power has been out in block 4 since 7pm"}' \
	  | $(BIN)/lianhu classify
	$(BIN)/lianhu rules explain "不是停水，是水压太低，5楼以上洗澡都没水"

bench: install
	$(BIN)/python bench/classify.py
	$(BIN)/python bench/pipeline.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
