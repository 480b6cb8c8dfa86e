"""What a steady soak adds to bench/scale.py: tickets that close and leave; memory by kind.

In real life a ticket is acknowledged, resolved and confirmed by its resident, and after
the retention (``LIANHU_ARCHIVE_DAYS``, 90 days) the worker archives it out of Redis. The
soak (``--close-after`` and ``--retention``, in seconds) does the same, fast:

- the closer (a process) takes each ticket the receivers opened and, through the inbox as
  any chat message arrives, has the handler of its node type ``/ack`` a third of
  ``--close-after`` after it opened, ``/resolve`` two thirds after, and its resident
  ``/confirm`` at ``--close-after`` (each step only once the one before it is in the
  ticket: the inbox may hold them in any order under load);
- the archiver (a process, as a worker's sweeper) runs ``Archive.sweep`` with the retention
  as a fraction of a day, batch after batch, into a temporary folder.

What only expires: the markers of updates, messages and deliveries keep a TTL of 7 days
(constants, not settings), so in a 10-minute soak they only grow. They are measured apart
(``EXPIRING``), with the size they level off at (rate x TTL x bytes a report), and every
other kind is shown flat or not by its slope.

Or time runs fast for them too (``--marker-ttl S``): every process of the bench gives those
markers, and the pointers the sender writes (90 days), a TTL of ``S`` seconds, as
``--retention`` stands for the 90 days before archiving. Then nothing is left to grow but
rq's deadline jobs (one a due second: none runs in the bench) and the bench's own
latencies, so ``used_memory`` itself shows whether Redis's memory levels off: whether
Redis's expiry keeps up with thousands of keys a second and gives their memory back.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio

from bot.archive import ARCHIVE_BATCH, DAY, Archive, ArchiveFiles
from bot.core.deadlines import Policy
from bot.core.org import HANDLER_ROLES, OrgTree, Person, Role, ancestors, may_act
from bot.core.ticket import Ticket, TicketState
from bot.inbox import SEEN_TTL, Inbox
from bot.live import LiveConfig
from bot.render import local_zone
from bot.sender import SENT_TTL
from bot.storage.decks import CARD_TTL
from bot.storage.redis import PROCESSED_TTL, RedisStore

OPENED = "bench:opened"  # "<committed at>,<ticket id>" pushed by the receivers, popped here
CLOSER = "bench:closer"  # the closer's counts (a hash)
ARCHIVED = "bench:archived"  # tickets the archiver moved out of Redis
PHASES = ("ack", "resolve", "confirm")
# The kinds nothing deletes: each key stays until its TTL (seconds) ends it.
EXPIRING = {
    "lianhu:update:*": SEEN_TTL,  # an update's de-duplication marker (bot.inbox)
    "lianhu:msg:*": PROCESSED_TTL,  # a handled message's marker (bot.storage.redis)
    "lianhu:sent:*": SENT_TTL,  # a delivered message's marker (bot.sender)
}


MARKER_TTL = "LIANHU_BENCH_MARKER_TTL"  # --marker-ttl, read by every process the bench starts


def shorten_markers() -> int | None:
    """In any process of the bench: give the markers of ``EXPIRING`` and the pointers the
    sender writes the TTL (seconds) in ``LIANHU_BENCH_MARKER_TTL``, when it is set; return it.

    The constants are read when a marker is written, so setting them here, before any is,
    is enough; a deck keeps its own 90 days (``bot.storage.decks.CARD_TTL``): it leaves with
    its ticket at archive. ``EXPIRING`` keeps the real TTLs, for what they level off at.
    """
    value = os.environ.get(MARKER_TTL)
    if not value:
        return None
    import bot.inbox
    import bot.sender
    import bot.storage.redis

    ttl = int(value)
    bot.inbox.SEEN_TTL = ttl  # not MAX_AGE: the updates' own dates are real
    bot.storage.redis.PROCESSED_TTL = ttl
    bot.sender.SENT_TTL = ttl
    bot.sender.CARD_TTL = ttl  # there only the pointer's TTL
    return ttl


def client(url: str) -> redis.asyncio.Redis:
    """Return a client that waits for a free connection (a closer's burst stays bounded)."""
    pool = redis.asyncio.BlockingConnectionPool.from_url(url, max_connections=50)
    return redis.asyncio.Redis(connection_pool=pool)


# -- who closes a ticket -------------------------------------------------------------------


def handlers(tree: OrgTree) -> dict[str, Person]:
    """Return, per node, the handler closest to it (the grid worker of a grid, not the street)."""
    found: dict[str, Person] = {}
    for node in tree.nodes:
        able = [
            p
            for p in tree.people.values()
            if p.role in HANDLER_ROLES and p.role is not Role.ADMIN and may_act(tree, p, node)
        ]
        if able:
            found[node] = max(able, key=lambda p: len(ancestors(tree, p.scope)))
    return found


def ready(phase: int, ticket: Ticket) -> bool:
    """Return whether ``ticket`` has taken the step before ``phase`` (its command may go)."""
    if phase == 0:
        return True
    if phase == 1:
        return not ticket.state.awaiting_ack
    return ticket.state is TicketState.RESOLVED


def command(
    phase: int, ticket: Ticket, tree: OrgTree, by_node: dict[str, Person]
) -> dict[str, Any] | None:
    """Return the inbox payload of ``phase``'s command on ``ticket``, as a person types it;
    None when its node has no handler (the ticket cannot close)."""
    verb = PHASES[phase]
    if verb == "confirm":  # the resident who reported it, in the chat they reported in
        who = ticket.reporters[0]
        account, name, chat = who.account, who.name, who.chat
    else:  # its node's handler, in the node's group
        person = by_node.get(ticket.node)
        if person is None:
            return None
        account, name = person.accounts[0], person.name
        chat = tree.nodes[ticket.node].chats[0]
    text = f"/{verb} {ticket.id}" + (" 已修好" if verb == "resolve" else "")
    return {"chat": chat, "message_id": f"{verb}{ticket.id}", "account": account, "name": name,
            "text": text}  # fmt: skip


@dataclass
class Steps:
    """The tickets waiting for each phase, oldest first: (opened at, ticket id, first try)."""

    after: float  # seconds from opening to the resident's confirmation
    waiting: tuple[deque[tuple[float, str, float]], ...] = field(
        default_factory=lambda: tuple(deque() for _ in PHASES)
    )

    def opened(self, at: float, ticket_id: str) -> None:
        self.waiting[0].append((at, ticket_id, 0.0))

    def due(self, phase: int, now: float, limit: int = 2000) -> list[tuple[float, str, float]]:
        """Take the tickets whose ``phase`` is due at ``now`` (at most ``limit``)."""
        line = self.waiting[phase]
        found: list[tuple[float, str, float]] = []
        offset = self.after * (phase + 1) / len(PHASES)
        while line and line[0][0] + offset <= now and len(found) < limit:
            found.append(line.popleft())
        return found

    def later(self, phase: int, rows: Sequence[tuple[float, str, float]]) -> None:
        """Put back tickets not ready for ``phase`` yet, in front (they are the oldest)."""
        self.waiting[phase].extendleft(reversed(rows))

    def done(self, phase: int, at: float, ticket_id: str) -> None:
        if phase + 1 < len(PHASES):
            self.waiting[phase + 1].append((at, ticket_id, 0.0))


def closer(url: str, platform: str, after: float, rules: Path, org: Path, stop: str) -> None:
    """Close every ticket the receivers open, ``after`` seconds on, until ``stop`` is set."""
    shorten_markers()
    asyncio.run(_close(url, platform, after, LiveConfig(rules, org, Policy()).tree, stop))


async def _close(url: str, platform: str, after: float, tree: OrgTree, stop: str) -> None:
    found = client(url)
    store = RedisStore(found)
    inbox = Inbox(found, platform, "bench-closer")
    by_node = handlers(tree)
    steps = Steps(after)
    counts: dict[str, int] = dict.fromkeys([*PHASES, "retried", "gone", "stuck"], 0)
    # A phase whose oldest ticket was not ready waits a second: the ones behind it are
    # younger, and reading them every 0.1 s while the inbox is behind costs the closer a core.
    paused = [0.0] * len(PHASES)
    while not await found.exists(stop):
        await asyncio.sleep(0.1)
        rows: Any = await found.lpop(OPENED, 5000)
        for row in rows or []:
            at, ticket_id = row.decode().split(",")
            steps.opened(float(at), ticket_id)
        now = time.time()
        for phase in range(len(PHASES)):
            due = steps.due(phase, now) if now >= paused[phase] else []
            if not due:
                continue
            tickets = {t.id: t for t in await store.get_many([i for _, i, _ in due])}
            puts, wait = [], []
            for at, ticket_id, first in due:
                ticket = tickets.get(ticket_id)
                if ticket is None:
                    counts["gone"] += 1
                elif not ready(phase, ticket):
                    if first and now - first > max(after, 30.0):  # refused or lost: give up
                        counts["stuck"] += 1
                        continue
                    counts["retried"] += 1
                    wait.append((at, ticket_id, first or now))
                elif (payload := command(phase, ticket, tree, by_node)) is not None:
                    payload |= {"t": time.time(), "c": 1}
                    puts.append((f"{PHASES[phase]}{ticket_id}", json.dumps(payload)))
                    steps.done(phase, at, ticket_id)
                    counts[PHASES[phase]] += 1
                else:
                    counts["stuck"] += 1
            steps.later(phase, wait)
            if wait:
                paused[phase] = now + 1.0
            for first_put in range(0, len(puts), 50):
                await asyncio.gather(
                    *(inbox.put(i, p) for i, p in puts[first_put : first_put + 50])
                )
        told: Any = counts  # redis-py's mapping type is invariant in its values
        await found.hset(CLOSER, mapping=told)
    await found.aclose()


# -- archiving -------------------------------------------------------------------------------


def archiver(url: str, folder: str, retention: float, stop: str) -> None:
    """Archive tickets closed ``retention`` seconds ago, batch after batch, until ``stop``."""
    shorten_markers()
    asyncio.run(_archive(url, Path(folder), retention, stop))


async def _archive(url: str, folder: Path, retention: float, stop: str) -> None:
    found = client(url)
    moved = Archive(found, ArchiveFiles(folder, local_zone()))
    while not await found.exists(stop):
        done = await moved.sweep(retention / DAY)
        if done:
            await found.incrby(ARCHIVED, done)
        if done < ARCHIVE_BATCH:  # caught up: the worker's sweeper runs every 30 s, this each 1 s
            await asyncio.sleep(1.0)
    await found.aclose()


# -- memory by key kind ----------------------------------------------------------------------


def kind(key: str) -> str:
    """Return a key's kind: its name with ids, accounts, chats and job ids replaced by ``*``."""
    parts = key.split(":")
    if parts[0] == "rq":
        return ":".join(parts[:2]) + (":*" if len(parts) > 2 else "")
    if len(parts) < 3:
        return key
    if parts[1] == "ticket":
        return "lianhu:ticket:*" + (":" + ":".join(parts[3:]) if len(parts) > 3 else "")
    if parts[1] in ("inbox", "outbox"):
        return ":".join(parts[:3]) + (":" + parts[3] + ":*" if len(parts) > 4 else "")
    return ":".join(parts[:2]) + ":*"


# One SCAN step inside Redis: the size and TTL of each key, except the expiring kinds
# (ARGV[4:], prefixes), only counted there, and the size of every ARGV[3]th of them summed:
# they are most of the keys, and sending each name back to be classified, or taking the
# MEMORY USAGE of each, held Redis for seconds a sample (the soak's p99 rose with it).
_SIZES = """
local step = redis.call('SCAN', ARGV[1], 'COUNT', ARGV[2])
local every = tonumber(ARGV[3])
local sums, rows = {}, {}
for i = 4, #ARGV do sums[i - 3] = {0, 0, 0} end
for _, name in ipairs(step[2]) do
  local mine = nil
  for i = 4, #ARGV do
    if string.sub(name, 1, #ARGV[i]) == ARGV[i] then mine = sums[i - 3] break end
  end
  if mine then
    mine[2] = mine[2] + 1
    if (mine[2] - 1) % every == 0 then
      mine[1] = mine[1] + (redis.call('MEMORY', 'USAGE', name, 'SAMPLES', '0') or 0)
      mine[3] = mine[3] + 1
    end
  else
    table.insert(rows, name)
    table.insert(rows, redis.call('MEMORY', 'USAGE', name, 'SAMPLES', '0') or 0)
    table.insert(rows, redis.call('TTL', name))
  end
end
return {step[1], sums, rows}
"""
SAMPLED = 16  # one expiring key in this many is sized (they are alike: markers of one shape)


async def sizes(found: redis.asyncio.Redis) -> dict[str, list[int]]:
    """Return, per key kind: bytes (MEMORY USAGE), keys, keys without a TTL; the expiring
    kinds' bytes from one key in SAMPLED, times their count."""
    step = found.register_script(_SIZES)
    prefixes = [name.removesuffix("*") for name in EXPIRING]
    by: dict[str, list[int]] = {name: [0, 0, 0] for name in EXPIRING}
    sampled = {name: [0, 0] for name in EXPIRING}  # kind -> [bytes of the keys sized, how many]
    cursor = b"0"
    while True:
        cursor, sums, rows = await step(args=[cursor, 1000, SAMPLED, *prefixes])
        for name, (size, count, sized) in zip(EXPIRING, sums, strict=True):
            sampled[name] = [sampled[name][0] + size, sampled[name][1] + sized]
            by[name][1] += count
        for first in range(0, len(rows), 3):
            name, size, ttl = rows[first : first + 3]
            row = by.setdefault(kind(name.decode()), [0, 0, 0])
            row[0] += size
            row[1] += 1
            row[2] += ttl == -1
        if cursor in (b"0", 0, "0"):
            for name, (size, sized) in sampled.items():
                by[name][0] = round(size * by[name][1] / sized) if sized else 0
            return {name: row for name, row in by.items() if row[1]}


def slope(samples: Sequence[tuple[float, float]]) -> float:
    """Return the least-squares slope of (seconds, bytes) samples, in bytes a minute."""
    if len(samples) < 2:
        return float("nan")
    xs, ys = [t for t, _ in samples], [float(b) for _, b in samples]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return 60 * sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den


def slopes(
    samples: Sequence[tuple[float, dict[str, list[int]]]], since: float, until: float
) -> dict[str, float]:
    """Return each kind's slope (bytes a minute) over the samples taken in [since, until]."""
    steady = [(at, by) for at, by in samples if since <= at <= until]
    names = {name for _, by in steady for name in by}
    return {
        name: slope([(at, by.get(name, [0])[0]) for at, by in steady]) for name in sorted(names)
    }


def plateau(per_minute: float, rate: float, ttl: float) -> tuple[float, float]:
    """Return (bytes a report, bytes held once the TTL ends as many as arrive) of an expiring
    kind growing ``per_minute`` at ``rate`` reports a second."""
    per_report = per_minute / 60 / rate if rate else float("nan")
    return per_report, per_report * rate * ttl


# The kinds that are neither a ticket's keys nor left to expire, each bounded otherwise.
POINTERS = "lianhu:cardsin:*"  # the pointers from sent messages to their tickets
GROUPS = (
    (
        POINTERS,
        "pointers: a sent card's leaves with its ticket, a notice's (acknowledged, "
        "resolved, closed) stays until its 90-day TTL",
    ),
    ("lianhu:outbox:", "outbox: undelivered backlog (how far the one sender is behind)"),
    ("lianhu:classified", "capped: the replay log keeps its newest 50,000 (bot.storage.learning)"),
    ("rq:", "deadline jobs: one per due second, run and removed by a worker (none here)"),
    ("bench:", "the bench's own (latencies, counts)"),
)
HOT = "hot: tickets and what leaves with them (records, events, indexes, decks)"
EXPIRES = "expiring: the 7-day markers (update, msg, sent)"


def group(name: str) -> str:
    """Return the group a key kind is judged in (flat, expiring, or bounded otherwise)."""
    if name in EXPIRING:
        return EXPIRES
    return next((label for prefix, label in GROUPS if name.startswith(prefix)), HOT)


def steady_report(
    samples: Sequence[tuple[float, dict[str, list[int]]]],
    used: Sequence[tuple[float, float]],
    since: float,
    until: float,
    rate: float,
    say: Callable[[str], None] = print,
    marker_ttl: float | None = None,
) -> dict[str, float]:
    """Print the slopes of the steady part by kind and by group, and what the expiring kinds
    level off at; return the slopes of the kinds, the groups and ``used_memory``.

    ``marker_ttl``: the TTL the markers and pointers had in this run (``--marker-ttl``), so
    that they are level here: what they hold a report is their size over rate x that TTL.
    """
    found = slopes(samples, since, until)
    last = max((s for s in samples if s[0] <= until), key=lambda s: s[0], default=(0.0, {}))[1]
    count = sum(1 for at, _ in samples if since <= at <= until)
    say(f"  steady part t={since:.0f}-{until:.0f} s: slopes by key kind (least squares over "
        f"{count} samples of MEMORY USAGE; bytes a minute):")  # fmt: skip
    say(f"    {'kind':<34} {'B/min':>12} {'bytes at the end':>16} {'keys':>10}")
    for label in (HOT, EXPIRES, *(label for _, label in GROUPS)):
        names = sorted((n for n in found if group(n) == label), key=lambda n: -abs(found[n]))
        if not names:
            continue
        total = sum(found[n] for n in names)
        size = sum(last.get(n, [0])[0] for n in names)
        say(f"    = {label}")
        say(f"      {'(sum)':<32} {total:12,.0f} {size:16,}")
        for name in names:
            size, keys_now = last.get(name, [0, 0])[:2]
            say(f"      {name:<32} {found[name]:12,.0f} {size:16,} {keys_now:10,}")
        found[f"= {label.split(':')[0]}"] = total
    found["= used_memory"] = slope([(at, b) for at, b in used if since <= at <= until])
    keyed = sum(v for k, v in found.items() if not k.startswith("="))
    say(f"    used_memory {found['= used_memory']:,.0f} B/min; less every key's MEMORY USAGE: "
        f"{found['= used_memory'] - keyed:,.0f} B/min (the keyspace's hash tables, which grow "
        "with the key count, the expiring keys' mostly; buffers)")  # fmt: skip
    if marker_ttl:
        own = [v for k, v in found.items() if k.startswith(("= the bench", "= deadline jobs"))]
        say(f"    used_memory less the bench's own keys and rq's deadline jobs (none runs "
            f"here): {found['= used_memory'] - sum(own):,.0f} B/min")  # fmt: skip
    for name, ttl in [*EXPIRING.items(), (POINTERS, CARD_TTL)]:
        per_report, held = plateau(found.get(name, 0.0), rate, ttl)
        if marker_ttl:  # level already: a report's share of what is held
            per_report = last.get(name, [0])[0] / (rate * marker_ttl) if rate else float("nan")
            held = per_report * rate * ttl
        say(f"  {name}: {per_report:,.0f} B a report; levels off after {ttl / DAY:.0f} days at "
            f"{held / 1e9:,.1f} GB at {rate:g}/s, {per_report * 10_000 * ttl / DAY / 1e6:,.1f} "
            "MB at 10,000 reports a day")  # fmt: skip
    return found
