"""How tickets and their events are written in Redis: compact, versioned, old records still read.

Version 1 (before): a snapshot is ``Ticket.to_dict()`` as JSON with every field named in
full, an event ``TicketEvent.to_dict()`` likewise (with its ticket id repeated).
Version 2 (now): a snapshot is a JSON object with short field names and without the fields
that hold their default value, marked ``"v":2``; an event is a JSON array
``[seq, kind, at, actor, actor_name, chat, data]`` whose trailing empty fields are left
off and whose ticket id is the key's.
Version 3 (now, events): the same array with the kind as a short code (``"a"`` for
acknowledged), data fields under short names in every kind, an opened event's defaults
(not urgent, public) left off, and due times as exact offsets from the event's time. The
kind's spelling tells a version 3 event from a version 2 one. A record is read by its shape,
so every version reads.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import MISSING
from typing import Any, TypeGuard

from bot.core.ticket import EventKind, Reporter, Ticket, TicketEvent

VERSION = 2  # of snapshots (kept as a checkpoint where the events alone do not suffice)
EVENT_VERSION = 3

# Snapshot field -> short name; a field not named here is written under its own name.
_SHORT = {
    "id": "i",
    "category": "c",
    "severity": "sv",
    "urgent": "u",
    "visibility": "vi",
    "text": "t",
    "origin": "o",
    "origin_chat": "oc",
    "node": "n",
    "tier": "ti",
    "state": "s",
    "reporters": "r",
    "created_at": "ca",
    "updated_at": "ua",
    "stage": "st",
    "stage_started": "ss",
    "ack_due": "ad",
    "resolve_due": "rd",
    "close_due": "cd",
    "acknowledged_at": "aa",
    "resolved_at": "ra",
    "closed_at": "xa",
    "assignee": "as",
    "assignee_name": "an",
    "departments": "dp",
    "handled_at": "h",
    "related": "rl",
    "department_steps": "ds",
    "escalations": "e",
    "flagged": "f",
    "rating": "rt",
    "resolution": "rs",
    "seq": "q",
    "photos": "p",
    "location": "l",
}
_LONG = {v: k for k, v in _SHORT.items()}
_REPORTER = ("account", "name", "chat", "message_id", "lang")
_DEFAULT_LANG = Reporter.__dataclass_fields__["lang"].default


# Built once: json.dumps with options builds an encoder per call, ~40% of encoding a reply
# (a sweep encodes ~9 records a deadline). encode() keeps no state between calls.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def dumps(data: Any) -> str:
    """Return compact JSON; Chinese stays UTF-8 (3 bytes, not 6 for \\uXXXX)."""
    return _ENCODER.encode(data)


def encode_ticket(ticket: Ticket) -> str:
    """Return a snapshot as stored (version 2)."""
    full = ticket.to_dict()
    out: dict[str, Any] = {"v": VERSION}
    for name, value in full.items():
        if name == "reporters":
            value = [_reporter_row(r) for r in value]
        elif name != "id" and _is_default(name, value):
            continue
        out[_SHORT.get(name, name)] = value
    return dumps(out)


def _reporter_row(reporter: Mapping[str, Any]) -> list[Any]:
    """Return a reporter as a row of ``_REPORTER``, without the default language."""
    row = [reporter[f] for f in _REPORTER]
    return row[:-1] if row[-1] == _DEFAULT_LANG else row


def _is_default(name: str, value: Any) -> bool:
    """Return whether a snapshot field holds its default (read back when it is left off)."""
    spec = Ticket.__dataclass_fields__[name]
    if spec.default is MISSING and spec.default_factory is MISSING:
        return False  # required: always written
    if spec.default is MISSING:
        return value in ([], {})
    if isinstance(spec.default, tuple):
        return value in ((), [])
    return value == spec.default and type(value) is type(spec.default)


def decode_ticket(raw: str | bytes) -> Ticket:
    """Return the snapshot stored as ``raw``, of either version."""
    data = json.loads(raw)
    if data.get("v") != VERSION:
        return Ticket.from_dict(data)
    full: dict[str, Any] = {}
    for short, value in data.items():
        if short != "v":
            full[_LONG.get(short, short)] = value
    full["reporters"] = [dict(zip(_REPORTER, r, strict=False)) for r in full["reporters"]]
    return Ticket.from_dict(full)


# Fields of an "opened" event's data left off when empty, and read back as these values.
_OPENED_EMPTY: dict[str, Any] = {"departments": [], "photos": [], "location": None, "related": []}
# Data fields of "opened" and "joined" events written under short names (no event's data
# has a field of two letters or fewer, so a short name is never a field's own).
_DATA_SHORT = {
    "category": "c",
    "severity": "sv",
    "urgent": "u",
    "visibility": "vi",
    "text": "t",
    "origin": "o",
    "node": "n",
    "tier": "ti",
    "reporter": "r",
    "ack_due": "ad",
    "resolve_due": "rd",
    "matched": "m",
    "departments": "dp",
    "photos": "p",
    "location": "l",
    "related": "rl",
}
_DATA_LONG = {v: k for k, v in _DATA_SHORT.items()}
_REPORTING = (EventKind.OPENED, EventKind.JOINED)


# Version 3 only: the opened event's defaults, the short code of every kind, due offsets.
_OPENED_DEFAULT: dict[str, Any] = {"urgent": False, "visibility": "public"}
_DUE = ("ack_due", "resolve_due", "close_due")
_DATA_SHORT_V3 = {**_DATA_SHORT, "close_due": "cd"}
_DATA_LONG_V3 = {v: k for k, v in _DATA_SHORT_V3.items()}
_KIND_CODE = {
    EventKind.OPENED: "o",
    EventKind.JOINED: "j",
    EventKind.ACKNOWLEDGED: "a",
    EventKind.NOTED: "n",
    EventKind.ASSIGNED: "as",
    EventKind.HANDED: "h",
    EventKind.RESOLVED: "r",
    EventKind.CONFIRMED: "cf",
    EventKind.CLOSED: "c",
    EventKind.REOPENED: "ro",
    EventKind.DISMISSED: "d",
    EventKind.ESCALATED: "e",
    EventKind.FLAGGED: "f",
    EventKind.RATED: "rt",
    EventKind.ERASED: "x",
    EventKind.RELATED: "rl",
    EventKind.ARRIVED: "ar",
    EventKind.ASSISTED: "at",
    EventKind.RECATEGORISED: "rc",
}
_CODE_KIND = {v: k for k, v in _KIND_CODE.items()}


def encode_event(event: TicketEvent) -> str:
    """Return an event as stored (version 3): a positional array without its ticket id."""
    data = dict(event.data)
    if event.kind is EventKind.OPENED:
        for name, empty in (_OPENED_EMPTY | _OPENED_DEFAULT).items():
            if name in data and data[name] == empty and type(data[name]) is type(empty):
                del data[name]
    if event.kind in _REPORTING:
        reporter = data.get("reporter")
        if _is_actor(reporter, event):  # only the message and language are the reporter's own
            data["reporter"] = _reporter_row(reporter)[3:]
    for name in _DUE:
        if isinstance(data.get(name), float):
            data[name] = _offset(data[name], event.at)
    data = {_DATA_SHORT_V3.get(k, k): v for k, v in data.items()}
    row: list[Any] = [
        event.seq,
        _KIND_CODE[event.kind],
        event.at,
        event.actor,
        event.actor_name,
        event.chat,
        data,
    ]
    while len(row) > 5 and row[-1] in (None, {}):
        row.pop()
    return dumps(row)


def _offset(due: float, at: float) -> float | int | list[float]:
    """Return ``due`` as seconds after ``at`` when that reads back exactly, else as ``[due]``.

    Two floats within a factor of two subtract exactly (Sterbenz), and adding the difference
    back gives ``due`` again; the check keeps any other case exact too.
    """
    delta = due - at
    if at + delta != due:
        return [due]
    return int(delta) if delta.is_integer() and abs(delta) < 2**53 else delta


def _due(value: Any, at: float) -> Any:
    """Return the due time an offset (or ``[due]``) stands for."""
    if isinstance(value, list):
        return float(value[0])
    return at + value if isinstance(value, int | float) else value


def _is_actor(reporter: Any, event: TicketEvent) -> TypeGuard[Mapping[str, Any]]:
    """Return whether ``reporter`` (an event's data) is the event's actor, in the chat."""
    return (
        isinstance(reporter, Mapping)
        and set(reporter) == set(_REPORTER)
        and (reporter["account"], reporter["name"], reporter["chat"])
        == (event.actor, event.actor_name, event.chat)
    )


def decode_event(ticket_id: str, raw: str | bytes) -> TicketEvent:
    """Return the event of ``ticket_id`` stored as ``raw``, of any version."""
    data = json.loads(raw)
    if isinstance(data, Mapping):
        return TicketEvent.from_dict(data)
    seq, kind, at, actor, actor_name, *rest = data
    chat = rest[0] if rest else None
    body = rest[1] if len(rest) > 1 else {}
    v3 = kind in _CODE_KIND
    if v3:
        kind = _CODE_KIND[kind].value
        body = {_DATA_LONG_V3.get(k, k): v for k, v in body.items()}
        for name in _DUE:
            if name in body:
                body[name] = _due(body[name], at)
    elif kind in _REPORTING:
        body = {_DATA_LONG.get(k, k): v for k, v in body.items()}
    if kind in _REPORTING and isinstance(body.get("reporter"), list):
        own = [actor, actor_name, chat, *body["reporter"]]
        reporter = dict(zip(_REPORTER, own, strict=False))
        reporter.setdefault("lang", _DEFAULT_LANG)
        body["reporter"] = reporter
    if kind == EventKind.OPENED.value:
        body = {**_OPENED_EMPTY, **(_OPENED_DEFAULT if v3 else {}), **body}
    return TicketEvent.from_dict(
        {
            "ticket": ticket_id,
            "seq": seq,
            "kind": kind,
            "at": at,
            "actor": actor,
            "actor_name": actor_name,
            "chat": chat,
            "data": body,
        }
    )
