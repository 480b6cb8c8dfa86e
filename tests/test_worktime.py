"""Deadlines in working hours: date arithmetic at the edges, the rules' clock, the settings."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.core import deadlines as dl
from bot.core.deadlines import CHINA_STANDARD_TIME, Policy
from bot.core.errors import InvalidRules
from bot.core.rules import Clock, RuleSet
from bot.core.worktime import EVERY_DAY, MONDAY_TO_FRIDAY, add_working, parse_days, working
from bot.render import local_zone
from bot.settings import Settings
from bot.sources import load_ruleset

ZONE = local_zone()
HOURS = (8 * 60 + 30, 18 * 60)  # 9.5 working hours a day
WEEK = MONDAY_TO_FRIDAY
H = 3600.0


def at(day: int, hour: int, minute: int = 0, second: int = 0, month: int = 12) -> float:
    """Return an epoch time of 2026 in Shanghai (4 December 2026 is a Friday)."""
    return dt.datetime(2026, month, day, hour, minute, second, tzinfo=ZONE).timestamp()


def add(start: float, hours: float) -> float:
    return add_working(start, hours * H, HOURS, WEEK, ZONE)


def test_a_report_at_23_on_friday_counts_from_monday_morning() -> None:
    assert add(at(4, 23), 2) == at(7, 10, 30)
    # 72 working hours: Mon-Fri 47.5, Mon-Tue 19 more, then 5.5 on Wednesday.
    assert add(at(4, 23), 72) == at(16, 14)


def test_a_deadline_runs_across_the_weekend() -> None:
    assert add(at(4, 17), 2) == at(7, 9, 30)  # one hour on Friday, one on Monday
    assert add(at(5, 12), 1) == at(7, 9, 30)  # reported on Saturday
    assert add(at(6, 23, 59), 1) == at(7, 9, 30)  # late on Sunday


def test_the_edges_of_the_working_day() -> None:
    assert add(at(7, 8, 30), 1) == at(7, 9, 30)  # at the first minute
    assert add(at(7, 8, 29, 59), 1) == at(7, 9, 30)  # a second before it
    assert add(at(7, 17), 1) == at(7, 18)  # uses the day to its end, not the next morning
    assert add(at(7, 18), 1) == at(8, 9, 30)  # at the closing minute: nothing left today
    assert add(at(7, 17, 59, 59), 1) == at(8, 9, 29, 59)
    assert add(at(7, 10), 9.5) == at(8, 10)  # a whole working day later
    assert add(at(4, 23), 0) == at(7, 8, 30)  # nothing to count: the next working minute
    assert add(at(7, 10), 0) == at(7, 10)


def test_working_days_and_hours_of_any_shape() -> None:
    weekend = frozenset({5, 6})
    assert add_working(at(4, 23), H, HOURS, weekend, ZONE) == at(5, 9, 30)
    assert add_working(at(7, 12), H, (0, 24 * 60), EVERY_DAY, ZONE) == at(7, 13)  # wall clock
    assert add_working(at(7, 23, 30), H, (0, 24 * 60), EVERY_DAY, ZONE) == at(8, 0, 30)
    with pytest.raises(ValueError, match="no working days"):
        add_working(at(7, 12), H, HOURS, frozenset(), ZONE)


def test_shanghai_has_no_daylight_saving_so_a_fixed_offset_counts_the_same() -> None:
    for month in range(1, 13):
        start = at(1, 20, month=month)
        assert add_working(start, 30 * H, HOURS, WEEK, ZONE) == add_working(
            start, 30 * H, HOURS, WEEK, CHINA_STANDARD_TIME
        )
        # Every working day is 9.5 hours long, all year.
        assert add_working(start, 9.5 * H, HOURS, EVERY_DAY, ZONE) - start == 22 * H


def test_working_knows_the_days() -> None:
    assert working(at(7, 9), HOURS, WEEK, ZONE)
    assert not working(at(5, 9), HOURS, WEEK, ZONE)  # Saturday
    assert working(at(5, 9), HOURS, EVERY_DAY, ZONE)
    assert not working(at(7, 18), HOURS, WEEK, ZONE) and working(at(7, 17, 59), HOURS, WEEK, ZONE)
    assert working(at(5, 3), None, WEEK, ZONE)  # no working hours: always


def test_parse_days() -> None:
    assert parse_days("Mon-Fri") == MONDAY_TO_FRIDAY
    assert parse_days("mon,tue, Sat") == frozenset({0, 1, 5})
    assert parse_days("Monday-Wednesday,Sun") == frozenset({0, 1, 2, 6})
    for bad in ("", "Fri-Mon", "Mo-Fr", "Mon-Tue-Wed", "1-5", "Mon,,Tue"):
        with pytest.raises(ValueError):
            parse_days(bad)
    assert Settings().policy().work_days == MONDAY_TO_FRIDAY
    assert Settings(work_days="Mon-Sat").policy().work_days == frozenset(range(6))
    with pytest.raises(ValidationError, match="Mon-Fri"):
        Settings(work_days="weekdays")


CATEGORIES = """\
categories:
  inquiry:
    names: {zh-Hans: 政策咨询}
    start_tier: village
    severity: low
    clock: working
  utilities:
    names: {zh-Hans: 水电气}
    start_tier: village
    severity: normal
