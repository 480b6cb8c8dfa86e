"""The one writer to Telegram: the outbox drained through per-chat lanes behind a rate limiter.

Built on ``bot.sender.Sender`` (the same outbox stream, consumer group, sent
markers, card pointers and dead-letter list, so either can drain the outbox),
with what Telegram needs on top:

- one lane per chat keeps that chat's messages in order while a group held
  back by its 20-a-minute limit does not hold back any other chat;
- a 429 pauses every send for its ``retry_after`` and the message is sent
  again (a 429 means it was not delivered); network errors and 5xx are
  retried with exponential back-off up to ``max_attempts``; a refusal for
  good (bad request, blocked with no staff chat to fall back on) is
  dead-lettered at once and logged, never retried;
- a lease in Redis (``bot.telegram.lease``) makes one process the writer when
  several run; a sender that loses it stops its lanes at once.

"Never twice": the sent marker is checked before each send and written with
the XACK right after Telegram accepts, so a redelivered entry is skipped.
What no client can close is a crash in the instant between Telegram accepting
a message and that write: the message is sent again after the restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import warnings
from collections import deque
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from redis.asyncio import Redis
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter
from telegram.warnings import PTBDeprecationWarning

from bot.adapters.telegram import TelegramGateway, Undeliverable, chat_id_of
from bot.ports import Render
from bot.sender import CARD_TTL, SENT_TTL, Sender
from bot.storage import keys
from bot.storage.redis import payload_reply
from bot.telegram.lease import Lease
from bot.telegram.ratelimit import RateLimiter

log = logging.getLogger(__name__)

LEASE_TTL = 15.0  # a crashed sender on another machine is replaced after this
LEASE_POLL = 2.0  # seconds between tries for a lease another process holds
MAX_BACKOFF = 60.0


@dataclass
class Counts:
    """What the sender did since it started."""

    sent: int = 0
    skipped: int = 0
    retried: int = 0
    throttled: int = 0
    dropped: int = 0


class TelegramSender(Sender):
    """Drain the Telegram outbox: per-chat lanes, rate limits, retries, one writer."""

    def __init__(
        self,
        redis: Redis,
        gateway: TelegramGateway,
        limiter: RateLimiter | None = None,
        consumer: str = "telegram-sender",
        *,
        render: Render | None = None,
        max_attempts: int = 8,
        backoff: float = 1.0,
        claim_idle: float = 60.0,
        max_inflight: int = 5000,
    ) -> None:
        super().__init__(
            redis, gateway, consumer,
            render=render, retry_after=claim_idle, max_attempts=max_attempts,
        )  # fmt: skip
        self.telegram = gateway
        self.limiter = limiter or RateLimiter()
        self.backoff = backoff
        self.max_inflight = max_inflight
        self.counts = Counts()
        self._lanes: dict[str, deque[tuple[str, str, dict[str, Any]]]] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._inflight: set[str] = set()
        self.lease = Lease(redis, keys.sender_lease(gateway.platform), LEASE_TTL)
        self._holding = False

    @property
    def idle(self) -> bool:
        """Return whether nothing read from the outbox is waiting to be sent."""
        return not self._inflight

    async def run(self, stop: asyncio.Event, block_ms: int = 1000) -> None:
        """Read the outbox into the lanes until ``stop`` is set; lanes are cancelled then."""
        own_pending: str | None = "0"  # entries read before a restart come first
        last_claim = 0.0
        loop = asyncio.get_running_loop()
        try:
            while not stop.is_set():
                try:
                    if not await self._hold():
                        own_pending = "0"  # when it comes back, our pending entries first
                        await _wait(stop, LEASE_POLL)
                        continue
                    await self._ensure_group()
                    if len(self._inflight) >= self.max_inflight:
                        await _wait(stop, 0.05)
                        continue
                    if own_pending is not None:
                        own_pending = await self._read_own(own_pending)
                        continue
                    if loop.time() - last_claim > self.retry_after / 2:
                        last_claim = loop.time()
                        claimed: Any = await self.redis.xautoclaim(
                            self.stream, keys.OUTBOX_GROUP, self.consumer,
                            int(self.retry_after * 1000), "0-0", 100,
                        )  # fmt: skip
                        await self._dispatch(claimed[1])
                    fresh: Any = await self.redis.xreadgroup(
                        keys.OUTBOX_GROUP, self.consumer, {self.stream: ">"},
                        count=100, block=block_ms,
                    )  # fmt: skip
                    for _, entries in fresh or []:
                        await self._dispatch(entries)
                except Exception:  # keep the one writer alive; entries stay pending
                    log.exception("outbox %s: read failed", self.stream)
                    await _wait(stop, 1.0)
        finally:
            await self._stop_lanes()
            await self.lease.release()

    async def _hold(self) -> bool:
        """Renew (or take) the lease; on losing it, stop sending what is in hand."""
        try:
            held = await self.lease.hold()
        except Exception:
            held = False  # Redis away: the lease may lapse, so send nothing until it is back
            log.exception("outbox %s: lease check failed", self.stream)
        if held != self._holding:
            self._holding = held
            if held:
                log.info("outbox %s: this process is the sender", self.stream)
            else:
                holder = await _holder(self.lease)
                log.warning("outbox %s: lease lost to %s; lanes stopped", self.stream, holder)
                await self._stop_lanes()
        return held

    async def _stop_lanes(self) -> None:
        """Cancel every lane; what they held stays pending in the outbox."""
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self._tasks.clear()
        self._lanes.clear()
        self._inflight.clear()

    async def _read_own(self, after: str) -> str | None:
        """Dispatch entries this consumer read before; return where to go on, None when done."""
        rows: Any = await self.redis.xreadgroup(
            keys.OUTBOX_GROUP, self.consumer, {self.stream: after}, count=100
        )
        entries = rows[0][1] if rows else []
        await self._dispatch(entries)
        return _text(entries[-1][0]) if entries else None

    async def _dispatch(self, entries: list[Any]) -> None:
        for raw_id, fields in entries:
            entry_id = _text(raw_id)
            if entry_id in self._inflight:
                continue
            if not fields:  # trimmed while pending
                await self.redis.xack(self.stream, keys.OUTBOX_GROUP, entry_id)
                continue
            key = _text(_field(fields, "key"))
            payload = json.loads(_field(fields, "payload"))
            chat = str(payload["chat"])
            self._inflight.add(entry_id)
            self._lanes.setdefault(chat, deque()).append((entry_id, key, payload))
            task = self._tasks.get(chat)
            if task is None or task.done():
                self._tasks[chat] = asyncio.create_task(self._lane(chat), name=f"lane {chat}")

    async def _lane(self, chat: str) -> None:
        lane = self._lanes[chat]
        while lane:
            entry_id, key, payload = lane.popleft()
            try:
                await self._deliver(entry_id, key, payload)
            except Exception:  # stays pending; claimed again after claim_idle
                log.exception("outbox %s: sending %s failed", self.stream, key)
            finally:
                self._inflight.discard(entry_id)
        del self._lanes[chat]
        self._tasks.pop(chat, None)

    async def _deliver(self, entry_id: str, key: str, payload: dict[str, Any]) -> None:
        if await self.redis.exists(keys.sent(key)):
            await self.redis.xack(self.stream, keys.OUTBOX_GROUP, entry_id)
            self.counts.skipped += 1
            return
        chat = str(payload["chat"])
        try:
            message = self.render(payload_reply(payload))  # the outbox holds templates, not text
        except Exception as exc:  # a template missing or broken: no retry can fix it
            await self._dead_letter(entry_id, key, exc)
            return
        attempts = 0
        while True:
            try:
                async with self.limiter.sending(chat_id_of(chat)):
                    sent = await self.telegram.deliver(
                        chat, message, payload.get("reply_to"), payload.get("ticket")
                    )
            except RetryAfter as exc:
                seconds = retry_seconds(exc)
                self.counts.throttled += 1
                log.warning("telegram: 429 for %s, all sending paused %.1f s", key, seconds)
                self.limiter.pause(seconds)
                continue
            except (Undeliverable, BadRequest, Forbidden) as exc:
                await self._dead_letter(entry_id, key, exc)
                return
            except NetworkError as exc:  # also TimedOut and every 5xx
                attempts += 1
                if attempts >= self.max_attempts:
                    await self._dead_letter(entry_id, key, exc)
                    return
                delay = min(self.backoff * 2 ** (attempts - 1), MAX_BACKOFF)
                self.counts.retried += 1
                log.warning("telegram: send of %s failed (attempt %d): %s", key, attempts, exc)
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))
                continue
            break
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(keys.sent(key), sent.message_id, ex=SENT_TTL)
        if payload.get("ticket"):
            pipe.set(keys.card(chat, sent.message_id), payload["ticket"], ex=CARD_TTL)
        pipe.xack(self.stream, keys.OUTBOX_GROUP, entry_id)
        await pipe.execute()
        self.counts.sent += 1

    async def _dead_letter(self, entry_id: str, key: str, exc: Exception) -> None:
        log.error("outbox %s: dropping %s: %s", self.stream, key, exc)
        pipe = self.redis.pipeline(transaction=True)
        pipe.rpush(f"{self.stream}:dead", key)
        pipe.xack(self.stream, keys.OUTBOX_GROUP, entry_id)
        await pipe.execute()
        self.counts.dropped += 1


def retry_seconds(exc: RetryAfter) -> float:
    """Return a 429's retry_after in seconds (without ptb's int-or-timedelta warning)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


async def _holder(lease: Lease) -> str | None:
    try:
        return await lease.holder()
    except Exception:
        return None


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


def _field(fields: Any, name: str) -> Any:
    return fields[name.encode()] if name.encode() in fields else fields[name]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
