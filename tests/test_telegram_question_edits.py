"""A question's messages are edited once it is answered or climbs: Telegram, the fake Bot API."""

from __future__ import annotations

import time
from collections import Counter

from bot.core.triage import Action
from tests.fake_bot_api import Call, FakeBotApi, wait_for
from tests.telegram_fixtures import H01, RESIDENT, Harness, next_sent, quiet
from tests.test_questions import ModelStandIn, model_verdict
from tests.test_telegram_questions import G01_STAFF, GRID_WORKER_G01, UNSURE, WATER


def edited_once(fake: FakeBotApi) -> None:
    """Assert that no message was edited twice (the edit went through the outbox once)."""
    counts = Counter((c.chat, c.params["message_id"]) for c in fake.edits)
    assert counts and max(counts.values()) == 1, counts


async def test_a_confirmed_flag_shows_who_confirmed_and_the_ticket_everywhere_it_asked(
    harness: Harness,
) -> None:
    fake = harness.fake
    bot = await harness.start()
    model = ModelStandIn(bot.config.ruleset)
    model.said[WATER] = model_verdict("none", Action.IGNORE, True, (("none", 0.7),))
    bot.service.classifier = model  # type: ignore[assignment]
    fake.push(fake.message(H01, RESIDENT, WATER, name="陈志强"))
    card = await next_sent(fake, 0, G01_STAFF, "the flag in the grid's staff chat")
    private = await next_sent(fake, 0, GRID_WORKER_G01, "the flag to the grid worker privately")
    fake.push(fake.callback(GRID_WORKER_G01, card, "danger:p1:yes", name="钟志伟"))
    for sent in (card, private):
        await wait_for(lambda s=sent: not fake.showing(s)[1], what="the buttons gone")
        text, buttons = fake.showing(sent)
        assert "✅ 钟志伟 确认危险，已立紧急工单 #1" in text and buttons == []
        assert "请核实后点按钮" not in text
    await quiet(harness)
    edited_once(fake)
    assert fake.unexpected == []


async def test_an_answered_ask_shows_the_answer_and_loses_its_buttons(harness: Harness) -> None:
    fake = harness.fake
    bot = await harness.start()
    model = ModelStandIn(bot.config.ruleset)
    model.said[UNSURE] = model_verdict(
        "noise", Action.ASK, False, (("noise", 0.35), ("sanitation", 0.3))
    )
    bot.service.classifier = model  # type: ignore[assignment]
    fake.push(fake.message(H01, RESIDENT, UNSURE, name="陈志强"))
    ask = await next_sent(fake, 0, H01, "the ask")
    assert fake.showing(ask)[1] == ["ask:p1:noise", "ask:p1:sanitation", "ask:p1:no"]
    fake.push(fake.callback(RESIDENT, ask, "ask:p1:noise", name="陈志强"))
    await wait_for(lambda: not fake.showing(ask)[1], what="the ask's buttons gone")
    text, _ = fake.showing(ask)
    assert text.startswith("已由居民回答：登记为 噪音") and "#1" in text
    assert "需要我登记吗" not in text
    await quiet(harness)
    edited_once(fake)
    assert fake.unexpected == []


async def test_a_climbed_flag_says_where_it_went_and_then_who_answered(harness: Harness) -> None:
    fake = harness.fake
    bot = await harness.start()
    model = ModelStandIn(bot.config.ruleset)
    model.said[WATER] = model_verdict("none", Action.IGNORE, True, (("none", 0.7),))
    bot.service.classifier = model  # type: ignore[assignment]
    fake.push(fake.message(H01, RESIDENT, WATER, name="陈志强"))
    card = await next_sent(fake, 0, G01_STAFF, "the flag in the grid's staff chat")
    await quiet(harness)
    n = len(fake.sent)
    bot.service.clock = lambda: time.time() + 3600  # the grid left it unanswered
    await bot.service.handle_deadline("p1", 0, "danger")
    above = await wait_for_new_flag(fake, n)
    await wait_for(lambda: "已转至" in fake.showing(card)[0], what="the grid's card updated")
    # The grid's staff may still answer (their scope): their card keeps its buttons.
    assert fake.showing(card)[1] == ["danger:p1:yes", "danger:p1:no"]
    fake.push(fake.callback(GRID_WORKER_G01, card, "danger:p1:no", name="钟志伟"))
    for sent in (card, above):
        await wait_for(lambda s=sent: not fake.showing(s)[1], what="the buttons gone")
        assert "钟志伟：不危险，按一般问题处理" in fake.showing(sent)[0]
    await quiet(harness)
    assert fake.unexpected == []


async def wait_for_new_flag(fake: FakeBotApi, n: int) -> Call:
    """Return the next flag card sent to another chat after the first ``n`` deliveries."""
    await wait_for(
        lambda: any(c.buttons and c.chat != G01_STAFF for c in fake.sent[n:]), what="climbed"
    )
    return next(c for c in fake.sent[n:] if c.buttons and c.chat != G01_STAFF)
