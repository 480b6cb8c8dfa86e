"""With no notice in force, a report costs no read of the notices: the count comes with the
lookup every report makes anyway (one script, one round trip). Watched with Redis's MONITOR."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import redis
import redis.asyncio

from bot.core.org import Role
from bot.storage import keys
from tests.test_notices import local, post, world  # noqa: F401
from tests.test_services import World

END = "lianhu-test-end"
WATER = "楼下停水了，一滴水都没有"


async def commands_during(
    redis_sync: redis.Redis, redis_async: redis.asyncio.Redis, action: Callable[[], Awaitable[Any]]
) -> list[dict[str, Any]]:
    """Return every command Redis ran while ``action`` ran (MONITOR; scripts' own as 'lua')."""
    seen: list[dict[str, Any]] = []
    ready = threading.Event()

    def watch() -> None:
        with redis_sync.monitor() as monitor:
            ready.set()
            for command in monitor.listen():
                if END in str(command["command"]):
                    return
                seen.append(command)

    watching = asyncio.create_task(asyncio.to_thread(watch))
    assert await asyncio.to_thread(ready.wait, 30.0)
    await redis_async.ping()  # MONITOR is on: what follows is seen
    await action()
    await redis_async.echo(END)
    await watching
    return seen


def notice_reads(seen: list[dict[str, Any]]) -> list[str]:
    """Return the commands sent by the bot (not a script's own, not the lookup script) that
    read the notices."""
    return [
        str(c["command"])
        for c in seen
        if c.get("client_type") != "lua"
        and not str(c["command"]).startswith("EVALSHA")
        and (keys.NOTICES in str(c["command"]) or keys.notice("") in str(c["command"]))
    ]


async def test_a_report_with_no_notice_in_force_reads_none(
    world: World,  # noqa: F811
    redis_sync: redis.Redis,
) -> None:
    resident = world.person(Role.RESIDENT, "H-01")

    async def report() -> None:
        handled = await world.service.handle_message(world.message(resident, WATER))
        assert handled.status == "opened"

    seen = await commands_during(redis_sync, world.redis, report)
    assert seen and notice_reads(seen) == []


async def test_with_a_notice_in_force_a_report_looks_for_it(
    world: World,  # noqa: F811
    redis_sync: redis.Redis,
) -> None:
    await post(world)
    world.clock.now = local(4, 9, 30)
    resident = world.person(Role.RESIDENT, "H-01")

    async def report() -> None:
        handled = await world.service.handle_message(world.message(resident, WATER))
        assert handled.status == "noticed"

    assert notice_reads(await commands_during(redis_sync, world.redis, report)) != []
