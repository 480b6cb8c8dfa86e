"""A danger flag and an ask through the real python-telegram-bot stack and the fake Bot API."""

from __future__ import annotations

from bot.core.triage import Action
from tests.fake_bot_api import wait_for
from tests.telegram_fixtures import H01, RESIDENT, Harness, next_sent, quiet
from tests.test_questions import ModelStandIn, model_verdict

G01_STAFF, GRID_WORKER_G01, OTHER_GRID_WORKER = -1001000000221, 100020, 100021
WATER = "几个小孩在河里玩水，水流很急"
UNSURE = "楼下那个东西又来了，怎么办"


async def test_a_flag_is_answered_by_the_grid_worker_and_opens_an_emergency(
    harness: Harness,
) -> None:
    fake = harness.fake
    bot = await harness.start()
    model = ModelStandIn(bot.config.ruleset)  # the engine's edge: a model that senses danger
    model.said[WATER] = model_verdict("none", Action.IGNORE, True, (("none", 0.7),))
    bot.service.classifier = model  # type: ignore[assignment]
    report = fake.message(H01, RESIDENT, WATER, name="陈志强")
    harness.fake.push(report)
    numbers = await next_sent(fake, 0, H01, "the emergency numbers")
    assert numbers.reply_to == report["message"]["message_id"] and "110" in numbers.text
    card = await next_sent(fake, 0, G01_STAFF, "the flag in the grid's staff chat")
    assert card.buttons == ["danger:p1:yes", "danger:p1:no"] and WATER in card.text
    await next_sent(fake, 0, GRID_WORKER_G01, "the flag to the grid worker privately")
    # A grid worker of another grid is refused; the grid worker confirms.
    fake.push(fake.callback(OTHER_GRID_WORKER, card, "danger:p1:yes"))

    def refusals() -> list[str]:  # a refused press is answered to the presser alone
        return [
            c.params["text"] for c in fake.calls
            if c.method == "answerCallbackQuery" and "text" in c.params
        ]  # fmt: skip

    await wait_for(lambda: any("不在您的负责范围" in t for t in refusals()), what="the refusal")
    assert not any("不在您的负责范围" in c.text for c in fake.sent)  # never posted in a chat
    n = len(fake.sent)
    fake.push(fake.callback(GRID_WORKER_G01, card, "danger:p1:yes", name="钟志伟"))
    await wait_for(lambda: harness.sync.exists("lianhu:ticket:1") == 1, what="ticket")
    told = await next_sent(fake, n, H01, "the resident told of the emergency ticket")
    # The numbers came with the flag: the ticket's notice refers to them, not again.
    assert "#1" in told.text and "110" not in told.text and "刚才提示" in told.text
    ticket = await bot.store.get("1")
    assert ticket is not None and (ticket.category, ticket.node) == ("emergency", "S-01")
    fake.push(fake.callback(GRID_WORKER_G01, card, "danger:p1:no", name="钟志伟"))
    await wait_for(
        lambda: any("已经有人处理" in t for t in refusals()), what="second press refused"
    )
    await quiet(harness)
    assert not any("已经有人处理" in c.text for c in fake.sent)  # never posted in a chat
    assert fake.unexpected == []


async def test_an_ask_is_answered_with_one_tap(harness: Harness) -> None:
    fake = harness.fake
    bot = await harness.start()
    model = ModelStandIn(bot.config.ruleset)
    model.said[UNSURE] = model_verdict(
        "noise", Action.ASK, False, (("noise", 0.35), ("sanitation", 0.3))
    )
    bot.service.classifier = model  # type: ignore[assignment]
    report = fake.message(H01, RESIDENT, UNSURE, name="陈志强")
    fake.push(report)
    ask = await next_sent(fake, 0, H01, "the ask")
    assert ask.reply_to == report["message"]["message_id"] and "需要我登记吗" in ask.text
    assert ask.buttons == ["ask:p1:noise", "ask:p1:sanitation", "ask:p1:no"]
    n = len(fake.sent)
    fake.push(fake.callback(RESIDENT, ask, "ask:p1:noise", name="陈志强"))
    reply = await next_sent(fake, n, H01, "the ticket opened")
    assert "#1" in reply.text
    ticket = await bot.store.get("1")
    assert ticket is not None and ticket.category == "noise" and ticket.text == UNSURE
    await quiet(harness)
    assert fake.unexpected == []
