"""Read-only views of tickets for the web pages: every ticket, filters, what is overdue."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bot.core.ticket import Ticket, TicketState
from bot.core.workflow import Context
from bot.storage.redis import RedisStore

TIERS = ("household", "grid", "village", "street", "department")
LIST_LIMIT = 500  # newest first; a street centre's screen, not an archive


class BadFilter(ValueError):
    """A filter of the ticket list names a value that does not exist."""

    def __init__(self, field: str, value: str) -> None:
        super().__init__(f"{field}: no such value {value!r}")
        self.field = field
        self.value = value


@dataclass(frozen=True)
class Filters:
    """What the ticket list shows; None means any."""

    state: str | None = None
    tier: str | None = None
    node: str | None = None
    category: str | None = None
    overdue: bool = False

    def query(self) -> dict[str, str]:
        """Return the filters as query parameters (the ones that are set)."""
        out = {k: v for k, v in vars(self).items() if isinstance(v, str)}
        if self.overdue:
            out["overdue"] = "1"
        return out


def parse_filters(query: Mapping[str, str], ctx: Context) -> Filters:
    """Return the filters of a query string; raise BadFilter for an unknown value."""
    allowed: dict[str, Sequence[str]] = {
        "state": [s.value for s in TicketState],
        "tier": TIERS,
        "node": list(ctx.tree.nodes),
        "category": list(ctx.ruleset.categories),
    }
    found: dict[str, str | None] = {}
    for field, values in allowed.items():
        value = query.get(field) or None
        if value is not None and value not in values:
            raise BadFilter(field, value)
        found[field] = value
    flag = query.get("overdue", "")
    if flag not in ("", "0", "1", "on"):
        raise BadFilter("overdue", flag)
    return Filters(**found, overdue=flag in ("1", "on"))


def select(tickets: Sequence[Ticket], filters: Filters, now: float) -> list[Ticket]:
    """Return the tickets that pass every filter, in the given order."""
    return [
        t
        for t in tickets
        if (filters.state is None or t.state.value == filters.state)
        and (filters.tier is None or t.tier == filters.tier)
        and (filters.node is None or filters.node in (t.node, t.origin))
        and (filters.category is None or t.category == filters.category)
        and (not filters.overdue or t.overdue(now) is not None)
    ]


async def newest(store: RedisStore, limit: int = LIST_LIMIT) -> list[Ticket]:
    """Return the newest tickets, newest first."""
    ids = await store.all_ids()
    return list(reversed(await store.get_many(ids[-limit:])))
