"""Fixtures for every test: the default rules and the data the tests read (all inside the repository)."""

from __future__ import annotations

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

ROOT = Path(__file__).resolve().parent.parent
RULES_DIR = ROOT / "routing_rules"
# The category contract and the labelled corpora the tests read; tests/data/README.md says where
# each came from. Tests read nothing outside the repository (test_self_contained.py checks).
DATA = ROOT / "tests" / "data"


@pytest.fixture(scope="session")
def ruleset() -> RuleSet:
    """Return the default rule set (loaded once)."""
    return load_ruleset(RULES_DIR)


@pytest.fixture(scope="session")
def data() -> Path:
    """Return tests/data/."""
    return DATA
