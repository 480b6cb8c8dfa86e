"""When a ticket is due, and what a deadline that fires should do.

Deadline jobs run at least once and possibly early (the rq scheduler rounds to
whole seconds and polls once a second), so a firing is always checked against
the ticket as it is now: the same stage, a state that still owes the work,
and a due time that has really passed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from bot.core.models import Tier
from bot.core.rules import RuleSet
from bot.core.ticket import Ticket, TicketState


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


def due_times(
    ruleset: RuleSet, category: str, tier: str, start: float, policy: Policy
) -> tuple[float, float]:
    """Return (ack due, resolve due) for a ticket entering ``tier`` at ``start``.

    A department is held to the street's times.
    """
    ladder = Tier(tier) if tier in Tier.__members__.values() else Tier.STREET
    ack, resolve = ruleset.deadline(category, ladder)
    return start + scaled(ack, policy), start + scaled(resolve, policy)


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
