"""Archived tickets on Redis: remove one from the hot keys, guarded; tell which were archived.

A ticket leaves Redis only after its record is safely in an archive file (bot.archive),
and only if it did not change since it was read: one Lua script checks the history's
length, marks the ticket archived (a bit per ticket id), deletes its record and drops it
from every index — or does nothing. Run twice, the second run finds nothing to do.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from redis.asyncio import Redis

from bot.card_edits import split_field
from bot.core.ticket import Ticket
from bot.storage import keys
from bot.storage.decks import is_card
from bot.storage.redis import deadline_members

PLATFORMS = ("telegram", "wecom", "sim")  # whose card records a ticket may have had

# KEYS: record, old events list, archived bitmap, then indexes (ZREM id), then keys to DEL,
# then hashes of card pointers (HDEL, one field each).
# ARGV: history length when read, ticket id, its number (bit), how many indexes, how many
# keys to DEL, how many members of DEADLINES to drop (the last index is DEADLINES when there
# are any), those members, then the fields (message ids) of the hashes of card pointers.
_UNHOT = """
local record, n = KEYS[1], tonumber(ARGV[1])
local kind = redis.call('TYPE', record)['ok']
if kind == 'none' then return 'gone' end
if kind == 'string' then
  if redis.call('LLEN', KEYS[2]) ~= n then return 'conflict' end
elseif redis.call('HEXISTS', record, tostring(n + 1)) == 1
  or redis.call('HEXISTS', record, tostring(n)) == 0 then
  return 'conflict'
end
redis.call('SETBIT', KEYS[3], tonumber(ARGV[3]), 1)
local indexes, doomed, owed = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
for i = 4, 3 + indexes do redis.call('ZREM', KEYS[i], ARGV[2]) end
for i = 7, 6 + owed do redis.call('ZREM', KEYS[3 + indexes], ARGV[i]) end
redis.call('DEL', record, KEYS[2])
local first = 4 + indexes
for i = first, first + doomed - 1 do redis.call('DEL', KEYS[i]) end
for i = first + doomed, #KEYS do
  redis.call('HDEL', KEYS[i], ARGV[7 + owed + i - first - doomed])
end
return 'ok'
"""


class Unhot(StrEnum):
    """How removing a ticket from the hot keys ended."""

    OK = "ok"
    GONE = "gone"  # no such ticket (any more): removed before
    CONFLICT = "conflict"  # it changed since it was read: left as it is


class ArchiveIndex:
    """Remove archived tickets from the hot keys (``RedisStore.archived`` reads their mark)."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._unhot = redis.register_script(_UNHOT)

    async def remove(self, ticket: Ticket, length: int) -> Unhot:
        """Remove an archived ticket from Redis if it still has ``length`` events."""
        if not ticket.id.isdigit() or len(ticket.id) > 9:
            raise ValueError(f"ticket id {ticket.id!r} is not a number: cannot mark it archived")
        indexes = [keys.TICKETS, keys.CLOSED, keys.active_at(ticket.node)]
        indexes += [keys.by_reporter(r.account) for r in ticket.reporters]
        if ticket.assignee:
            indexes.append(keys.by_assignee(ticket.assignee))
        owed = list(deadline_members(ticket))
        if owed:
            indexes.append(keys.DEADLINES)
        # Its deck (bot.storage.decks), and the records and views written before it.
        doomed = [keys.deck(ticket.id), *(keys.ticket_cards(p, ticket.id) for p in PLATFORMS)]
        doomed += [keys.card_view(p, ticket.id) for p in PLATFORMS]
        pipe = self.redis.pipeline(transaction=False)
        for name in doomed[: 1 + len(PLATFORMS)]:
            pipe.hkeys(name)
        buckets, fields = [], []
        for found in await pipe.execute():
            for raw in found:  # "chat message_id": the pointer from that card to the ticket
                if not is_card(_text(raw)):
                    continue  # the deck's base or view
                chat, message_id = split_field(_text(raw))
                doomed.append(keys.card(chat, message_id))
                bucket = keys.card_pointers(chat, message_id)
                if bucket is not None:
                    buckets.append(bucket)
                    fields.append(message_id)
        names = [keys.ticket(ticket.id), keys.events(ticket.id), keys.ARCHIVED]
        names += indexes  # DEADLINES, when present, is the last index
        args: list[Any] = [length, ticket.id, int(ticket.id), len(indexes), len(doomed)]
        args += [len(owed), *owed, *fields]
        status = await self._unhot(keys=[*names, *doomed, *buckets], args=args)
        return Unhot(_text(status))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
