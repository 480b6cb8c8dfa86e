"""Which replies go first, and how many answers one person's messages may draw.

One person sending ``/help`` two hundred times must not hold back an emergency
in the same group, where every message shares Telegram's 20-a-minute limit. So:

- a reply about an emergency ticket (critical severity, or marked urgent) that
  changes it is sent ahead of everything else waiting (``priority``);
- replies to a person's own messages count against a per-person allowance;
  past it, answers to questions (help, lists, refusals) are dropped, and the
  first one dropped in a period is replaced by one "slow down" notice. What
  changes a ticket (a real report, a command that acts) is always answered;
- an identical menu answer (``help``) to the same chat is queued once a window.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from bot.core.models import IncomingMessage, Reply
from bot.core.ticket import Ticket

URGENT = 1  # the priority of emergency replies and cards; everything else is 0
MENU_TEMPLATES = frozenset({"help"})  # answers that are the same for everyone who asks
NOTICE_TEMPLATE = "slow_down"


@dataclass(frozen=True)
class Pacing:
    """The per-person allowance of answers, and the window for identical menu answers."""

    per_person: int = 5  # answers to one person's messages per period
    period: int = 60  # seconds
    same_window: int = 60  # seconds an identical menu answer to one chat is not repeated


def priority(ticket: Ticket | None) -> int:
    """Return the priority of replies about a change to ``ticket`` (None: no change)."""
    if ticket is None:
        return 0
    return URGENT if ticket.severity == "critical" or ticket.urgent else 0


def to_sender(reply: Reply, message: IncomingMessage) -> bool:
    """Return whether a reply answers the person who wrote ``message`` (there or privately)."""
    return reply.chat in (message.chat, message.sender.account)


def slow_down(message: IncomingMessage) -> Reply:
    """Return the notice to a person whose messages draw more answers than allowed."""
    return Reply(
        message.chat,
        NOTICE_TEMPLATE,
        {"name": message.sender.name},
        message.sender.lang,
        reply_to=message.message_id,
    )


def same_answer(reply: Reply) -> str | None:
    """Return a digest naming a menu answer by chat and content, or None for other replies."""
    if reply.template not in MENU_TEMPLATES:
        return None
    content = json.dumps(
        [reply.template, reply.params, reply.lang.value], sort_keys=True, ensure_ascii=False
    )
    return hashlib.sha1(content.encode(), usedforsecurity=False).hexdigest()[:16]
