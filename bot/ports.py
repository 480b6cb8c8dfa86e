"""The shell's ports: what services need from the outside world, as protocols."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from bot.core.models import Reply

Clock = Callable[[], float]
"""Return the current time in epoch seconds."""


@dataclass(frozen=True)
class Rendered:
    """A reply as text with its buttons: (label, callback data) pairs."""

    text: str
    buttons: tuple[tuple[str, str], ...] = ()


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


class Scheduler(Protocol):
    """Run a deadline check at a given time."""

    async def schedule(self, ticket_id: str, stage: int, kind: str, due: float) -> None:
        """Arrange for the deadline ``kind`` of ``stage`` to be checked at ``due``."""
        ...
