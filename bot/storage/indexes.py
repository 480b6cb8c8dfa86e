"""Where a ticket's entries in the indexes that grow with every ticket live, and how they are read.

Four indexes have an entry per ticket: every ticket (``keys.TICKETS``), the deadline each
ticket owes (``keys.DEADLINES``), the tickets of each reporter (``keys.by_reporter``) and the
open tickets of each node (``keys.active_at``). As one big ZSET each (a skiplist and a hash
table, ~100 B an entry), or a ZSET per account (~100 B of key and header for an entry or two),
they cost ~440 B a ticket. Here they are small ZSETs that stay listpacks (~10-25 B an entry):

- tickets and deadlines in buckets of ``keys.BUCKET`` consecutive ticket ids, each bucket
  listed in a ZSET of buckets whose score lets a reader skip it: the newest creation time
  added to it (a read of the tickets created since a time), the earliest deadline due in it
  (the sweeper reads only the buckets with something due);
- reporters in ``keys.REPORTER_BUCKETS`` ZSETs by a hash of the account, an entry per
  account and ticket, an account's entries one lexical range;
- open tickets in buckets of ticket ids for every node (``keys.queued``), an entry per node
  and ticket, and a list per node of the buckets holding its entries (``keys.queues``).

Entries written before (the old keys) are still read, and dropped with the new ones; new
entries go to buckets only. Ids that are not numbers (questions and notices have deadlines
too) stay in the old keys. Writes go through the commit scripts, with ``LUA``: a bucket and
its place in the list of buckets change in the same script as the ticket.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from bot.storage import keys
from bot.storage.raw import text_of

FIRST = "first"  # a list of buckets scored by each bucket's earliest score
NEWEST = "newest"  # a list of buckets scored by the newest score ever added to each
OWNER = "owner"  # an owner's list of the buckets holding its ``keys.pair_member`` entries
PIPELINE = 1000  # bucket reads per round trip

# Prefixed to the scripts that write indexes. ``listed`` is nil for a key of its own. The
# newest score is only raised: a bucket emptied leaves the list, one thinned keeps a score
# that may be later than its entries' (a reader reads it for nothing, never misses it).
LUA = """
local function index_add(key, score, member, listed, bucket, keep)
  redis.call('ZADD', key, score, member)
  if not listed then return end
  if keep == 'owner' then redis.call('ZADD', listed, bucket, bucket)
  elseif keep == 'first' then
    redis.call('ZADD', listed, redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2], bucket)
  else
    local newest = redis.call('ZSCORE', listed, bucket)
    if not newest or tonumber(newest) < tonumber(score) then
      redis.call('ZADD', listed, score, bucket)
    end
  end
end
local function index_rem(key, member, listed, bucket, keep)
  if redis.call('ZREM', key, member) == 0 or not listed then return end
  if keep == 'owner' then  -- the bucket leaves the owner's list with its last entry of the owner
    local owner = string.sub(member, 1, string.find(member, '\0', 1, true) - 1)
    local left = redis.call('ZRANGEBYLEX', key, '[' .. owner .. '\0', '(' .. owner .. '\1',
      'LIMIT', 0, 1)
    if #left == 0 then redis.call('ZREM', listed, bucket) end
    return
  end
  local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if #first == 0 then redis.call('ZREM', listed, bucket)
  elseif keep == 'first' then redis.call('ZADD', listed, first[2], bucket) end
end
"""


@dataclass(frozen=True)
class Entry:
    """A ticket's entry in an index: its ZSET and member, and the list of buckets naming
    that ZSET (when it is a bucket)."""

    key: str
    member: str
    listed: str = ""  # the ZSET of bucket numbers that lists ``key``; "" for a key of its own
    bucket: int = 0
    keep: str = ""  # FIRST, NEWEST or OWNER: what the list's score of the bucket is
    lexical: bool = False  # every member scores 0: an owner's entries are a lexical range
    before: tuple[str, str] | None = None  # (key, member): the same entry written before


def entry(key: str, member: str) -> Entry:
    """Return an entry in a key of its own (no buckets)."""
    return Entry(key, member)


def ticket(ticket_id: str) -> Entry:
    """Return a ticket's entry in the index of every ticket (score: created at)."""
    bucket = keys.ticket_bucket(ticket_id)
    if bucket is None:
        return Entry(keys.TICKETS, ticket_id)
    listed, before = keys.TICKET_BUCKETS, (keys.TICKETS, ticket_id)
    return Entry(keys.tickets_in(bucket), ticket_id, listed, bucket, NEWEST, before=before)


