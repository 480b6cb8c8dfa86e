"""The street centre's dashboard (驾驶舱): what a viewer may see of the tickets, in figures.

Everything here is computed for one viewer from tickets and their histories:
only tickets the viewer may view (``bot.core.access.may_view``, which keeps
staff-only categories to the scopes that handle them) count, and the three
rates count only promises decided at nodes the viewer serves (``may_act``), so
that a grid worker's rates are their grid's, not the village's above it. The
rates are those of ``/stats`` (``bot.core.stats.judgements``), bucketed by the
local calendar week or month in which each promise was decided.

"Current" tickets are those reported in the last ``RECENT_DAYS`` days or not
yet finished (closed or dismissed): the states, tiers and category mix are of
these.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from bot.core.access import may_view
from bot.core.org import NodeKind, OrgTree, Person, ancestors, may_act
from bot.core.stats import Judgement, Measure, arrivals, judgements
from bot.core.ticket import Ticket, TicketEvent, TicketState

RECENT_DAYS = 30  # the trend, the ranking and the category mix look this far back
WEEKS = 8  # weeks of rates shown, the current one last
MONTHS = 6  # months of rates shown, the current one last
DAY = 86400.0
TIERS = ("household", "grid", "village", "street", "department")
STATES = tuple(s.value for s in TicketState)
FINISHED = frozenset({TicketState.RESOLVED, TicketState.CLOSED, TicketState.DISMISSED})


class BadMonth(ValueError):
    """A month was not written as YYYY-MM, or is out of range."""


@dataclass(frozen=True)
class Rate:
    """Promises kept (``hits``) of those decided (``of``); no value when none was decided."""

    hits: int = 0
    of: int = 0

    @property
    def value(self) -> float | None:
        """Return hits/of, or None when nothing was decided."""
        return self.hits / self.of if self.of else None


@dataclass(frozen=True)
class Rates:
    """The three rates: timely acknowledgement, resolution on time, satisfaction."""

    ack: Rate = Rate()
    resolve: Rate = Rate()
    satisfaction: Rate = Rate()


@dataclass(frozen=True)
class Period:
    """A local calendar week (from Monday) or month: its rates and the tickets reported in it."""

    key: str  # "2026-W49" or "2026-12"
    first: dt.date
    last: dt.date
    start: float
    end: float
    rates: Rates
    reported: int


@dataclass(frozen=True)
class Ranked:
    """A village or grid with the figures of its whole subtree."""

    node: str
    kind: str  # "village" or "grid"
    reported: int  # reported there in the last RECENT_DAYS days
    open: int  # unfinished tickets reported in or held by its subtree
    overdue: int
    rates: Rates


@dataclass(frozen=True)
class Share:
    """A category's current tickets: still being worked on, and done."""

    category: str
    active: int
    finished: int

    @property
    def total(self) -> int:
        """Return all of the category's current tickets."""
        return self.active + self.finished


@dataclass(frozen=True)
class Dashboard:
    """Every figure of the dashboard, for one viewer at one moment."""

    current: int
    states: Mapping[str, int]  # every state, zeros included
    tiers: Mapping[str, Mapping[str, int]]  # tier -> state -> count, tiers with tickets only
    overdue_ack: int
    overdue_resolve: int
    weeks: tuple[Period, ...]
    months: tuple[Period, ...]
    ranking: tuple[Ranked, ...]
    categories: tuple[Share, ...]
    days: tuple[tuple[dt.date, int], ...]  # new tickets per local day, oldest first

    @property
    def overdue(self) -> int:
        """Return the tickets overdue now, for either promise."""
        return self.overdue_ack + self.overdue_resolve


def visible(tree: OrgTree, person: Person, ticket: Ticket) -> bool:
    """Return whether ``person`` may see the ticket, by any of their accounts or their role."""
    return any(may_view(tree, person, a, ticket) for a in (*person.accounts, ""))


def scoped(
    tree: OrgTree,
    person: Person,
    tickets: Sequence[Ticket],
    histories: Sequence[Sequence[TicketEvent]],
) -> tuple[list[Ticket], list[Sequence[TicketEvent]]]:
    """Return the tickets ``person`` may see, with their histories."""
    pairs = [(t, h) for t, h in zip(tickets, histories, strict=True) if visible(tree, person, t)]
    return [t for t, _ in pairs], [h for _, h in pairs]


def judged(
    tree: OrgTree, person: Person, histories: Iterable[Sequence[TicketEvent]]
) -> list[Judgement]:
    """Return the promises decided at nodes ``person`` serves, in the given histories."""
    return [
        j
        for events in histories
        for j in judgements(events)
        if j.node in tree.nodes and may_act(tree, person, j.node)
    ]


