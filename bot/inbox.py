"""The durable inbox: every update is in Redis before its platform is told it arrived.

Shared by every platform (Telegram updates, WeCom callbacks), one stream each.

``put`` sets a marker on the update id if absent and appends the update to a
stream in one script (one round trip): an update delivered twice is stored
once. Only after ``put`` returns does the webhook answer 200 or the poller ask
for the next offset. ``run`` reads the stream through a consumer group and
acknowledges (and deletes) an entry only after its handler returned, that is
after the ticket work was committed; an entry whose handler failed stays
pending and its receiver tries it again after ``retry_first`` seconds, twice as
long after each failure, at most ``claim_idle`` (when the receiver itself is
gone, another claims the entry after ``claim_idle``). After
``max_attempts`` deliveries it is moved to a dead-letter list and logged, never
retried forever (an update that crashes its handler every time must not block
or loop).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from bot.storage import keys
from bot.storage.raw import text_of

log = logging.getLogger(__name__)

SEEN_TTL = 7 * 24 * 3600  # Telegram keeps an undelivered update for 24 h; WeCom retries for less
# An update older than its de-duplication marker lives could be applied twice (replayed
# after the marker expired): refuse any whose message is older than the window, less a day
# for clocks that disagree. Telegram itself never delivers one older than 24 h.
MAX_AGE = SEEN_TTL - 24 * 3600

_PUT = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  redis.call('XADD', KEYS[2], '*', 'update', ARGV[2])
  return 1
end
return 0
"""

DEAD_AFTER = 10.0  # seconds a consumer may be silent before its pending entries are taken
FORGET_AFTER = 3600.0  # seconds before a silent consumer with nothing pending is removed
# Seconds before a failed update is tried again: a handler fails mostly because Redis was
# away (a failover), and waiting for the claim of idle entries (a minute) held such an
# update for 60-90 s after Redis was back. Doubled on each failure, so an update that
# breaks its handler every time is still tried only max_attempts times over minutes.
RETRY_FIRST = 1.0

Handler = Callable[[str], Awaitable[None]]


