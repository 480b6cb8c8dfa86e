"""Small builders shared by the Redis-backed tests."""

from __future__ import annotations

import time

from bot.core.models import Actor, IncomingMessage, Lang
from bot.core.org import Role
from bot.live import LiveConfig


class NoJobs:
    """The scheduler port for tests that check no deadline jobs."""

    async def schedule(self, *args: object) -> None:
        return None


def resident_message(config: LiveConfig, message_id: str, text: str) -> IncomingMessage:
    """Return ``text`` as the first resident of the roster writes it in their group."""
    resident = next(p for p in config.tree.people.values() if p.role is Role.RESIDENT)
    return IncomingMessage(
        config.tree.nodes[resident.scope].chats[0], message_id,
        Actor(resident.accounts[0], resident.name, resident.id, Lang(resident.lang)), text, time.time(),
    )  # fmt: skip
