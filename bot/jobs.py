"""rq entry points: top-level functions with primitive arguments.

rq runs each coroutine job in a fresh event loop, so every job builds its own
Redis client and closes it. The rules, tree and templates are loaded once per
worker process and reloaded when their files change.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import AsyncIterator

from bot.bindings import BindingStore, OverlaidConfig
from bot.ports import Clock
from bot.redis_clients import async_client, sync_client
from bot.scheduling import RqScheduler
from bot.services import Service
from bot.settings import Settings
from bot.storage.redis import RedisStore


@functools.cache
def _shared(settings: Settings) -> OverlaidConfig:
    # The file's tree with the groups bound and the staff enrolled in chat laid over it.
    return OverlaidConfig(settings.rules_dir, settings.org_file, settings.policy())


@contextlib.asynccontextmanager
async def worker_service(settings: Settings, clock: Clock = time.time) -> AsyncIterator[Service]:
    """Yield a Service on fresh clients (rq runs each job in a new event loop), then close them."""
    if not settings.redis_url:
        raise RuntimeError("REDIS_URL is not set for the worker")
    config = _shared(settings)
    config.reload()
    client = async_client(settings.redis_url)
    await config.refresh(BindingStore(client))
    sync = sync_client(settings.redis_url)
    try:
        yield Service(RedisStore(client), config, RqScheduler(sync, settings.queue), clock)
    finally:
        await client.aclose()
        sync.close()


async def check_deadlines(second: int) -> int:
    """Check every deadline due by ``second``; return how many (``bot.scheduling``)."""
    async with worker_service(Settings()) as service:
        return await service.check_due(second)


async def check_deadline(ticket_id: str, stage: int, kind: str) -> str:
    """Check one deadline of a ticket (a job of one deadline, as scheduled before)."""
    async with worker_service(Settings()) as service:
        outcome = await service.handle_deadline(ticket_id, stage, kind)
    return outcome.value
