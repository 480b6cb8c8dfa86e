"""WeCom cards kept true: the pressed card replaced, webhook cards followed up, exactly once."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import redis
import redis.asyncio

from bot.core.models import Reply
from bot.core.ticket import TicketState
from bot.storage import keys
from bot.storage.redis import reply_payload
from bot.wecom.adapter import SETTLED_KEY
from bot.wecom.gateway import WeComRendered, card_body, card_update
from bot.wecom.runner import WeComBot
from tests.fake_wecom import FakeWeCom, wait_for
from tests.wecom_fixtures import CADRE, H01, KEY_V01, LIGHT, RESIDENT, free_port, wecom_settings


def _keys(card: dict[str, Any]) -> list[str]:
    return [b["key"] for b in card["button_list"]]


def _card_with(fake: FakeWeCom, key: str) -> dict[str, Any] | None:
    return next((c for c in fake.cards.values() if key in _keys(c)), None)


async def test_a_pressed_card_is_replaced_and_the_group_card_followed_up(
    fake_wecom: FakeWeCom, wecom_bot: WeComBot
) -> None:
    fake = fake_wecom
    await fake.post(fake.message(RESIDENT, f"@联户 {LIGHT}", chatid=H01))
    await wait_for(lambda: [p for p in fake.pushes if p.key == KEY_V01], "card in V-01")
    # The cadre takes the ticket in a single chat: their card comes back as a button card.
    await fake.post(fake.message(CADRE, "转派 1 杨子轩"))
    card = await wait_for(lambda: _card_with(fake, "ack:1"), "the assignee's button card")
    assert _keys(card) == ["ack:1", "resolve:1", "escalate:1"]
    # A press on it: the answer replaces that very card (same task_id), 受理 gone.
    pressed = await fake.post(fake.button(CADRE, "ack:1", task_id=card["task_id"]))
    assert pressed.reply is not None, "the press was answered without the card's update"
    assert pressed.reply["response_type"] == "update_template_card"
    updated = pressed.reply["template_card"]
    assert updated["task_id"] == card["task_id"]
    assert _keys(updated) == ["resolve:1", "escalate:1"]
    assert "处理中" in updated.get("sub_title_text", "") + updated["main_title"]["title"]
    ticket = await wecom_bot.store.get("1")
    assert ticket is not None and ticket.state is TicketState.ACKNOWLEDGED
    # The village group's card was a webhook push: it cannot change, so it is followed up
    # once per change (the assignment, then the acknowledgement), with what applies now.
    follow = await wait_for(
        lambda: [p for p in fake.pushes if p.key == KEY_V01 and "处理中" in p.text],
        "the follow-up of the acknowledgement",
    )
    assert "#1" in follow[0].text and "「办结 1 说明」" in follow[0].text
    assert "「受理 1」" not in follow[0].text
    # 办结 pressed on the updated card asks for the result: the card stays as it is.
    asked = await fake.post(fake.button(CADRE, "resolve:1", task_id=card["task_id"]))
    assert asked.status == 200 and asked.reply is None
    ticket = await wecom_bot.store.get("1")
    assert ticket is not None and ticket.state is TicketState.ACKNOWLEDGED
    # Escalated by a press on the card instead: no button is left, so one grey one says so.
    moved = await fake.post(fake.button(CADRE, "escalate:1", task_id=card["task_id"]))
    assert moved.reply is not None
    settled = moved.reply["template_card"]
    assert settled["button_list"] == [{"text": "无需操作", "style": 4, "key": SETTLED_KEY}]
    # Pressing the grey button does nothing at all, and is answered at once.
    idle = await fake.post(fake.button(CADRE, SETTLED_KEY, task_id=card["task_id"]))
    assert idle.status == 200 and idle.reply is None
    await wait_for(
        lambda: [p for p in fake.pushes if p.key == KEY_V01 and "已上报" in p.text],
        "the follow-up of the escalation",
    )
    texts = [p.text for p in fake.pushes if p.key == KEY_V01]
    assert len(texts) == len(set(texts)), f"a follow-up was sent twice: {texts}"
    assert fake.problems == [] and fake.unexpected == [] and fake.refused == []


async def test_two_processes_send_every_entry_once_within_one_rate_limit(
    fake_wecom: FakeWeCom, redis_url: str, redis_async: redis.asyncio.Redis, tmp_path: Path
) -> None:
    """Two WeCom runners on one Redis: one sender at a time, one robot limit between them."""
    fake = fake_wecom
    fake.per_minute, fake.window = 2, 0.35  # WeCom's rule, shrunk (the bot keeps 0.5 s)
    settings = wecom_settings(fake, redis_url, tmp_path, wecom_per_minute=2)
    sync = redis.Redis.from_url(redis_url)
    quick = {"passive_wait": 10.0, "retry_after": 1.0, "rate_window": 0.5}
    bots = [WeComBot(settings, redis_async, sync, consumer=name, **quick) for name in "ab"]
    ports = [free_port(), free_port()]
    for bot, port in zip(bots, ports, strict=True):
        await bot.start("127.0.0.1", port, "/wecom")
    try:
        holder = await wait_for(lambda: _holder(bots), "a sender")
        other = bots[1 - bots.index(holder)]
        count = 16  # 4 s of pushes at this limit: longer than an unacknowledged entry waits
        for i in range(count):
            reply = Reply(f"wecom:{H01}", "unknown_person", {"target": f"M{i:03d}"})
            payload = json.dumps(reply_payload(reply), ensure_ascii=False)
            await redis_async.xadd(keys.outbox("wecom"), {"key": f"m{i}", "payload": payload})
        await wait_for(lambda: len(fake.pushes) >= 4, "the first pushes")
        await holder.stop()  # the sender goes away mid-burst; the other takes over
        await wait_for(lambda: other.sender is not None and other.sender.holding(), "takeover")
        await wait_for(lambda: len(_markers(fake)) >= count, "every entry pushed")
        await wait_for(lambda: sync.xlen(keys.outbox("wecom")) == 0, "the outbox drained")
        assert Counter(_markers(fake)) == Counter(f"M{i:03d}" for i in range(count))
        assert fake.refused == [] and fake.problems == []
        # A callback held by a process that is not the sender still gets its passive reply.
        third = WeComBot(settings, redis_async, sync, consumer="c", passive_wait=10.0)
        bots.append(third)
        port = free_port()
        await third.start("127.0.0.1", port, "/wecom")
        fake.target = f"http://127.0.0.1:{port}/wecom"
        assert third.sender is not None and not third.sender.holding()
        answer = await fake.post(fake.message(RESIDENT, f"@联户 {LIGHT}", chatid=H01))
        assert answer.reply is not None and "#1" in answer.reply["stream"]["content"]
    finally:
        for bot in bots:
            await bot.stop()
        sync.close()


def _holder(bots: list[WeComBot]) -> WeComBot | None:
    return next((b for b in bots if b.sender is not None and b.sender.holding()), None)


def _markers(fake: FakeWeCom) -> list[str]:
    return [m for p in fake.pushes for m in re.findall(r"M\d{3}", p.text)]


async def test_the_fake_refuses_what_wecom_documents_as_wrong(fake_wecom: FakeWeCom) -> None:
    """The fake's checks can fail: each body below breaks one documented rule."""
    fake = fake_wecom
    card = card_body(WeComRendered("标题\n正文", (("受理", "ack:1"),)), "lianhu-t1")
    message, press = fake.message(RESIDENT, "x", chatid=H01), fake.button(CADRE, "ack:1")
    fake._check_passive(message, {"msgtype": "template_card", "template_card": card})
    assert fake.problems == [] and "lianhu-t1" in fake.cards
    wrong = [
        (message, {"msgtype": "template_card", "template_card": card}),  # task_id used before
        (message, {"msgtype": "markdown", "markdown": {"content": "x"}}),  # not a passive type
        (message, {"msgtype": "stream", "stream": {"finish": True, "content": "x"}}),  # no id
        (message, {"response_type": "update_template_card", "template_card": card}),
        (press, {"msgtype": "stream", "stream": {"id": "s", "content": "x"}}),
        (press, {"response_type": "update_template_card", "template_card": card}),  # other task
        (press, card_update(WeComRendered("标题", ()), "bad task id!")),
    ]
    for msg, reply in wrong:
        fake._check_passive(msg, reply)
    assert len(fake.problems) == len(wrong), fake.problems
    no_buttons = {**card, "task_id": "lianhu-t2", "button_list": []}
    assert "button_list" in fake._new_card(no_buttons)
    same_keys = {**card, "task_id": "lianhu-t3", "button_list": [card["button_list"][0]] * 2}
    assert "unique" in fake._new_card(same_keys)
    # Through a group's response_url a card is refused; markdown goes.
    async with fake.session.post(
        message["response_url"], json={"msgtype": "template_card", "template_card": card}
    ) as response:
        assert (await response.json())["errcode"] != 0
