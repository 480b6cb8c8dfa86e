"""WeCom cards kept true: the pressed card replaced, webhook cards followed up, exactly once."""

from __future__ import annotations

from typing import Any

from bot.core.ticket import TicketState
from bot.wecom.adapter import SETTLED_KEY
from bot.wecom.runner import WeComBot
from tests.fake_wecom import FakeWeCom, wait_for
from tests.wecom_fixtures import CADRE, H01, KEY_V01, LIGHT, RESIDENT


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
    # Resolved by a press on the updated card: no button is left, so one grey one says so.
    resolved = await fake.post(fake.button(CADRE, "resolve:1", task_id=card["task_id"]))
    assert resolved.reply is not None
    settled = resolved.reply["template_card"]
    assert settled["button_list"] == [{"text": "无需操作", "style": 4, "key": SETTLED_KEY}]
    # Pressing the grey button does nothing at all, and is answered at once.
    idle = await fake.post(fake.button(CADRE, SETTLED_KEY, task_id=card["task_id"]))
    assert idle.status == 200 and idle.reply is None
    await wait_for(
        lambda: [p for p in fake.pushes if p.key == KEY_V01 and "已办结" in p.text],
        "the follow-up of the resolution",
    )
    texts = [p.text for p in fake.pushes if p.key == KEY_V01]
    assert len(texts) == len(set(texts)), f"a follow-up was sent twice: {texts}"
    assert fake.problems == [] and fake.unexpected == [] and fake.refused == []
