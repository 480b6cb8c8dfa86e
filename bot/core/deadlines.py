"""When a ticket is due, and what a deadline that fires should do.

Deadline jobs run at least once and possibly early (the rq scheduler rounds to
whole seconds and polls once a second), so a firing is always checked against
the ticket as it is now: the same stage, a state that still owes the work,
and a due time that has really passed.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from enum import StrEnum

from bot.core.models import Tier
from bot.core.rules import Clock, RuleSet
from bot.core.ticket import Ticket, TicketState
from bot.core.worktime import MONDAY_TO_FRIDAY, add_working

# Asia/Shanghai: UTC+8 without daylight saving since 1991, so a fixed offset counts the same.
CHINA_STANDARD_TIME = dt.timezone(dt.timedelta(hours=8), "CST")


class DeadlineKind(StrEnum):
    """Which promise a deadline stands for."""

    ACK = "ack"
    RESOLVE = "resolve"
    CLOSE = "close"  # a resolved ticket closes after a quiet period


class Outcome(StrEnum):
    """What a fired deadline does."""

    MOVED_ON = "moved_on"  # the ticket changed since: nothing to do
    EARLY = "early"  # fired before its time: run again at the due time
    ESCALATE = "escalate"
    FLAG = "flag"  # overdue at the top: tell the administrators
    CLOSE = "close"


@dataclass(frozen=True)
class Policy:
    """Time settings that are not per category."""

    scale: float = 1.0  # LIANHU_DEADLINE_SCALE: tests and demos shrink hours to seconds
    # LIANHU_DEADLINE_FLOOR: a shrunk deadline is never shorter than this (seconds), so that a
    # person trying the demo has time to press a button; it never lengthens a deadline.
    floor: float = 0.0
    join_window: float = 24 * 3600.0  # a report joins an open ticket this recent
    close_after: float = 3 * 24 * 3600.0  # a resolved ticket closes after this silence
    # LIANHU_WORK_HOURS as minutes of the local day: calmer cards wait outside them
    # (bot.core.quiet); None: every card goes at once.
    work_hours: tuple[int, int] | None = None
    # LIANHU_WORK_DAYS as weekdays (Monday 0): the days quiet hours and working-time deadlines
    # count as working; public holidays are not known (bot.core.worktime).
    work_days: frozenset[int] = MONDAY_TO_FRIDAY
    zone: dt.tzinfo = CHINA_STANDARD_TIME


def due_times(
    ruleset: RuleSet,
    category: str,
    tier: str,
    start: float,
    policy: Policy,
    *,
    urgent: bool,
) -> tuple[float, float]:
    """Return (ack due, resolve due) for a ticket entering ``tier`` at ``start``.

    A department is held to the street's times. A category whose ``clock`` is ``working``
    counts only working time (the scaled and floored durations, from the working hours and
    days of the policy), unless the ticket is urgent or no working hours are set; the rules
    refuse ``working`` for critical and high severity.
    """
    ladder = Tier(tier) if tier in Tier.__members__.values() else Tier.STREET
    ack, resolve = ruleset.deadline(category, ladder)
    cat = ruleset.categories.get(category)
    hours = policy.work_hours
    if cat is None or cat.clock is Clock.WALL or urgent or hours is None:
        ack_at = start + scaled(ack, policy)
        return ack_at, _after_ack(start + scaled(resolve, policy), ack_at, start + resolve, policy)
    days, zone = policy.work_days, policy.zone
    return (
        add_working(start, scaled(ack, policy), hours, days, zone),
        add_working(start, scaled(resolve, policy), hours, days, zone),
    )


def _after_ack(resolve_at: float, ack_at: float, real: float, policy: Policy) -> float:
    """Return a shrunk resolve deadline that leaves the floor after the acknowledgement's.

    Shrunk alike, an emergency's 受理 and 办结 would both fall on the floor, and who
    acknowledged at the last moment could never resolve in time; never later than ``real``.
    """
    if policy.scale >= 1:
        return resolve_at
    return max(resolve_at, min(ack_at + policy.floor, real))


def close_due(resolved_at: float, policy: Policy) -> float:
    """Return when a resolved ticket closes if nobody reopens it."""
    return resolved_at + scaled(policy.close_after, policy)


def scaled(duration: float, policy: Policy) -> float:
    """Return ``duration`` shrunk by the policy's scale, but not below its floor."""
    shrunk = duration * policy.scale
    if policy.scale < 1:
        shrunk = max(shrunk, min(duration, policy.floor))
    return shrunk


def due_of(ticket: Ticket, kind: DeadlineKind) -> float | None:
    """Return the due time of ``kind`` for the ticket's current stage."""
    if kind is DeadlineKind.ACK:
        return ticket.ack_due
    if kind is DeadlineKind.RESOLVE:
        return ticket.resolve_due
    return ticket.close_due


def run_at(due: float) -> int:
    """Return the whole second a job should run at: never before the due time."""
    return math.ceil(due)


def check(ticket: Ticket, kind: DeadlineKind, stage: int, now: float, top: bool) -> Outcome:
    """Return what a deadline of ``kind`` for ``stage`` firing at ``now`` should do.

    ``top`` says whether the ticket's node has nothing above it.
    """
    if stage != ticket.stage:
        return Outcome.MOVED_ON
    due = due_of(ticket, kind)
    if due is None:
        return Outcome.MOVED_ON
    if kind is DeadlineKind.CLOSE:
        if ticket.state is not TicketState.RESOLVED:
            return Outcome.MOVED_ON
        return Outcome.CLOSE if now >= due else Outcome.EARLY
    owes = ticket.state.awaiting_ack if kind is DeadlineKind.ACK else ticket.state.active
    if not owes:
        return Outcome.MOVED_ON
    if now < due:
        return Outcome.EARLY
    if top:
        return Outcome.MOVED_ON if ticket.flagged else Outcome.FLAG
    return Outcome.ESCALATE
