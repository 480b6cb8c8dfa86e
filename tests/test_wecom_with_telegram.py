"""One street on Telegram and WeCom at once: two processes' worth of bots on one Redis and one org tree."""

from __future__ import annotations

from pathlib import Path

import redis
import redis.asyncio

from bot.core.ticket import TicketState
from bot.settings import Settings
from bot.telegram.runner import TelegramBot
from bot.wecom.gateway import WeComGateway, WeComRendered
from bot.wecom.passive import Passive
from bot.wecom.runner import WeComBot
from tests.fake_bot_api import TOKEN, FakeBotApi
from tests.fake_bot_api import wait_for as tg_wait_for
from tests.fake_wecom import FakeWeCom, wait_for
from tests.wecom_fixtures import H01, KEY_V01, LIGHT, RESIDENT, RULES_DIR, free_port, wecom_settings

V01_TELEGRAM = -1001000000111
CADRE_TELEGRAM = 100026  # p-yang-zixuan, who is also wecom:yangzixuan


async def test_a_wecom_report_reaches_both_platforms_and_a_telegram_ack_reaches_wecom(
    fake: FakeBotApi, fake_wecom: FakeWeCom, redis_url: str,
    redis_async: redis.asyncio.Redis, tmp_path: Path,
) -> None:  # fmt: skip
    settings = wecom_settings(fake_wecom, redis_url, tmp_path)
    sync = redis.Redis.from_url(redis_url)
    wecom = WeComBot(settings, redis_async, sync, consumer="wecom", passive_wait=10.0)
    telegram = TelegramBot(
        Settings(
            **{"REDIS_URL": redis_url}, rules_dir=RULES_DIR, org_file=settings.org_file,
            deadline_scale=1.0, deadline_floor=0, telegram_token=TOKEN,
            telegram_base_url=fake.url, telegram_limit_scale=0.01,
        ),
        redis_async, sync, consumer="telegram", poll_timeout=1,
    )  # fmt: skip
    port = free_port()
    await wecom.start("127.0.0.1", port, "/wecom")
    fake_wecom.target = f"http://127.0.0.1:{port}/wecom"
    await telegram.start()
    try:
        answer = await fake_wecom.post(fake_wecom.message(RESIDENT, f"@联户 {LIGHT}", chatid=H01))
        assert answer.reply is not None and "#1" in answer.reply["stream"]["content"]
        # The village's card: in its Telegram group with buttons, in its WeCom group by webhook.
        await tg_wait_for(lambda: any(c.chat == V01_TELEGRAM for c in fake.sent), what="tg card")
        card = next(c for c in fake.sent if c.chat == V01_TELEGRAM)
        assert card.buttons == ["ack:1", "resolve:1", "escalate:1"]
        await wait_for(lambda: [p for p in fake_wecom.pushes if p.key == KEY_V01], "wecom card")
        # The cadre presses 受理 on Telegram: the WeCom village group hears of it too.
        before = len([p for p in fake_wecom.pushes if p.key == KEY_V01])
        fake.push(fake.callback(CADRE_TELEGRAM, card, "ack:1"))
        await wait_for(
            lambda: len([p for p in fake_wecom.pushes if p.key == KEY_V01]) > before, "wecom notice"
        )
        ticket = await wecom.store.get("1")
        assert ticket is not None and ticket.state is TicketState.ACKNOWLEDGED
        # Each platform drained only its own outbox; nothing went to WeCom but its two APIs.
        assert fake_wecom.unexpected == []
    finally:
        await telegram.stop()
        await wecom.stop()
        sync.close()


async def test_group_webhooks_keep_to_their_rate_limit(
    fake_wecom: FakeWeCom, redis_async: redis.asyncio.Redis
) -> None:
    """Two pushes per window per robot, however fast they are asked for (window shrunk to 0.5 s)."""
    import aiohttp
    from pydantic import SecretStr

    async with aiohttp.ClientSession() as session:
        gateway = WeComGateway(
            redis_async, session, fake_wecom.url, lambda: {"wecom:g": SecretStr(KEY_V01)},
            Passive(redis_async), per_minute=2, window=0.5,
        )  # fmt: skip
        for i in range(6):
            await gateway.send("wecom:g", WeComRendered(f"notice {i}"), None)
    pushes = fake_wecom.pushes
    assert [p.text for p in pushes] == [f"notice {i}" for i in range(6)]
    # In any two-push stretch the third came a window after the first (0.05 s of clock slack).
    assert all(pushes[i + 2].at - pushes[i].at >= 0.45 for i in range(4))
    assert fake_wecom.refused == []
