"""A person's data in tickets: what concerns them, and erasing it.

Erasure keeps every event, in order, with its kind, time and roles; it replaces only the
personal fields of the events a person made or is the reporter of — the account and name
they acted under, a chat that is their private chat, the text, photos and location of their
report, and what they wrote in notes and reasons — with ``ERASED``. The ticket then gets one
``erased`` event saying when, by what and how many fields (never whose), and its snapshot is
the fold of the rewritten events. Erasing again finds nothing and changes nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

from bot.core.ticket import EventKind, Ticket, TicketEvent, evolve, replay

ERASED = "[已删除]"
SYSTEM = "system"
OWN_TEXT = ("text", "note", "reason")  # what a person writes in the events they make


@dataclass(frozen=True)
class Erasure:
    """The rewritten events of one ticket, its new snapshot and the event recording it."""

    after: Ticket
    rewritten: Mapping[int, TicketEvent]  # position in the history -> the event, erased
    event: TicketEvent
    fields: int


def concerns(event: TicketEvent, accounts: Collection[str]) -> bool:
    """Return whether one of ``accounts`` made ``event`` or is the reporter it records."""
    reporter = event.data.get("reporter")
    return event.actor in accounts or (
        isinstance(reporter, Mapping) and reporter.get("account") in accounts
    )


def ticket_export(
    ticket: Ticket, history: Sequence[TicketEvent], accounts: Collection[str]
) -> dict[str, Any]:
    """Return what a ticket holds about ``accounts``: their reports and their events."""
    mine = [e for e in history if concerns(e, accounts)]
    return {
        "id": ticket.id,
        "category": ticket.category,
        "state": ticket.state.value,
        "created_at": ticket.created_at,
        "closed_at": ticket.closed_at,
        "reporters": [vars(r) for r in ticket.reporters if r.account in accounts],
        "texts": [
            e.data["text"]
            for e in mine
            if e.kind in (EventKind.OPENED, EventKind.JOINED) and "text" in e.data
        ],
        "events": [e.to_dict() for e in mine],
    }


def erase(
    ticket: Ticket,
    history: Sequence[TicketEvent],
    accounts: Collection[str] | None,
    now: float,
    by: str,
) -> Erasure | None:
    """Return the erasure of ``accounts`` (None: every reporter) from a ticket, or None.

    None when nothing of theirs is left to erase. ``history`` is the whole history the
    snapshot ``ticket`` was folded from.
    """
    if len(history) != ticket.seq:
        raise ValueError(f"ticket {ticket.id}: {len(history)} events for seq {ticket.seq}")
    targets = {r.account for r in ticket.reporters} if accounts is None else set(accounts)
    targets.discard(ERASED)
    rewritten: dict[int, TicketEvent] = {}
    fields = 0
    for index, event in enumerate(history):
        new, count = _erase_event(event, targets)
        if count:
            rewritten[index] = new
            fields += count
    if not fields:
        return None
    event = TicketEvent(
        ticket.id,
        ticket.seq + 1,
        EventKind.ERASED,
        now,
        SYSTEM,
        SYSTEM,
        None,
        MappingProxyType({"by": by, "fields": fields}),
    )
    folded = replay(rewritten.get(i, e) for i, e in enumerate(history))
    return Erasure(evolve(folded, event), MappingProxyType(rewritten), event, fields)


def _erase_event(event: TicketEvent, targets: Collection[str]) -> tuple[TicketEvent, int]:
    """Return ``event`` with the fields of ``targets`` erased, and how many were."""
    fields = _Fields(dict(event.data))
    actor, actor_name, chat = event.actor, event.actor_name, event.chat
    if actor in targets:
        actor, actor_name = fields.erased(actor), fields.erased(actor_name)
        for key in OWN_TEXT:
            if fields.data.get(key):
                fields.data[key] = fields.erased(fields.data[key])
    if chat is not None and chat in targets:  # a private chat's id is the person's account
        chat = fields.erased(chat)
    reporter = fields.data.get("reporter")
    if isinstance(reporter, Mapping) and reporter.get("account") in targets:
        record = dict(reporter)
        if record.get("chat") == record["account"]:
            record["chat"] = fields.erased(record["chat"])
        record["account"], record["name"] = (
            fields.erased(record["account"]),
            fields.erased(record.get("name")),
        )
        fields.data["reporter"] = record
        if fields.data.get("text"):
            fields.data["text"] = fields.erased(fields.data["text"])
        if fields.data.get("photos"):
            fields.data["photos"], fields.count = [], fields.count + 1
        if fields.data.get("location"):
            fields.data["location"], fields.count = None, fields.count + 1
    if not fields.count:
        return event, 0
    new = replace(
        event,
        actor=actor,
        actor_name=actor_name,
        chat=chat,
        data=MappingProxyType(fields.data),
    )
    return new, fields.count


@dataclass
class _Fields:
    """An event's data being erased, and how many fields were."""

    data: dict[str, Any]
    count: int = 0

    def erased(self, value: Any) -> str:
        """Return the marker, counting ``value`` unless it was erased already."""
        self.count += value != ERASED
        return ERASED
