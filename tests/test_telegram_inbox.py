"""The durable inbox on a real Redis: stored once, processed after a failure, never forever."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import redis.asyncio

from bot.inbox import Inbox


@contextlib.asynccontextmanager
async def running(inbox: Inbox, handle: object) -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    task = asyncio.create_task(inbox.run(stop, handle, block_ms=20))  # type: ignore[arg-type]
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def until(check: object, seconds: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while not await check():  # type: ignore[operator]
        assert loop.time() < end, "timed out"
        await asyncio.sleep(0.02)


async def test_an_update_is_stored_once_and_retried_after_a_failure(
    redis_async: redis.asyncio.Redis,
) -> None:
    inbox = Inbox(redis_async, "telegram", "t1", claim_idle=0.05)
    update = json.dumps({"update_id": 7, "message": {"text": "停水"}})
    assert await inbox.put(7, update) is True
    assert await inbox.put(7, update) is False  # delivered twice: stored once
    seen: list[str] = []

    async def flaky(raw: str) -> None:
        seen.append(raw)
        if len(seen) == 1:
            raise ConnectionError("injected")

    async with running(inbox, flaky):

        async def emptied() -> bool:
            return await inbox.pending() == 0

        await until(emptied)
    assert seen == [update, update]  # failed once, handled on the next try, then gone
    assert await redis_async.llen(inbox.dead) == 0


async def test_an_update_that_always_fails_is_dead_lettered_not_retried_forever(
    redis_async: redis.asyncio.Redis,
) -> None:
    inbox = Inbox(redis_async, "telegram", "t1", claim_idle=0.05, max_attempts=3)
    good, bad = json.dumps({"update_id": 1}), json.dumps({"update_id": 2})
    await inbox.put(1, good)
    await inbox.put(2, bad)
    handled: list[str] = []
    tries = 0

    async def handle(raw: str) -> None:
        nonlocal tries
        if raw == bad:
            tries += 1
            raise ValueError("this update breaks the handler")
        handled.append(raw)

    async with running(inbox, handle):

        async def dead() -> bool:
            return await redis_async.llen(inbox.dead) == 1

        await until(dead)
        await asyncio.sleep(0.3)  # several claim periods more: no further tries
    assert handled == [good]
    assert tries == 3
    assert await redis_async.lrange(inbox.dead, 0, -1) == [bad.encode()]
    assert await inbox.pending() == 0
