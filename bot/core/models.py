"""Plain value types shared across the core."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Tier(StrEnum):
    """A level of the four-level group ladder, lowest first."""

    HOUSEHOLD = "household"
    GRID = "grid"
    VILLAGE = "village"
    STREET = "street"

    @property
    def level(self) -> int:
        """Return 1 for household up to 4 for street."""
        return _TIER_LEVEL[self]


_TIER_LEVEL = {Tier.HOUSEHOLD: 1, Tier.GRID: 2, Tier.VILLAGE: 3, Tier.STREET: 4}


class Severity(StrEnum):
    """How serious a category is; drives deadlines."""

    CRITICAL = "critical"
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"

    @property
    def rank(self) -> int:
        """Return 4 for critical down to 1 for low."""
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {Severity.CRITICAL: 4, Severity.HIGH: 3, Severity.NORMAL: 2, Severity.LOW: 1}


class Visibility(StrEnum):
    """Whether a ticket card may be posted to a public group."""

    PUBLIC = "public"
    STAFF = "staff"


class Lang(StrEnum):
    """A language of the interface."""

    ZH_HANS = "zh-Hans"
    ZH_HANT = "zh-Hant"
    EN = "en"


INTAKE_PLATFORMS = frozenset({"alert", "open311"})
"""Reporters that are no chat (data feeds, Open311 clients): nothing is sent to them."""


def platform_of(chat: str) -> str:
    """Return the platform of a chat or account: ``telegram`` for ``telegram:-1001234``."""
    return chat.split(":", 1)[0]


NONE_CATEGORY = "none"
"""The reserved category of messages that are not requests for help."""


@dataclass(frozen=True)
class Actor:
    """Who did something: a person of the roster, an unknown resident, or the system."""

    account: str  # "telegram:12345", "sim:p-wang", or "system"
    name: str
    person: str | None = None  # roster person id, when known
    lang: Lang = Lang.ZH_HANS


SYSTEM = Actor(account="system", name="Lianhu")


@dataclass(frozen=True)
class IncomingMessage:
    """One message or button press from a chat platform, already translated."""

    chat: str  # "telegram:-1001234", "sim:H-01"
    message_id: str  # unique within the chat
    sender: Actor
    text: str = ""
    sent_at: float = 0.0
    reply_to: str | None = None  # the message id this one answers
    photos: tuple[str, ...] = ()
    location: tuple[float, float] | None = None
    callback: str | None = None  # button data such as "ack:42"
    private: bool = False  # a one-to-one chat with the bot
    console: bool = False  # given in the web console: a refusal is shown there, never sent

    @property
    def key(self) -> str:
        """Return the de-duplication key of this message."""
        return f"{self.chat}/{self.message_id}"


@dataclass(frozen=True)
class Reply:
    """Something to send: a template to render for one chat, in one language."""

    chat: str
    template: str
    params: Mapping[str, Any] = field(default_factory=dict)
    lang: Lang = Lang.ZH_HANS
    reply_to: str | None = None  # quote this message id
    ticket: str | None = None  # the ticket this card or notice is about
    buttons: tuple[str, ...] = ()  # actions offered: ack, resolve, escalate, confirm, reopen
    card: bool = False  # a ticket card: replies to it act on the ticket
    # Ask this account (and no one else in the chat) to answer by replying (Telegram ForceReply).
    force_reply: str | None = None
