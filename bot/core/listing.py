"""The web console's ticket list as a pure function: search, filters, order and pages.

A ``Query`` is what the list's query string says (so a URL is a bookmark of a
list); ``parse_query`` checks it against the rules and tree and raises BadFilter
for a value that does not exist; ``run`` applies it to tickets the viewer may see.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

from bot.core.models import Severity
from bot.core.org import OrgTree, ancestors
from bot.core.privacy import mask
from bot.core.text import normalise
from bot.core.ticket import Ticket, TicketState

PAGE_SIZE = 50
MAX_QUERY = 100  # characters of a search: a word or a number, not an essay
SEVERITY_RANK = {s.value: s.rank for s in Severity}
UNFINISHED = "unfinished"  # the default: tickets handlers still owe work on
ALL = "all"
UNASSIGNED = "-"  # the handler filter's value for tickets assigned to nobody
STATE_CHOICES = (UNFINISHED, ALL, *(s.value for s in TicketState))
SORTS = ("id", "created", "due", "state", "category", "severity", "node", "handler")
STATE_ORDER = {s: i for i, s in enumerate(
    ("open", "reopened", "escalated", "acknowledged", "resolved", "closed", "dismissed")
)}  # fmt: skip


class BadFilter(ValueError):
    """A filter of the ticket list names a value that does not exist."""

    def __init__(self, field: str, value: str) -> None:
        super().__init__(f"{field}: no such value {value!r}")
        self.field = field
        self.value = value


@dataclass(frozen=True)
class Query:
    """What the ticket list shows; "" means any."""

    q: str = ""
    state: str = UNFINISHED
    category: str = ""
    severity: str = ""
    overdue: bool = False
    handler: str = ""  # a person id, or UNASSIGNED
    node: str = ""  # a node: tickets reported in or held by its subtree
    sort: str = "created"
    desc: bool = True
    page: int = 1

    def params(self, **changes: Any) -> dict[str, str]:
        """Return the query string of this list (with ``changes``), without defaults."""
        query = replace(self, **changes)
        out: dict[str, str] = {}
        for f in fields(query):
            value = getattr(query, f.name)
            if value == f.default:
                continue
            out[f.name] = ("1" if value else "0") if isinstance(value, bool) else str(value)
        return out


def parse_query(query: Mapping[str, str], tree: OrgTree, categories: Sequence[str]) -> Query:
    """Return the Query of a query string; raise BadFilter for an unknown value."""
    allowed: dict[str, Sequence[str]] = {
        "state": STATE_CHOICES,
        "category": categories,
        "severity": [s.value for s in Severity],
        "node": list(tree.nodes),
        "handler": [*tree.people, UNASSIGNED],
        "sort": SORTS,
    }
    found: dict[str, Any] = {}
    for name, values in allowed.items():
        value = query.get(name, "")
        if value and value not in values:
            raise BadFilter(name, value)
        if value:
            found[name] = value
    for name in ("overdue", "desc"):
        flag = query.get(name, "")
        if flag not in ("", "0", "1", "on"):
            raise BadFilter(name, flag)
        if flag:
            found[name] = flag in ("1", "on")
    page = query.get("page", "")
    if page and (not page.isdigit() or not 1 <= int(page) <= 100_000):
        raise BadFilter("page", page)
    text = query.get("q", "").strip()
    if len(text) > MAX_QUERY:
        raise BadFilter("q", text[:20] + "…")
    return Query(q=text, page=int(page or 1), **found)


def within(tree: OrgTree, node_id: str, top: str) -> bool:
    """Return whether ``node_id`` is ``top`` or below it."""
    return node_id in tree.nodes and any(n.id == top for n in ancestors(tree, node_id))


def matches(ticket: Ticket, words: str, names: Callable[[Ticket], str]) -> bool:
    """Return whether a search finds the ticket: its number, its text, reporters or handler."""
    if words.lstrip("#").isdigit():
        return ticket.id == words.lstrip("#").lstrip("0")
    hay = " ".join(
        [mask(ticket.text), mask(ticket.resolution), *(r.name for r in ticket.reporters),
         ticket.assignee_name or "", names(ticket)]
    )  # fmt: skip
    hay = normalise(hay).casefold()
    return all(w in hay for w in normalise(words).casefold().split())


def keep(ticket: Ticket, query: Query, tree: OrgTree, now: float) -> bool:
    """Return whether the ticket passes every filter of ``query`` (not the search)."""
    state = ticket.state
    if query.state == UNFINISHED and not state.active:
        return False
    if query.state not in (UNFINISHED, ALL) and state.value != query.state:
        return False
    if query.category and ticket.category != query.category:
        return False
    if query.severity and ticket.severity != query.severity:
        return False
    if query.overdue and ticket.overdue(now) is None:
        return False
    if query.handler == UNASSIGNED and ticket.assignee is not None:
        return False
    if query.handler not in ("", UNASSIGNED) and ticket.assignee != query.handler:
        return False
    return not query.node or any(within(tree, n, query.node) for n in (ticket.origin, ticket.node))


def _key(sort: str, now: float) -> Callable[[Ticket], Any]:
    far = float("inf")
    keys: dict[str, Callable[[Ticket], Any]] = {
        "id": lambda t: int(t.id) if t.id.isdigit() else 0,
        "created": lambda t: t.created_at,
        "due": lambda t: t.due if t.state.active and t.due is not None else far,
        "state": lambda t: STATE_ORDER.get(t.state.value, 99),
        "category": lambda t: t.category,
        "severity": lambda t: SEVERITY_RANK.get(t.severity, 0),
        "node": lambda t: t.node,
        "handler": lambda t: t.assignee_name or "",
    }
    return keys[sort]


@dataclass(frozen=True)
class Page:
    """One page of the list, and how many tickets the whole list has."""

    tickets: tuple[Ticket, ...]
    total: int
    page: int
    pages: int


def run(
    tickets: Sequence[Ticket],
    query: Query,
    tree: OrgTree,
    now: float,
    names: Callable[[Ticket], str] = lambda t: "",
    size: int = PAGE_SIZE,
) -> tuple[list[Ticket], Page]:
    """Return every ticket the query finds, in its order, and the page it asks for.

    ``names`` gives words a search also finds a ticket by (its category and places).
    """
    found = [
        t
        for t in tickets
        if keep(t, query, tree, now) and (not query.q or matches(t, query.q, names))
    ]
    # The newest first among equals, whatever the column: a stable sort on the id first.
    found.sort(key=_key("id", now), reverse=True)
    found.sort(key=_key(query.sort, now), reverse=query.desc)
    pages = max(1, -(-len(found) // size))
    page = min(query.page, pages)
    shown = tuple(found[(page - 1) * size : page * size])
    return found, Page(shown, len(found), page, pages)


def my_queue(tickets: Sequence[Ticket], now: float) -> list[Ticket]:
    """Return the open tickets of a handler's 我的待办: overdue first, then the soonest due."""
    active = [t for t in tickets if t.state.active]
    return sorted(
        active, key=lambda t: (t.overdue(now) is None, t.due if t.due is not None else float("inf"))
    )
