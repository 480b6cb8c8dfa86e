"""Archived tickets on Redis: remove one from the hot keys, guarded; tell which were archived.

A ticket leaves Redis only after its record is safely in an archive file (bot.archive),
and only if it did not change since it was read: one Lua script checks the history's
length, marks the ticket archived (a bit per ticket id), deletes its record and drops it
from every index — or does nothing. Run twice, the second run finds nothing to do.
"""

from __future__ import annotations

from enum import StrEnum

from redis.asyncio import Redis

from bot.card_edits import split_field
from bot.core.ticket import Ticket
from bot.storage import indexes, keys
from bot.storage.codec import dumps
from bot.storage.decks import is_card
from bot.storage.raw import text_of
from bot.storage.redis import deadline_members

PLATFORMS = ("telegram", "wecom", "sim")  # whose card records a ticket may have had

# KEYS: record, old events list, archived bitmap, then the other keys the spec names.
# ARGV: history length when read, ticket id, its number (bit), then the JSON spec: "unindex",
# the arguments of each index_rem (bot.storage.indexes); "del", keys to DEL; "hdel", (hash,
# field) pairs of card pointers.
_UNHOT = (
    indexes.LUA
    + """
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
local spec = cjson.decode(ARGV[4])
for _, r in ipairs(spec.unindex) do index_rem(KEYS[r[1]], r[2], KEYS[r[3]], r[4], r[5]) end
redis.call('DEL', record, KEYS[2])
for _, k in ipairs(spec.del) do redis.call('DEL', KEYS[k]) end
for _, h in ipairs(spec.hdel) do redis.call('HDEL', KEYS[h[1]], h[2]) end
return 'ok'
"""
)


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
        found = [indexes.ticket(ticket.id), *map(indexes.deadline, deadline_members(ticket))]
        found += [indexes.reporter(r.account, ticket.id) for r in ticket.reporters]
        found.append(indexes.queued(ticket.node, ticket.id))
        plain = [keys.CLOSED, *([keys.by_assignee(ticket.assignee)] if ticket.assignee else [])]
        found += [indexes.entry(key, ticket.id) for key in plain]
        # Its deck (bot.storage.decks), and the records and views written before it.
        doomed = [keys.deck(ticket.id), *(keys.ticket_cards(p, ticket.id) for p in PLATFORMS)]
        doomed += [keys.card_view(p, ticket.id) for p in PLATFORMS]
        pipe = self.redis.pipeline(transaction=False)
        for name in doomed[: 1 + len(PLATFORMS)]:
            pipe.hkeys(name)
        pointers: list[tuple[str, str]] = []
        for hash_fields in await pipe.execute():
            for raw in hash_fields:  # "chat message_id": the pointer from that card to the ticket
                if not is_card(text_of(raw)):
                    continue  # the deck's base or view
                chat, message_id = split_field(text_of(raw))
                doomed.append(keys.card(chat, message_id))
                bucket = keys.card_pointers(chat, message_id)
                if bucket is not None:
                    pointers.append((bucket, message_id))
        names = {keys.ticket(ticket.id): 1, keys.events(ticket.id): 2, keys.ARCHIVED: 3}

        def key(name: str) -> int:
            return names.setdefault(name, len(names) + 1)

        spec = {
            "unindex": [r for e in found for r in indexes.remove_specs(e, key)],
            "del": [key(name) for name in doomed],
            "hdel": [[key(bucket), field] for bucket, field in pointers],
        }
        args: list[str | int] = [length, ticket.id, int(ticket.id), dumps(spec)]
        status = await self._unhot(keys=list(names), args=args)
        return Unhot(text_of(status))