def rates_of(found: Iterable[Judgement]) -> Rates:
    """Return the three rates of some judgements."""
    hits: Counter[Measure] = Counter()
    of: Counter[Measure] = Counter()
    for j in found:
        of[j.measure] += 1
        hits[j.measure] += j.hit
    return Rates(
        Rate(hits[Measure.ACK], of[Measure.ACK]),
        Rate(hits[Measure.RESOLVE], of[Measure.RESOLVE]),
        Rate(hits[Measure.RATING], of[Measure.RATING]),
    )


def build(
    tree: OrgTree,
    person: Person,
    tickets: Sequence[Ticket],
    histories: Sequence[Sequence[TicketEvent]],
    now: float,
    tz: dt.tzinfo,
) -> Dashboard:
    """Return the dashboard of ``person`` at ``now``, with days, weeks and months in ``tz``."""
    mine, theirs = scoped(tree, person, tickets, histories)
    found = judged(tree, person, theirs)
    since = now - RECENT_DAYS * DAY
    current = [t for t in mine if t.created_at >= since or not t.state.final]
    states = {s: 0 for s in STATES} | Counter(t.state.value for t in current)
    tiers: dict[str, Counter[str]] = defaultdict(Counter)
    for t in current:
        tiers[t.tier][t.state.value] += 1
    late = Counter(t.overdue(now) for t in mine)
    today = _local(now, tz).date()
    days = [today - dt.timedelta(days=n) for n in range(RECENT_DAYS - 1, -1, -1)]
    per_day = Counter(_local(t.created_at, tz).date() for t in mine)
    return Dashboard(
        current=len(current),
        states=states,
        tiers={k: {s: tiers[k][s] for s in STATES} for k in TIERS if k in tiers},
        overdue_ack=late["ack"],
        overdue_resolve=late["resolve"],
        weeks=tuple(_periods(_weeks(today, WEEKS), tz, found, mine)),
        months=tuple(_periods(_months(today, MONTHS), tz, found, mine)),
        ranking=tuple(ranking(tree, person, mine, found, now)),
        categories=tuple(category_mix(current)),
        days=tuple((d, per_day[d]) for d in days),
    )


def ranking(
    tree: OrgTree,
    person: Person,
    tickets: Sequence[Ticket],
    found: Sequence[Judgement],
    now: float,
) -> list[Ranked]:
    """Return the villages and grids ``person`` serves: villages, then grids, each best first.

    Each counts its whole subtree over the last RECENT_DAYS days; its unfinished and overdue
    tickets are those reported in it or held by it now (what the ticket list's node filter
    shows, where the numbers link). The order: resolution
    on time, then timely acknowledgement, then satisfaction (a node with no decided
    promise after every node with one), then more tickets reported, then the node's id.
    """
    since = now - RECENT_DAYS * DAY
    # Each ticket and promise counts at its node and every node above it: one walk each.
    above = {n: [a.id for a in ancestors(tree, n)] for n in tree.nodes}
    reported: Counter[str] = Counter()
    active: Counter[str] = Counter()
    late: Counter[str] = Counter()
    decided: dict[str, list[Judgement]] = defaultdict(list)
    for t in tickets:
        if t.created_at >= since:
            reported.update(above.get(t.origin, ()))
        if t.state.active:  # a unit's tickets: reported in or held by it, as the list's filter
            mine = {*above.get(t.origin, ()), *above.get(t.node, ())}
            active.update(mine)
            if t.overdue(now) is not None:
                late.update(mine)
    for j in found:
        if j.at >= since:
            for n in above.get(j.node, ()):
                decided[n].append(j)
    out = [
        Ranked(
            node.id,
            node.kind.value,
            reported[node.id],
            active[node.id],
            late[node.id],
            rates_of(decided[node.id]),
        )
        for node in tree.nodes.values()
        if node.kind in (NodeKind.VILLAGE, NodeKind.GRID) and may_act(tree, person, node.id)
    ]

    def key(r: Ranked) -> tuple[bool, float, float, float, int, str]:
        def worst_last(rate: Rate) -> float:
            return 1.0 if rate.value is None else -rate.value

        rates = r.rates
        first, second, third = rates.resolve, rates.ack, rates.satisfaction
        grid = r.kind == NodeKind.GRID.value
        return (grid, worst_last(first), worst_last(second), worst_last(third), -r.reported, r.node)

    return sorted(out, key=key)


