"""The questions in WeCom groups: buttons where a card can come back, plain commands elsewhere."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis
import redis.asyncio

from bot.core.models import Reply
from bot.core.prompts import Press, PromptKind, typed_press
from bot.core.triage import Action
from bot.wecom.adapter import SETTLED_KEY
from bot.wecom.runner import WeComBot
from tests.fake_wecom import FakeWeCom, wait_for
from tests.helpers import stored_ticket
from tests.test_questions import ModelStandIn, model_verdict
from tests.wecom_fixtures import H01, KEY_H01, KEY_V01, RESIDENT, free_port, wecom_settings

G01_STAFF, KEY_G01 = "wrG01staff", "key-g01-0000-cccc"
GRID_WORKER = "zhongzhiwei"  # p-zhong-zhiwei, grid worker of G-01
WATER = "几个小孩在河里玩水，水流很急"
UNSURE = "楼下那个东西又来了，怎么办"


@pytest.fixture
async def bot(
    fake_wecom: FakeWeCom, redis_url: str, redis_async: redis.asyncio.Redis, tmp_path: Path
) -> AsyncIterator[WeComBot]:
    """A WeCom bot whose grid G-01 has its staff group on WeCom, reached by a webhook only."""
    settings = wecom_settings(fake_wecom, redis_url, tmp_path)
    org = settings.org_file
    text = org.read_text(encoding="utf-8")
    for old, new in (
        ('staff_chat: "telegram:-1001000000221"', f'staff_chat: "wecom:{G01_STAFF}"'),
        ('"sim:p-zhong-zhiwei"]', f'"sim:p-zhong-zhiwei", "wecom:{GRID_WORKER}"]'),
    ):
        assert old in text, old
        text = text.replace(old, new)
    org.write_text(text, encoding="utf-8")
    assert settings.wecom_webhooks is not None
    hooks = settings.wecom_webhooks
    hooks.write_text(hooks.read_text() + f'  "wecom:{G01_STAFF}": "{KEY_G01}"\n')
    fake_wecom.keys = {KEY_H01, KEY_V01, KEY_G01}
    sync = redis.Redis.from_url(redis_url)
    wecom = WeComBot(settings, redis_async, sync, consumer="q", passive_wait=10.0)
    port = free_port()
    await wecom.start("127.0.0.1", port, "/wecom")
    fake_wecom.target = f"http://127.0.0.1:{port}/wecom"
    model = ModelStandIn(wecom.config.ruleset)  # the engine's edge: a model's verdicts
    model.said[WATER] = model_verdict("none", Action.IGNORE, True, (("none", 0.7),))
    model.said[UNSURE] = model_verdict(
        "noise", Action.ASK, False, (("noise", 0.35), ("sanitation", 0.3))
    )
    wecom.service.classifier = model  # type: ignore[assignment]
    try:
        yield wecom
    finally:
        await wecom.stop()
        sync.close()


async def test_a_flag_pushed_to_a_webhook_group_is_answered_by_a_typed_command(
    fake_wecom: FakeWeCom, bot: WeComBot
) -> None:
    fake = fake_wecom
    answer = await fake.post(fake.message(RESIDENT, f"@联户 {WATER}", chatid=H01))
    assert answer.reply is not None and "110" in answer.reply["stream"]["content"]
    # The flag reaches the grid's staff group by its webhook: no buttons can come back
    # there, so it says what to reply, in plain words, never the buttons' data.
    flag = await wait_for(lambda: [p for p in fake.pushes if p.key == KEY_G01], "the flag")
    assert WATER in flag[0].text
    assert "「危险 1」或「不危险 1」" in flag[0].text and "danger:" not in flag[0].text
    await fake.post(fake.message(GRID_WORKER, "@联户 危险 1", chatid=G01_STAFF))
    ticket = await wait_for(lambda: _ticket(bot, "1"), "the emergency ticket")
    assert (ticket.category, ticket.node) == ("emergency", "S-01")
    assert fake.problems == [] and fake.unexpected == []


async def test_an_ask_in_a_group_is_a_button_card_and_a_press_answers_it(
    fake_wecom: FakeWeCom, bot: WeComBot
) -> None:
    fake = fake_wecom
    answer = await fake.post(fake.message(RESIDENT, f"@联户 {UNSURE}", chatid=H01))
    assert answer.reply is not None and answer.reply["msgtype"] == "template_card"
    card = answer.reply["template_card"]
    keys = [b["key"] for b in card["button_list"]]
    assert keys == ["ask:p1:noise", "ask:p1:sanitation", "ask:p1:no"]  # as on Telegram
    assert [b["text"] for b in card["button_list"]][-1] == "不用"
    pressed = await fake.post(fake.button(RESIDENT, "ask:p1:noise", H01, card["task_id"]))
    assert pressed.status == 200 and pressed.reply is not None  # the card, answered
    ticket = await wait_for(lambda: _ticket(bot, "1"), "the ticket the press opened")
    assert ticket.category == "noise" and ticket.text == UNSURE
    # Someone else asked the same way answers by typing: 登记 2 2 is the second category.
    stranger = "newneighbour"
    asked = await fake.post(fake.message(stranger, f"@联户 {UNSURE}", chatid=H01))
    assert asked.reply is not None and asked.reply["msgtype"] == "template_card"
    await fake.post(fake.message(stranger, "@联户 登记 2 2", chatid=H01))
    second = await wait_for(lambda: _ticket(bot, "2"), "the ticket the typed answer opened")
    assert second.category == "sanitation"
    assert fake.problems == [] and fake.unexpected == []


async def test_a_pressed_question_card_is_replaced_by_its_answer(
    fake_wecom: FakeWeCom, bot: WeComBot
) -> None:
    fake = fake_wecom
    answer = await fake.post(fake.message(RESIDENT, f"@联户 {UNSURE}", chatid=H01))
    assert answer.reply is not None
    card = answer.reply["template_card"]
    pressed = await fake.post(fake.button(RESIDENT, "ask:p1:noise", H01, card["task_id"]))
    assert pressed.reply is not None, "the press was answered without the card's update"
    assert pressed.reply["response_type"] == "update_template_card"
    updated = pressed.reply["template_card"]
    assert updated["task_id"] == card["task_id"]
    shown = updated["main_title"]["title"] + updated.get("sub_title_text", "")
    assert shown.startswith("已由居民回答：登记为") and "需要我登记吗" not in shown
    assert updated["button_list"] == [{"text": "无需操作", "style": 4, "key": SETTLED_KEY}]
    # A second press on the settled card's grey button does nothing.
    idle = await fake.post(fake.button(RESIDENT, SETTLED_KEY, H01, card["task_id"]))
    assert idle.status == 200 and idle.reply is None
    await wait_for(lambda: _ticket(bot, "1"), "the ticket the press opened")
    assert fake.problems == [] and fake.unexpected == [] and fake.refused == []


def test_the_hint_of_a_question_names_the_typed_answers(bot: WeComBot) -> None:
    names = {"noise": {"zh-Hans": "噪音扰民", "en": "Noise"}, "sanitation": {"zh-Hans": "环境卫生"}}
    buttons = ("ask:p7:noise", "ask:p7:sanitation", "ask:p7:no")
    params = {"id": "p7", "choice_names": names}
    reply = Reply(f"wecom:{H01}", "ask_register", params, buttons=buttons)
    hint = bot.render(reply).hint
    assert "「登记 7 1」（噪音扰民）或「登记 7 2」（环境卫生）或「不用 7」" in hint
    assert "ask:" not in hint
    assert all(typed_press(t) is not None for t in ("登记 7 1", "登记 7 2", "不用 7"))
    assert typed_press("登記 7 1") == Press(PromptKind.ASK, "p7", "1")
    assert typed_press("不危險 7") == Press(PromptKind.DANGER, "p7", "no")
    assert typed_press("登记 7") is None and typed_press("我觉得危险 7") is None


def _ticket(bot: WeComBot, ticket_id: str):  # type: ignore[no-untyped-def]

    with redis.Redis.from_url(bot.settings.redis_url or "") as r:
        return stored_ticket(r, ticket_id)[0]
