"""Shrunk deadlines keep a floor, so a person trying the demo can act before a ticket climbs."""

from __future__ import annotations

import pytest

from bot.cli.demo import demo_settings
from bot.core import deadlines as dl
from bot.core.deadlines import Policy
from bot.core.rules import RuleSet
from bot.settings import Settings


def test_a_shrunk_deadline_never_falls_below_the_floor(ruleset: RuleSet) -> None:
    policy = Policy(scale=0.002, floor=30.0)
    ack, resolve = dl.due_times(ruleset, "emergency", "street", 1000.0, policy, urgent=False)
    assert ack - 1000.0 == 30.0  # 15 minutes x 0.002 would be 1.8 s
    # Resolving leaves the floor after the acknowledgement's: 2 hours x 0.002 would be 14.4 s.
    assert resolve - 1000.0 == 60.0


def test_acknowledged_at_the_last_moment_the_floor_is_left_to_resolve(ruleset: RuleSet) -> None:
    """Walked in the demo: an emergency's 受理 and 办结 deadlines were the same second."""
    policy = Policy(scale=0.002, floor=30.0)
    for category in ruleset.categories:
        for tier in dl.Tier:
            real = ruleset.deadline(category, tier)[1]
            for urgent in (False, True):
                ack, resolve = dl.due_times(ruleset, category, tier, 0.0, policy, urgent=urgent)
                assert resolve - ack >= 30.0 or resolve == real, (category, tier)
                assert resolve <= real  # the floor never lengthens a deadline


def test_the_floor_never_lengthens_a_deadline_nor_applies_at_full_scale(ruleset: RuleSet) -> None:
    assert dl.scaled(10.0, Policy(scale=0.5, floor=30.0)) == 10.0  # shorter than the floor already
    assert dl.scaled(3600.0, Policy(scale=0.5, floor=30.0)) == 1800.0
    assert dl.scaled(20.0, Policy(scale=1.0, floor=30.0)) == 20.0
    assert dl.scaled(7200.0, Policy(scale=0.001, floor=0.0)) == pytest.approx(7.2)
    assert dl.close_due(0.0, Policy(scale=0.0001, floor=30.0, close_after=3 * 86400.0)) == 30.0


def test_the_demo_keeps_critical_deadlines_long_enough_to_press_a_button(
    monkeypatch: pytest.MonkeyPatch, ruleset: RuleSet
) -> None:
    monkeypatch.delenv("LIANHU_DEADLINE_SCALE", raising=False)
    monkeypatch.delenv("LIANHU_DEADLINE_FLOOR", raising=False)
    settings = demo_settings()
    policy = Policy(scale=settings.deadline_scale, floor=settings.deadline_floor)
    for category in ruleset.categories:
        ack, resolve = dl.due_times(ruleset, category, "street", 0.0, policy, urgent=False)
        assert ack >= 30.0 and resolve >= 30.0, category


def test_a_negative_floor_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIANHU_DEADLINE_FLOOR", "-1")
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        Settings()
