"""Nothing is lost: a Redis restart keeps tickets, histories and deadlines; the sender never sends twice."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import redis
import redis.asyncio
from rq import Queue
from rq.registry import ScheduledJobRegistry

from bot.core.deadlines import Policy, run_at
from bot.core.models import Reply
from bot.live import LiveConfig
from bot.redis_server import EmbeddedRedis
from bot.scheduling import RqScheduler, job_id
from bot.sender import Sender
from bot.services import Service
from bot.storage import keys
from bot.storage.redis import RedisStore, reply_payload
from tests.conftest import ROOT, RULES_DIR
from tests.helpers import Gateway, NoJobs, owed, resident_message

ORG = ROOT / "org" / "sample_street.yaml"


async def test_a_killed_redis_keeps_every_ticket_event_and_deadline(tmp_path: Path) -> None:
    config = LiveConfig(RULES_DIR, ORG, Policy())
    server = EmbeddedRedis(tmp_path / "data", appendfsync="always")
    url = server.start()
    try:
        client, sync = redis.asyncio.Redis.from_url(url), redis.Redis.from_url(url)
        service = Service(RedisStore(client), config, RqScheduler(sync))
        texts = ["村口的路灯坏了半个月", "楼下KTV每晚唱到凌晨三点", "又停水了，成栋楼冇水"]
        opened = [
            await service.handle_message(resident_message(config, str(i), t))
            for i, t in enumerate(texts)
        ]
        before = {t: await service.store.history(t) for t in await service.store.all_ids()}
        deadlines = await owed(client)
        jobs = sorted(ScheduledJobRegistry(queue=Queue("lianhu", connection=sync)).get_job_ids())
        await client.aclose()
        sync.close()
        # One index member each, one job a second they fall due in (shared within a second).
        assert len(before) == 3 and len(deadlines) == 3
        assert jobs == sorted({job_id(run_at(due)) for _, due in deadlines})
        os.kill(server.pid or 0, signal.SIGKILL)  # no SHUTDOWN, no final fsync
        server.stop()
        url = server.start()
        client, sync = redis.asyncio.Redis.from_url(url), redis.Redis.from_url(url)
        store = RedisStore(client)
        assert {t: await store.history(t) for t in await store.all_ids()} == before
        assert [h.ticket for h in opened] == sorted(before, key=int)
        assert await owed(client) == deadlines
        assert (
            sorted(ScheduledJobRegistry(queue=Queue("lianhu", connection=sync)).get_job_ids())
            == jobs
        )
        await client.aclose()
        sync.close()
    finally:
        server.stop()


async def test_the_sender_retries_and_never_sends_twice(redis_async: redis.asyncio.Redis) -> None:
    config = LiveConfig(RULES_DIR, ORG, Policy())

    service = Service(RedisStore(redis_async), config, NoJobs())
    opened = await service.handle_message(resident_message(config, "1", "村口的路灯坏了半个月"))
    queued = await redis_async.xlen(keys.outbox("telegram"))
    assert queued == 2  # the answer to the resident and the card to the village group
    entries = await redis_async.xrange(keys.outbox("telegram"))
    gateway = Gateway(failures=1)
    sender = Sender(redis_async, gateway, retry_after=0.0)
    first = await sender.drain()
    assert (first.sent, first.failed) == (1, 1)
    second = await sender.drain()  # the failed one is claimed again
    assert second.sent == 1
    assert len(gateway.delivered) == 2
    assert await redis_async.xlen(keys.outbox("telegram")) == 0  # delivered entries are deleted
    # A redelivery of an entry already sent (a crash before XACK) is skipped, not sent again.
    await redis_async.xadd(keys.outbox("telegram"), entries[0][1])
    third = await sender.drain()
    assert (third.sent, third.skipped) == (0, 1)
    assert len(gateway.delivered) == 2
    # Replies to a sent card reach its ticket.
    card_chat = config.tree.nodes["V-01"].chats[0]
    card_message = next(
        str(i + 1) for i, (chat, _) in enumerate(gateway.delivered) if chat == card_chat
    )
    assert await service.store.card_ticket(card_chat, card_message) == opened.ticket


async def test_a_send_that_keeps_failing_is_dropped_not_retried_forever(
    redis_async: redis.asyncio.Redis,
) -> None:
    await redis_async.xadd(
        keys.outbox("telegram"),
        {
            "key": "k1",
            "payload": json.dumps(reply_payload(Reply("telegram:1", "help", {"role": "resident"}))),
        },
    )
    gateway = Gateway(failures=100)
    sender = Sender(redis_async, gateway, retry_after=0.0, max_attempts=3)
    results = [await sender.drain() for _ in range(4)]
    assert sum(r.dropped for r in results) == 1
    assert await redis_async.lrange(f"{keys.outbox('telegram')}:dead", 0, -1) == [b"k1"]
    assert gateway.delivered == []
    assert (await sender.drain()).failed == 0  # nothing pending any more
