"""Deadlines through a real rq worker process (burst mode) on the real Redis."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
import redis.asyncio
from rq import Queue
from rq.registry import ScheduledJobRegistry

from bot.core.deadlines import Policy, run_at
from bot.core.models import Actor, IncomingMessage, Lang
from bot.core.org import Role
from bot.core.ticket import EventKind, TicketState
from bot.live import LiveConfig
from bot.scheduling import RqScheduler, job_id
from bot.services import Service
from bot.storage.redis import RedisStore
from tests import helpers
from tests.conftest import ROOT, RULES_DIR

ORG = ROOT / "org" / "sample_street.yaml"
SCALE = 1e-4  # 24 h of acknowledgement time become 8.6 s: room for a worker process to start
# and finish on a loaded machine before the deadline it must leave alone


def run_worker(redis_url: str) -> subprocess.CompletedProcess[str]:
    return helpers.run_worker(redis_url, SCALE)


async def wait_until(when: float) -> None:
    await asyncio.sleep(max(0.0, when - time.time()))


async def test_a_missed_deadline_escalates_through_rq(
    redis_url: str, redis_async: redis.asyncio.Redis, tmp_path: Path
) -> None:
    sync = redis.Redis.from_url(redis_url)
    try:
        config = LiveConfig(RULES_DIR, ORG, Policy(scale=SCALE))
        service = Service(RedisStore(redis_async), config, RqScheduler(sync))
        resident = next(p for p in config.tree.people.values() if p.role is Role.RESIDENT)
        message = IncomingMessage(
            config.tree.nodes[resident.scope].chats[0], "1",
            Actor(resident.accounts[0], resident.name, resident.id, Lang(resident.lang)),
            "村口的路灯坏了半个月，晚上黑漆漆的", time.time(),
        )  # fmt: skip
        opened = await service.handle_message(message)
        ticket = await service.store.get(opened.ticket or "")
        assert ticket is not None and ticket.ack_due is not None
        scheduled = ScheduledJobRegistry(queue=Queue("lianhu", connection=sync)).get_job_ids()
        assert scheduled == [job_id(run_at(ticket.ack_due))]  # the job of its due second
        # Nothing is due yet: a burst changes nothing.
        assert run_worker(redis_url).returncode == 0
        assert (await service.store.get(ticket.id)) == ticket
        await wait_until(ticket.ack_due + 1.2)
        result = run_worker(redis_url)
        assert result.returncode == 0, result.stderr
        after = await service.store.get(ticket.id)
        assert after is not None
        assert (after.state, after.node, after.stage) == (TicketState.ESCALATED, "S-01", 2)
        history = [e.kind for e in await service.store.history(ticket.id)]
        assert history == [EventKind.OPENED, EventKind.ESCALATED]
        # Running the worker again never escalates twice. (Time is compressed 10,000x: the
        # street's 8 h to acknowledge pass in 2.9 s, so the ticket may be flagged overdue.)
        result = run_worker(redis_url)
        again = [e.kind for e in await service.store.history(ticket.id)]
        assert again[:2] == history and again.count(EventKind.ESCALATED) == 1
        assert set(again[2:]) <= {EventKind.FLAGGED}
    finally:
        sync.close()


def test_worker_needs_redis_url() -> None:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "worker", "--burst"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "set REDIS_URL" in proc.stderr


@pytest.mark.parametrize("second", [0, 1_800_000_000])
def test_job_ids_use_only_allowed_characters(second: int) -> None:
    assert all(c.isalnum() or c in "-_" for c in job_id(second))


async def test_a_deadline_job_is_stored_as_rq_itself_schedules_it(
    redis_sync: redis.Redis, redis_async: redis.asyncio.Redis
) -> None:
    """The commit writes what rq's own unique schedule_job writes, and only once."""
    scheduler = RqScheduler(redis_sync)
    ours = scheduler.job("7", 1, "ack", 1_900_000_000.2)
    await RedisStore(redis_async).commit(None, None, jobs=(ours,))
    stored = redis_sync.hgetall(ours.key)
    registry = scheduler.queue.scheduled_job_registry
    assert registry.get_job_ids() == [ours.id] and ours.id.endswith("-1900000001")
    when = registry.get_scheduled_time(ours.id)
    assert when.timestamp() == ours.at
    assert scheduler.queue.key.encode() in redis_sync.smembers(Queue.redis_queues_keys)
    fetched = scheduler.queue.fetch_job(ours.id)
    assert fetched is not None and fetched.args == (1_900_000_001,)
    assert fetched.func_name == "bot.jobs.check_deadlines"
    assert fetched.get_status() == "scheduled"
    # Storing it again changes nothing (rq's unique=True: a job id is scheduled once), nor
    # does another deadline due in the same second: its job is this one.
    await RedisStore(redis_async).commit(None, None, jobs=(scheduler.job("7", 1, "ack", 1.9e9),))
    assert redis_sync.hgetall(ours.key) == stored
    other = scheduler.job("8", 2, "resolve", 1_900_000_000.9)
    assert other.id == ours.id
    await RedisStore(redis_async).commit(None, None, jobs=(other,))
    assert redis_sync.hgetall(ours.key) == stored
    # rq's own schedule_job(unique=True) of the same job writes the same fields, and some
    # more: those it writes empty, which it reads back as when they are missing.
    ours_bytes = redis_sync.memory_usage(ours.key, samples=0)
    redis_sync.flushdb()
    same = scheduler.queue.create_job(
        "bot.jobs.check_deadlines", args=(1_900_000_001,), job_id=ours.id, timeout=60,
        result_ttl=0, failure_ttl=7 * 24 * 3600,
    )  # fmt: skip
    scheduler.queue.schedule_job(same, when, unique=True)
    theirs = redis_sync.hgetall(ours.key)
    assert stored.keys() < theirs.keys()
    assert all(theirs[k] == b"" for k in theirs.keys() - stored.keys())
    differ = {k for k in stored if stored[k] != theirs[k]}
    assert differ == {b"created_at", b"description"}
    theirs_job = scheduler.queue.fetch_job(ours.id)
    assert theirs_job is not None
    for name in ("args", "func_name", "timeout", "result_ttl", "failure_ttl", "origin"):
        assert getattr(fetched, name) == getattr(theirs_job, name), name
    for name in ("success_callback", "failure_callback", "started_at", "worker_name"):
        assert getattr(fetched, name) is None and getattr(theirs_job, name) is None, name
    # A job waits as long as its deadline, one per open ticket: ours is ~200 B smaller.
    theirs_bytes = redis_sync.memory_usage(ours.key, samples=0)
    assert ours_bytes is not None and theirs_bytes is not None
    assert ours_bytes <= theirs_bytes - 150, (ours_bytes, theirs_bytes)
