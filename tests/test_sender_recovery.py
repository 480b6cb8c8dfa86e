"""Sent markers owed after a Redis blip are all written, even those owed while writing them.

Found in the long scaled chaos run: the lease holder's pool refused a connection ("Too many
connections") while several lanes were marking what Telegram had just accepted. The
recovery wrote the markers it had listed and let sends go; a lane's marker that failed a
moment later was left in memory, its outbox entry pending, so the next lease holder would
send that message again (the chaos test saw the markers never catch up).
"""

from __future__ import annotations

import json

import pytest
import redis.asyncio
from telegram import Bot

import bot.sender as sender_module
from bot.adapters.telegram import TelegramGateway
from bot.ports import Rendered, Sent
from bot.sender import Delivered, Sender
from bot.storage import keys
from bot.telegram.lease import Lease
from bot.telegram.ratelimit import Limits, RateLimiter
from bot.telegram.sending import TelegramSender
from tests.fake_bot_api import TOKEN, FakeBotApi

STREAM = keys.outbox("telegram")


class Accepting:
    platform = "telegram"

    async def send(self, chat: str, message: Rendered, reply_to: str | None) -> Sent:
        return Sent("1")


async def pending(client: redis.asyncio.Redis, n: int) -> list[str]:
    """Put ``n`` entries in the outbox, read by the sender's group (so pending); their ids."""
    ids = [
        (await client.xadd(STREAM, {"key": f"k{i}", "payload": json.dumps({})})).decode()
        for i in range(n)
    ]
    await client.xgroup_create(STREAM, keys.OUTBOX_GROUP, id="0")
    await client.xreadgroup(keys.OUTBOX_GROUP, "sender", {STREAM: ">"})
    return ids


def delivered(i: int) -> Delivered:
    return Delivered(f"k{i}", "telegram:-100", str(100 + i), None)


async def written(client: redis.asyncio.Redis, n: int) -> tuple[list[bool], int]:
    """Return which markers exist and how many entries are still pending."""
    found = [bool(await client.exists(keys.sent(f"k{i}"))) for i in range(n)]
    return found, (await client.xpending(STREAM, keys.OUTBOX_GROUP))["pending"]


async def test_a_marker_owed_while_the_owed_ones_are_written_is_written_too(
    redis_async: redis.asyncio.Redis,
) -> None:
    ids = await pending(redis_async, 2)

    class LaneFailsMeanwhile(Sender):
        async def _mark(self, entry_id: str, done: Delivered) -> bool:
            written = await super()._mark(entry_id, done)
            if done.key == "k0":  # another lane's marker failed during this write
                self._unmarked[ids[1]] = delivered(1)
            return written

    sender = LaneFailsMeanwhile(redis_async, Accepting())  # type: ignore[arg-type]
    sender._unmarked[ids[0]] = delivered(0)
    assert await sender._flush_marks()
    assert sender._unmarked == {}
    assert await written(redis_async, 2) == ([True, True], 0)


async def test_a_marker_owed_while_the_lease_is_checked_is_written_before_sends_go(
    fake: FakeBotApi, redis_async: redis.asyncio.Redis
) -> None:
    ids = await pending(redis_async, 2)
    bot = Bot(TOKEN, base_url=f"{fake.url}/bot")
    sender = TelegramSender(redis_async, TelegramGateway(bot), RateLimiter(Limits().scaled(0.001)))

    class LaneFailsMeanwhile(Lease):
        async def hold(self) -> bool:
            held = await super().hold()
            if ids[1] not in added:  # a lane's marker failed while the lease was asked
                added.append(ids[1])
                sender._unmarked[ids[1]] = delivered(1)
            return held

    added: list[str] = []
    sender.lease = LaneFailsMeanwhile(redis_async, keys.sender_lease("telegram"), 15.0)
    sender._unmarked[ids[0]] = delivered(0)
    sender._redis_up.clear()
    await sender._recover()
    assert sender._redis_up.is_set()
    assert sender._unmarked == {}
    assert await written(redis_async, 2) == ([True, True], 0)


async def test_only_the_newest_delivered_cards_are_remembered_whole(
    redis_async: redis.asyncio.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sender remembers what it delivered (a marker Redis lost is written again), but a
    card's payload is kilobytes: 50,000 of them held 400 MB in the soak. Past the newest
    CARDS_REMEMBERED it keeps the key (never sent twice) and drops the card's record."""
    monkeypatch.setattr(sender_module, "CARDS_REMEMBERED", 3)
    ids = await pending(redis_async, 5)
    sender = Sender(redis_async, Accepting())  # type: ignore[arg-type]
    for i, entry_id in enumerate(ids):
        card = {"payload": {"chat": "telegram:-100", "ticket": "7"}, "digest": "0" * 12}
        done = Delivered(f"k{i}", "telegram:-100", str(100 + i), "7", card, "7")
        assert await sender._delivered_now(entry_id, done)
    kept = sender._delivered
    assert list(kept) == [f"k{i}" for i in range(5)]  # every key remembered, in order
    assert [kept[f"k{i}"].card is not None for i in range(5)] == [False, False, True, True, True]
    assert kept["k0"].message_id == "100"  # what re-marking it needs is kept
