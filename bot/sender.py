"""Drain a platform's outbox into its ChatGateway: rendered, retried, never sent twice.

Entries hold replies as templates with their parameters (bot.storage.redis.reply_payload);
the sender renders each in its recipient's language just before sending.

Entries are read through a consumer group. Before sending, the entry's sent
marker is checked; after the platform accepts a message, the marker, the
card pointer (so replies to the card reach its ticket), the XACK and the XDEL
are written in one transaction. A failed send stays pending and is claimed again
after a back-off; after ``max_attempts`` it is dropped to a dead-letter list
and logged, never retried forever.

Exactly once through a Redis restart: a message the platform accepted is
remembered in memory before its marker is written. When Redis does not answer
that write, the sender keeps the fact, sends nothing new, and writes the marker
again until Redis answers; an entry read again meanwhile (or after Redis lost
its last second of writes) is found in memory and not sent again.

Cards are kept true as their tickets move on (``bot.card_edits``): an edit entry
is settled like a send, exactly once, through the gateway's ``edit`` where the
platform has one (``bot.ports.CardEditor``) and skipped where it has not.

The stream is never trimmed: a delivered entry is deleted, an undelivered one
stays until it is delivered or dead-lettered, and a backlog of more than
``backlog_alert`` entries is logged as an error once each time it crosses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import weakref
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import BusyLoadingError, ReadOnlyError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bot.card_edits import card_field, digest, split_field, subject, viewed
from bot.ports import CardEditor, ChatGateway, Render, Rendered
from bot.render import Renderer
from bot.storage import keys
from bot.storage.decks import ADD_ARGS, ADD_CARD, AGAIN, CARD_TTL, Decks, pointer
from bot.storage.raw import text_of
from bot.storage.redis import payload_reply

log = logging.getLogger(__name__)

SENT_TTL = 7 * 24 * 3600
REMEMBERED = 50_000  # delivered keys kept in memory: covers Redis losing its last writes
# the newest of them keep their card's record too (a payload is kilobytes in memory: 50,000
# of them held 400 MB): a marker lost with Redis's last second is written again with it
CARDS_REMEMBERED = 5_000
BACKLOG_ALERT = 10_000  # undelivered entries before the sender logs an error
BACKLOG_CHECK = 5.0  # seconds between looks at the backlog
# Redis is away (stopped, restarting, loading its AOF, a replica now): wait and try again.
UNREACHABLE = (RedisConnectionError, RedisTimeoutError, BusyLoadingError, ReadOnlyError, OSError)

# A delivered message's record, in one script. KEYS: its sent marker, the outbox stream, its
# pointer (a HASH of a chat's pointers or a key of its own; the marker again when it has
# none), and for a card its deck's three keys (``Decks.recording``). ARGV: the message id,
# the marker's TTL, the group, the entry id, "h"/"k"/"" (the pointer: a hash's field, a key,
# none), the ticket, the pointer's TTL, and for a card ``add_card``'s arguments. Returns the
# card's ``add_card`` (the seq of its deck's view; AGAIN, with nothing written, when the deck
# needs a record not given), nil for a message that is no card.
_MARK = ADD_CARD + (
    f"""
local seq = false
if #KEYS > 3 then
  seq = add_card(KEYS[4], KEYS[5], KEYS[6], {{unpack(ARGV, 8, 7 + {ADD_ARGS})}})
  if seq == {AGAIN} then return seq end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
if ARGV[5] == 'h' then
  redis.call('HSET', KEYS[3], ARGV[1], ARGV[6])
  redis.call('EXPIRE', KEYS[3], ARGV[7])
elseif ARGV[5] == 'k' then
  redis.call('SET', KEYS[3], ARGV[6], 'EX', ARGV[7])
