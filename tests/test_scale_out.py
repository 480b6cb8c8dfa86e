"""Several receivers and workers on one Redis: each update handled once, each deadline once."""

from __future__ import annotations

import asyncio
import json

import redis.asyncio
from aiohttp.test_utils import TestClient, TestServer

from bot.core.deadlines import Outcome, Policy
from bot.core.org import Role
from bot.inbox import Inbox, consumer_name
from bot.live import LiveConfig
from bot.services import Service
from bot.storage import keys
from bot.storage.redis import RedisStore
from bot.telegram.webhook import webhook_app
from tests.conftest import RULES_DIR
from tests.test_services import ORG, World
from tests.test_services import world as world  # the fixture, re-exported for these tests
from tests.test_telegram_inbox import running, until

FIRE = "3栋5楼着火了，好多烟，快来人"


def test_every_receiver_reads_under_a_name_of_its_own() -> None:
    names = {consumer_name() for _ in range(3)}
    assert len(names) == 3  # was the host name: two processes on one host read as one
    assert all(name.split(":")[1].isdigit() for name in names)


async def test_a_dead_receivers_updates_are_taken_by_a_live_one(
    redis_async: redis.asyncio.Redis,
) -> None:
    dead = Inbox(redis_async, "telegram", "host-a:1:dead")
    for i in range(150):  # more than one XAUTOCLAIM page
        await dead.put(i, json.dumps({"update_id": i}))
    await dead.ensure_group()
    read = await redis_async.xreadgroup(
        keys.INBOX_GROUP, dead.consumer, {dead.stream: ">"}, count=1000
    )  # the dead receiver read them all, then was SIGKILLed
    assert len(read[0][1]) == 150
    await asyncio.sleep(0.3)
    # claim_idle is a minute: without looking for silent consumers, nothing moves for a minute.
    live = Inbox(redis_async, "telegram", "host-b:2:live", claim_idle=60.0, dead_after=0.2)
    seen: list[int] = []

    async def handle(raw: str) -> None:
        seen.append(json.loads(raw)["update_id"])

    async with running(live, handle):

        async def emptied() -> bool:
            return await live.pending() == 0

        await until(emptied)
    assert sorted(seen) == list(range(150))  # each once


async def test_a_receiver_that_lives_keeps_its_entries_however_quiet(
    redis_async: redis.asyncio.Redis,
) -> None:
    inbox = Inbox(redis_async, "telegram", "host-a:1:busy", dead_after=0.5)
    await inbox.put(1, json.dumps({"update_id": 1}))
    await inbox.ensure_group()
    await redis_async.xreadgroup(keys.INBOX_GROUP, inbox.consumer, {inbox.stream: ">"})
    await inbox.beat()
    other = Inbox(redis_async, "telegram", "host-b:2:other", dead_after=0.5)
    assert await other.reap() == []  # host-a says it lives, though it read nothing since
    await redis_async.delete(keys.inbox_alive("telegram", inbox.consumer))  # it stopped
    assert [e[0] for e in await other.reap()] != []


async def test_one_sweep_clears_a_backlog_of_overdue_deadlines(world: World) -> None:
    members = {keys.deadline_member(f"T{i}", 1, "ack"): float(i) for i in range(1200)}
    await world.redis.zadd(keys.DEADLINES, members)  # a worker was down: 1,200 are overdue
    world.clock.now = 10_000.0
    assert await world.service.sweep() == 1200  # was 500 a sweep, one every 30 s
    assert await world.redis.zcard(keys.DEADLINES) == 0


async def test_two_workers_sweeping_at_once_escalate_a_ticket_once(world: World) -> None:
    resident = world.person(Role.RESIDENT, "H-01")
    opened = await world.service.handle_message(world.message(resident, FIRE))
    ticket = await world.store.get(opened.ticket or "")
    assert ticket is not None and ticket.ack_due is not None
    world.clock.now = ticket.ack_due + 60  # its job was lost: both sweepers find it
    # A second worker: its own service, store and in-process locks, on the same Redis.
    config = LiveConfig(RULES_DIR, ORG, Policy(scale=1.0))
    other = Service(RedisStore(world.redis), config, world.schedules, world.clock)
    # The rq job of one worker and the sweepers of both, at once.
    await asyncio.gather(
        world.service.handle_deadline(ticket.id, 1, "ack"), world.service.sweep(), other.sweep(),
        other.handle_deadline(ticket.id, 1, "ack"),
    )  # fmt: skip
    events = [e.kind.value for e in await world.service.store.history(ticket.id)]
    assert events.count("flagged") + events.count("escalated") == 1, events
    assert await world.service.handle_deadline(ticket.id, 1, "ack") is Outcome.MOVED_ON


async def test_a_receiver_answers_the_balancers_health_check(
    redis_async: redis.asyncio.Redis,
) -> None:
    app = webhook_app("/tg", Inbox(redis_async, "telegram"), "s3cret")
    async with TestClient(TestServer(app)) as client:
        answer = await client.get("/healthz")
        assert (answer.status, await answer.text()) == (200, "ok")
        assert (await client.get("/tg")).status == 405  # the webhook takes POST only
