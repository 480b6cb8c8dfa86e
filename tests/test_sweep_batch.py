"""The sweep checks deadlines in batches (one read, one pipeline of commits): the same outcome
as checking them one by one, and each deadline still fires once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import pytest
import redis
import redis.asyncio

from bot.core.deadlines import Policy
from bot.core.models import Actor, IncomingMessage, Lang
from bot.core.org import Role
from bot.live import LiveConfig
from bot.scheduling import RqScheduler
from bot.services import SWEEP_BATCH, Service
from bot.storage import keys
from bot.storage.redis import Change, CommitStatus, RedisStore
from tests.conftest import RULES_DIR
from tests.test_services import ORG

TEXTS = ["村口的路灯坏了半个月", "楼下KTV每晚唱到凌晨三点，吵得睡不着", "垃圾三天没人收，臭死了",
         "电梯又坏了，老人上不了楼", "3栋5楼着火了，好多烟，快来人"]  # fmt: skip
START = 1_800_000_000.0
TICKETS = SWEEP_BATCH * 2 + 5  # more than two batches


class Clock:
    now = START

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def made(
    redis_async: redis.asyncio.Redis, redis_sync: redis.Redis
) -> AsyncIterator[Callable[[], Service]]:
    """Return a maker of services (workers) on one Redis and one clock; no report joins."""
    config = LiveConfig(RULES_DIR, ORG, Policy(scale=1.0, join_window=0.0))
    clock = Clock()

    def make() -> Service:
        return Service(RedisStore(redis_async), config, RqScheduler(redis_sync), clock)

    yield make


async def open_tickets(service: Service, count: int = TICKETS) -> list[str]:
    """Open ``count`` tickets, each reported by a resident account of its own."""
    tree = service.config.tree
    residents = [p for p in tree.people.values() if p.role is Role.RESIDENT]
    ids = []
    for i in range(count):
        person = residents[i % len(residents)]
        message = IncomingMessage(
            chat=tree.nodes[person.scope].chats[0], message_id=f"m{i}",
            sender=Actor(f"{person.accounts[0]}x{i}", person.name, None, Lang(person.lang)),
            text=TEXTS[i % len(TEXTS)], sent_at=service.clock(),
        )  # fmt: skip
        handled = await service.handle_message(message)
        assert handled.status == "opened", handled
        ids.append(handled.ticket or "")
    return ids


async def state(service: Service, ids: Sequence[str]) -> dict[str, Any]:
    """Return what the deadlines left: histories, every outbox's entries, owed deadlines."""
    client = service.store.redis
    outboxes = {}
    for name in await client.keys(keys.outbox("*")):
        rows = await client.xrange(name)
        outboxes[name] = sorted(
            (f[b"key"].decode(), json.loads(f[b"payload"]), f.get(b"priority")) for _, f in rows
        )
    histories = {i: [e.to_dict() for e in await service.store.history(i)] for i in ids}
    owed = await client.zrange(keys.DEADLINES, 0, -1, withscores=True)
    return {"histories": histories, "outboxes": outboxes, "owed": sorted(owed)}


async def test_a_batched_sweep_does_what_checking_one_by_one_does(
    made: Callable[[], Service],
) -> None:
    outcomes = []
    for batched in (True, False):
        service = made()
        await service.store.redis.flushdb()
        clock = service.clock
        assert isinstance(clock, Clock)
        clock.now = START
        ids = await open_tickets(service)
        clock.now += 30 * 86400  # a month on: every deadline overdue
        due = await service.store.due(clock.now)
        assert len(due) == TICKETS
        if batched:
            assert await service.sweep(grace=0) == TICKETS
        else:
            for ticket_id, stage, kind, _ in due:
                await service.handle_deadline(ticket_id, stage, kind)
        outcomes.append(await state(service, ids))
    kinds = [e["kind"] for h in outcomes[0]["histories"].values() for e in h]
    assert kinds.count("escalated") > SWEEP_BATCH and "flagged" in kinds  # both ways taken
    assert outcomes[0] == outcomes[1]


