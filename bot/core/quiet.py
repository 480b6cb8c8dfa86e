"""Quiet hours: cards of calmer tickets wait for the working day, then come as one summary.

Outside the working hours (``LIANHU_WORK_HOURS``, local time, on the working days of
``LIANHU_WORK_DAYS``; see bot.core.worktime), a card about a ticket of
normal or low severity that would go to a group chat of a node is held instead of sent;
critical and high severity, urgent tickets, answers to residents and private messages go
at once. When the working day starts, each group gets one summary of what was held.

Pure: the shell (bot/services.py) asks ``held`` for each reply of a change, keeps the held
ones in their own stream, and ``summaries`` turns them into one reply per chat.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from bot.core.models import Lang, Reply, Severity
from bot.core.org import OrgTree
from bot.core.ticket import Ticket
from bot.core.worktime import working

HELD_PLATFORM = "held"  # the stream held cards wait in (no sender reads it)
CALM = frozenset({Severity.NORMAL.value, Severity.LOW.value})


def parse_hours(text: str) -> tuple[int, int] | None:
    """Return the working hours ``HH:MM-HH:MM`` as minutes of the day; None for empty text.

    Raise ValueError for any other shape, or an end not after the start.
    """
    if not text.strip():
        return None
    try:
        start, end = (_minutes(part) for part in text.split("-"))
    except ValueError:
        raise ValueError("working hours as HH:MM-HH:MM, such as 08:30-18:00") from None
    if end <= start:
        raise ValueError("the end of the working hours must come after their start")
    return start, end


def _minutes(text: str) -> int:
    hours, minutes = text.strip().split(":")
    value = int(hours) * 60 + int(minutes)
    if not (len(minutes) == 2 and 0 <= int(minutes) < 60 and 0 <= value <= 24 * 60):
        raise ValueError(text)
    return value


def held(
    reply: Reply,
    ticket: Ticket,
    tree: OrgTree,
    now: float,
    hours: tuple[int, int] | None,
    days: frozenset[int],
    zone: dt.tzinfo,
) -> bool:
    """Return whether ``reply`` waits for the working day instead of going now."""
    return (
        reply.card
        and reply.chat in tree.chats  # a node's group or staff chat, not a person
        and _waits(ticket, now, hours, days, zone)
    )


def stage_held(
    ticket: Ticket, hours: tuple[int, int] | None, days: frozenset[int], zone: dt.tzinfo
) -> bool:
    """Return whether the cards the ticket's current stage sent to groups were held (they
    come as a line of a summary, never as a card with buttons)."""
    return _waits(ticket, ticket.stage_started, hours, days, zone)


def _waits(
    ticket: Ticket, at: float, hours: tuple[int, int] | None, days: frozenset[int], zone: dt.tzinfo
) -> bool:
    """Return whether a card of ``ticket`` sent to a group at ``at`` waits for the working day."""
    return ticket.severity in CALM and not ticket.urgent and not working(at, hours, days, zone)


def summaries(entries: Sequence[Mapping[str, Any]], current: Mapping[str, Ticket]) -> list[Reply]:
    """Return one summary per chat of the held cards ``entries`` (outbox payloads).

    A ticket is listed once per chat, with its state now (``current``); one that no longer
    exists is left out.
    """
    by_chat: dict[str, dict[str, dict[str, Any]]] = {}
    for payload in entries:
        params = payload.get("params") or {}
        ticket = current.get(str(params.get("id")))
        if ticket is None:
            continue
        listed = by_chat.setdefault(str(payload["chat"]), {})
        listed[ticket.id] = {
            "id": ticket.id,
            "category_names": params.get("category_names") or {},
            "category": ticket.category,
            "origin_name": params.get("origin_name", ticket.origin),
            "origin_names": params.get("origin_names") or {},
            "severity": ticket.severity,
            "state": ticket.state.value,
            "created_at": ticket.created_at,
        }
    return [
        Reply(chat, "held_summary", {"tickets": list(tickets.values())}, Lang.ZH_HANS)
        for chat, tickets in by_chat.items()
    ]


__all__: Sequence[str] = ("HELD_PLATFORM", "held", "parse_hours", "summaries")
