"""The ticket store on Redis.

Every change is committed by one Lua script: it checks its guards (the
message was not handled yet; the ticket's history is as long as when it was
read) and then makes every write — snapshot, events, indexes, deadlines,
deadline jobs, outbox — or none. One round trip, atomic, so a crash at any point leaves
either everything or nothing, and a retry completes the work.

A ticket is one HASH (``keys.ticket``): its events under their numbers ("1", "2", ...) and,
only where the events alone do not give the ticket (an erasure, a ticket moved from the
old layout), a snapshot under "s" from which the later events are folded on. A small hash
stays a listpack (one allocation, no per-field pointers): see ``bot.redis_server``. Tickets
written before (a snapshot STRING beside an events LIST) are read as they are and moved into
the hash by the first change that touches them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from redis.asyncio import Redis

from bot.core.models import Lang, Reply
from bot.core.ticket import Ticket, TicketEvent, TicketState, evolve
from bot.ports import ScheduledJob
from bot.storage import indexes, keys
from bot.storage.codec import decode_event, decode_ticket, encode_event
from bot.storage.codec import dumps as dumps  # re-exported: one JSON form for every record
from bot.storage.decks import pointed

READ_BATCH = 500  # tickets per read script: a few ms of Redis's time, then others' turn
PROCESSED_TTL = 7 * 24 * 3600  # Telegram keeps an update 24 h; a week is ample to see a retry

_COMMIT = (
    indexes.LUA
    + """
local spec = cjson.decode(ARGV[1])
for _, m in ipairs(spec.moves) do  -- a ticket in the old layout: into one hash, unchanged
  local ticket, events = KEYS[m[1]], KEYS[m[2]]
  if redis.call('TYPE', ticket)['ok'] == 'string' then
    local snapshot, old = redis.call('GET', ticket), redis.call('LRANGE', events, 0, -1)
    redis.call('DEL', ticket, events)
    redis.call('HSET', ticket, 's', snapshot)
    for i, e in ipairs(old) do redis.call('HSET', ticket, tostring(i), e) end
  end
end
for _, g in ipairs(spec.guards) do
  if g[1] == 'absent' then
    local v = redis.call('GET', KEYS[g[2]])
    if v then return {'duplicate', v} end
  elseif g[1] == 'llen' then
    if redis.call('LLEN', KEYS[g[2]]) ~= g[3] then return {'conflict', ''} end
  elseif g[1] == 'same' then
    if (redis.call('GET', KEYS[g[2]]) or '') ~= g[3] then return {'conflict', ''} end
  elseif g[1] == 'seq' then  -- the history holds exactly g[3] events
    local n = g[3]
    if redis.call('HEXISTS', KEYS[g[2]], tostring(n + 1)) == 1
      or (n > 0 and redis.call('HEXISTS', KEYS[g[2]], tostring(n)) == 0) then
      return {'conflict', ''}
    end
  elseif g[1] == 'xlen' then
    if redis.call('XLEN', KEYS[g[2]]) ~= g[3] then return {'conflict', ''} end
  end