deadlines:
  critical: {ack: 15m, resolve: 2h}
  high: {ack: 2h, resolve: 24h}
  normal: {ack: 24h, resolve: 3d}
  low: {ack: 2h, resolve: 3d}
"""
RULE = "rules:\n  - id: ask\n    category: inquiry\n    keywords: [咨询]\n"


def rules(tmp_path: Path, categories: str = CATEGORIES) -> RuleSet:
    (tmp_path / "categories.yaml").write_text(categories, encoding="utf-8")
    (tmp_path / "ask.yaml").write_text(RULE, encoding="utf-8")
    return load_ruleset(tmp_path)


POLICY = Policy(work_hours=HOURS, zone=ZONE)


def test_a_low_category_on_the_working_clock_counts_working_hours(tmp_path: Path) -> None:
    ruleset = rules(tmp_path)
    assert ruleset.categories["inquiry"].clock is Clock.WORKING
    ack, resolve = dl.due_times(ruleset, "inquiry", "village", at(4, 23), POLICY, urgent=False)
    assert (ack, resolve) == (at(7, 10, 30), at(16, 14))


def test_the_wall_clock_stays_where_it_should(tmp_path: Path) -> None:
    ruleset = rules(tmp_path)
    start = at(4, 23)
    # The default clock, an urgent ticket, and no working hours at all: every hour counts.
    assert dl.due_times(ruleset, "utilities", "village", start, POLICY, urgent=False) == (
        start + 24 * H, start + 72 * H,
    )  # fmt: skip
    wall = (start + 2 * H, start + 72 * H)
    assert dl.due_times(ruleset, "inquiry", "village", start, POLICY, urgent=True) == wall
    assert dl.due_times(ruleset, "inquiry", "village", start, Policy(), urgent=False) == wall


def test_the_demo_scale_and_floor_apply_to_the_working_time(tmp_path: Path) -> None:
    ruleset = rules(tmp_path)
    policy = Policy(scale=0.001, floor=30.0, work_hours=HOURS, zone=ZONE)
    ack, resolve = dl.due_times(ruleset, "inquiry", "village", at(4, 23), policy, urgent=False)
    # 2 hours shrink to 7.2 s, lifted to the 30 s floor; 3 days shrink to 259.2 s; both
    # counted from the next working minute, Monday 08:30.
    assert ack == at(7, 8, 30, 30)
    assert resolve == pytest.approx(at(7, 8, 30) + 259.2)
    assert dl.due_times(ruleset, "inquiry", "village", at(7, 10), policy, urgent=False) == (
        at(7, 10, 0, 30), pytest.approx(at(7, 10) + 259.2),
    )  # fmt: skip


@pytest.mark.parametrize("severity", ["critical", "high"])
def test_danger_never_counts_working_hours_only(tmp_path: Path, severity: str) -> None:
    text = CATEGORIES.replace("severity: low", f"severity: {severity}")
    with pytest.raises(InvalidRules) as caught:
        rules(tmp_path, text)  # located at the clock, the only error
    errors = [str(p).removeprefix(f"{tmp_path}/") for p in caught.value.problems]
    assert errors == [
        "ask.yaml:3:5: rules[0].category: unknown category 'inquiry'",
        "categories.yaml:6:5: categories.inquiry.clock: working is for normal and low severity"
        f" only; a {severity} category's deadlines count every hour",
    ]


def test_an_unknown_clock_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidRules) as caught:
        rules(tmp_path, CATEGORIES.replace("clock: working", "clock: office"))
    problem = str(caught.value.problems[-1]).removeprefix(f"{tmp_path}/")
    assert problem.startswith("categories.yaml:6:5: categories.inquiry.clock: ")
    assert "'wall' or 'working'" in problem


def test_the_default_rules_count_inquiries_in_working_hours(ruleset: RuleSet) -> None:
    working_clock = {c.id for c in ruleset.categories.values() if c.clock is Clock.WORKING}
    assert working_clock == {"policy_inquiry"}