def deadline(member: str) -> Entry:
    """Return a deadline's entry (a ``keys.deadline_member``) in the sweeper's index (score:
    due)."""
    bucket = keys.ticket_bucket(keys.parse_deadline_member(member)[0])
    if bucket is None:
        return Entry(keys.DEADLINES, member)
    listed, before = keys.DEADLINE_BUCKETS, (keys.DEADLINES, member)
    return Entry(keys.deadlines_in(bucket), member, listed, bucket, FIRST, before=before)


def reporter(account: str, ticket_id: str) -> Entry:
    """Return the entry of a ticket an account reported or joined (score: 0)."""
    before = (keys.by_reporter(account), ticket_id)
    member = keys.pair_member(account, ticket_id)
    return Entry(keys.reporters(account), member, before=before, lexical=True)


def queued(node: str, ticket_id: str) -> Entry:
    """Return the entry of a ticket handlers owe work on at a node (score: 0; an id that is not
    a number: its created at, in the key written before buckets)."""
    bucket = keys.ticket_bucket(ticket_id)
    if bucket is None:
        return Entry(keys.active_at(node), ticket_id)
    member, before = keys.pair_member(node, ticket_id), (keys.active_at(node), ticket_id)
    listed = keys.queues(node)
    return Entry(keys.queued(bucket), member, listed, bucket, OWNER, before=before, lexical=True)


def add_spec(found: Entry, score: float, key: Callable[[str], int]) -> list[Any]:
    """Return the arguments of ``index_add`` (in ``LUA``), with keys as ``key`` numbers them."""
    listed = key(found.listed) if found.listed else 0
    score = 0 if found.lexical else score
    return [key(found.key), score, found.member, listed, found.bucket, found.keep]


def remove_specs(found: Entry, key: Callable[[str], int]) -> list[list[Any]]:
    """Return the arguments of each ``index_rem`` (in ``LUA``) that drops an entry, the
    entry written before included."""
    listed = key(found.listed) if found.listed else 0
    specs = [[key(found.key), found.member, listed, found.bucket, found.keep]]
    if found.before is not None:
        specs.append([key(found.before[0]), found.before[1], 0, 0, ""])
    return specs


# -- reading ------------------------------------------------------------------------------------


def id_order(ticket_id: str) -> tuple[int, int, str]:
    """Return a sort key putting ticket ids in the order they were given (numbers first)."""
    if ticket_id.isascii() and ticket_id.isdigit():
        return 0, int(ticket_id), ""
    return 1, 0, ticket_id


async def ticket_ids(redis: Redis, since: float = 0.0) -> list[str]:
    """Return every ticket created since ``since``, oldest first."""
    names = await _keys(redis, keys.TICKETS, keys.TICKET_BUCKETS, keys.tickets_in, since, "+inf")
    found: dict[str, float] = {}
    read = lambda p, n: p.zrangebyscore(n, since, "+inf", withscores=True)  # noqa: E731
    for rows in await _each(redis, names, read):
        found.update({text_of(m): float(s) for m, s in rows})
    return sorted(found, key=lambda i: (found[i], id_order(i)))


async def ticket_count(redis: Redis) -> int:
    """Return how many tickets are in Redis (archived ones are not)."""
    names = await _keys(redis, keys.TICKETS, keys.TICKET_BUCKETS, keys.tickets_in, "-inf", "+inf")
    return sum(await _each(redis, names, lambda p, n: p.zcard(n)))


async def due(redis: Redis, until: float, limit: int) -> list[tuple[str, float]]:
    """Return the deadlines (``keys.deadline_member``, due) due by ``until``, earliest first,
    at most ``limit``: the buckets with one due, and the key written before."""
    names = await _deadline_keys(redis, until)
    read = lambda p, n: p.zrangebyscore(n, "-inf", until, 0, limit, True)  # noqa: E731
    found = [(text_of(m), float(s)) for rows in await _each(redis, names, read) for m, s in rows]
    found.sort(key=lambda row: row[1])
    return found[:limit]