def consumer_name() -> str:
    """Return a consumer name no other process shares: host, pid and a nonce."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Inbox:
    """One platform's inbox stream, its de-duplication markers and its consumer."""

    def __init__(
        self,
        redis: Redis,
        platform: str,
        consumer: str | None = None,
        *,
        claim_idle: float = 60.0,
        dead_after: float = DEAD_AFTER,
        concurrency: int = 32,
        max_attempts: int = 8,
        retry_first: float = RETRY_FIRST,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.redis = redis
        self.clock = clock
        self.platform = platform
        self.stream = keys.inbox(platform)
        self.consumer = consumer or consumer_name()
        self.claim_idle = claim_idle
        self.dead_after = dead_after
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.retry_first = retry_first
        self.dead = keys.inbox_dead(platform)
        self.dead_at = keys.inbox_dead_at(platform)
        self._put = redis.register_script(_PUT)
        self._inflight: set[str] = set()
        self._retry: dict[str, float] = {}  # failed entry -> when (loop time) to try it again

    async def put(self, update_id: int | str, raw: str) -> bool:
        """Store an update unless its id was seen or it is too old; return whether it was new."""
        sent = message_date(raw)
        if sent is not None and self.clock() - sent > MAX_AGE:
            log.warning(
                "inbox: refused update %s: its message is %.1f days old, older than the %d days "
                "in which a repeat is recognised (a replay?)",
                update_id, (self.clock() - sent) / 86400, MAX_AGE // 86400,
            )  # fmt: skip
            return False
        seen = keys.update_seen(self.platform, update_id)
        return bool(await self._put(keys=[seen, self.stream], args=[SEEN_TTL, raw]))

    async def ensure_group(self) -> None:
        """Create the consumer group (and the stream) if missing."""
        try:
            await self.redis.xgroup_create(self.stream, keys.INBOX_GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def pending(self) -> int:
        """Return how many stored updates are not processed yet (read or not)."""
        return int(await self.redis.xlen(self.stream))

    async def run(self, stop: asyncio.Event, handle: Handler, block_ms: int = 500) -> None:
        """Process updates until ``stop`` is set, then let those in hand finish."""
        await self.ensure_group()
        slots = asyncio.Semaphore(self.concurrency)
        tasks: set[asyncio.Task[None]] = set()
        own: str | None = "0"  # what this consumer read before a restart comes first
        loop = asyncio.get_running_loop()
        last_claim = last_reap = loop.time()
        last_beat = -self.dead_after
        while not stop.is_set():
            try:
                if loop.time() - last_beat > self.dead_after / 4:
                    await self.beat()
                    last_beat = loop.time()
                due: list[Any] = [i for i, at in self._retry.items() if at <= loop.time()]
                if own is not None:
                    rows: Any = await self.redis.xreadgroup(
                        keys.INBOX_GROUP, self.consumer, {self.stream: own}, count=100
                    )
                    entries = rows[0][1] if rows else []
                    own = text_of(entries[-1][0]) if entries else None
                elif due:
                    # XCLAIM counts a delivery, as a read does; an entry handled meanwhile
                    # (acknowledged) is no longer pending and does not come back.
                    entries = await self.redis.xclaim(
                        self.stream, keys.INBOX_GROUP, self.consumer, 0, due
                    )
                    for entry_id in due:
                        del self._retry[entry_id]
                elif loop.time() - last_reap > self.dead_after / 2:
                    last_reap = loop.time()
                    entries = await self.reap()
                elif loop.time() - last_claim > self.claim_idle / 2:
                    last_claim = loop.time()
                    claimed: Any = await self.redis.xautoclaim(
                        self.stream, keys.INBOX_GROUP, self.consumer,
                        int(self.claim_idle * 1000), "0-0", 100,
                    )  # fmt: skip
                    entries = claimed[1]
                else:
                    fresh: Any = await self.redis.xreadgroup(
                        keys.INBOX_GROUP, self.consumer, {self.stream: ">"},
                        count=100, block=block_ms,
                    )  # fmt: skip
                    entries = fresh[0][1] if fresh else []
                for raw_id, fields in entries:
                    entry_id = text_of(raw_id)
                    if entry_id in self._inflight:
                        continue
                    if not fields:
                        await self._done(entry_id)
                        continue
                    await slots.acquire()
                    self._inflight.add(entry_id)
                    task = asyncio.create_task(self._one(entry_id, fields, handle, slots))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
            except Exception:  # Redis away: keep trying, nothing is lost
                log.exception("inbox %s: read failed", self.stream)
                await asyncio.sleep(1.0)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def beat(self) -> None:
        """Say this receiver is alive for the next ``dead_after`` seconds."""
        key = keys.inbox_alive(self.platform, self.consumer)
        await self.redis.set(key, "1", px=int(self.dead_after * 1000))

    async def reap(self) -> list[Any]:
        """Claim the pending entries of receivers that stopped saying they live; return them."""
        taken: list[Any] = []
        consumers: Any = await self.redis.xinfo_consumers(self.stream, keys.INBOX_GROUP)
        for info in consumers:
            name, idle, pending = text_of(info["name"]), int(info["idle"]), int(info["pending"])
            if name == self.consumer:
                continue
            if pending == 0:
                if idle > FORGET_AFTER * 1000:
                    await self.redis.xgroup_delconsumer(self.stream, keys.INBOX_GROUP, name)
                continue
            if await self.redis.exists(keys.inbox_alive(self.platform, name)):
                continue
            rows = await self.redis.xpending_range(
                self.stream, keys.INBOX_GROUP, min="-", max="+", count=pending, consumername=name
            )
            ids: list[Any] = [row["message_id"] for row in rows]
            if ids:
                taken += await self.redis.xclaim(
                    self.stream, keys.INBOX_GROUP, self.consumer, 0, ids
                )
            log.warning("inbox %s: took %d pending updates of %s, which stopped",
                        self.stream, len(ids), name)  # fmt: skip
        return taken

    async def _one(
        self, entry_id: str, fields: Any, handle: Handler, slots: asyncio.Semaphore
    ) -> None:
        try:
            raw = fields[b"update"] if b"update" in fields else fields["update"]
            await handle(text_of(raw))
            await self._done(entry_id)
        except Exception:
            log.exception("inbox %s: update %s failed", self.stream, entry_id)
            await self._failed(entry_id, fields)
        finally:
            self._inflight.discard(entry_id)
            slots.release()

    async def _failed(self, entry_id: str, fields: Any) -> None:
        """Leave a failed entry pending for another try, or dead-letter it after the last."""
        try:
            rows = await self.redis.xpending_range(
                self.stream, keys.INBOX_GROUP, min=entry_id, max=entry_id, count=1
            )
            attempts = int(rows[0]["times_delivered"]) if rows else 1
            if attempts < self.max_attempts:
                self._try_again(entry_id, attempts)
                return
            log.error("inbox %s: update %s dead-lettered after %d attempts",
                      self.stream, entry_id, attempts)  # fmt: skip
            raw = fields[b"update"] if b"update" in fields else fields["update"]
            pipe = self.redis.pipeline(transaction=True)
            pipe.rpush(self.dead, raw)
            pipe.zadd(self.dead_at, {raw: self.clock()})  # residents' text: retention erases it
            pipe.xack(self.stream, keys.INBOX_GROUP, entry_id)
            pipe.xdel(self.stream, entry_id)
            await pipe.execute()
        except Exception:  # Redis away: the entry stays pending and is tried again
            log.exception("inbox %s: could not settle failed update %s", self.stream, entry_id)
            self._try_again(entry_id, 1)

    def _try_again(self, entry_id: str, attempts: int) -> None:
        delay = min(self.claim_idle, self.retry_first * 2 ** (attempts - 1))
        self._retry[entry_id] = asyncio.get_running_loop().time() + delay

    async def _done(self, entry_id: str) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.xack(self.stream, keys.INBOX_GROUP, entry_id)
        pipe.xdel(self.stream, entry_id)
        await pipe.execute()


def message_date(raw: str) -> float | None:
    """Return when an update's message was sent (or edited); None when it has no date.

    A button press carries the date of the card it was pressed on, however old: it is not
    judged by age (its query id is new each time, and Telegram drops it after a day).
    """
    try:
        update = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(update, dict):
        return None
    for kind in ("message", "edited_message"):
        message = update.get(kind)
        if isinstance(message, dict):
            date = message.get("edit_date") or message.get("date")
            if isinstance(date, int | float) and not isinstance(date, bool):
                return float(date)
    return None