end
for _, op in ipairs(spec.ops) do
  local name, key = op[1], KEYS[op[2]]
  if name == 'set' then redis.call('SET', key, ARGV[op[3]])
  elseif name == 'setex' then redis.call('SET', key, op[3], 'EX', op[4])
  elseif name == 'hset' then
    local values = {}
    for i = 1, #op[3], 2 do values[i], values[i + 1] = op[3][i], ARGV[op[3][i + 1]] end
    redis.call('HSET', key, unpack(values))
  elseif name == 'rpush' then
    local values = {}
    for i, a in ipairs(op[3]) do values[i] = ARGV[a] end
    redis.call('RPUSH', key, unpack(values))
  elseif name == 'zadd' then redis.call('ZADD', key, op[3], op[4])
  elseif name == 'zrem' then redis.call('ZREM', key, op[3])
  elseif name == 'ixadd' then index_add(key, op[3], op[4], KEYS[op[5]], op[6], op[7])
  elseif name == 'ixrem' then index_rem(key, op[3], KEYS[op[4]], op[5], op[6])
  elseif name == 'zremrangebyscore' then redis.call('ZREMRANGEBYSCORE', key, op[3], op[4])
  elseif name == 'incr' then redis.call('INCR', key)
  elseif name == 'expire' then redis.call('EXPIRE', key, op[3])
  elseif name == 'xadd' then  -- never trimmed: the sender deletes what it delivered
    local fields = {'key', op[3], 'payload', ARGV[op[4]]}
    if op[5] > 0 then fields[5], fields[6] = 'priority', tostring(op[5]) end
    local pace, send = op[6], true
    if #pace > 0 then  -- a reply to a person's own message: {count, limit, period, capped, ...}
      local n = redis.call('INCR', KEYS[pace[1]])
      if n == 1 then redis.call('EXPIRE', KEYS[pace[1]], pace[3]) end
      if pace[4] == 1 and n > pace[2] then
        send = false
        if n == pace[2] + 1 then  -- the one notice of this period: slow down
          redis.call('XADD', key, '*', 'key', pace[5], 'payload', ARGV[pace[6]])
        end
      elseif pace[7] > 0 and not redis.call('SET', KEYS[pace[7]], '1', 'NX', 'EX', pace[8]) then
        send = false  -- the same answer went to this chat a moment ago
      end
    end
    if send then redis.call('XADD', key, '*', unpack(fields)) end
  elseif name == 'job' then  -- rq's unique schedule: only when no job of this id exists
    if redis.call('EXISTS', key) == 0 then
      local fields = {}  -- text inline; a number is the ARGV index of a binary value
      for i, f in ipairs(op[3]) do
        if type(f) == 'number' then fields[i] = ARGV[f] else fields[i] = f end
      end
      redis.call('HSET', key, unpack(fields))
      if op[4] > 0 then redis.call('EXPIRE', key, op[4]) end
      redis.call('ZADD', KEYS[op[5]], op[6], op[7])
      redis.call('SADD', KEYS[op[8]], op[9])
    end
  elseif name == 'publish' then redis.call('PUBLISH', key, op[3])
  elseif name == 'xdel' then redis.call('XDEL', key, unpack(op[3]))
  end
