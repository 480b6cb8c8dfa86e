"""One writer to Telegram: the sender lease, within a process, across processes and machines."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator

import redis.asyncio
from telegram import Bot

from bot.adapters.telegram import TelegramGateway
from bot.core.models import Reply
from bot.storage import keys
from bot.storage.redis import reply_payload
from bot.telegram.lease import Lease, Owner, machine, started
from bot.telegram.ratelimit import Limits, RateLimiter
from bot.telegram.sending import TelegramSender
from tests.conftest import ROOT
from tests.fake_bot_api import TOKEN, FakeBotApi, wait_for

KEY = keys.sender_lease("telegram")
HOLD = """
import asyncio, sys
import redis.asyncio
from bot.telegram.lease import Lease

async def main() -> None:
    lease = Lease(redis.asyncio.Redis.from_url(sys.argv[1]), sys.argv[2], 60)
    assert await lease.hold()
    print(lease.value, flush=True)
    await asyncio.sleep(600)

asyncio.run(main())
"""


async def test_one_holder_at_a_time_even_within_one_process(
    redis_async: redis.asyncio.Redis,
) -> None:
    first, second = Lease(redis_async, KEY, 60), Lease(redis_async, KEY, 60)
    assert first.value != second.value  # the old flaw: both were owned by the host name
    assert await first.hold()
    assert not await second.hold()  # same pid and start: alive, so never taken over
    assert await first.hold()  # renewed
    await first.release()
    assert await second.hold()
    await first.release()  # not its lease any more: nothing happens
    assert await redis_async.get(KEY) == second.value.encode()


async def test_a_lease_left_by_a_killed_process_is_taken_at_once(
    redis_async: redis.asyncio.Redis, redis_url: str
) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, redis_url, KEY], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        value = await asyncio.to_thread(holder.stdout.readline)
        ours = Lease(redis_async, KEY, 60)
        assert not await ours.hold()  # the holder is alive
        owner = Owner.parse(value.strip())
        assert owner is not None and (owner.machine, owner.pid) == (machine(), holder.pid)
        assert owner.started == started(holder.pid)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        assert holder.stdout is not None
        holder.stdout.close()
    assert await redis_async.pttl(KEY) > 50_000  # left behind with most of its minute
    assert await ours.hold()  # taken over without waiting for it
    assert await redis_async.get(KEY) == ours.value.encode()


async def test_a_pid_now_used_by_a_later_process_is_not_the_owner(
    redis_async: redis.asyncio.Redis,
) -> None:
    here, pid = machine(), os.getpid()
    # A value naming this very pid but an earlier start: a container restarted with its pids.
    await redis_async.set(KEY, Owner(here, pid, "1", "old").value(), px=60_000)
    assert await Lease(redis_async, KEY, 60).hold()
    # A pid that no process has.
    await redis_async.set(KEY, Owner(here, 2**22 + 17, "5", "old").value(), px=60_000)
    assert await Lease(redis_async, KEY, 60).hold()


async def test_another_machine_or_an_unknown_value_is_waited_out(
    redis_async: redis.asyncio.Redis,
) -> None:
    lease = Lease(redis_async, KEY, 60)
    # The same pid and start on another machine (or in another container) proves nothing.
    elsewhere = Owner("another-boot:4026531836", os.getpid(), lease.owner.started, "x")
    for value in (elsewhere.value(), "a-host-name"):
        await redis_async.set(KEY, value, px=300)
        assert not await lease.hold()
        assert await redis_async.get(KEY) == value.encode()  # untouched
        await asyncio.sleep(0.35)
        assert await lease.hold()  # expired: free
        await lease.release()


@contextlib.asynccontextmanager
async def running(sender: TelegramSender) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop, block_ms=50))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def put(client: redis.asyncio.Redis, n: int, first: int = 0) -> None:
    for i in range(first, first + n):
        chat = f"telegram:{-1001000000200 - i % 3}"
        payload = reply_payload(Reply(chat, "not_admin", {}))
        await client.xadd(keys.outbox("telegram"), {"key": f"m{i}", "payload": json.dumps(payload)})


def sender(client: redis.asyncio.Redis, bot: Bot) -> TelegramSender:
    # Both under one consumer name, as two `lianhu run` on one host were by default.
    return TelegramSender(client, TelegramGateway(bot), RateLimiter(Limits().scaled(0.001)))


async def test_two_senders_on_one_outbox_send_each_message_once(
    fake: FakeBotApi, redis_async: redis.asyncio.Redis
) -> None:
    bot = Bot(TOKEN, base_url=f"{fake.url}/bot")
    await bot.initialize()
    a, b = sender(redis_async, bot), sender(redis_async, bot)
    await put(redis_async, 30)
    async with running(a), running(b):
        await wait_for(lambda: len(fake.sent) >= 30, 20, "30 sent")
        await asyncio.sleep(0.5)  # a second writer would repeat something now
    assert len(fake.sent) == 30 and sorted((a.counts.sent, b.counts.sent)) == [0, 30]
    assert Counter(c.chat for c in fake.sent) == Counter({-1001000000200 - i: 10 for i in range(3)})
    await bot.shutdown()


async def test_a_sender_that_loses_its_lease_sends_nothing_until_it_is_back(
    fake: FakeBotApi, redis_async: redis.asyncio.Redis
) -> None:
    bot = Bot(TOKEN, base_url=f"{fake.url}/bot")
    await bot.initialize()
    one = sender(redis_async, bot)
    await put(redis_async, 3)
    async with running(one):
        await wait_for(lambda: len(fake.sent) == 3, 10, "3 sent")
        # Another process took it (a Redis stall outlasted our lease, say).
        await redis_async.set(KEY, Owner("another-boot:1", 1, "1", "x").value(), px=60_000)
        await asyncio.sleep(0.3)
        await put(redis_async, 4, first=3)
        await asyncio.sleep(1.0)
        assert len(fake.sent) == 3  # nothing sent without the lease
        await redis_async.delete(KEY)  # the other holder let go
        await wait_for(lambda: len(fake.sent) == 7, 10, "the rest sent")
    assert one.counts.sent == 7
    assert await redis_async.get(KEY) is None  # given up on stop
    await bot.shutdown()
