"""Fixtures for the WeCom tests: an org with WeCom groups, webhook keys, the fake WeCom and a running bot."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio

from bot.settings import Settings
from bot.wecom.runner import WeComBot
from tests.fake_wecom import AES_KEY, BOT_ID, TOKEN, FakeWeCom

ROOT = Path(__file__).resolve().parent.parent
RULES_DIR = ROOT / "routing_rules"
H01, V01 = "wrH01group", "wrV01group"
KEY_H01, KEY_V01 = "key-h01-0000-aaaa", "key-v01-0000-bbbb"
RESIDENT, CADRE = "chenzhiqiang", "yangzixuan"  # p-chen-zhiqiang (H-01), p-yang-zixuan (V-01)
LIGHT = "村口的路灯坏了半个月，晚上黑漆漆的"


def wecom_org(tmp: Path) -> Path:
    """Write the sample street with WeCom groups for H-01 and V-01 and two WeCom accounts."""
    text = (ROOT / "org" / "sample_street.yaml").read_text(encoding="utf-8")
    for old, new in (
        ('"sim:H-01"]', f'"sim:H-01", "wecom:{H01}"]'),
        ('"sim:V-01"]', f'"sim:V-01", "wecom:{V01}"]'),
        ('"sim:p-chen-zhiqiang"]', f'"sim:p-chen-zhiqiang", "wecom:{RESIDENT}"]'),
        ('"sim:p-yang-zixuan"]', f'"sim:p-yang-zixuan", "wecom:{CADRE}"]'),
    ):
        assert old in text, old
        text = text.replace(old, new)
    path = tmp / "street.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def webhook_file(tmp: Path) -> Path:
    path = tmp / "wecom_webhooks.yaml"
    path.write_text(f'webhooks:\n  "wecom:{H01}": "{KEY_H01}"\n  "wecom:{V01}": "{KEY_V01}"\n')
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wecom_settings(fake: FakeWeCom, redis_url: str, tmp: Path, **extra: Any) -> Settings:
    return Settings(
        **{"REDIS_URL": redis_url}, rules_dir=RULES_DIR, org_file=wecom_org(tmp),
        deadline_scale=1.0, deadline_floor=0,
        wecom_token=TOKEN, wecom_aes_key=AES_KEY, wecom_bot_id=BOT_ID, wecom_bot_name="联户",
        wecom_base_url=fake.url, wecom_webhooks=webhook_file(tmp), **extra,
    )  # fmt: skip


@pytest.fixture
async def fake_wecom() -> AsyncIterator[FakeWeCom]:
    fake = FakeWeCom()
    fake.keys = {KEY_H01, KEY_V01}
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()


@pytest.fixture
async def wecom_bot(
    fake_wecom: FakeWeCom, redis_url: str, redis_async: redis.asyncio.Redis, tmp_path: Path
) -> AsyncIterator[WeComBot]:
    sync = redis.Redis.from_url(redis_url)
    bot = WeComBot(
        wecom_settings(fake_wecom, redis_url, tmp_path), redis_async, sync,
        consumer="test", passive_wait=10.0,
    )  # fmt: skip
    port = free_port()
    await bot.start("127.0.0.1", port, "/wecom")
    fake_wecom.target = f"http://127.0.0.1:{port}/wecom"
    try:
        yield bot
    finally:
        await bot.stop()
        sync.close()
