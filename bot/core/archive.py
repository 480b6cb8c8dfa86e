"""What an archived ticket is: one JSON record of its snapshot and history, and its month.

Closed tickets past the archive retention leave Redis for files (``bot.archive``); these
pure functions say what is written, in which month, and what an export shows without
``--full``: reporters' accounts, names and private chats replaced by a marker, phone, ID
and bank card numbers masked in every free text. Handlers act in office and keep their
names; the ticket's category, places, states and times are kept.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bot.core.privacy import mask
from bot.core.ticket import Ticket, TicketEvent

MASKED = "***"
# Free texts of events and snapshots: masked in an export without --full.
_TEXTS = ("text", "note", "resolution", "reason")


def record(ticket: Ticket, events: Sequence[TicketEvent]) -> dict[str, Any]:
    """Return a ticket and its history as one JSON-ready archive record."""
    return {"ticket": ticket.to_dict(), "events": [e.to_dict() for e in events]}


def month(at: float, zone: dt.tzinfo) -> str:
    """Return the month (``YYYY-MM`` in ``zone``) an archive record filed at ``at`` belongs to."""
    return dt.datetime.fromtimestamp(at, zone).strftime("%Y-%m")


def closed_month(ticket: Ticket, zone: dt.tzinfo) -> str:
    """Return the month a closed ticket is archived under: the month it was closed in."""
    return month(ticket.closed_at or ticket.updated_at, zone)


def newest(records: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Return one record per ticket, the one with the longest history, in ticket order.

    A batch written twice (a crash between writing and removing it from Redis) leaves two
    copies of a ticket; both are the same, or the later one is longer.
    """
    best: dict[str, Mapping[str, Any]] = {}
    for found in records:
        ticket_id = str(found["ticket"]["id"])
        if ticket_id not in best or len(found["events"]) >= len(best[ticket_id]["events"]):
            best[ticket_id] = found
    return [best[i] for i in sorted(best, key=lambda i: (len(i), i))]


def masked(found: Mapping[str, Any]) -> dict[str, Any]:
    """Return an archive record with the reporters' personal data masked (see module doc)."""
    ticket = dict(found["ticket"])
    people = {r["account"] for r in ticket["reporters"]}
    ticket["reporters"] = [_reporter(r, people) for r in ticket["reporters"]]
    ticket["origin_chat"] = MASKED if ticket["origin_chat"] in people else ticket["origin_chat"]
    ticket["photos"], ticket["location"] = [], None  # a photo or a place can show who
    for name in _TEXTS:
        if isinstance(ticket.get(name), str):
            ticket[name] = mask(ticket[name])
    return {"ticket": ticket, "events": [_event(e, people) for e in found["events"]]}


def _reporter(reporter: Mapping[str, Any], people: set[str]) -> dict[str, Any]:
    out = dict(reporter)
    out["account"], out["name"] = MASKED, MASKED
    if out.get("chat") in people:  # a private chat's id is the person's account
        out["chat"] = MASKED
    return out


def _event(event: Mapping[str, Any], people: set[str]) -> dict[str, Any]:
    out = dict(event)
    if out["actor"] in people:
        out["actor"], out["actor_name"] = MASKED, MASKED
    if out.get("chat") in people:
        out["chat"] = MASKED
    data = dict(out.get("data") or {})
    if isinstance(data.get("reporter"), Mapping):
        data["reporter"] = _reporter(data["reporter"], people)
    if data.get("photos") or data.get("location"):
        data["photos"], data["location"] = [], None
    for name in _TEXTS:
        if isinstance(data.get(name), str):
            data[name] = mask(data[name])
    out["data"] = data
    return out
