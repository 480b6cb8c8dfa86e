"""Drain a platform's outbox into its ChatGateway: rendered, retried, never sent twice.

Entries hold replies as templates with their parameters (bot.storage.redis.reply_payload);
the sender renders each in its recipient's language just before sending.

Entries are read through a consumer group. Before sending, the entry's sent
marker is checked; after the platform accepts a message, the marker, the
card pointer (so replies to the card reach its ticket) and the XACK are
written in one transaction. A failed send stays pending and is claimed again
after a back-off; after ``max_attempts`` it is dropped to a dead-letter list
and logged, never retried forever.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from bot.ports import ChatGateway, Render
from bot.render import Renderer
from bot.storage import keys
from bot.storage.redis import payload_reply

log = logging.getLogger(__name__)

SENT_TTL = 7 * 24 * 3600
CARD_TTL = 90 * 24 * 3600  # replies to a card are understood for three months


@dataclass(frozen=True)
class SenderStats:
    """What one drain did."""

    sent: int = 0
    skipped: int = 0  # already sent before (a redelivery)
    failed: int = 0
    dropped: int = 0


class Sender:
    """The one writer of a platform: reads its outbox and sends through the gateway."""

    def __init__(
        self,
        redis: Redis,
        gateway: ChatGateway,
        consumer: str = "sender",
        *,
        render: Render | None = None,
        retry_after: float = 5.0,
        max_attempts: int = 8,
    ) -> None:
        self.redis = redis
        self.gateway = gateway
        self.consumer = consumer
        self.render: Render = render if render is not None else Renderer()
        self.stream = keys.outbox(gateway.platform)
        self.retry_after = retry_after
        self.max_attempts = max_attempts
        self._group_ready = False

    async def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            await self.redis.xgroup_create(self.stream, keys.OUTBOX_GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    async def drain(self, count: int = 100, block_ms: int | None = None) -> SenderStats:
        """Send what is waiting: stale pending entries first, then new ones."""
        await self._ensure_group()
        total = SenderStats()
        claimed: Any = await self.redis.xautoclaim(
            self.stream,
            keys.OUTBOX_GROUP,
            self.consumer,
            int(self.retry_after * 1000),
            "0-0",
            count,
        )
        total = _add(total, await self._handle(list(claimed[1])))
        fresh: Any = await self.redis.xreadgroup(
            keys.OUTBOX_GROUP, self.consumer, {self.stream: ">"}, count=count, block=block_ms
        )
        for _, entries in fresh or []:
            total = _add(total, await self._handle(entries))
        return total

    async def run(self, stop: asyncio.Event, block_ms: int = 1000) -> None:
        """Drain until ``stop`` is set."""
        while not stop.is_set():
            try:
                await self.drain(block_ms=block_ms)
            except Exception:  # keep the one writer alive; the entry stays pending
                log.exception("outbox %s: drain failed", self.stream)
                await asyncio.sleep(1.0)

    async def _handle(self, entries: list[Any]) -> SenderStats:
        stats = SenderStats()
        for entry_id, fields in entries:
            if not fields:  # deleted by trimming while pending
                await self.redis.xack(self.stream, keys.OUTBOX_GROUP, entry_id)
                continue
            key = _text(fields[b"key"] if b"key" in fields else fields["key"])
            payload = json.loads(fields[b"payload"] if b"payload" in fields else fields["payload"])
            if await self.redis.exists(keys.sent(key)):
                await self.redis.xack(self.stream, keys.OUTBOX_GROUP, entry_id)
                stats = _add(stats, SenderStats(skipped=1))
                continue
            try:
                message = self.render(payload_reply(payload))
                sent = await self.gateway.send(payload["chat"], message, payload.get("reply_to"))
            except Exception as exc:
                stats = _add(stats, await self._failed(entry_id, key, exc))
                continue
            pipe = self.redis.pipeline(transaction=True)
            pipe.set(keys.sent(key), sent.message_id, ex=SENT_TTL)
            if payload.get("ticket"):
                pipe.set(
                    keys.card(payload["chat"], sent.message_id), payload["ticket"], ex=CARD_TTL
                )
            pipe.xack(self.stream, keys.OUTBOX_GROUP, entry_id)
            await pipe.execute()
            stats = _add(stats, SenderStats(sent=1))
        return stats

    async def _failed(self, entry_id: Any, key: str, exc: Exception) -> SenderStats:
        pending = await self.redis.xpending_range(
            self.stream, keys.OUTBOX_GROUP, min=entry_id, max=entry_id, count=1
        )
        attempts = int(pending[0]["times_delivered"]) if pending else 1
        if attempts >= self.max_attempts:
            log.error(
                "outbox %s: dropping %s after %d attempts: %s", self.stream, key, attempts, exc
            )
            pipe = self.redis.pipeline(transaction=True)
            pipe.rpush(f"{self.stream}:dead", key)
            pipe.xack(self.stream, keys.OUTBOX_GROUP, entry_id)
            await pipe.execute()
            return SenderStats(dropped=1)
        log.warning(
            "outbox %s: send of %s failed (attempt %d): %s", self.stream, key, attempts, exc
        )
        return SenderStats(failed=1)


def _add(a: SenderStats, b: SenderStats) -> SenderStats:
    return SenderStats(
        a.sent + b.sent, a.skipped + b.skipped, a.failed + b.failed, a.dropped + b.dropped
    )


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