def category_mix(current: Sequence[Ticket]) -> list[Share]:
    """Return each category's current tickets, most first (then by id)."""
    active: Counter[str] = Counter()
    finished: Counter[str] = Counter()
    for t in current:
        (finished if t.state in FINISHED else active)[t.category] += 1
    cats = set(active) | set(finished)
    shares = [Share(c, active[c], finished[c]) for c in cats]
    return sorted(shares, key=lambda s: (-s.total, s.category))


def month_bounds(month: str, tz: dt.tzinfo) -> tuple[float, float]:
    """Return the start and end (epoch seconds) of a month written YYYY-MM, in ``tz``."""
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}", month):
        raise BadMonth(month)
    year, number = int(month[:4]), int(month[5:])
    if not (1 <= number <= 12 and 2000 <= year <= 9998):
        raise BadMonth(month)
    first = dt.date(year, number, 1)
    return _epoch(first, tz), _epoch(_next_month(first), tz)


def first_shown(now: float, tz: dt.tzinfo) -> float:
    """Return the start of the earliest week or month the dashboard shows at ``now``."""
    today = _local(now, tz).date()
    firsts = [_weeks(today, WEEKS)[0][1], _months(today, MONTHS)[0][1]]
    return _epoch(min(firsts), tz)


def month_of(now: float, tz: dt.tzinfo) -> str:
    """Return the local month of ``now`` as YYYY-MM."""
    return _local(now, tz).strftime("%Y-%m")


@dataclass(frozen=True)
class NodeMonth:
    """One node's line of the monthly table: tickets that arrived there, and its rates."""

    node: str  # a node id, or "" for the total of every node of the table
    received: int
    rates: Rates


def month_table(
    tree: OrgTree,
    person: Person,
    tickets: Sequence[Ticket],
    histories: Sequence[Sequence[TicketEvent]],
    start: float,
    end: float,
) -> list[NodeMonth]:
    """Return a line per node ``person`` serves that received or decided anything, then a total.

    Nodes come in the tree's order; the total counts each ticket once.
    """
    _, theirs = scoped(tree, person, tickets, histories)
    found = [j for j in judged(tree, person, theirs) if start <= j.at < end]
    received: dict[str, set[str]] = defaultdict(set)
    for events in theirs:
        for node, at in arrivals(events):
            if start <= at < end and node in tree.nodes and may_act(tree, person, node):
                received[node].add(events[0].ticket)
    by_node: dict[str, list[Judgement]] = defaultdict(list)
    for j in found:
        by_node[j.node].append(j)
    lines = [
        NodeMonth(n, len(received[n]), rates_of(by_node[n]))
        for n in tree.nodes
        if n in received or n in by_node
    ]
    every = set().union(*received.values()) if received else set()
    return [*lines, NodeMonth("", len(every), rates_of(found))]


def _periods(
    bounds: Iterable[tuple[str, dt.date, dt.date]],
    tz: dt.tzinfo,
    found: Sequence[Judgement],
    tickets: Sequence[Ticket],
) -> Iterable[Period]:
    for key, first, after in bounds:
        start, end = _epoch(first, tz), _epoch(after, tz)
        yield Period(
            key=key,
            first=first,
            last=after - dt.timedelta(days=1),
            start=start,
            end=end,
            rates=rates_of(j for j in found if start <= j.at < end),
            reported=sum(start <= t.created_at < end for t in tickets),
        )


def _weeks(today: dt.date, count: int) -> list[tuple[str, dt.date, dt.date]]:
    monday = today - dt.timedelta(days=today.weekday())
    out = []
    for n in range(count - 1, -1, -1):
        first = monday - dt.timedelta(weeks=n)
        year, week, _ = first.isocalendar()
        out.append((f"{year}-W{week:02d}", first, first + dt.timedelta(weeks=1)))
    return out


def _months(today: dt.date, count: int) -> list[tuple[str, dt.date, dt.date]]:
    first = today.replace(day=1)
    firsts = [first]
    for _ in range(count - 1):
        firsts.append((firsts[-1] - dt.timedelta(days=1)).replace(day=1))
    return [(f"{d:%Y-%m}", d, _next_month(d)) for d in reversed(firsts)]


def _next_month(first: dt.date) -> dt.date:
    return (first + dt.timedelta(days=32)).replace(day=1)


def _local(epoch: float, tz: dt.tzinfo) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, tz)


def _epoch(day: dt.date, tz: dt.tzinfo) -> float:
    return dt.datetime(day.year, day.month, day.day, tzinfo=tz).timestamp()
