"""Fixtures for every test: the default rules and the data the tests read (all inside the repository)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bot.core.rules import RuleSet
from bot.sources import load_ruleset
from tests.redis_fixtures import (  # noqa: F401
    redis_async,
    redis_server,
    redis_sync,
    redis_url,
    restartable_redis,
)
from tests.telegram_fixtures import fake, harness  # noqa: F401
from tests.wecom_fixtures import fake_wecom, wecom_bot  # noqa: F401

# The bot and the simulator classify with the rules alone in tests (and their subprocesses):
# training the model takes tens of seconds; tests/test_classifier*.py test it on purpose.
os.environ.setdefault("LIANHU_CLASSIFIER", "rules")

ROOT = Path(__file__).resolve().parent.parent
RULES_DIR = ROOT / "routing_rules"
# The category contract the tests read; tests/data/README.md says where it and the labelled
# corpora (now routing_rules/examples/, which the rules name) came from. Tests read nothing outside
# the repository (test_self_contained.py checks).
DATA = ROOT / "tests" / "data"
EXAMPLES = RULES_DIR / "examples"


@pytest.fixture(scope="session")
def ruleset() -> RuleSet:
    """Return the default rule set (loaded once)."""
    return load_ruleset(RULES_DIR)


@pytest.fixture(scope="session")
def data() -> Path:
    """Return tests/data/."""
    return DATA


@pytest.fixture(scope="session")
def examples() -> Path:
    """Return routing_rules/examples/: the labelled corpora."""
    return EXAMPLES
