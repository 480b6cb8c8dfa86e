"""A ticket is the fold of its events: nothing is overwritten, every change is an event.

``evolve(ticket, event)`` is the only function that changes a ticket, and it
does so by returning a new one; storage keeps the events (append-only) and,
for speed, the latest snapshot.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType
from typing import Any


class TicketState(StrEnum):
    """Where a ticket is in its life."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    CLOSED = "closed"
    ESCALATED = "escalated"  # moved up a tier, open again there
    REOPENED = "reopened"  # the resident said it is not settled
    DISMISSED = "dismissed"

    @property
    def awaiting_ack(self) -> bool:
        """Return whether a handler still has to acknowledge."""
        return self in (TicketState.OPEN, TicketState.ESCALATED, TicketState.REOPENED)

    @property
    def active(self) -> bool:
        """Return whether handlers still owe work (acknowledgement or resolution)."""
        return self.awaiting_ack or self is TicketState.ACKNOWLEDGED

    @property
    def final(self) -> bool:
        """Return whether the ticket's life is over."""
        return self in (TicketState.CLOSED, TicketState.DISMISSED)


class EventKind(StrEnum):
    """What happened to a ticket."""

    OPENED = "opened"
    JOINED = "joined"  # another resident reported the same thing
    ACKNOWLEDGED = "acknowledged"
    NOTED = "noted"
    ASSIGNED = "assigned"
    HANDED = "handed"  # given to a department
    RESOLVED = "resolved"
    CONFIRMED = "confirmed"  # the resident says it is settled
    CLOSED = "closed"
    REOPENED = "reopened"
    DISMISSED = "dismissed"
    ESCALATED = "escalated"
    FLAGGED = "flagged"  # overdue at the top of the ladder: administrators told
    RATED = "rated"
    ERASED = "erased"  # a person's data was replaced by a marker (bot.core.personal)
    RELATED = "related"  # linked to another ticket about a nearby or graver problem
    ARRIVED = "arrived"  # a department asked to report in arrived on the scene
    ASSISTED = "assisted"  # a department asked to report in finished its part
    RECATEGORISED = "recategorised"  # a handler named the right category


@dataclass(frozen=True)
class Reporter:
    """Someone who reported the problem, and where to tell them of progress."""

    account: str
    name: str
    chat: str
    message_id: str
    lang: str = "zh-Hans"


