"""The composition root of a chat platform's process: the parts every platform runner shares."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

import redis
import redis.asyncio

from bot.bindings import BindingStore, OverlaidConfig
from bot.classifier.engine import engine_for
from bot.core.deadlines import Policy
from bot.core.pacing import Pacing
from bot.render import Renderer
from bot.scheduling import RqScheduler
from bot.services import Service
from bot.settings import Settings
from bot.storage.redis import RedisStore

log = logging.getLogger(__name__)

CONFIG_EVERY = 5.0  # seconds between looks at the rule and org files


@dataclass
class ChatParts:
    """The rules and tree, the store, the ticket service, the renderer and the bindings."""

    config: OverlaidConfig
    renderer: Renderer
    store: RedisStore
    service: Service
    bindings: BindingStore


def chat_parts(
    settings: Settings,
    client: redis.asyncio.Redis,
    sync: redis.Redis,
    policy: Policy | None = None,
) -> ChatParts:
    """Build the parts a platform runner serves its chats with, from the settings."""
    config = OverlaidConfig(settings.rules_dir, settings.org_file, policy or settings.policy())
    store = RedisStore(client)
    service = Service(
        store,
        config,
        RqScheduler(sync, settings.queue),
        classifier=engine_for(settings, config.ruleset),
        pacing=Pacing(per_person=settings.replies_per_person),
        web_url=settings.web_url,
    )
    return ChatParts(config, Renderer(), store, service, BindingStore(client))


async def keep_current(
    service: Service, config: OverlaidConfig, bindings: BindingStore, stop: asyncio.Event
) -> None:
    """Pick up changed rule and org files and bindings made by other processes, until stopped."""
    while not stop.is_set():
        try:
            await service.check_config()
            await config.refresh(bindings)
        except Exception:
            log.exception("config check failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), CONFIG_EVERY)
