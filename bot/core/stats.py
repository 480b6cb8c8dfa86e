"""How the tiers are doing, by the three rates 12345 hotlines are judged by.

Each stage of a ticket (its time at one node) is judged at that node:
- response rate: acknowledgements made before the stage's ack deadline, over
  the stages whose acknowledgement was decided (made, or missed);
- resolution rate: resolutions made before the stage's resolve deadline, over
  the stages whose resolution was decided (made, missed, or escalated away);
- satisfaction rate: ratings of 4 or 5 over all ratings, at the node that
  resolved the ticket.
Open and overdue counts are of tickets handlers owe work on now.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from bot.core.models import Tier
from bot.core.org import OrgTree
from bot.core.ticket import EventKind, Ticket, TicketEvent


class Measure(StrEnum):
    """Which of the three rates a judgement counts towards."""

    ACK = "ack"  # acknowledged before the stage's ack deadline
    RESOLVE = "resolve"  # resolved before the stage's resolve deadline
    RATING = "rating"  # rated 4 or 5


@dataclass(frozen=True)
class Judgement:
    """One decided promise: at which node, which measure, kept or not, and when it was decided.

    ``took`` is the time from the stage's start to the acknowledgement or resolution
    (None when the promise was missed by leaving, and for ratings).
    """

    ticket: str
    node: str
    measure: Measure
    hit: bool
    at: float
    took: float | None = None


@dataclass
class _Tally:
    acked_in_time: int = 0
    ack_decided: int = 0
    resolved_in_time: int = 0
    resolve_decided: int = 0
    satisfied: int = 0
    rated: int = 0
    open: int = 0
    overdue: int = 0
    ack_times: list[float] = field(default_factory=list)
    resolve_times: list[float] = field(default_factory=list)

    def add(self, j: Judgement) -> None:
        if j.measure is Measure.ACK:
            self.ack_decided += 1
            self.acked_in_time += j.hit
            if j.took is not None:
                self.ack_times.append(j.took)
        elif j.measure is Measure.RESOLVE:
            self.resolve_decided += 1
            self.resolved_in_time += j.hit
            if j.took is not None:
                self.resolve_times.append(j.took)
        else:
            self.rated += 1
            self.satisfied += j.hit


@dataclass(frozen=True)
class StatsRow:
    """The figures of one node, or of a whole tier (node ``tier:<tier>``)."""

    node: str
    node_name: str
    tier: str
    open: int
    overdue: int
    response_rate: float | None
    resolution_rate: float | None
    satisfaction_rate: float | None
    median_ack: float | None
    median_resolve: float | None
    tickets: int
    # The counts behind each rate (hits of decided), so a reader can tell 1 of 1 from 90 of 100.
    acked_in_time: int = 0
    ack_decided: int = 0
    resolved_in_time: int = 0
    resolve_decided: int = 0
    satisfied: int = 0
    rated: int = 0


def node_stats(
    tickets: Sequence[Ticket], histories: Sequence[Sequence[TicketEvent]], tree: OrgTree, now: float
) -> list[StatsRow]:
    """Return a row per node that saw any of ``tickets``, then a row per tier."""
    tallies: dict[str, _Tally] = defaultdict(_Tally)
    seen: dict[str, set[str]] = defaultdict(set)
    for ticket, events in zip(tickets, histories, strict=True):
        for node, _ in arrivals(events):
            seen[node].add(ticket.id)
        for j in judgements(events):
            tallies[j.node].add(j)
        if ticket.state.active:
            tally = tallies[ticket.node]
            tally.open += 1
            due = ticket.due
            tally.overdue += due is not None and now > due
            seen[ticket.node].add(ticket.id)
    rows = [
        _row(node, _name(tree, node), _tier(tree, node), tally, len(seen[node]))
        for node, tally in sorted(tallies.items(), key=lambda item: _order(tree, item[0]))
    ]
    by_tier: dict[str, _Tally] = defaultdict(_Tally)
    tier_tickets: dict[str, set[str]] = defaultdict(set)
    for node, tally in tallies.items():
        total, tier = by_tier[_tier(tree, node)], _tier(tree, node)
        merge(total, tally)
        tier_tickets[tier] |= seen[node]
    rows += [
        _row(f"tier:{tier}", tier, tier, tally, len(tier_tickets[tier]))
        for tier, tally in sorted(by_tier.items(), key=lambda item: _TIER_ORDER.index(item[0]))
    ]
    return rows


def merge(total: _Tally, tally: _Tally) -> None:
    """Add ``tally`` into ``total``."""
    for name in (
        "acked_in_time",
        "ack_decided",
        "resolved_in_time",
        "resolve_decided",
        "satisfied",
        "rated",
        "open",
        "overdue",
    ):
        setattr(total, name, getattr(total, name) + getattr(tally, name))
    total.ack_times += tally.ack_times
    total.resolve_times += tally.resolve_times


_ARRIVALS = (EventKind.OPENED, EventKind.ESCALATED, EventKind.HANDED, EventKind.REOPENED)


def arrivals(events: Sequence[TicketEvent]) -> Iterator[tuple[str, float]]:
    """Yield (node, when) for each stage of one history: the node it started at."""
    node = ""
    for e in events:
        if e.kind in _ARRIVALS:
            node = str(e.data.get("node", node))
            yield node, e.at


def judgements(events: Sequence[TicketEvent]) -> Iterator[Judgement]:
    """Walk one history, judging each stage at the node that held it."""
    node, started, ack_due, resolve_due = "", 0.0, 0.0, 0.0
    acked = resolved = False
    resolver = ""
    for e in events:
        d = e.data
        if e.kind in _ARRIVALS:
            if (
                e.kind is not EventKind.OPENED
                and node
                and not resolved
                and e.kind is not EventKind.REOPENED
            ):
                if not acked:  # it left unacknowledged: a missed response
                    yield Judgement(e.ticket, node, Measure.ACK, False, e.at)
                yield Judgement(e.ticket, node, Measure.RESOLVE, False, e.at)  # unresolved here
            node = str(d.get("node", node))
            started, ack_due, resolve_due = e.at, float(d["ack_due"]), float(d["resolve_due"])
            acked = resolved = False
        elif e.kind is EventKind.ACKNOWLEDGED and not acked:
            acked = True
            yield Judgement(e.ticket, node, Measure.ACK, e.at <= ack_due, e.at, e.at - started)
        elif e.kind is EventKind.RESOLVED:
            if not acked:  # resolving answers too
                acked = True
                yield Judgement(e.ticket, node, Measure.ACK, e.at <= ack_due, e.at, e.at - started)
            resolved = True
            resolver = node
            yield Judgement(
                e.ticket, node, Measure.RESOLVE, e.at <= resolve_due, e.at, e.at - started
            )
        elif e.kind is EventKind.RATED and resolver:
            yield Judgement(e.ticket, resolver, Measure.RATING, int(d["rating"]) >= 4, e.at)


def _row(node: str, name: str, tier: str, t: _Tally, tickets: int) -> StatsRow:
    def rate(hits: int, of: int) -> float | None:
        return hits / of if of else None

    return StatsRow(
        node=node,
        node_name=name,
        tier=tier,
        open=t.open,
        overdue=t.overdue,
        response_rate=rate(t.acked_in_time, t.ack_decided),
        resolution_rate=rate(t.resolved_in_time, t.resolve_decided),
        satisfaction_rate=rate(t.satisfied, t.rated),
        median_ack=statistics.median(t.ack_times) if t.ack_times else None,
        median_resolve=statistics.median(t.resolve_times) if t.resolve_times else None,
        tickets=tickets,
        acked_in_time=t.acked_in_time,
        ack_decided=t.ack_decided,
        resolved_in_time=t.resolved_in_time,
        resolve_decided=t.resolve_decided,
        satisfied=t.satisfied,
        rated=t.rated,
    )


# Rows go up the ladder as tickets do, departments and nodes no longer in the tree last.
_TIER_ORDER = (*(t.value for t in Tier), "department", "unknown")


def _order(tree: OrgTree, node_id: str) -> tuple[int, str]:
    return _TIER_ORDER.index(_tier(tree, node_id)), node_id


def _tier(tree: OrgTree, node_id: str) -> str:
    node = tree.nodes.get(node_id)
    if node is None:
        return "unknown"
    return node.tier.value if node.tier is not None else "department"


def _name(tree: OrgTree, node_id: str) -> str:
    node = tree.nodes.get(node_id)
    return node.name if node else node_id
