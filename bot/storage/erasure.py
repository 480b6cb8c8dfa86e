"""Erasures on Redis: rewrite a ticket's events in place, guarded like every commit.

One Lua script checks that the history is as long as when it was read (a concurrent
change makes it a conflict: reload and decide again), then rewrites the erased events
(LSET, same positions), stores the new snapshot, appends the ``erased`` event, drops the
ticket from the indexes that named the person, and tells the live pages — or does nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis

from bot.core.personal import Erasure
from bot.storage import keys
from bot.storage.codec import encode_event, encode_ticket
from bot.storage.redis import CommitStatus

# KEYS: history, snapshot, change channel, then the indexes to drop the ticket from.
# ARGV: expected length, ticket id, snapshot ('' if none), event ('' if none), then
# position and event of each rewritten one.
_ERASE = """
if redis.call('LLEN', KEYS[1]) ~= tonumber(ARGV[1]) then return 'conflict' end
for i = 5, #ARGV, 2 do redis.call('LSET', KEYS[1], tonumber(ARGV[i]), ARGV[i + 1]) end
if ARGV[4] ~= '' then
  redis.call('SET', KEYS[2], ARGV[3])
  redis.call('RPUSH', KEYS[1], ARGV[4])
end
for i = 4, #KEYS do redis.call('ZREM', KEYS[i], ARGV[2]) end
if ARGV[4] ~= '' then redis.call('PUBLISH', KEYS[3], ARGV[2]) end
return 'ok'
"""


class ErasureStore:
    """Commit erasures of tickets."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._erase = redis.register_script(_ERASE)

    async def commit(
        self, ticket_id: str, length: int, erasure: Erasure | None, unindex: Sequence[str]
    ) -> CommitStatus:
        """Write ``erasure`` (if any) and drop the ticket from ``unindex``, if still current.

        Current: the history is still ``length`` events long, as when the ticket was read.
        """
        args: list[str | int] = [length, ticket_id, "", ""]
        if erasure is not None:
            args[2:4] = [encode_ticket(erasure.after), encode_event(erasure.event)]
            for index, event in sorted(erasure.rewritten.items()):
                args += [index, encode_event(event)]
        names = [keys.events(ticket_id), keys.ticket(ticket_id), keys.TICKET_CHANGES, *unindex]
        status = await self._erase(keys=names, args=args)
        return CommitStatus(status.decode() if isinstance(status, bytes) else str(status))
