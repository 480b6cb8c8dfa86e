"""The one writer to Telegram: the outbox drained through per-chat lanes behind a rate limiter.

Built on ``bot.sender.Sender`` (the same outbox stream, consumer group, sent
markers, card pointers and dead-letter list, so either can drain the outbox),
with what Telegram needs on top:

- one lane per chat keeps that chat's messages in order while a group held
  back by its 20-a-minute limit does not hold back any other chat; within a
  lane, urgent entries (emergency replies and cards, ``priority`` > 0) go
  first, and the rate limiter lets them ahead of other chats' sends;
- a 429 pauses every send for its ``retry_after`` and the message is sent
  again (a 429 means it was not delivered); network errors and 5xx are
  retried with exponential back-off up to ``max_attempts``; a refusal for
  good (bad request, blocked with no staff chat to fall back on) is
  dead-lettered at once and logged, never retried;
- a lease in Redis (``bot.telegram.lease``) makes one process the writer when
  several run; a sender that loses it stops its lanes at once.

"Never twice": the sent marker is checked before each send and written with
the XACK and XDEL right after Telegram accepts, so a redelivered entry is
skipped. When Redis is away (stopped, restarting) that write waits in memory
(``bot.sender``): every send is held until Redis answers and the marker is
written, and a request already at Telegram is never cancelled, not even when
the lease is lost or the sender stops. What no client can close is a crash of
this process in the instant between Telegram accepting a message and that
write: the message is sent again after the restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import json
import logging
import random
import warnings
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from redis.asyncio import Redis
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter
from telegram.warnings import PTBDeprecationWarning

from bot.adapters.telegram import TelegramGateway, Undeliverable, chat_id_of
from bot.ports import Render, Rendered
from bot.sender import (
    BACKLOG_ALERT,
    BACKLOG_CHECK,
    UNREACHABLE,
    Delivered,
    RedisUnavailable,
    Sender,
    wait,
)
from bot.storage import keys
from bot.storage.raw import text_of
from bot.storage.redis import payload_reply
from bot.telegram.lease import Lease
from bot.telegram.ratelimit import RateLimiter

log = logging.getLogger(__name__)

LEASE_TTL = 15.0  # a crashed sender on another machine is replaced after this
LEASE_POLL = 2.0  # seconds between tries for a lease another process holds
MAX_BACKOFF = 60.0
SEND_GRACE = 15.0  # seconds a request already at Telegram may take to finish when lanes stop
FLUSH_GRACE = 5.0  # seconds to keep trying to write sent markers on the way out

# A lane is a heap of (-priority, arrival, entry id, key, payload): urgent first, else in order.
Lane = list[tuple[int, int, str, str, dict[str, Any]]]


@dataclass
class Counts:
    """What the sender did since it started."""

    sent: int = 0
    skipped: int = 0
    retried: int = 0
    throttled: int = 0
    dropped: int = 0
    edited: int = 0  # edit entries settled (each may edit several cards)


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
        backlog_alert: int = BACKLOG_ALERT,
    ) -> None:
        super().__init__(
            redis, gateway, consumer, render=render, retry_after=claim_idle,
            max_attempts=max_attempts, backlog_alert=backlog_alert,
        )  # fmt: skip
        self.telegram = gateway
        self.limiter = limiter or RateLimiter()
        self.backoff = backoff
        self.max_inflight = max_inflight
        self.counts = Counts()
        self._lanes: dict[str, Lane] = {}
        self._order = itertools.count()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._inflight: set[str] = set()
        self._sending: set[str] = set()  # chats with a request at Telegram right now
        self._redis_up = asyncio.Event()  # cleared while Redis is away: nothing is sent then
        self._redis_up.set()
        self._recovery: asyncio.Task[None] | None = None
        self.lease = Lease(redis, keys.sender_lease(gateway.platform), LEASE_TTL)
        self._holding = False

    @property
    def idle(self) -> bool:
        """Return whether nothing read from the outbox waits to be sent or marked sent."""
        return not self._inflight and not self._unmarked

    async def run(self, stop: asyncio.Event, block_ms: int = 1000) -> None:
        """Read the outbox into the lanes until ``stop`` is set; lanes are cancelled then."""
        own_pending: str | None = "0"  # entries read before a restart come first
        last_claim = last_check = 0.0
        loop = asyncio.get_running_loop()
        try:
            while not stop.is_set():
                try:
                    if not self._redis_up.is_set():  # _recover brings it back
                        own_pending = "0"  # a read whose answer was lost left entries pending
                        await wait(stop, 0.05)
                        continue
                    if not await self._hold():
                        own_pending = "0"  # when it comes back, our pending entries first
                        await wait(stop, LEASE_POLL)
                        continue
                    await self._ensure_group()
                    if loop.time() - last_check > BACKLOG_CHECK:
                        last_check = loop.time()
                        await self.check_backlog()
                    if len(self._inflight) >= self.max_inflight:
                        await wait(stop, 0.05)
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
                except UNREACHABLE as exc:
                    self._redis_away(exc)
                except Exception:  # keep the one writer alive; entries stay pending
                    log.exception("outbox %s: read failed", self.stream)
                    own_pending = "0"
                    await wait(stop, 1.0)
        finally:
            await self._stop_lanes()
            await self._last_flush()
            if self._recovery is not None:
                self._recovery.cancel()
                await asyncio.gather(self._recovery, return_exceptions=True)
            with contextlib.suppress(*UNREACHABLE):  # it expires on its own
                await self.lease.release()

    def _redis_away(self, exc: BaseException) -> None:
        """Hold every send until Redis answers again and the markers it owes are written."""
        if self._redis_up.is_set():
            log.warning("outbox %s: Redis away (%s); sending held", self.stream, exc)
            self._redis_up.clear()
        if self._recovery is None or self._recovery.done():
            self._recovery = asyncio.create_task(self._recover(), name="sender recovery")

    async def _recover(self) -> None:
        """Wait for Redis, write the markers it missed, check the lease, then let sends go."""
        delay = 0.02
        while True:
            try:
                if await self._flush_marks():
                    held = await self.lease.hold()
                    if not self._unmarked:  # none added by a lane while the lease was asked
                        break
                    continue
            except UNREACHABLE:
                pass
            except Exception:  # not a missing Redis: say so, and keep trying
                log.exception("outbox %s: recovery failed", self.stream)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
        if not held and self._holding:  # another process took over while Redis was away
            self._holding = False
            log.warning("outbox %s: lease lost while Redis was away; lanes stopped", self.stream)
            await self._stop_lanes()
        log.info("outbox %s: Redis back; sending again", self.stream)
        self._redis_up.set()

    async def _last_flush(self) -> None:
        """Try a little longer to write markers Redis did not take; say so when it never does."""
        loop = asyncio.get_running_loop()
        end = loop.time() + FLUSH_GRACE
        while self._unmarked and loop.time() < end:
            if await self._flush_marks():
                return
            await asyncio.sleep(0.1)
        if self._unmarked:
            log.error(
                "outbox %s: stopping with %d sent messages not marked sent (Redis away): "
                "they will be sent again: %s",
                self.stream, len(self._unmarked), sorted(d.key for d in self._unmarked.values()),
            )  # fmt: skip

    async def _hold(self) -> bool:
        """Renew (or take) the lease; on losing it, stop sending what is in hand."""
        try:
            held = await self.lease.hold()
        except UNREACHABLE:
            raise  # Redis away: sends are held (not lanes stopped) until it is back
        except Exception:
            held = False
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
        """Stop every lane; what they held stays pending in the outbox.

        A lane whose request is at Telegram finishes it (and its marker); cancelling it
        would lose whether the message was delivered, and it would be sent again.
        """
        for lane in self._lanes.values():
            lane.clear()
        tasks = dict(self._tasks)
        for chat, task in tasks.items():
            if chat not in self._sending:
                task.cancel()
        if tasks:
            _, late = await asyncio.wait(tasks.values(), timeout=SEND_GRACE)
            for task in late:
                log.error("outbox %s: %s still sending after %.0f s", self.stream, task, SEND_GRACE)
                task.cancel()
            await asyncio.gather(*tasks.values(), return_exceptions=True)
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
        return text_of(entries[-1][0]) if entries else None

    async def _dispatch(self, entries: list[Any]) -> None:
        for raw_id, fields in entries:
            entry_id = text_of(raw_id)
            if entry_id in self._inflight:
                continue
            if not fields:
                await self._vanished(entry_id)
                continue
            key = text_of(_field(fields, "key"))
            payload = json.loads(_field(fields, "payload"))
            # A ticket's card edits have a lane of their own; each edit waits for its chat's
            # rate limit (and a card still on its way is brought up to date once sent).
            chat = str(payload.get("chat") or f"cards:{payload.get('edit_cards')}")
            rank = int(_field(fields, "priority")) if _has(fields, "priority") else 0
            self._inflight.add(entry_id)
            lane = self._lanes.setdefault(chat, [])
            heapq.heappush(lane, (-rank, next(self._order), entry_id, key, payload))
            task = self._tasks.get(chat)
            if task is None or task.done():
                self._tasks[chat] = asyncio.create_task(self._lane(chat), name=f"lane {chat}")

    async def _lane(self, chat: str) -> None:
        lane = self._lanes[chat]
        try:
            while lane:
                rank, _, entry_id, key, payload = heapq.heappop(lane)
                try:
                    await self._deliver(entry_id, key, payload, urgent=rank < 0)
                except UNREACHABLE as exc:  # stays pending; read again once Redis is back
                    self._redis_away(exc)
                except Exception:  # stays pending; claimed again after claim_idle
                    log.exception("outbox %s: sending %s failed", self.stream, key)
                finally:
                    self._inflight.discard(entry_id)
        finally:
            if self._lanes.get(chat) is lane:
                del self._lanes[chat]
            if self._tasks.get(chat) is asyncio.current_task():
                del self._tasks[chat]

    async def _deliver(
        self, entry_id: str, key: str, payload: dict[str, Any], urgent: bool = False
    ) -> None:
        await self._redis_up.wait()  # nothing new goes out while Redis is away
        if await self._done_before(entry_id, key):
            self.counts.skipped += 1
            return
        if "edit_cards" in payload:
            await self._edit_entry(entry_id, key, payload)
            return
        chat = str(payload["chat"])
        try:
            payload = await self._folded(payload)  # a card shows its ticket as it is now
            message = self.render(payload_reply(payload))  # the outbox holds templates, not text
        except UNREACHABLE:
            raise
        except Exception as exc:  # a template missing or broken: no retry can fix it
            await self._dead_letter(entry_id, key, exc)
            return
        attempts = 0
        chat_id = chat_id_of(chat)
        while True:
            await self._redis_up.wait()  # a retry too: its marker could not be written now
            await self.limiter.acquire(chat_id, urgent)
            self._sending.add(chat)  # from here on this lane is not cancelled (_stop_lanes)
            try:
                sent = await self.telegram.deliver(
                    chat, message, payload.get("reply_to"), payload.get("ticket")
                )
                failure: Exception | None = None
            except Exception as exc:
                failure = exc
            finally:
                self._sending.discard(chat)
                self.limiter.finish(chat_id, self.limiter.clock())
            if failure is None:
                break
            try:
                raise failure
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
        self.counts.sent += 1
        done = self._done(key, payload, str(sent.message_id), message)
        if not await self._delivered_now(entry_id, done):
            self._redis_away(RedisUnavailable(f"the marker of {key} was not written"))
            return
        await self._card_sent(done)

    async def _edit_entry(self, entry_id: str, key: str, payload: dict[str, Any]) -> None:
        """Bring a ticket's sent cards to the view the entry carries; settle it once done."""
        try:
            await self._edit_cards(payload)
        except UNREACHABLE:
            raise
        except Exception as exc:  # not settled: claimed again after claim_idle
            log.warning("telegram: card edits of %s failed: %s", key, exc)
            return
        self.counts.edited += 1
        done = Delivered(key, "", "", None)
        if not await self._delivered_now(entry_id, done):
            self._redis_away(RedisUnavailable(f"the marker of {key} was not written"))

    async def _edit(
        self, chat: str, message_id: str, message: Rendered, payload: dict[str, Any]
    ) -> None:
        """Edit one card behind the rate limiter: a 429 waits and tries again, errors retry."""
        chat_id, attempts = chat_id_of(chat), 0
        while True:
            await self._redis_up.wait()
            await self.limiter.acquire(chat_id, False)
            try:
                await self.telegram.edit(chat, message_id, message)
                return
            except RetryAfter as exc:
                seconds = retry_seconds(exc)
                self.counts.throttled += 1
                log.warning("telegram: 429 editing %s, paused %.1f s", message_id, seconds)
                self.limiter.pause(seconds)
            except (BadRequest, Forbidden) as exc:  # deleted, too old, bot removed: give it up
                log.warning("telegram: card %s in %s not edited: %s", message_id, chat, exc.message)
                return
            except NetworkError as exc:
                attempts += 1
                if attempts >= self.max_attempts:
                    raise
                delay = min(self.backoff * 2 ** (attempts - 1), MAX_BACKOFF)
                log.warning("telegram: edit of %s failed (%d): %s", message_id, attempts, exc)
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            finally:
                self.limiter.finish(chat_id, self.limiter.clock())

    async def _dead_letter(self, entry_id: str, key: str, exc: Exception) -> None:
        await super()._dead_letter(entry_id, key, exc)
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


def _has(fields: Any, name: str) -> bool:
    return name.encode() in fields or name in fields


def _field(fields: Any, name: str) -> Any:
    return fields[name.encode()] if name.encode() in fields else fields[name]