async def deadline_count(redis: Redis, until: float | str = "+inf") -> int:
    """Return how many deadlines are indexed (those due by ``until``)."""
    names = await _deadline_keys(redis, until)
    return sum(await _each(redis, names, lambda p, n: p.zcount(n, "-inf", until)))


async def reported(redis: Redis, accounts: Collection[str]) -> list[str]:
    """Return the tickets any of ``accounts`` reported or joined, oldest first."""
    pipe = redis.pipeline(transaction=False)
    for account in accounts:
        pipe.zrangebylex(keys.reporters(account), *keys.pair_range(account))
        pipe.zrange(keys.by_reporter(account), 0, -1)
    found: set[str] = set()
    for i, rows in enumerate(await pipe.execute()):
        if i % 2 == 0:
            found.update(keys.parse_pair_member(text_of(m))[1] for m in rows)
        else:
            found.update(text_of(m) for m in rows)
    return sorted(found, key=id_order)


async def newest_reported(redis: Redis, account: str, limit: int) -> list[str]:
    """Return the ``limit`` newest tickets an account reported or joined, newest first."""
    low, high = keys.pair_range(account)
    pipe = redis.pipeline(transaction=False)
    pipe.zrevrangebylex(keys.reporters(account), high, low, 0, limit)
    pipe.zrevrange(keys.by_reporter(account), 0, limit - 1)
    new, old = await pipe.execute()
    found = {keys.parse_pair_member(text_of(m))[1] for m in new} | {text_of(m) for m in old}
    return sorted(found, key=id_order, reverse=True)[:limit]


async def queues(redis: Redis, nodes: Iterable[str], limit: int) -> dict[str, list[str]]:
    """Return, per node, the first ``limit`` tickets handlers owe work on there, oldest first.

    A node's first ``limit`` buckets hold at least ``limit`` of its tickets (each holds one at
    least): one round trip for the lists, one for those buckets and the keys written before.
    """
    nodes = list(nodes)
    pipe = redis.pipeline(transaction=False)
    for node in nodes:
        pipe.zrange(keys.queues(node), 0, limit - 1)
        pipe.zrange(keys.active_at(node), 0, limit - 1)
    listed = await pipe.execute()
    pipe = redis.pipeline(transaction=False)
    reads = []
    for i, node in enumerate(nodes):
        for bucket in listed[2 * i]:
            pipe.zrangebylex(keys.queued(int(bucket)), *keys.pair_range(node), 0, limit)
            reads.append(node)
    found: dict[str, set[str]] = {
        n: {text_of(m) for m in listed[2 * i + 1]} for i, n in enumerate(nodes)
    }
    for node, rows in zip(reads, await pipe.execute() if reads else [], strict=True):
        found[node].update(keys.parse_pair_member(text_of(m))[1] for m in rows)
    return {n: sorted(found[n], key=id_order)[:limit] for n in nodes}


async def _keys(
    redis: Redis,
    before: str,
    listed: str,
    bucket_key: Callable[[int], str],
    low: float | str,
    high: float | str,
) -> list[str]:
    """Return the key written before buckets and the buckets a list of buckets scores from
    ``low`` to ``high``."""
    found: Any = await redis.zrangebyscore(listed, low, high)
    return [before, *(bucket_key(int(b)) for b in found)]


async def _deadline_keys(redis: Redis, until: float | str) -> list[str]:
    """Return the deadline keys that may hold a deadline due by ``until``."""
    return await _keys(
        redis, keys.DEADLINES, keys.DEADLINE_BUCKETS, keys.deadlines_in, "-inf", until
    )


async def _each(redis: Redis, names: list[str], command: Callable[[Any, str], Any]) -> list[Any]:
    """Return ``command``'s answer for each key of ``names``, PIPELINE keys a round trip."""
    out: list[Any] = []
    for first in range(0, len(names), PIPELINE):
        pipe = redis.pipeline(transaction=False)
        for name in names[first : first + PIPELINE]:
            command(pipe, name)
        out += await pipe.execute()
    return out
