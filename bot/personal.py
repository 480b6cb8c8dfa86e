"""What Lianhu stores about a person: export it, erase it, and erase old closed tickets.

A person is a set of accounts. Their tickets are found through the by-reporter index;
their enrolments and bindings are keyed by account; their simulator messages are found by
sender. Erasure goes through ``bot.core.personal`` (what to rewrite) and
``bot.storage.erasure`` (the guarded write), retried when a concurrent change wins.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from redis.asyncio import Redis

from bot.core.personal import ERASED, erase, ticket_export
from bot.core.ticket import Ticket, TicketEvent
from bot.ports import Clock
from bot.storage import indexes, keys
from bot.storage.archive import PLATFORMS
from bot.storage.erasure import ErasureStore
from bot.storage.raw import text_of
from bot.storage.redis import CommitStatus, RedisStore, dumps
from bot.web import keys as sim_keys
from bot.web.history import ChatMessage, Quote

DAY = 86400.0
RETENTION_BATCH = 100  # tickets per sweep, so a sweep stays short; the next one goes on
ATTEMPTS = 20  # conflicts in a row on one ticket before giving up (each is another commit)


class ErasureConflict(Exception):
    """A ticket kept changing while it was being erased; nothing of this attempt was written."""


@dataclass(frozen=True)
class SimMessage:
    """A stored simulator message, as found (``raw`` is its member in the chat's ZSET)."""

    key: str
    raw: bytes | str
    message: ChatMessage


@dataclass
class Forgotten:
    """What a forget changed (or, when not applied, would change)."""

    tickets: dict[str, int] = field(default_factory=dict)  # ticket id -> fields erased
    messages: int = 0  # simulator messages deleted: sent by them, or to them privately
    quotes: int = 0  # replies whose quote of their message was erased

    @property
    def empty(self) -> bool:
        """Return whether there was nothing to change."""
        return not (self.tickets or self.messages or self.quotes)


class PersonalData:
    """Export and erase one person's data; erase closed tickets past their retention."""

    def __init__(self, redis: Redis, clock: Clock = time.time) -> None:
        self.redis = redis
        self.store = RedisStore(redis)
        self.erasures = ErasureStore(redis)
        self.clock = clock

    async def reported(self, accounts: Collection[str]) -> list[str]:
        """Return the tickets any of ``accounts`` reported or joined, oldest first."""
        return await indexes.reported(self.redis, accounts)

    async def read(self, ticket_id: str) -> tuple[Ticket | None, list[TicketEvent]]:
        """Return a ticket and its history, read together (one script)."""
        [found] = await self.store.read([ticket_id])
        return found

    async def export(self, accounts: Sequence[str]) -> dict[str, Any]:
        """Return everything stored about ``accounts`` as JSON-ready data."""
        tickets = []
        for ticket_id in await self.reported(accounts):
            ticket, history = await self.read(ticket_id)
            if ticket is not None:
                tickets.append(ticket_export(ticket, history, accounts))
        enrolments = await self.redis.hmget(keys.ENROLMENTS, list(accounts))
        bindings = await self.redis.hmget(keys.BINDINGS, list(accounts))
        found = await self.sim_messages(accounts)
        sent = [m.message for m in found if m.message.sender in accounts]
        return {
            "accounts": list(accounts),
            "tickets": tickets,
            "enrolments": _by_account(accounts, enrolments),
            "bindings": _by_account(accounts, bindings),
            "simulator_messages": [m.to_dict() for m in sorted(sent, key=lambda m: m.at)],
        }

    async def forget(self, accounts: Collection[str], apply: bool) -> Forgotten:
        """Erase ``accounts`` from their tickets and delete their simulator messages.

        Without ``apply`` nothing is written: the result says what would change.
        """
        done = Forgotten()
        for ticket_id in await self.reported(accounts):
            if apply:
                fields = await self.erase_ticket(ticket_id, accounts, "cli")
            else:
                ticket, history = await self.read(ticket_id)
                found = erase(ticket, history, accounts, self.clock(), "cli") if ticket else None
                fields = found.fields if found else 0
            done.tickets[ticket_id] = fields or 0
        found_messages = await self.sim_messages(accounts)
        gone = [m for m in found_messages if _deleted(m.message, accounts)]
        quoted = [m for m in found_messages if not _deleted(m.message, accounts)]
        done.messages, done.quotes = len(gone), len(quoted)
        if apply and found_messages:
            pipe = self.redis.pipeline(transaction=True)
            for m in gone:
                pipe.zrem(m.key, m.raw)
            for m in quoted:  # replace the reply, same score (its id), with the quote erased
                assert m.message.quote is not None
                quote = Quote(m.message.quote.id, ERASED, ERASED, ERASED)
                pipe.zrem(m.key, m.raw)
                pipe.zadd(m.key, {dumps(replace(m.message, quote=quote).to_dict()): m.message.id})
            await pipe.execute()
        return done

    async def erase_ticket(
        self, ticket_id: str, accounts: Collection[str] | None, by: str, expired: bool = False
    ) -> int | None:
        """Erase ``accounts`` (None: every reporter) from a ticket; return how many fields.

        The ticket also leaves the by-reporter index of each erased account, and with
        ``expired`` the retention index. None when there is no such ticket.
        """
        for _ in range(ATTEMPTS):
            ticket, history = await self.read(ticket_id)
            if ticket is None:
                return None
            if accounts is None and not ticket.state.final:  # reopened since: not due
                erasure, targets = None, []
            else:
                erasure = erase(ticket, history, accounts, self.clock(), by)
                reporters = [r.account for r in ticket.reporters if r.account != ERASED]
                targets = list(reporters if accounts is None else accounts)
            unindex = [indexes.reporter(a, ticket_id) for a in targets]
            unindex += [indexes.entry(keys.CLOSED, ticket_id)] if expired else []
            status = await self.erasures.commit(ticket_id, ticket.seq, erasure, unindex)
            if status is CommitStatus.OK:
                if erasure is not None and erasure.fields:
                    # The records of sent cards (for editing them later) hold what they were
                    # rendered from, names included: the cards are no longer edited. (The
                    # keys written before decks are named, not scanned for: a SCAN of the
                    # whole keyspace for each ticket erased.)
                    stale = [keys.deck(ticket_id)]
                    stale += [keys.ticket_cards(p, ticket_id) for p in PLATFORMS]
                    stale += [keys.card_view(p, ticket_id) for p in PLATFORMS]
                    await self.redis.delete(*stale)
                return erasure.fields if erasure else 0
        raise ErasureConflict(ticket_id)

    async def expire(self, days: int, batch: int = RETENTION_BATCH) -> int:
        """Erase every reporter of tickets closed more than ``days`` ago; return how many.

        At most ``batch`` tickets a call; 0 days turns retention off.
        """
        if days <= 0:
            return 0
        cutoff = self.clock() - days * DAY
        due = await self.redis.zrangebyscore(keys.CLOSED, "-inf", cutoff, 0, batch)
        erased = 0
        for ticket_id in map(text_of, due):
            fields = await self.erase_ticket(ticket_id, None, "retention", expired=True)
            if fields is None:  # no such ticket (any more)
                await self.redis.zrem(keys.CLOSED, ticket_id)
            erased += bool(fields)
        await self.expire_dead_letters(cutoff)
        return erased

    async def expire_dead_letters(self, cutoff: float) -> int:
        """Delete inbox updates dead-lettered before ``cutoff``; return how many.

        A dead-lettered update is a resident's raw message kept for an operator to look at;
        it must not outlive the retention its ticket would have had. One dead-lettered
        before its time was recorded is given the time of this sweep.
        """
        deleted = 0
        async for key in self.redis.scan_iter(match=keys.inbox_dead("*"), count=100):
            dead = text_of(key)
            if not dead.endswith(":dead"):
                continue
            at = f"{dead}:at"
            known: Any = await self.redis.zrange(at, 0, -1)
            listed: Any = await self.redis.lrange(dead, 0, -1)
            untimed = set(listed) - set(known)
            if untimed:
                await self.redis.zadd(at, dict.fromkeys(untimed, self.clock()), nx=True)
            old: Any = await self.redis.zrangebyscore(at, "-inf", cutoff)
            if not old:
                continue
            pipe = self.redis.pipeline(transaction=True)
            for raw in old:
                pipe.lrem(dead, 0, raw)
            pipe.zrem(at, *old)
            await pipe.execute()
            deleted += len(old)
        return deleted

    async def sim_messages(self, accounts: Collection[str]) -> list[SimMessage]:
        """Return the simulator messages sent by, sent privately to, or quoting ``accounts``."""
        out = []
        async for key in self.redis.scan_iter(match=sim_keys.chat("*"), count=500):
            rows: Any = await self.redis.zrange(key, 0, -1)
            for raw in rows:
                message = ChatMessage.from_dict(json.loads(raw))
                quote = message.quote
                if _deleted(message, accounts) or (
                    quote is not None and quote.sender in accounts and quote.text != ERASED
                ):
                    out.append(SimMessage(text_of(key), raw, message))
        return out


def _deleted(message: ChatMessage, accounts: Collection[str]) -> bool:
    """Return whether forgetting ``accounts`` deletes ``message`` (theirs, or to them alone)."""
    return message.sender in accounts or message.chat in accounts


def _by_account(accounts: Sequence[str], raws: Sequence[Any]) -> dict[str, Any]:
    """Return the stored JSON values of a hash, by account, for the accounts that have one."""
    return {a: json.loads(raw) for a, raw in zip(accounts, raws, strict=True) if raw}
