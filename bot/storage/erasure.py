"""Erasures on Redis: rewrite a ticket's events in place, guarded like every commit.

One Lua script moves a ticket of the old layout into its hash (as a commit does), checks
that the history is as long as when it was read (a concurrent change makes it a conflict:
reload and decide again), then rewrites the erased events (same numbers), drops a stored
snapshot (the erasure's ticket is the fold of its events), appends the ``erased`` event, drops
the ticket from the indexes that named the person, and tells the live pages — or does
nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis

from bot.core.personal import Erasure
from bot.storage import indexes, keys
from bot.storage.codec import dumps, encode_event
from bot.storage.indexes import Entry, remove_specs
from bot.storage.redis import CommitStatus

# KEYS: record, old events list, change channel, then the index keys the spec names.
# ARGV: expected length, ticket id, event ('' if none), the JSON arguments of each index_rem
# (bot.storage.indexes) dropping the ticket's entries, then number and event of each
# rewritten one.
_ERASE = (
    indexes.LUA
    + """
local record, n = KEYS[1], tonumber(ARGV[1])
if redis.call('TYPE', record)['ok'] == 'string' then
  local snapshot, old = redis.call('GET', record), redis.call('LRANGE', KEYS[2], 0, -1)
  redis.call('DEL', record, KEYS[2])
  redis.call('HSET', record, 's', snapshot)
  for i, e in ipairs(old) do redis.call('HSET', record, tostring(i), e) end
end
if redis.call('HEXISTS', record, tostring(n + 1)) == 1
  or (n > 0 and redis.call('HEXISTS', record, tostring(n)) == 0) then
  return 'conflict'
end
for i = 5, #ARGV, 2 do redis.call('HSET', record, ARGV[i], ARGV[i + 1]) end
if ARGV[3] ~= '' then
  redis.call('HDEL', record, 's')
  redis.call('HSET', record, tostring(n + 1), ARGV[3])
end
for _, r in ipairs(cjson.decode(ARGV[4])) do
  index_rem(KEYS[r[1]], r[2], KEYS[r[3]], r[4], r[5])
end
if ARGV[3] ~= '' then redis.call('PUBLISH', KEYS[3], ARGV[2]) end
return 'ok'
"""
)


class ErasureStore:
    """Commit erasures of tickets."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._erase = redis.register_script(_ERASE)

    async def commit(
        self, ticket_id: str, length: int, erasure: Erasure | None, unindex: Sequence[Entry]
    ) -> CommitStatus:
        """Write ``erasure`` (if any) and drop the ticket's entries ``unindex``, if still current.

        Current: the history is still ``length`` events long, as when the ticket was read.
        """
        names = {keys.ticket(ticket_id): 1, keys.events(ticket_id): 2, keys.TICKET_CHANGES: 3}

        def key(name: str) -> int:
            return names.setdefault(name, len(names) + 1)

        removals = [r for e in unindex for r in remove_specs(e, key)]
        args: list[str | int] = [length, ticket_id, "", dumps(removals)]
        if erasure is not None:
            args[2] = encode_event(erasure.event)
            for _, event in sorted(erasure.rewritten.items()):
                args += [str(event.seq), encode_event(event)]
        status = await self._erase(keys=list(names), args=args)
        return CommitStatus(status.decode() if isinstance(status, bytes) else str(status))
