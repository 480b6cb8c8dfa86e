"""Exactly once through a Redis restart: the real sender, a real redis-server stopped mid-burst.

Redis (AOF, fsync on every write) is stopped with SIGTERM and later killed with
SIGKILL while the sender has requests at the fake Bot API, which answers each send
a little after accepting it; each time it is started again on the same AOF.
Every outbox entry must reach the fake server exactly once, and the stream must
hold no delivered entry afterwards.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
from collections import Counter

import pytest
import redis.asyncio
from telegram import Bot

from bot.adapters.telegram import TelegramGateway
from bot.core.models import Reply
from bot.redis_server import EmbeddedRedis
from bot.sender import UNREACHABLE
from bot.storage import keys
from bot.storage.redis import OutboxEntry, RedisStore, reply_payload
from bot.telegram.ratelimit import Limits, RateLimiter
from bot.telegram.sending import TelegramSender
from tests.fake_bot_api import TOKEN, FakeBotApi, wait_for

ENTRIES = 400
CHATS = [-1001000000500 - i for i in range(10)]


def entry(i: int) -> OutboxEntry:
    chat = f"telegram:{CHATS[i % len(CHATS)]}"
    return OutboxEntry("telegram", f"k{i}", reply_payload(Reply(chat, "no_such_ticket", {"id": i})))


async def produce(store: RedisStore) -> None:
    """Queue ENTRIES replies as the services do, each committed once however Redis fares."""
    for i in range(ENTRIES):
        while True:
            try:
                await store.commit(None, None, (), [entry(i)], f"burst/{i}")
                break
            except UNREACHABLE:  # the commit is guarded by its message key: retry is safe
                await asyncio.sleep(0.02)
        if i % 10 == 9:
            await asyncio.sleep(0.02)


async def restart(server: EmbeddedRedis, sig: signal.Signals) -> None:
    """Stop the server with ``sig``, leave it down a moment, start it on the same AOF."""
    pid = server.pid
    assert pid is not None
    os.kill(pid, sig)
    await wait_for(lambda: server.pid is None, 10, "redis-server gone")
    await asyncio.sleep(0.3)
    server.start()


def sent_ids(fake: FakeBotApi) -> Counter[str]:
    return Counter("k" + re.search(r"#(\d+)", c.text)[1] for c in fake.sent)  # type: ignore[index]


async def test_every_entry_once_through_redis_stopped_and_killed_mid_burst(
    fake: FakeBotApi, restartable_redis: EmbeddedRedis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "bot")
    server = restartable_redis
    fake.latency = 0.02  # at any moment several sends are accepted but not yet answered
    pool = redis.asyncio.BlockingConnectionPool.from_url(server.url, max_connections=64)
    client = redis.asyncio.Redis(connection_pool=pool)  # as `lianhu run` builds it
    bot = Bot(TOKEN, base_url=f"{fake.url}/bot")
    await bot.initialize()
    sender = TelegramSender(client, TelegramGateway(bot), RateLimiter(Limits().scaled(0.001)))
    stop = asyncio.Event()
    running = asyncio.create_task(sender.run(stop, block_ms=50))
    producing = asyncio.create_task(produce(RedisStore(client)))
    try:
        await wait_for(lambda: len(fake.sent) >= 100, 30, "100 sent")
        await restart(server, signal.SIGTERM)
        await wait_for(lambda: len(fake.sent) >= 250, 30, "250 sent")
        assert not producing.done()  # still in the middle of the burst
        await restart(server, signal.SIGKILL)
        await producing
        await wait_for(lambda: len(fake.sent) >= ENTRIES, 60, "every entry sent")
        await wait_for(lambda: sender.idle, 30, "sender idle")
        await asyncio.sleep(1.0)  # anything sent twice would arrive now
    finally:
        producing.cancel()
        stop.set()
        await asyncio.wait_for(running, 30)
        await bot.shutdown()
    assert sent_ids(fake) == Counter({f"k{i}": 1 for i in range(ENTRIES)})
    assert sender.counts.sent == ENTRIES
    # Nothing delivered stays in the stream, and nothing is pending.
    assert await client.xlen(keys.outbox("telegram")) == 0
    assert (await client.xpending(keys.outbox("telegram"), keys.OUTBOX_GROUP))["pending"] == 0
    assert await client.llen(f"{keys.outbox('telegram')}:dead") == 0
    sent_markers = [k async for k in client.scan_iter(keys.sent("*"), count=1000)]
    assert len(set(sent_markers)) == ENTRIES
    await client.aclose(close_connection_pool=True)


async def test_a_backlog_past_the_limit_is_an_error_once_and_nothing_is_trimmed(
    fake: FakeBotApi, redis_async: redis.asyncio.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    store = RedisStore(redis_async)
    for i in range(30):
        await store.commit(None, None, (), [entry(i)])
    bot = Bot(TOKEN, base_url=f"{fake.url}/bot")
    sender = TelegramSender(redis_async, TelegramGateway(bot), backlog_alert=20)
    await sender.check_backlog()
    await sender.check_backlog()
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "30 messages wait" in errors[0].getMessage()
    assert await redis_async.xlen(keys.outbox("telegram")) == 30  # never trimmed