async def test_two_workers_sweeping_at_once_fire_each_deadline_once(
    made: Callable[[], Service],
) -> None:
    first, second = made(), made()
    ids = await open_tickets(first)
    clock = first.clock
    assert isinstance(clock, Clock)
    clock.now += 30 * 86400
    await asyncio.gather(first.sweep(grace=0), second.sweep(grace=0), first.sweep(grace=0))
    for ticket_id in ids:
        kinds = [e.kind.value for e in await first.store.history(ticket_id)]
        assert kinds.count("escalated") + kinds.count("flagged") == 1, (ticket_id, kinds)


async def test_a_commit_that_lost_its_race_is_decided_again(
    made: Callable[[], Service], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another worker acknowledges a ticket between the batch's read and its commits: that
    ticket's commit conflicts and nothing of it is written; read again, it owes no
    escalation. The batch's other commits are written."""
    service, other = made(), made()
    ids = await open_tickets(service, 3)
    ticket = await service.store.get(ids[0])
    assert ticket is not None and ticket.ack_due is not None
    clock = service.clock
    assert isinstance(clock, Clock)
    opened = await service.store.get_many(ids)
    clock.now = max(t.ack_due or 0 for t in opened) + 60  # each one's acknowledgement missed
    cadre = next(
        p for p in service.config.tree.people.values()
        if p.role is Role.VILLAGE_CADRE and p.scope == ticket.node
    )  # fmt: skip
    commit_many = service.store.commit_many
    statuses: list[Any] = []

    async def racing(changes: Sequence[Change]) -> list[tuple[CommitStatus, str] | Exception]:
        if not statuses:  # the first batch only: the other worker acknowledges meanwhile
            ack = IncomingMessage(
                chat=service.config.tree.nodes[ticket.node].chats[0], message_id="ack",
                sender=Actor(cadre.accounts[0], cadre.name, cadre.id, Lang(cadre.lang)),
                text=f"/ack {ticket.id}", sent_at=clock.now,
            )  # fmt: skip
            assert (await other.handle_message(ack)).status == "done"
        found = await commit_many(changes)
        statuses.append(found)
        return found

    patched: Callable[[Sequence[Change]], Awaitable[Any]] = racing
    monkeypatch.setattr(service.store, "commit_many", patched)
    due = [t for t, _, _, _ in await service.store.due(clock.now)]
    assert ids[0] in due and len(due) > 1
    assert await service.sweep(grace=0) == len(due)
    found = [s[0] for s in statuses[0] if isinstance(s, tuple)]
    assert len(found) == len(due) and found.count(CommitStatus.CONFLICT) == 1
    kinds = [e.kind.value for e in await service.store.history(ids[0])]
    assert "acknowledged" in kinds and "escalated" not in kinds and "flagged" not in kinds, kinds
    for ticket_id in (t for t in due if t != ids[0]):
        kinds = [e.kind.value for e in await service.store.history(ticket_id)]
        assert kinds.count("escalated") + kinds.count("flagged") == 1, (ticket_id, kinds)


async def test_a_batch_that_fails_is_left_for_the_next_sweep(
    made: Callable[[], Service], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    service = made()
    ids = await open_tickets(service)
    clock = service.clock
    assert isinstance(clock, Clock)
    clock.now += 30 * 86400
    read = service.store.read
    calls: list[int] = []

    async def failing_once(ticket_ids: Sequence[str]) -> Any:
        calls.append(len(ticket_ids))
        if len(calls) == 1:  # the first batch's read: Redis went away for a moment
            raise redis.ConnectionError("gone")
        return await read(ticket_ids)

    monkeypatch.setattr(service.store, "read", failing_once)
    assert await service.sweep(grace=0) == TICKETS
    assert f"sweep: {SWEEP_BATCH} deadlines" in caplog.text
    assert len(await service.store.due(clock.now)) == SWEEP_BATCH  # the others were checked
    assert await service.sweep(grace=0) == SWEEP_BATCH  # the next sweep checks those
    assert await service.store.due(clock.now) == []
    for ticket_id in ids:
        kinds = [e.kind.value for e in await service.store.history(ticket_id)]
        assert kinds.count("escalated") + kinds.count("flagged") == 1, (ticket_id, kinds)