@dataclass(frozen=True)
class TicketEvent:
    """One change: who, what, when, from which chat, with plain data."""

    ticket: str
    seq: int
    kind: EventKind
    at: float
    actor: str
    actor_name: str
    chat: str | None = None
    data: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def to_dict(self) -> dict[str, Any]:
        """Return the event as JSON-ready data."""
        return {
            "ticket": self.ticket,
            "seq": self.seq,
            "kind": self.kind.value,
            "at": self.at,
            "actor": self.actor,
            "actor_name": self.actor_name,
            "chat": self.chat,
            "data": dict(self.data),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> TicketEvent:
        """Return the event stored as ``raw``."""
        return cls(
            ticket=str(raw["ticket"]),
            seq=int(raw["seq"]),
            kind=EventKind(raw["kind"]),
            at=float(raw["at"]),
            actor=str(raw["actor"]),
            actor_name=str(raw["actor_name"]),
            chat=raw.get("chat"),
            data=MappingProxyType(dict(raw.get("data") or {})),
        )


@dataclass(frozen=True)
class Ticket:
    """Everything known of one request, as its events left it."""

    id: str
    category: str
    severity: str
    urgent: bool
    visibility: str
    text: str
    origin: str  # the node where it was reported
    origin_chat: str
    node: str  # the node that handles it now
    tier: str  # that node's tier ("department" for a department)
    state: TicketState
    reporters: tuple[Reporter, ...]
    created_at: float
    updated_at: float
    stage: int = 1  # +1 each time it enters a node or reopens: deadlines belong to a stage
    stage_started: float = 0.0
    ack_due: float | None = None
    resolve_due: float | None = None
    close_due: float | None = None
    acknowledged_at: float | None = None
    resolved_at: float | None = None
    closed_at: float | None = None
    assignee: str | None = None
    assignee_name: str | None = None
    departments: tuple[str, ...] = ()  # department nodes told of it
    handled_at: tuple[str, ...] = ()  # the nodes that held it before the current one
    related: tuple[str, ...] = ()  # tickets linked to this one
    # What each department asked to report in has done: {node: {"arrived": t, "assisted": t}}.
    department_steps: Mapping[str, Mapping[str, float]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    escalations: int = 0
    flagged: bool = False
    rating: int | None = None
    resolution: str = ""
    seq: int = 0  # the number of events folded in
    photos: tuple[str, ...] = ()
    location: tuple[float, float] | None = None

    @property
    def reporter(self) -> Reporter:
        """Return the first reporter."""
        return self.reporters[0]

    @property
    def due(self) -> float | None:
        """Return the deadline the ticket owes now: acknowledgement, else resolution."""
        return self.ack_due if self.state.awaiting_ack else self.resolve_due

    def overdue(self, now: float) -> str | None:
        """Return which promise the ticket has broken by ``now`` ("ack" or "resolve"), or None."""
        if self.state.awaiting_ack and self.ack_due is not None and self.ack_due < now:
            return "ack"
        if self.state.active and self.resolve_due is not None and self.resolve_due < now:
            return "resolve"
        return None

    def reported_by(self, account: str) -> bool:
        """Return whether ``account`` reported this ticket (first or joined)."""
        return any(r.account == account for r in self.reporters)

    def to_dict(self) -> dict[str, Any]:
        """Return the snapshot as JSON-ready data."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["state"] = self.state.value
        out["reporters"] = [vars(r) for r in self.reporters]
        out["departments"] = list(self.departments)
        out["handled_at"] = list(self.handled_at)
        out["related"] = list(self.related)
        out["department_steps"] = {k: dict(v) for k, v in self.department_steps.items()}
        out["photos"] = list(self.photos)
        out["location"] = list(self.location) if self.location else None
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Ticket:
        """Return the snapshot stored as ``raw``."""
        data = dict(raw)
        data["state"] = TicketState(data["state"])
        data["reporters"] = tuple(Reporter(**r) for r in data["reporters"])
        data["departments"] = tuple(data.get("departments") or ())
        data["handled_at"] = tuple(data.get("handled_at") or ())
        data["related"] = tuple(data.get("related") or ())
        steps = data.get("department_steps") or {}
        data["department_steps"] = MappingProxyType(
            {k: MappingProxyType(dict(v)) for k, v in steps.items()}
        )
        data["photos"] = tuple(data.get("photos") or ())
        location = data.get("location")
        data["location"] = (float(location[0]), float(location[1])) if location else None
        return cls(**data)


def evolve(ticket: Ticket | None, event: TicketEvent) -> Ticket:
    """Return the ticket after ``event``; an OPENED event starts one from nothing."""
    d = event.data
    if event.kind is EventKind.OPENED:
        if ticket is not None:
            raise ValueError(f"ticket {event.ticket} is already open")
        return Ticket(
            id=event.ticket,
            category=d["category"],
            severity=d["severity"],
            urgent=bool(d["urgent"]),
            visibility=d["visibility"],
            text=d["text"],
            origin=d["origin"],
            origin_chat=event.chat or "",
            node=d["node"],
            tier=d["tier"],
            state=TicketState.OPEN,
            reporters=(Reporter(**d["reporter"]),),
            created_at=event.at,
            updated_at=event.at,
            stage=1,
            stage_started=event.at,
            ack_due=d["ack_due"],
            resolve_due=d["resolve_due"],
            departments=tuple(d.get("departments", ())),
            related=tuple(d.get("related", ())),
            seq=event.seq,
            photos=tuple(d.get("photos", ())),
            location=(float(d["location"][0]), float(d["location"][1]))
            if d.get("location")
            else None,
        )
    if ticket is None:
        raise ValueError(f"event {event.kind} before the ticket {event.ticket} was opened")
    if event.seq != ticket.seq + 1:
        raise ValueError(f"ticket {ticket.id}: event {event.seq} after {ticket.seq}")

    def moved(**changes: Any) -> Ticket:  # one copy (of ~40 fields): the event's seq and time
        return replace(ticket, seq=event.seq, updated_at=event.at, **changes)

    kind = event.kind
    if kind is EventKind.JOINED:
        return moved(reporters=(*ticket.reporters, Reporter(**d["reporter"])))
    if kind is EventKind.ACKNOWLEDGED:
        return moved(
            state=TicketState.ACKNOWLEDGED, acknowledged_at=ticket.acknowledged_at or event.at
        )
    if kind is EventKind.ASSIGNED:
        return moved(assignee=d["person"], assignee_name=d.get("name"))
    if kind in (EventKind.HANDED, EventKind.ESCALATED):
        return moved(
            node=d["node"],
            tier=d["tier"],
            state=TicketState.ESCALATED if kind is EventKind.ESCALATED else TicketState.OPEN,
            stage=ticket.stage + 1,
            stage_started=event.at,
            ack_due=d["ack_due"],
            resolve_due=d["resolve_due"],
            assignee=None,
            assignee_name=None,
            flagged=False,
            escalations=ticket.escalations + (kind is EventKind.ESCALATED),
            handled_at=(*ticket.handled_at, ticket.node),
        )
    if kind is EventKind.RESOLVED:
        return moved(
            state=TicketState.RESOLVED,
            resolved_at=event.at,
            resolution=d.get("note", ""),
            acknowledged_at=ticket.acknowledged_at or event.at,
            close_due=d.get("close_due"),
        )
    if kind is EventKind.REOPENED:
        return moved(
            state=TicketState.REOPENED,
            stage=ticket.stage + 1,
            stage_started=event.at,
            ack_due=d["ack_due"],
            resolve_due=d["resolve_due"],
            close_due=None,
            resolved_at=None,
            flagged=False,
        )
    if kind in (EventKind.CONFIRMED, EventKind.CLOSED):
        return moved(state=TicketState.CLOSED, closed_at=event.at, close_due=None)
    if kind is EventKind.DISMISSED:
        return moved(state=TicketState.DISMISSED, closed_at=event.at, close_due=None)
    if kind is EventKind.FLAGGED:
        return moved(flagged=True)
    if kind is EventKind.RATED:
        return moved(rating=int(d["rating"]))
    if kind is EventKind.RELATED:
        other = str(d["other"])
        return moved() if other in ticket.related else moved(related=(*ticket.related, other))
    if kind in (EventKind.ARRIVED, EventKind.ASSISTED):
        steps = dict(ticket.department_steps)
        steps[d["department"]] = MappingProxyType(
            {**steps.get(d["department"], {}), kind.value: event.at}
        )
        return moved(department_steps=MappingProxyType(steps))
    if kind is EventKind.RECATEGORISED:
        return moved(
            category=d["category"], severity=d["severity"], visibility=d["visibility"],
            urgent=bool(d["urgent"]),
        )  # fmt: skip
    return moved()  # NOTED, ERASED: the history grows, the snapshot only moves on


def replay(events: Iterable[TicketEvent]) -> Ticket:
    """Return the ticket that ``events`` (in order, from OPENED) describe."""
    ticket: Ticket | None = None
    for event in events:
        ticket = evolve(ticket, event)
    if ticket is None:
        raise ValueError("no events")
    return ticket
