"""Flooding: one person's 200 help commands do not hold back an emergency in the same group.

Orders and counts come from the fake Bot API's record, never from wall-clock timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator

import redis.asyncio
from telegram import Bot

from bot.adapters.telegram import TelegramGateway
from bot.core.models import Reply
from bot.core.pacing import URGENT
from bot.storage import keys
from bot.storage.redis import reply_payload
from bot.telegram.ratelimit import Limits, RateLimiter
from bot.telegram.sending import TelegramSender
from tests.fake_bot_api import TOKEN, FakeBotApi, wait_for
from tests.telegram_fixtures import H01, LIGHT, OTHER_RESIDENT, RESIDENT, S01, Harness, quiet
from tests.test_telegram_load import LIMIT_SCALE, within_window

FIRE = "着火了！5楼厨房冒出好大的火"


async def test_200_help_commands_then_an_emergency_in_one_group(harness: Harness) -> None:
    fake = harness.fake
    await harness.start()
    flood = [
        fake.push(fake.message(H01, RESIDENT, "帮助" if i % 2 else "/help")) for i in range(200)
    ]
    fire = fake.push(fake.message(H01, OTHER_RESIDENT, FIRE))
    fire_id = fire["message"]["message_id"]
    await wait_for(lambda: any(c.reply_to == fire_id for c in fake.sent), 60, "emergency reply")
    await wait_for(lambda: any(c.buttons for c in fake.sent_to(S01)), 60, "emergency card")
    # The flooder's real report still opens a ticket, and they are told its number.
    light = fake.push(fake.message(H01, RESIDENT, LIGHT))
    light_id = light["message"]["message_id"]
    await wait_for(lambda: any(c.reply_to == light_id for c in fake.sent), 60, "report reply")
    await quiet(harness)

    flood_ids = {u["message"]["message_id"] for u in flood}
    to_flooder = [c for c in fake.sent if c.reply_to in flood_ids]
    # One help answer (the identical ones after it are merged), then one "slow down" notice.
    assert len(to_flooder) == 2, [c.text[:30] for c in to_flooder]
    assert "/status" in to_flooder[0].text and "频繁" in to_flooder[1].text
    # The emergency reply and its cards reach Telegram within a few sends of the flood:
    # before the reply, only the flooder's two answers and the emergency's own cards.
    fire_ticket = await harness.client.get(keys.processed(f"telegram:{H01}/{fire_id}"))
    assert fire_ticket is not None
    # Its cards: the street's (受理/办结/上报) and the departments' (到场/协办完成).
    suffix = f":{fire_ticket.decode()}"
    about_fire = {i for i, c in enumerate(fake.sent) if any(b.endswith(suffix) for b in c.buttons)}
    order = [c.reply_to for c in fake.sent]
    before = [i for i in range(order.index(fire_id)) if i not in about_fire]
    assert len(before) <= 2, [(c.chat, c.reply_to, c.buttons) for c in fake.sent[:10]]
    assert min(about_fire) <= 3
    assert "119" in fake.sent[order.index(fire_id)].text
    # The flooder's report opened a ticket, whose card went to the village.
    light_ticket = await harness.client.get(keys.processed(f"telegram:{H01}/{light_id}"))
    assert light_ticket not in (None, b"-")
    assert sum(1 for c in fake.sent if c.reply_to == light_id) == 1
    # Every limit held, by the fake server's clock.
    for chat in {c.chat for c in fake.sent}:
        times = [c.at for c in fake.sent_to(chat)]
        if chat < 0:
            assert within_window(times, 20, 60 * LIMIT_SCALE)
    assert within_window([c.at for c in fake.sent], 30, 1 * LIMIT_SCALE)
    assert fake.unexpected == []


# -- the sender: urgent entries first, in their chat and across chats ------------------------


async def put(client: redis.asyncio.Redis, chat: int, key: str, priority: int = 0) -> None:
    payload = reply_payload(Reply(f"telegram:{chat}", "no_such_ticket", {"id": key}))
    fields = {"key": key, "payload": json.dumps(payload)}
    if priority:
        fields["priority"] = str(priority)
    await client.xadd(keys.outbox("telegram"), fields)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def sending(
    fake: FakeBotApi, client: redis.asyncio.Redis, limits: Limits
) -> AsyncIterator[TelegramSender]:
    bot = Bot(TOKEN, base_url=f"{fake.url}/bot")
    await bot.initialize()
    sender = TelegramSender(client, TelegramGateway(bot), RateLimiter(limits))
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop, block_ms=50))
    try:
        yield sender
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)
        await bot.shutdown()


def ids(fake: FakeBotApi) -> list[str]:
    """Return the entry keys of what was sent, in order (each text names its key as #key)."""
    return [re.search(r"#(\w+)", c.text)[1] for c in fake.sent]  # type: ignore[index]


async def test_an_urgent_entry_goes_ahead_of_its_chats_queue(
    fake: FakeBotApi, redis_async: redis.asyncio.Redis
) -> None:
    group = -1001000000300
    for i in range(60):
        await put(redis_async, group, f"n{i}")
    await put(redis_async, group, "fire", URGENT)
    # 20 a group per 0.3 s: the queue takes a second; the urgent one is sent first.
    async with sending(fake, redis_async, Limits(group=(20, 0.3))) as sender:
        await wait_for(lambda: len(fake.sent) == 61, 30, "61 sent")
        await wait_for(lambda: sender.idle, 10, "idle")
    sent = ids(fake)
    assert sent.index("fire") == 0, sent[:5]
    assert sorted(sent) == sorted([*(f"n{i}" for i in range(60)), "fire"])
    assert within_window([c.at for c in fake.sent], 20, 0.3)
    assert await redis_async.xlen(keys.outbox("telegram")) == 0


async def test_an_urgent_entry_goes_ahead_of_other_chats_when_the_overall_limit_binds(
    fake: FakeBotApi, redis_async: redis.asyncio.Redis
) -> None:
    chats = [-1001000000400 - i for i in range(90)]
    for i, chat in enumerate(chats):
        await put(redis_async, chat, f"n{i}")
    await put(redis_async, -1001000000399, "fire", URGENT)  # its own chat, queued last
    # 10 a second overall: 91 messages take nine seconds; the urgent one goes in the first
    # second's or the second's sends, before the 80 others already waiting.
    async with sending(fake, redis_async, Limits(overall=(10, 0.2))):
        await wait_for(lambda: len(fake.sent) >= 30, 30, "30 sent")
    sent = ids(fake)
    assert "fire" in sent[:20], sent[:20]
    assert within_window([c.at for c in fake.sent], 10, 0.2)
