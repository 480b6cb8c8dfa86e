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
from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.core.models import Tier
from bot.core.org import OrgTree
from bot.core.ticket import EventKind, Ticket, TicketEvent


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
        _judge(events, tallies, seen)
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
        tier_tickets[tier] |= seen[node]
    rows += [
        _row(f"tier:{tier}", tier, tier, tally, len(tier_tickets[tier]))
        for tier, tally in sorted(by_tier.items(), key=lambda item: _TIER_ORDER.index(item[0]))
    ]
    return rows


def _judge(
    events: Sequence[TicketEvent], tallies: dict[str, _Tally], seen: dict[str, set[str]]
) -> None:
    """Walk one history, judging each stage at the node that held it."""
    node, started, ack_due, resolve_due = "", 0.0, 0.0, 0.0
    acked = resolved = False
    resolver = ""
    for e in events:
        d = e.data
        if e.kind in (EventKind.OPENED, EventKind.ESCALATED, EventKind.HANDED, EventKind.REOPENED):
            if (
                e.kind is not EventKind.OPENED
                and node
                and not resolved
                and e.kind is not EventKind.REOPENED
            ):
                tally = tallies[node]
                if not acked:
                    tally.ack_decided += 1  # it left unacknowledged: a missed response
                tally.resolve_decided += 1  # and unresolved here
            node = str(d.get("node", node))
            started, ack_due, resolve_due = e.at, float(d["ack_due"]), float(d["resolve_due"])
            acked = resolved = False
            seen[node].add(e.ticket)
        elif e.kind is EventKind.ACKNOWLEDGED and not acked:
            acked = True
            tally = tallies[node]
            tally.ack_decided += 1
            tally.acked_in_time += e.at <= ack_due
            tally.ack_times.append(e.at - started)
        elif e.kind is EventKind.RESOLVED:
            tally = tallies[node]
            if not acked:  # resolving answers too
                acked = True
                tally.ack_decided += 1
                tally.acked_in_time += e.at <= ack_due
                tally.ack_times.append(e.at - started)
            resolved = True
            resolver = node
            tally.resolve_decided += 1
            tally.resolved_in_time += e.at <= resolve_due
            tally.resolve_times.append(e.at - started)
        elif e.kind is EventKind.RATED and resolver:
            tally = tallies[resolver]
            tally.rated += 1
            tally.satisfied += int(d["rating"]) >= 4


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
