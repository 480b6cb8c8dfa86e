"""Passive replies across processes: a callback held open by one process, answered from any.

WeCom shows what the HTTP answer to a callback carries (the passive reply): for a
user's message a finished stream or a button card, for a button press the pressed
card replaced (``update_template_card``, WeCom's only way to change a card it
shows). The callback server that holds the request opens a *slot* in Redis and
waits; the sender — in whichever process holds the sender lease — *takes* the slot
(GETDEL: the message goes there or by another route, never both) and pushes the
body onto the slot's answer list; the server pops it and answers. A slot nobody
took in time is closed by the server, which then answers empty.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from bot.storage import keys

GRACE = 1.0  # seconds to wait for a body whose slot was taken just as the wait ended
ANSWER_TTL = 30  # seconds an answer nobody popped stays (its server is gone)


@dataclass(frozen=True)
class Slot:
    """An open callback: in a single chat or a group, and for a press, the pressed card."""

    single: bool
    task_id: str | None = None


def press_ref(task_id: str) -> str:
    """Return the slot reference of a press on the card ``task_id`` (what an edit looks up)."""
    return f"task:{task_id}"


class Passive:
    """The open callbacks of every callback server of this street, in Redis."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def open(self, chat: str, ref: str, slot: Slot, ttl: float) -> bool:
        """Open a slot for ``ref``; False when one is open already (a second press)."""
        value = json.dumps({"single": slot.single, "task_id": slot.task_id})
        name = keys.wecom_passive(chat, ref)
        return bool(await self.redis.set(name, value, nx=True, px=int((ttl + GRACE) * 1000)))

    async def take(self, chat: str, ref: str) -> Slot | None:
        """Take the slot of ``ref`` if it is open: the caller must then ``put`` its answer."""
        raw = await self.redis.getdel(keys.wecom_passive(chat, ref))
        if raw is None:
            return None
        data = json.loads(raw)
        return Slot(bool(data["single"]), data.get("task_id"))

    async def put(self, chat: str, ref: str, body: dict[str, Any]) -> None:
        """Hand the answer of a taken slot to the server holding its callback."""
        name = keys.wecom_passive_answer(chat, ref)
        pipe = self.redis.pipeline(transaction=True)
        pipe.rpush(name, json.dumps(body, ensure_ascii=False))
        pipe.expire(name, ANSWER_TTL)
        await pipe.execute()

    async def wait(self, chat: str, ref: str, timeout: float) -> dict[str, Any] | None:
        """Return the answer to ``ref`` within ``timeout`` s, or None (the slot is closed)."""
        name = keys.wecom_passive_answer(chat, ref)
        popped = await self.redis.blpop([name], timeout=timeout)
        if popped is None and not await self.redis.delete(keys.wecom_passive(chat, ref)):
            popped = await self.redis.blpop([name], timeout=GRACE)  # taken just now: coming
        return json.loads(popped[1]) if popped is not None else None

    async def close(self, chat: str, ref: str) -> None:
        """Close a slot nobody will wait on (the callback failed)."""
        await self.redis.delete(keys.wecom_passive(chat, ref))
