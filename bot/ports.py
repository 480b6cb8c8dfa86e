"""The shell's ports: what services need from the outside world, as protocols."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from bot.core.models import Reply

Clock = Callable[[], float]
"""Return the current time in epoch seconds."""


@dataclass(frozen=True)
class Rendered:
    """A reply as text with its buttons: (label, callback data) pairs."""

    text: str
    buttons: tuple[tuple[str, str], ...] = ()
    # (account, name): ask this person alone to reply; the text names them (Telegram ForceReply)
    force_reply: tuple[str, str] | None = None


class Render(Protocol):
    """Turn a Reply into text for its chat."""

    def __call__(self, reply: Reply) -> Rendered: ...


@dataclass(frozen=True)
class Sent:
    """What a platform answered for one delivered message."""

    message_id: str


class ChatGateway(Protocol):
    """Deliver rendered messages to one chat platform."""

    platform: str

    async def send(self, chat: str, message: Rendered, reply_to: str | None) -> Sent:
        """Deliver one message; raise on failure (the sender retries)."""
        ...


@runtime_checkable
class CardEditor(Protocol):
    """A gateway that can edit a message it sent (a card kept true as its ticket moves on).

    A capability, not part of ChatGateway: a platform that cannot edit (WeCom's webhook
    cards) leaves it out, and its sender skips card edits.
    """

    async def edit(self, chat: str, message_id: str, message: Rendered) -> None:
        """Replace a sent message's text and buttons; an unchanged message counts as done."""
        ...


@dataclass(frozen=True)
class ScheduledJob:
    """A deadline check as the job queue stores it: written with the commit that owes it."""

    id: str
    key: str  # the job's hash
    fields: tuple[str | bytes, ...]  # its field/value pairs
    ttl: int  # seconds; -1 for none
    registry: str  # the sorted set of scheduled jobs, scored by epoch second
    at: int  # when to run, in epoch seconds
    queues: str  # the set of known queues
    queue: str  # this job's queue, added to that set


class Scheduler(Protocol):
    """Describe the job that checks a deadline at a given time (no I/O)."""

    def job(self, ticket_id: str, stage: int, kind: str, due: float) -> ScheduledJob | None:
        """Return the job checking the deadline ``kind`` of ``stage`` at ``due``, or None."""
        ...
