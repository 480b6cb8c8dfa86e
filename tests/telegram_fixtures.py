"""Fixtures for the Telegram tests: the fake Bot API server and a running bot (``harness``)."""

from __future__ import annotations

import asyncio
import socket
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio

from bot.settings import Settings
from bot.telegram.runner import TelegramBot
from tests import helpers
from tests.fake_bot_api import TOKEN, Call, FakeBotApi, wait_for

ROOT = Path(__file__).resolve().parent.parent
RULES_DIR = ROOT / "routing_rules"
ORG = ROOT / "org" / "sample_street.yaml"
SCALE = 2e-5  # a day becomes 1.7 s; deadlines act only when the test runs the worker
SECRET = "test-secret_0123456789"
H01, V01, S01 = -1001000000131, -1001000000111, -1001000000101
RESIDENT, CADRE_V01, STREET_STAFF, ADMIN = 100001, 100026, 100033, 100045
OTHER_RESIDENT, GRID_WORKER_G03 = 100002, 100022
LIGHT = "村口的路灯坏了半个月，晚上黑漆漆的"


def settings_for(fake: FakeBotApi, redis_url: str, org: Path = ORG, **extra: Any) -> Settings:
    return Settings(
        **{"REDIS_URL": redis_url}, rules_dir=RULES_DIR, org_file=org, deadline_scale=SCALE,
        deadline_floor=0,
        telegram_token=TOKEN, telegram_base_url=fake.url, webhook_secret=SECRET,
        telegram_limit_scale=0.01, **extra,
    )  # fmt: skip


def run_worker(redis_url: str) -> subprocess.CompletedProcess[str]:
    return helpers.run_worker(redis_url, SCALE)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def fake() -> AsyncIterator[FakeBotApi]:
    api = FakeBotApi()
    await api.start()
    try:
        yield api
    finally:
        await api.close()


class Harness:
    """A running bot, its Redis and the fake server."""

    def __init__(self, fake: FakeBotApi, redis_url: str, client: redis.asyncio.Redis) -> None:
        self.fake = fake
        self.redis_url = redis_url
        self.client = client
        self.sync = redis.Redis.from_url(redis_url)
        self.bot: TelegramBot | None = None

    async def start(self, webhook: bool = False, org: Path = ORG, **extra: Any) -> TelegramBot:
        self.bot = TelegramBot(
            settings_for(self.fake, self.redis_url, org), self.client, self.sync,
            consumer="test", poll_timeout=1, **extra,
        )  # fmt: skip
        if webhook:
            port = free_port()
            await self.bot.start("https://bot.example.org/telegram", "127.0.0.1", port)
            self.fake.webhook_target = f"http://127.0.0.1:{port}/telegram"
        else:
            await self.bot.start()
        return self.bot

    async def stop(self) -> None:
        if self.bot is not None:
            await self.bot.stop()
        self.sync.close()

    async def send(self, update: dict[str, Any], webhook: bool) -> None:
        if webhook:
            assert await self.fake.deliver(update) == 200
        else:
            self.fake.push(update)


@pytest.fixture
async def harness(
    fake: FakeBotApi, redis_url: str, redis_async: redis.asyncio.Redis
) -> AsyncIterator[Harness]:
    h = Harness(fake, redis_url, redis_async)
    try:
        yield h
    finally:
        await h.stop()


async def next_sent(fake: FakeBotApi, before: int, chat: int, what: str) -> Call:
    """Wait for a new message to ``chat`` after the first ``before`` deliveries."""
    await wait_for(lambda: any(c.chat == chat for c in fake.sent[before:]), what=what)
    return next(c for c in fake.sent[before:] if c.chat == chat)


async def quiet(h: Harness) -> None:
    """Wait until the inbox is processed and the sender has nothing in hand."""
    assert h.bot is not None
    bot = h.bot
    await wait_for(lambda: bot.sender.idle, what="sender idle")
    for _ in range(3):
        await asyncio.sleep(0.2)
        await wait_for(lambda: bot.sender.idle, what="sender idle")
    assert await bot.inbox.pending() == 0
