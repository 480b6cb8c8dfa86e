"""Shared fixtures: the default rules and the shared contract beside the repository."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bot.core.rules import RuleSet
from bot.sources import load_ruleset
from tests.redis_fixtures import redis_async, redis_server, redis_sync, redis_url  # noqa: F401
from tests.telegram_fixtures import fake, harness  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
RULES_DIR = ROOT / "routing_rules"
# CI checks the repository out with shared/ beside it; LIANHU_SHARED_DIR overrides.
SHARED = Path(os.environ.get("LIANHU_SHARED_DIR", ROOT.parent / "shared"))


@pytest.fixture(scope="session")
def ruleset() -> RuleSet:
    """Return the default rule set (loaded once)."""
    return load_ruleset(RULES_DIR)


@pytest.fixture(scope="session")
def shared() -> Path:
    """Return the shared/ directory; fail (never skip) when it is missing."""
    assert (SHARED / "spec" / "categories.yaml").is_file(), f"shared/ not found at {SHARED}"
    return SHARED
