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

from bot.card_edits import CARD_FIELD_SEP
from bot.core.ticket import Ticket
from bot.storage import keys
from bot.storage.redis import deadline_members

PLATFORMS = ("telegram", "wecom", "sim")  # whose card records a ticket may have

# KEYS: record, old events list, archived bitmap, then indexes (ZREM id), then keys to DEL.
# ARGV: history length when read, ticket id, its number (bit), how many indexes, members
# of DEADLINES to drop (the last index is DEADLINES when there are any).
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
local indexes = tonumber(ARGV[4])
for i = 4, 3 + indexes do redis.call('ZREM', KEYS[i], ARGV[2]) end
for i = 5, #ARGV do redis.call('ZREM', KEYS[3 + indexes], ARGV[i]) end
redis.call('DEL', record, KEYS[2])
for i = 4 + indexes, #KEYS do redis.call('DEL', KEYS[i]) end
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
        doomed = [keys.ticket_cards(p, ticket.id) for p in PLATFORMS]
        doomed += [keys.card_view(p, ticket.id) for p in PLATFORMS]
        pipe = self.redis.pipeline(transaction=False)
        for name in doomed[: len(PLATFORMS)]:
            pipe.hkeys(name)
        for fields in await pipe.execute():
            for raw in fields:  # "chat message_id": the pointer from that card to the ticket
                chat, _, message_id = _text(raw).rpartition(CARD_FIELD_SEP)
                doomed.append(keys.card(chat, message_id))
        names = [keys.ticket(ticket.id), keys.events(ticket.id), keys.ARCHIVED]
        names += indexes  # DEADLINES, when present, is the last index
        args: list[Any] = [length, ticket.id, int(ticket.id), len(indexes), *owed]
        status = await self._unhot(keys=[*names, *doomed], args=args)
        return Unhot(_text(status))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