end
redis.call('XACK', KEYS[2], ARGV[3], ARGV[4])
redis.call('XDEL', KEYS[2], ARGV[4])
return seq
"""
)


class RedisUnavailable(Exception):
    """Redis did not answer a write the sender must make before it sends anything else."""


@dataclass(frozen=True)
class SenderStats:
    """What one drain did."""

    sent: int = 0
    skipped: int = 0  # already sent before (a redelivery)
    failed: int = 0
    dropped: int = 0


@dataclass(frozen=True)
class Delivered:
    """A message the platform accepted: what its sent marker and card pointer record."""

    key: str
    chat: str
    message_id: str
    ticket: str | None
    card: dict[str, Any] | None = None  # a card's record, kept for editing it later
    cards: str | None = None  # whose cards it is among: its ticket or question (card_edits)


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
        backlog_alert: int = BACKLOG_ALERT,
    ) -> None:
        self.redis = redis
        self.gateway = gateway
        # whether its cards can be edited: asked once (a Protocol's isinstance takes ~20 µs)
        self.edits = isinstance(gateway, CardEditor)
        self.consumer = consumer
        self.render: Render = render if render is not None else Renderer()
        self.stream = keys.outbox(gateway.platform)
        self.decks = Decks(redis, gateway.platform)
        self.retry_after = retry_after
        self.max_attempts = max_attempts
        self.backlog_alert = backlog_alert
        self._group_ready = False
        self._delivered: OrderedDict[str, Delivered] = OrderedDict()  # by key, oldest first
        self._carded: OrderedDict[str, None] = OrderedDict()  # keys whose card is kept there
        self._unmarked: dict[str, Delivered] = {}  # by entry id: markers Redis has not taken yet
        # keys of cards just recorded when no newer view was stored: nothing to check after
        self._current: OrderedDict[str, None] = OrderedDict()
        self._over_backlog = False
        self._card_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )
        self._marking = redis.register_script(_MARK)

    async def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            await self.redis.xgroup_create(self.stream, keys.OUTBOX_GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        await self._trim_delivered()
        self._group_ready = True

    async def _trim_delivered(self) -> None:
        """Delete entries acknowledged before XDEL was used (every one older than all pending)."""
        groups = await self.redis.xinfo_groups(self.stream)
        group = next((g for g in groups if text_of(g["name"]) == keys.OUTBOX_GROUP), None)
        if group is None:
            return
        ms, seq = text_of(group["last-delivered-id"]).split("-")
        upto = f"{ms}-{int(seq) + 1}"  # everything read by the group, and not pending
        pending = await self.redis.xpending(self.stream, keys.OUTBOX_GROUP)
        if pending["pending"]:
            oldest = text_of(pending["min"])
            upto = min(upto, oldest, key=lambda i: tuple(int(p) for p in i.split("-")))
        await self.redis.xtrim(self.stream, minid=upto, approximate=False)

    async def drain(self, count: int = 100, block_ms: int | None = None) -> SenderStats:
        """Send what is waiting: stale pending entries first, then new ones."""
        if not await self._flush_marks():
            raise RedisUnavailable(f"{len(self._unmarked)} sent markers not written yet")
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
        loop = asyncio.get_running_loop()
        last_check = 0.0
        while not stop.is_set():
            try:
                if loop.time() - last_check > BACKLOG_CHECK:
                    last_check = loop.time()
                    await self.check_backlog()
                await self.drain(block_ms=block_ms)
            except Exception:  # keep the one writer alive; the entry stays pending
                log.exception("outbox %s: drain failed", self.stream)
                await asyncio.sleep(1.0)
        await self._flush_marks()

    async def check_backlog(self) -> int:
        """Log an error when the undelivered entries first exceed ``backlog_alert``."""
        waiting = int(await self.redis.xlen(self.stream))  # delivered entries are deleted
        if waiting > self.backlog_alert and not self._over_backlog:
            self._over_backlog = True
            log.error(
                "outbox %s: %d messages wait to be delivered (alert at %d): is %s reachable?",
                self.stream, waiting, self.backlog_alert, self.gateway.platform,
            )  # fmt: skip
        elif waiting <= self.backlog_alert * 0.9 and self._over_backlog:
            self._over_backlog = False
            log.warning("outbox %s: backlog down to %d", self.stream, waiting)
        return waiting

    async def _handle(self, entries: list[Any]) -> SenderStats:
        stats = SenderStats()
        marked = await self._marked([text_of(_field(f, "key")) for _, f in entries if f])
        for raw_id, fields in entries:
            entry_id = text_of(raw_id)
            if not fields:
                await self._vanished(entry_id)
                continue
            key = text_of(_field(fields, "key"))
            payload = json.loads(_field(fields, "payload"))
            if await self._done_before(entry_id, key, marked.get(key)):
                stats = _add(stats, SenderStats(skipped=1))
                continue
            try:
                if "edit_cards" in payload:
                    await self._edit_cards(payload)
                    await self._settle_edits(entry_id, key)
                    stats = _add(stats, SenderStats(sent=1))
                    continue
                payload = await self._folded(payload)
                message = self.render(payload_reply(payload))
                sent = await self.gateway.send(payload["chat"], message, payload.get("reply_to"))
            except Exception as exc:
                stats = _add(stats, await self._failed(entry_id, key, exc))
                continue
            done = self._done(key, payload, str(sent.message_id), message)
            stats = _add(stats, SenderStats(sent=1))
            if not await self._delivered_now(entry_id, done):
                raise RedisUnavailable(f"sent {key}; its marker waits for Redis")
            await self._card_sent(done)
        return stats

    # -- cards kept true (bot.card_edits) ---------------------------------------------------

    def _done(
        self, key: str, payload: dict[str, Any], message_id: str, message: Rendered
    ) -> Delivered:
        """Return what a delivered message leaves: its marker, pointer and card record."""
        chat, ticket, owner = str(payload["chat"]), payload.get("ticket"), subject(payload)
        card = None
        if owner:
            card = {"payload": payload, "message_id": message_id, "digest": digest(message)}
        return Delivered(key, chat, message_id, ticket, card, owner)

    async def _folded(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Return a card's payload with its ticket's (or question's) newest view folded in."""
        owner = subject(payload)
        if owner is None:
            return payload
        return viewed(payload, await self._view(owner))

    async def _view(self, ticket: str) -> dict[str, Any] | None:
        return await self.decks.view(ticket)

    async def _edit_cards(self, payload: dict[str, Any]) -> None:
        """Store the view an edit entry carries (if newer) and bring every sent card to it."""
        ticket, view = str(payload["edit_cards"]), payload["view"]
        await self.decks.store_view(ticket, view)
        if not self.edits:
            return  # this platform cannot edit what it sent (WeCom's webhook cards)
        for field in await self.decks.fields(ticket):
            await self._sync_card(ticket, field)

    async def _settle_edits(self, entry_id: str, key: str) -> None:
        """Record an edit entry as done, exactly as a send is."""
        if not await self._delivered_now(entry_id, Delivered(key, "", "", None)):
            raise RedisUnavailable(f"edited {key}; its marker waits for Redis")

    async def _card_sent(self, done: Delivered) -> None:
        """Check a card just recorded against a view stored while it was on its way."""
        if done.card is None or not done.cards or not self.edits:
            return
        if done.key in self._current:
            del self._current[done.key]
            return
        try:
            await self._sync_card(done.cards, card_field(done.chat, done.message_id))
        except Exception:  # the ticket's pending edit entry brings it up to date later
            log.exception("outbox %s: card %s not brought up to date", self.stream, done.key)

    async def _sync_card(self, ticket: str, field: str) -> None:
        """Edit one recorded card to its ticket's view, unless it shows that already."""
        lock = self._card_locks.get(field)
        if lock is None:
            lock = self._card_locks[field] = asyncio.Lock()
        async with lock:
            found = await self.decks.card(ticket, field)
            if found is None or found[2] is None:
                return
            shown, shows, view = found
            payload = viewed(shown, view)
            if payload is shown:
                return  # it shows this version, or a later one
            message = self.render(payload_reply(payload))
            fingerprint = digest(message)
            if not (shows and fingerprint.startswith(shows)):  # stored digests may be cut
                await self._edit(shown["chat"], split_field(field)[1], message, payload)
            await self.decks.replace(ticket, field, payload, fingerprint)

    async def _edit(
        self, chat: str, message_id: str, message: Rendered, payload: dict[str, Any]
    ) -> None:
        """Edit one card (to ``payload``) through the gateway; a sender may add its limits."""
        assert isinstance(self.gateway, CardEditor)
        await self.gateway.edit(chat, message_id, message)

    # -- what was delivered: in memory first, then in Redis ------------------------------

    async def _marked(self, wanted: list[str]) -> dict[str, bool]:
        """Return whether each key not remembered as delivered has a sent marker: one round
        trip for a batch read at once, instead of one per entry (only the lease holder
        writes markers, and what it sends in this batch it remembers)."""
        unknown = [key for key in dict.fromkeys(wanted) if key not in self._delivered]
        if not unknown:
            return {}
        found = await self.redis.mget([keys.sent(key) for key in unknown])  # one command
        return {key: value is not None for key, value in zip(unknown, found, strict=True)}

    async def _done_before(self, entry_id: str, key: str, marked: bool | None = None) -> bool:
        """Return whether ``key`` was delivered already; if so, settle this entry of it.

        ``marked``: whether its sent marker was there when the batch was read (None: ask).
        """
        known = self._delivered.get(key)
        if known is not None:
            if entry_id not in self._unmarked and not await self._mark(entry_id, known):
                self._unmarked[entry_id] = known
            return True
        if marked is None:
            marked = bool(await self.redis.exists(keys.sent(key)))
        if marked:
            await self._settle(entry_id)
            return True
        return False

    async def _delivered_now(self, entry_id: str, done: Delivered) -> bool:
        """Remember an accepted message, then record it; False when Redis did not answer."""
        self._delivered[done.key] = done
        while len(self._delivered) > REMEMBERED:
            self._delivered.popitem(last=False)  # unmarked ones are also in _unmarked
        if done.card is not None:
            self._carded[done.key] = None
            while len(self._carded) > CARDS_REMEMBERED:
                old, _ = self._carded.popitem(last=False)
                kept = self._delivered.get(old)
                if kept is not None and kept.card is not None:
                    self._delivered[old] = replace(kept, card=None)  # its place kept
        if await self._mark(entry_id, done):
            return True
        self._unmarked[entry_id] = done
        log.warning("outbox %s: sent %s; Redis away, its marker is kept", self.stream, done.key)
        return False

    async def _mark(self, entry_id: str, done: Delivered) -> bool:
        """Write the sent marker, card pointer, card record, XACK and XDEL at once, in one
        script (one command, where a transaction of them was nine); False if Redis is away."""
        names = [keys.sent(done.key), self.stream]
        args: list[bytes | str | int] = [
            done.message_id, SENT_TTL, keys.OUTBOX_GROUP, entry_id, "", done.ticket or "",
            CARD_TTL,
        ]  # fmt: skip
        if done.ticket:
            where, shared = pointer(done.chat, done.message_id)
            names.append(where)
            args[4] = "h" if shared else "k"
        card = done.card if done.card is not None and done.cards else None
        try:
            if card is None or not done.cards:
                found = await self._marking(keys=names, args=args)
            else:
                names += [names[0]] * (3 - len(names))  # no pointer: the marker stands in

                async def mark(deck: list[str], record: list[bytes | str | int]) -> Any:
                    return await self._marking(keys=names + deck, args=args + record)

                field = card_field(done.chat, done.message_id)
                found = await self.decks.record(
                    done.cards, field, card["payload"], card["digest"], mark
                )
        except UNREACHABLE:
            return False
        if card is not None and found is not None:
            seq = int(found)  # the view's when the record was written (-1: unknown)
            if 0 <= seq <= int(card["payload"].get("seq") or 0):
                self._current[done.key] = None  # no view newer than the card: nothing to check
                while len(self._current) > REMEMBERED:
                    self._current.popitem(last=False)
        return True

    async def _flush_marks(self) -> bool:
        """Write the markers Redis did not take; return whether none is left.

        Until none is left: a lane whose marker failed while this one was being written adds
        its own (a copy of the list taken first missed it, and nothing wrote it until the
        process stopped: its entry stayed pending, sent again by the next lease holder).
        """
        while self._unmarked:
            entry_id, done = next(iter(self._unmarked.items()))
            if not await self._mark(entry_id, done):
                return False
            self._unmarked.pop(entry_id, None)
            log.info("outbox %s: marker of %s written after Redis came back", self.stream, done.key)
        return True

    async def _settle(self, entry_id: str) -> None:
        """Acknowledge and delete an entry that needs no send."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.xack(self.stream, keys.OUTBOX_GROUP, entry_id)
        pipe.xdel(self.stream, entry_id)
        await pipe.execute()

    async def _vanished(self, entry_id: str) -> None:
        """Acknowledge a pending entry whose content is gone (deleted by hand or trimmed)."""
        log.error("outbox %s: entry %s vanished before it was delivered", self.stream, entry_id)
        await self.redis.xack(self.stream, keys.OUTBOX_GROUP, entry_id)

    async def _failed(self, entry_id: Any, key: str, exc: Exception) -> SenderStats:
        pending = await self.redis.xpending_range(
            self.stream, keys.OUTBOX_GROUP, min=entry_id, max=entry_id, count=1
        )
        attempts = int(pending[0]["times_delivered"]) if pending else 1
        if attempts >= self.max_attempts:
            await self._dead_letter(entry_id, key, exc)
            return SenderStats(dropped=1)
        log.warning(
            "outbox %s: send of %s failed (attempt %d): %s", self.stream, key, attempts, exc
        )
        return SenderStats(failed=1)

    async def _dead_letter(self, entry_id: str, key: str, exc: Exception) -> None:
        log.error("outbox %s: dropping %s: %s", self.stream, key, exc)
        pipe = self.redis.pipeline(transaction=True)
        pipe.rpush(f"{self.stream}:dead", key)
        pipe.xack(self.stream, keys.OUTBOX_GROUP, entry_id)
        pipe.xdel(self.stream, entry_id)
        await pipe.execute()


def _add(a: SenderStats, b: SenderStats) -> SenderStats:
    return SenderStats(
        a.sent + b.sent, a.skipped + b.skipped, a.failed + b.failed, a.dropped + b.dropped
    )


def _field(fields: Any, name: str) -> Any:
    return fields[name.encode()] if name.encode() in fields else fields[name]


async def wait(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or less when ``stop`` is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