end
return {'ok', ''}
"""
)


# A handled message wins; else the candidates a report may join, their version, and how many
# notices are not over (KEYS[2], ends >= ARGV[3]): with none, a report costs no other read.
_LOOKUP = """
local done = redis.call('GET', KEYS[1])
if done then return {done, {}, '', 0} end
local notices = redis.call('ZCOUNT', KEYS[2], ARGV[3], '+inf')
if #KEYS < 3 then return {false, {}, '', notices} end
local ids = redis.call('ZRANGEBYSCORE', KEYS[3], ARGV[1], '+inf', 'LIMIT', 0, tonumber(ARGV[2]))
return {false, ids, redis.call('GET', KEYS[4]) or '', notices}
"""


# Each ticket's record as stored: KEYS are (record, old events list) pairs; a hash comes back
# as its fields and values, a ticket in the old layout as its snapshot and its events.
_READ = """
local out = {}
for i = 1, #KEYS, 2 do
  local kind = redis.call('TYPE', KEYS[i])['ok']
  if kind == 'hash' then out[#out + 1] = {'h', redis.call('HGETALL', KEYS[i])}
  elseif kind == 'string' then
    out[#out + 1] = {'s', redis.call('GET', KEYS[i]), redis.call('LRANGE', KEYS[i + 1], 0, -1)}
  else out[#out + 1] = {'n'} end
end
return out
"""


def record(ticket_id: str, row: Sequence[Any]) -> tuple[Ticket | None, list[TicketEvent]]:
    """Return the ticket and history a row of the read script holds (see ``_READ``)."""
    layout = _text(row[0])
    if layout == "s":
        return decode_ticket(row[1]), [decode_event(ticket_id, e) for e in row[2]]
    if layout != "h":
        return None, []
    flat = row[1]
    fields = {_text(flat[i]) or "": flat[i + 1] for i in range(0, len(flat), 2)}
    return fold(ticket_id, fields)


def fold(ticket_id: str, fields: Mapping[str, Any]) -> tuple[Ticket | None, list[TicketEvent]]:
    """Return the ticket and history of a ticket's hash fields (events by number, "s")."""
    numbers = sorted(int(k) for k in fields if k.isdigit())
    events = [decode_event(ticket_id, fields[str(n)]) for n in numbers]
    ticket: Ticket | None = decode_ticket(fields["s"]) if "s" in fields else None
    for event in events:
        if ticket is None or event.seq > ticket.seq:
            ticket = evolve(ticket, event)
    return ticket, events


@dataclass(frozen=True)
class Pool:
    """The open public tickets of a village a report may join: where, and as read."""

    tickets: str  # keys.recent(village)
    version: str  # keys.recent_version(village)
    read: str = ""  # the version read with the candidates: the commit fails if it moved
    window: float = 0.0  # seconds a ticket stays a candidate


class CommitStatus(StrEnum):
    """How a commit ended."""

    OK = "ok"
    DUPLICATE = "duplicate"  # the message was handled before: nothing written
    CONFLICT = "conflict"  # the ticket changed since it was read: reload and decide again


@dataclass(frozen=True)
class Pace:
    """How a reply to a person's own message is paced (decided in bot.core.pacing).

    Every such reply counts against the person's ``limit`` per ``period`` seconds.
    A ``capped`` one is not queued past the limit; the first one past it is replaced by
    ``notice`` (under ``notice_key``). ``same`` names an answer (chat and content) that
    is queued once per ``same_window`` seconds.
    """

    person: str
    limit: int
    period: int
    capped: bool
    notice_key: str
    notice: dict[str, Any]
    same: str | None = None
    same_window: int = 0


@dataclass(frozen=True)
class Record:
    """A small record written with a commit (a question asked, an answer to it), with its life."""

    key: str
    value: str
    ttl: int  # seconds


@dataclass(frozen=True)
class Extra:
    """Writes beside a ticket's in one commit: a question's record, history and deadline.

    ``absent`` keys must not exist (else the commit is a duplicate, with their value);
    ``history`` is (list key, its length when read, entries to append): a conflict when
    the length moved on; ``deadlines`` maps DEADLINES members to a due time (None: drop);
    ``zsets`` are (index key, member, score) to add (a score of None: remove). A record
    with a ttl of 0 is kept for good.
    """

    absent: tuple[str, ...] = ()
    history: tuple[str, int, tuple[str, ...]] | None = None
    records: tuple[Record, ...] = ()
    deadlines: Mapping[str, float | None] = field(default_factory=dict)
    zsets: tuple[tuple[str, str, float | None], ...] = ()
    # (stream, its length when read, entry ids): a conflict unless the length is the same,
    # then those entries are deleted (held cards released as one summary)
    drained: tuple[str, int, tuple[str, ...]] | None = None


@dataclass(frozen=True)
class Change:
    """The arguments of one commit (see ``RedisStore.commit``), as ``commit_many`` takes them."""

    before: Ticket | None = None
    after: Ticket | None = None
    events: Sequence[TicketEvent] = ()
    outbox: Sequence[OutboxEntry] = ()
    jobs: Sequence[ScheduledJob] = ()
    extra: Extra | None = None
    message_key: str | None = None
    pool: Pool | None = None
    linked: Sequence[tuple[Ticket, Ticket, Sequence[TicketEvent]]] = ()


@dataclass(frozen=True)
class OutboxEntry:
    """A reply waiting for the sender of its platform (see reply_payload)."""

    platform: str
    key: str  # unique per change and recipient: the sender never sends one key twice
    payload: dict[str, Any]
    priority: int = 0  # sent ahead of everything else waiting (emergencies)
    pace: Pace | None = None


@dataclass
class _Ops:
    """Guards and writes for the commit script: keys passed as KEYS, large values as ARGV.

    ARGV[1] is the JSON spec of guards and ops; values (snapshots, events, payloads,
    rq's binary job data) follow it, so they are not escaped into the spec again.
    """

    keys: dict[str, int] = field(default_factory=dict)
    args: list[str | bytes] = field(default_factory=list)
    moves: list[list[int]] = field(default_factory=list)
    guards: list[list[Any]] = field(default_factory=list)
    ops: list[list[Any]] = field(default_factory=list)

    def key(self, name: str) -> int:
        """Return the KEYS index of ``name`` (Lua is 1-based)."""
        index = self.keys.get(name)
        if index is None:
            index = self.keys[name] = len(self.keys) + 1
        return index

    def arg(self, value: str | bytes) -> int:
        """Return the ARGV index ``value`` is passed at."""
        self.args.append(value)
        return len(self.args) + 1  # ARGV[1] is the spec

    def op(self, name: str, key: str, *args: Any) -> None:
        self.ops.append([name, self.key(key), *args])

    def index(self, entry: indexes.Entry, score: float | None, moved: bool = False) -> None:
        """Add ``entry`` to its index with ``score``; None: drop it, and as written before.

        ``moved``: a new score of an entry that may have been written before buckets, dropped
        from there (else the old key would still hold it with its old score).
        """
        if score is None:
            self.ops += [["ixrem", *spec] for spec in indexes.remove_specs(entry, self.key)]
            return
        self.ops.append(["ixadd", *indexes.add_spec(entry, score, self.key)])
        if moved and entry.before is not None:
            self.op("zrem", *entry.before)


def reply_payload(reply: Reply) -> dict[str, Any]:
    """Return a reply as the JSON-ready payload of an outbox entry."""
    return {
        "chat": reply.chat,
        "template": reply.template,
        "params": reply.params,
        "lang": reply.lang.value,
        "reply_to": reply.reply_to,
        "ticket": reply.ticket,
        "buttons": list(reply.buttons),
        "card": reply.card,
        "force_reply": reply.force_reply,
    }


def payload_reply(payload: Mapping[str, Any]) -> Reply:
    """Return the reply an outbox payload holds (the inverse of reply_payload)."""
    return Reply(
        chat=payload["chat"],
        template=payload["template"],
        params=payload["params"],
        lang=Lang(payload["lang"]),
        reply_to=payload.get("reply_to"),
        ticket=payload.get("ticket"),
        buttons=tuple(payload.get("buttons") or ()),
        card=bool(payload.get("card")),
        force_reply=payload.get("force_reply"),
    )


def deadline_members(ticket: Ticket | None) -> dict[str, float]:
    """Return the earliest deadline a ticket owes, as a DEADLINES member and its due time.

    One member per ticket (each costs ~110 B of Redis): settling the earliest deadline is a
    change of the ticket (acknowledged, escalated, flagged, resolved), and that commit
    indexes the next one. A missed acknowledgement moves the ticket on (a new stage with
    deadlines of its own) or flags it (owing none), so its resolution deadline is never
    needed while the acknowledgement is owed.
    """
    owed = _owed(ticket)
    if not owed:
        return {}
    member = min(owed, key=lambda m: owed[m])
    return {member: owed[member]}


def _owed(ticket: Ticket | None) -> dict[str, float]:
    """Return every deadline a ticket still owes, as DEADLINES members and due times."""
    if ticket is None:
        return {}
    owed: dict[str, float] = {}
    # A flagged ticket (overdue at the top, administrators told) owes no more deadline checks:
    # left in the index, its ack would look to the sweeper like a deadline whose job was lost.
    if ticket.state.awaiting_ack and ticket.ack_due is not None and not ticket.flagged:
        owed[keys.deadline_member(ticket.id, ticket.stage, "ack")] = ticket.ack_due
    if ticket.state.active and ticket.resolve_due is not None and not ticket.flagged:
        owed[keys.deadline_member(ticket.id, ticket.stage, "resolve")] = ticket.resolve_due
    if ticket.state is TicketState.RESOLVED and ticket.close_due is not None:
        owed[keys.deadline_member(ticket.id, ticket.stage, "close")] = ticket.close_due
    return owed


class RedisStore:
    """Tickets, histories, indexes, deadlines and the outbox on one Redis."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._commit = redis.register_script(_COMMIT)
        self._lookup = redis.register_script(_LOOKUP)
        self._read = redis.register_script(_READ)

    async def next_id(self) -> str:
        """Return a new short ticket id."""
        return str(await self.redis.incr(keys.TICKET_SEQ))

    async def get(self, ticket_id: str) -> Ticket | None:
        """Return a ticket as its events left it, or None."""
        [(ticket, _)] = await self.read([ticket_id])
        return ticket

    async def get_many(self, ticket_ids: Sequence[str]) -> list[Ticket]:
        """Return the tickets that exist among ``ticket_ids``, in that order."""
        return [t for t, _ in await self.read(ticket_ids) if t is not None]

    async def history(self, ticket_id: str) -> list[TicketEvent]:
        """Return every event of a ticket, oldest first."""
        [(_, events)] = await self.read([ticket_id])
        return events

    async def histories(self, ticket_ids: Sequence[str]) -> list[list[TicketEvent]]:
        """Return the events of each ticket, oldest first, in one round trip."""
        return [events for _, events in await self.read(ticket_ids)]

    async def read(
        self, ticket_ids: Sequence[str]
    ) -> list[tuple[Ticket | None, list[TicketEvent]]]:
        """Return each ticket with its history, each read whole: one round trip per
        ``READ_BATCH`` tickets, so that a long read never holds Redis for long."""
        found: list[tuple[Ticket | None, list[TicketEvent]]] = []
        for first in range(0, len(ticket_ids), READ_BATCH):
            batch = ticket_ids[first : first + READ_BATCH]
            names: list[str] = []
            for ticket_id in batch:
                names += [keys.ticket(ticket_id), keys.events(ticket_id)]
            rows = await self._read(keys=names)
            found += [record(i, row) for i, row in zip(batch, rows, strict=True)]
        return found

    async def archived(self, ticket_id: str) -> bool:
        """Return whether ``ticket_id`` left Redis for the archive files (bot.archive)."""
        if not ticket_id.isdigit() or len(ticket_id) > 9:
            return False
        return bool(await self.redis.getbit(keys.ARCHIVED, int(ticket_id)))

    async def lookup(
        self, message_key: str, pool: Pool | None, since: float, now: float, limit: int = 200
    ) -> tuple[str | None, list[str], str, int]:
        """Return (ticket of an already handled message, candidates to join, their version,
        notices not over at ``now``).

        In one round trip; the candidates are the pool's tickets opened since ``since``,
        oldest first. The count of notices lets a report skip looking for one that answers
        it when there is none, which is nearly always.
        """
        names = [keys.processed(message_key), keys.NOTICES]
        names += [pool.tickets, pool.version] if pool else []
        done, ids, version, notices = await self._lookup(keys=names, args=[since, limit, now])
        return _text(done), [_text(i) or "" for i in ids], _text(version) or "", int(notices)

    async def was_processed(self, message_key: str) -> str | None:
        """Return the value stored for a handled message, or None."""
        return _text(await self.redis.get(keys.processed(message_key)))

    async def card_ticket(self, chat: str, message_id: str) -> str | None:
        """Return the ticket of a card or notice the bot sent, or None."""
        return await pointed(self.redis, chat, message_id)

    async def ids(self, key: str, limit: int = 50) -> list[str]:
        """Return the newest ids of a ticket index."""
        return [_text(i) or "" for i in await self.redis.zrevrange(key, 0, limit - 1)]

    async def active_at(self, nodes: Iterable[str], limit: int = 50) -> list[str]:
        """Return tickets handlers owe work on at any of ``nodes``, oldest first."""
        queues = await indexes.queues(self.redis, nodes, limit)
        found = {i for ids in queues.values() for i in ids}
        return sorted(found, key=indexes.id_order)[:limit]

    async def queues(self, nodes: Iterable[str], limit: int = 500) -> dict[str, list[str]]:
        """Return, per node, the tickets handlers owe work on there, oldest first."""
        return await indexes.queues(self.redis, nodes, limit)

    async def reported(self, account: str, limit: int = 50) -> list[str]:
        """Return the newest tickets an account reported or joined, newest first."""
        return await indexes.newest_reported(self.redis, account, limit)

    async def all_ids(self, since: float = 0.0) -> list[str]:
        """Return every ticket created since ``since``, oldest first."""
        return await indexes.ticket_ids(self.redis, since)

    async def due(self, until: float, limit: int = 500) -> list[tuple[str, int, str, float]]:
        """Return deadlines due by ``until``, earliest first: (ticket, stage, kind, due)."""
        out = []
        for member, due in await indexes.due(self.redis, until, limit):
            ticket_id, stage, kind = keys.parse_deadline_member(member)
            out.append((ticket_id, stage, kind, due))
        return out

    async def forget_deadline(self, ticket_id: str, stage: int, kind: str) -> None:
        """Drop a deadline the ticket (or question, or notice) no longer owes from the index."""
        member = keys.deadline_member(ticket_id, stage, kind)
        await self.commit(None, None, extra=Extra(deadlines={member: None}))

    async def commit(
        self,
        before: Ticket | None,
        after: Ticket | None,
        events: Sequence[TicketEvent] = (),
        outbox: Sequence[OutboxEntry] = (),
        message_key: str | None = None,
        pool: Pool | None = None,
        jobs: Sequence[ScheduledJob] = (),
        linked: Sequence[tuple[Ticket, Ticket, Sequence[TicketEvent]]] = (),
        extra: Extra | None = None,
    ) -> tuple[CommitStatus, str]:
        """Write a change atomically; see the module docstring.

        ``pool`` is where a new ticket becomes a candidate for later reports to join (the
        commit fails if another ticket entered it since it was read); ``jobs`` are deadline
        jobs to store unless a job of the same id exists; ``linked`` are (before, after,
        events) of other tickets changed with this one (a link recorded on both).
        Returns the status and, for a duplicate, what the first handling stored.
        """
        change = Change(before, after, events, outbox, jobs, extra, message_key, pool, linked)
        return await self.commit_change(change)

    async def commit_change(self, change: Change) -> tuple[CommitStatus, str]:
        """Write one change atomically, as ``commit`` does with its arguments."""
        names, args = self._script(change)
        return _status(await self._commit(keys=names, args=args))

    async def commit_many(
        self, changes: Sequence[Change]
    ) -> list[tuple[CommitStatus, str] | Exception]:
        """Write several changes in one round trip: each its own commit script, atomic and
        guarded as ``commit`` alone would be, so one that conflicts leaves the others
        written. Return each one's status, or the error it met, in order."""
        if not changes:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for change in changes:
            names, args = self._script(change)
            await self._commit(keys=names, args=args, client=pipe)
        replies = await pipe.execute(raise_on_error=False)
        return [r if isinstance(r, Exception) else _status(r) for r in replies]

    def _script(self, change: Change) -> tuple[list[str], list[str | bytes]]:
        """Return the KEYS and ARGV of the commit script making a change (see ``commit``)."""
        after, pool = change.after, change.pool
        ops = _Ops()
        if change.message_key is not None:
            marker = keys.processed(change.message_key)
            ops.guards.append(["absent", ops.key(marker)])
            ops.op("setex", marker, after.id if after else "-", PROCESSED_TTL)
        if after is not None and change.events:
            self._change(ops, change.before, after, change.events)
            if pool is not None:  # opening: nobody else may have opened a candidate meanwhile
                window = max(1, int(pool.window))
                ops.guards.append(["same", ops.key(pool.version), pool.read])
                ops.op("zremrangebyscore", pool.tickets, "-inf", after.created_at - window)
                ops.op("zadd", pool.tickets, after.created_at, after.id)
                ops.op("expire", pool.tickets, window)
                ops.op("incr", pool.version)
                ops.op("expire", pool.version, window)
        for other_before, other_after, other_events in change.linked:
            self._change(ops, other_before, other_after, other_events)
        if change.extra is not None:
            _extra(ops, change.extra)
        for entry in change.outbox:
            payload = ops.arg(dumps(entry.payload))
            pace: list[Any] = []
            if entry.pace is not None:
                p = entry.pace
                pace = [ops.key(keys.pace(p.person)), p.limit, p.period, int(p.capped)]
                pace += [p.notice_key, ops.arg(dumps(p.notice))]
                pace += [ops.key(p.same), p.same_window] if p.same else [0, 0]
            stream = keys.outbox(entry.platform)
            ops.op("xadd", stream, entry.key, payload, entry.priority, pace)
        for job in change.jobs:
            # Text inline; rq's binary data as an ARGV index.
            fields = [ops.arg(v) if isinstance(v, bytes) else v for v in job.fields]
            registry, queues = ops.key(job.registry), ops.key(job.queues)
            ops.op("job", job.key, fields, job.ttl, registry, job.at, job.id, queues, job.queue)
        spec = dumps({"moves": ops.moves, "guards": ops.guards, "ops": ops.ops})
        return list(ops.keys), [spec, *ops.args]

    def _change(
        self, ops: _Ops, before: Ticket | None, after: Ticket, events: Sequence[TicketEvent]
    ) -> None:
        """Add the guard and writes of one ticket's change."""
        record = keys.ticket(after.id)
        ops.moves.append([ops.key(record), ops.key(keys.events(after.id))])
        ops.guards.append(["seq", ops.key(record), before.seq if before else 0])
        fields: list[Any] = []
        for event in events:
            fields += [str(event.seq), ops.arg(encode_event(event))]
        ops.op("hset", record, fields)
        self._indexes(ops, before, after)
        # A page told of the change reads it whole: the script runs atomically.
        ops.op("publish", keys.TICKET_CHANGES, after.id)

    @staticmethod
    def _indexes(ops: _Ops, before: Ticket | None, after: Ticket) -> None:
        if before is None:
            ops.index(indexes.ticket(after.id), after.created_at)
        if (
            before is not None
            and before.state.active
            and (before.node != after.node or not after.state.active)
        ):
            ops.index(indexes.queued(before.node, after.id), None)
        if after.state.active:
            ops.index(indexes.queued(after.node, after.id), after.created_at)
        if after.state.final and not (before and before.state.final):
            ops.op("zadd", keys.CLOSED, after.closed_at or after.updated_at, after.id)
        elif before is not None and before.state.final and not after.state.final:
            ops.op("zrem", keys.CLOSED, after.id)
        known = {r.account for r in before.reporters} if before else set()
        for reporter in after.reporters:
            if reporter.account not in known:
                ops.index(indexes.reporter(reporter.account, after.id), 0)
        old = before.assignee if before else None
        if old and old != after.assignee:
            ops.op("zrem", keys.by_assignee(old), after.id)
        if after.assignee and after.assignee != old:
            ops.op("zadd", keys.by_assignee(after.assignee), after.created_at, after.id)
        was, now = deadline_members(before), deadline_members(after)
        for member in was.keys() - now.keys():
            ops.index(indexes.deadline(member), None)
        for member, due in now.items():
            if was.get(member) != due:
                ops.index(indexes.deadline(member), due, moved=member in was)


def _extra(ops: _Ops, extra: Extra) -> None:
    """Add the guards and writes of ``extra`` to a commit."""
    for key in extra.absent:
        ops.guards.append(["absent", ops.key(key)])
    if extra.history is not None:
        key, length, entries = extra.history
        ops.guards.append(["llen", ops.key(key), length])
        if entries:
            ops.op("rpush", key, [ops.arg(e) for e in entries])
    for record in extra.records:
        ops.op("set", record.key, ops.arg(record.value))
        if record.ttl > 0:
            ops.op("expire", record.key, record.ttl)
    if extra.history is not None and extra.records and all(r.ttl > 0 for r in extra.records):
        ops.op("expire", extra.history[0], max(r.ttl for r in extra.records))
    if extra.drained is not None:
        stream, length, ids = extra.drained
        ops.guards.append(["xlen", ops.key(stream), length])
        if ids:
            ops.op("xdel", stream, list(ids))
    for key, member, score in extra.zsets:
        if score is None:
            ops.op("zrem", key, member)
        else:
            ops.op("zadd", key, score, member)
    for member, due in extra.deadlines.items():
        ops.index(indexes.deadline(member), due, moved=True)


def _status(reply: Any) -> tuple[CommitStatus, str]:
    """Return the commit script's reply: its status and, for a duplicate, what was stored."""
    status, value = reply
    return CommitStatus(_text(status) or ""), _text(value) or ""


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)
