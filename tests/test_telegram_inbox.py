"""The durable inbox on a real Redis: stored once, processed after a failure, never forever."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator

import pytest
import redis.asyncio

from bot.inbox import Inbox
from bot.personal import DAY, PersonalData
from bot.storage import keys


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


async def test_a_failed_update_is_tried_again_soon_not_after_the_minute_of_the_idle_claim(
    redis_async: redis.asyncio.Redis,
) -> None:
    """Found in the scaled chaos run: updates whose handling failed in a failover waited for
    the claim of idle entries (60-90 s) on a receiver that was alive all along."""
    inbox = Inbox(redis_async, "telegram", "t1", claim_idle=60.0, retry_first=0.1)
    updates = [json.dumps({"update_id": i}) for i in range(3)]
    for i, update in enumerate(updates):
        await inbox.put(i, update)
    seen: list[str] = []

    async def flaky(raw: str) -> None:
        seen.append(raw)
        if seen.count(raw) < 3:  # fails twice: tried again after 0.1 s, then 0.2 s
            raise ConnectionError("injected: no master for a moment")

    loop = asyncio.get_running_loop()
    started = loop.time()
    async with running(inbox, flaky):

        async def emptied() -> bool:
            return await inbox.pending() == 0

        await until(emptied, seconds=5)
    assert loop.time() - started < 3
    assert sorted(seen) == sorted(updates * 3)
    rows = await redis_async.xpending(inbox.stream, keys.INBOX_GROUP)
    assert rows["pending"] == 0 and await redis_async.llen(inbox.dead) == 0


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


async def test_an_update_older_than_the_marker_window_is_refused_with_a_log_line(
    redis_async: redis.asyncio.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    now = 1_800_000_000.0
    inbox = Inbox(redis_async, "telegram", "t1", clock=lambda: now)
    old = now - 8 * 86400  # the marker of its first delivery expired a day ago

    def message(update_id: int, kind: str = "message", **dates: float) -> str:
        body = {"message_id": update_id, "text": "停水", "chat": {"id": -1}, **dates}
        return json.dumps({"update_id": update_id, kind: body})

    with caplog.at_level(logging.WARNING, logger="bot.inbox"):
        assert await inbox.put(1, message(1, date=old)) is False
    assert "refused update 1" in caplog.text and "8.0 days old" in caplog.text
    assert await inbox.put(2, message(2, "edited_message", date=old, edit_date=old)) is False
    assert await redis_async.xlen(keys.inbox("telegram")) == 0
    # Fresh messages, an old message edited today, and buttons on old cards are taken.
    assert await inbox.put(3, message(3, date=now - 60)) is True
    assert await inbox.put(4, message(4, "edited_message", date=old, edit_date=now)) is True
    press = {"update_id": 5, "callback_query": {"id": "q", "data": "ack:1",
                                                "message": {"message_id": 9, "date": old}}}  # fmt: skip
    assert await inbox.put(5, json.dumps(press)) is True
    assert await redis_async.xlen(keys.inbox("telegram")) == 3


async def test_retention_erases_dead_lettered_updates_once_they_are_as_old_as_a_ticket_would_be(
    redis_async: redis.asyncio.Redis,
) -> None:
    now = [1_800_000_000.0]
    inbox = Inbox(redis_async, "telegram", "t1", claim_idle=0.05, max_attempts=1,
                  clock=lambda: now[0])  # fmt: skip
    text = "我住5栋302，电话13812345678，楼道灯坏了"
    bad = json.dumps({"update_id": 7, "message": {"text": text}}, ensure_ascii=False)
    await inbox.put(7, bad)

    async def handle(raw: str) -> None:
        raise ValueError("this update breaks the handler")

    async with running(inbox, handle):

        async def dead() -> bool:
            return await redis_async.llen(inbox.dead) == 1

        await until(dead)
    # An update dead-lettered before its time was recorded (an older version) is timed when
    # the sweep first sees it, so that it too is erased in time.
    older = json.dumps({"update_id": 3, "message": {"text": "旧的一条"}}, ensure_ascii=False)
    await redis_async.rpush(inbox.dead, older)
    data = PersonalData(redis_async, lambda: now[0])
    assert await data.expire(30) == 0
    assert await redis_async.llen(inbox.dead) == 2  # kept for an operator while young
    now[0] += 31 * DAY
    assert await data.expire(30) == 0  # no ticket erased, but:
    assert await redis_async.lrange(inbox.dead, 0, -1) == []
    assert await redis_async.zcard(inbox.dead_at) == 0
