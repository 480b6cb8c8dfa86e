"""End to end: the real ptb Application against the fake Bot API, a real Redis and a real rq worker."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from bot.core.ticket import TicketState
from bot.storage import keys
from tests.fake_bot_api import Call, FakeBotApi, wait_for
from tests.helpers import stored_ticket
from tests.telegram_fixtures import (
    ADMIN,
    CADRE_V01,
    GRID_WORKER_G03,
    H01,
    LIGHT,
    OTHER_RESIDENT,
    RESIDENT,
    S01,
    SECRET,
    STREET_STAFF,
    V01,
    Harness,
    next_sent,
    quiet,
    run_worker,
)  # fmt: skip


@pytest.mark.parametrize("webhook", [False, True], ids=["polling", "webhook"])
async def test_a_report_climbs_and_is_confirmed(harness: Harness, webhook: bool) -> None:
    fake = harness.fake
    bot = await harness.start(webhook=webhook)
    assert fake.methods() >= {"getMe", "setMyCommands"}
    if webhook:
        assert fake.webhook["url"] == "https://bot.example.org/telegram"
        assert fake.webhook["secret_token"] == SECRET
        assert set(json.loads(fake.webhook["allowed_updates"])) == {
            "message", "edited_message", "callback_query"
        }  # fmt: skip
    else:
        assert "deleteWebhook" in fake.methods()
    # A resident reports in the household group.
    report = fake.message(H01, RESIDENT, LIGHT, name="陈志强")
    await harness.send(report, webhook)
    if webhook:  # the same update delivered again opens nothing more
        assert await fake.deliver(report) == 200
    reply = await next_sent(fake, 0, H01, "the resident's reply")
    assert reply.reply_to == report["message"]["message_id"] and "#1" in reply.text
    card = await next_sent(fake, 0, V01, "the card in the village group")
    assert card.buttons == ["ack:1", "resolve:1", "escalate:1"] and LIGHT in card.text
    # The village cadre presses 受理.
    n = len(fake.sent)
    await harness.send(fake.callback(CADRE_V01, card, "ack:1"), webhook)
    await next_sent(fake, n, V01, "the acknowledgement notice")
    await wait_for(lambda: "answerCallbackQuery" in fake.methods(), what="callback answered")
    ticket = await bot.store.get("1")
    assert ticket is not None and ticket.state is TicketState.ACKNOWLEDGED
    # The card itself now says so, and offers only what still applies.
    await wait_for(lambda: "处理中" in fake.showing(card)[0], what="the card edited")
    assert fake.showing(card)[1] == ["resolve:1", "escalate:1"]
    # The resolution deadline passes: the rq worker moves the ticket up to the street.
    assert ticket.resolve_due is not None
    await asyncio.sleep(max(0.0, ticket.resolve_due + 1.2 - time.time()))
    n = len(fake.sent)
    result = await asyncio.to_thread(run_worker, harness.redis_url)
    assert result.returncode == 0, result.stderr
    street_card = await next_sent(fake, n, S01, "the card in the street group")
    assert street_card.buttons == ["ack:1", "resolve:1"]  # the top: nowhere to escalate to
    # The village's card shows where the ticket went, and no buttons: it is not theirs now.
    await wait_for(lambda: fake.showing(card)[1] == [], what="the village card edited")
    assert "已上报" in fake.showing(card)[0] and "街道" in fake.showing(card)[0]
    ticket = await bot.store.get("1")
    assert ticket is not None and (ticket.state, ticket.node) == (TicketState.ESCALATED, "S-01")
    # Street staff resolve it with a typed command; the resident is asked to confirm.
    n = len(fake.sent)
    await harness.send(fake.message(S01, STREET_STAFF, "办结 1 路灯已更换", name="骆炳坤"), webhook)
    ask = await next_sent(fake, n, H01, "the resident asked to confirm")
    assert ask.buttons == ["confirm:1", "reopen:1"]
    # The resident presses 确认.
    n = len(fake.sent)
    await harness.send(fake.callback(RESIDENT, ask, "confirm:1", name="陈志强"), webhook)
    await wait_for(lambda: _state(harness, "1") == "closed", what="ticket closed")
    await wait_for(lambda: "已完结" in fake.showing(street_card)[0], what="street card closed")
    await quiet(harness)
    assert fake.showing(street_card)[1] == [] and fake.showing(card)[1] == []
    assert "已完结" in fake.showing(card)[0]
    # Every message the fake server received, checked: methods, chats, no repeats.
    assert fake.unexpected == []
    assert fake.methods() <= {
        "getMe", "setMyCommands", "deleteWebhook", "setWebhook", "getUpdates",
        "sendMessage", "answerCallbackQuery", "editMessageText",
    }  # fmt: skip
    # Each card edited once per change it shows (ack, escalate, resolve, close), never again.
    edits = [(c.chat, c.params["message_id"], c.text) for c in fake.edits]
    assert len(edits) == len(set(edits)), "a card was edited twice to the same"
    assert [c.params["language_code"] for c in fake.calls if c.method == "setMyCommands"
            if "language_code" in c.params] == ["zh", "zh", "en", "en"]  # fmt: skip
    texts = [(c.chat, c.text) for c in fake.sent]
    assert len(texts) == len(set(texts)), "a message was sent twice"
    assert all("#1" in text or "1" in text for _, text in texts)
    history = [e.kind.value for e in await bot.store.history("1")]
    # (The street's 8 hours to acknowledge last 0.6 s here: on a loaded machine they may pass
    # while the worker runs, and the administrator is then told privately, once.)
    flagged = {ADMIN} if "flagged" in history else set()
    assert history.count("flagged") <= 1
    assert {c.chat for c in fake.sent} <= {H01, V01, S01} | flagged
    assert len([c for c in fake.sent if c.buttons[:1] == ["ack:1"]]) == 2  # village, street
    assert next(c for c in fake.sent if c.chat == H01) is reply
    assert history[0] == "opened" and history[-1] == "confirmed"
    assert history.count("opened") == 1 and history.count("escalated") == 1
    assert await harness.client.get(keys.TICKET_SEQ) == b"1"


def _answers(fake: FakeBotApi) -> list[Call]:
    return [c for c in fake.calls if c.method == "answerCallbackQuery" and "text" in c.params]


def _state(h: Harness, ticket_id: str) -> str:
    ticket, _ = stored_ticket(h.sync, ticket_id)
    return str(ticket.state.value) if ticket else ""


async def test_forged_webhook_requests_are_refused_and_change_nothing(harness: Harness) -> None:
    fake = harness.fake
    bot = await harness.start(webhook=True)
    update = fake.message(H01, RESIDENT, LIGHT)
    assert await fake.deliver(update, secret=None) == 403
    assert await fake.deliver(update, secret="wrong-secret") == 403
    assert await fake.deliver(update, secret=SECRET + "x") == 403
    await asyncio.sleep(0.5)
    assert await harness.client.exists(keys.update_seen("telegram", update["update_id"])) == 0
    assert await bot.inbox.pending() == 0 and await bot.store.get("1") is None
    assert fake.sent == []
    # Malformed bodies with the right secret: refused, nothing stored.
    assert fake._session is not None
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
    async with fake._session.post(fake.webhook_target, data=b"{not json", headers=headers) as r:
        assert r.status == 400
    async with fake._session.post(fake.webhook_target, json={"x": 1}, headers=headers) as r:
        assert r.status == 400
    assert await bot.inbox.pending() == 0
    # The genuine delivery, twice: one ticket, one reply.
    assert await fake.deliver(update) == 200
    assert await fake.deliver(update) == 200
    await next_sent(fake, 0, H01, "reply")
    await quiet(harness)
    assert len(fake.sent_to(H01)) == 1 and await harness.client.get(keys.TICKET_SEQ) == b"1"


async def test_commands_and_buttons_without_the_role_are_refused(harness: Harness) -> None:
    fake = harness.fake
    bot = await harness.start()
    fake.push(fake.message(H01, RESIDENT, LIGHT))
    card = await next_sent(fake, 0, V01, "card")
    before = await bot.store.history("1")
    # A resident of another group presses 受理 on the card; a grid worker of another village
    # types /ack 1: neither may see the ticket, so neither learns more than "not found".
    # A refused press is answered to the presser alone (answerCallbackQuery), never in the group.
    n = len(fake.sent)
    press = fake.callback(OTHER_RESIDENT, card, "ack:1", name="黄美玲")
    fake.push(press)
    await wait_for(lambda: _answers(fake), what="the press answered")
    answer = _answers(fake)[0]
    assert answer.params["callback_query_id"] == press["callback_query"]["id"]
    assert "或它不是您的" in answer.params["text"]
    assert answer.params.get("show_alert", "False") in ("False", "false")
    n = len(fake.sent)
    fake.push(fake.message(V01, GRID_WORKER_G03, "/ack 1", name="卢振邦"))
    refusal = await next_sent(fake, n, V01, "refusal of the command")
    assert "或它不是您的" in refusal.text and "东联村" not in refusal.text
    # Admin commands by a resident: refused, nothing stored.
    n = len(fake.sent)
    fake.push(fake.message(H01, RESIDENT, "/bind grid:G-03"))
    assert "仅限管理员" in (await next_sent(fake, n, H01, "bind refused")).text
    n = len(fake.sent)
    fake.push(fake.message(RESIDENT, RESIDENT, "/invite grid_worker grid:G-03"))
    assert "仅限管理员" in (await next_sent(fake, n, RESIDENT, "invite refused")).text
    await quiet(harness)
    assert len(fake.sent_to(V01)) == 2  # the card and the refusal of the typed /ack
    assert await bot.store.history("1") == before
    assert await harness.client.hlen(keys.BINDINGS) == 0
    assert await harness.client.keys(keys.invite("*")) == []


async def test_bind_invite_join_survive_a_restart(harness: Harness) -> None:
    fake = harness.fake
    new_group, staff_user = -1009999000001, 777001
    await harness.start()
    # An admin binds a new group to grid G-03 and makes an invite code in private.
    fake.push(fake.message(new_group, ADMIN, "/bind grid:G-03", name="刘德明"))
    assert "已绑定" in (await next_sent(fake, 0, new_group, "bound")).text
    fake.push(fake.message(ADMIN, ADMIN, "/invite grid_worker grid:G-03", name="刘德明"))
    invite = await next_sent(fake, 0, ADMIN, "invite code")
    code = invite.text.split("：", 1)[1].split()[0]
    # A code posted in a group is burned.
    fake.push(fake.message(H01, RESIDENT, f"/join {code}"))
    assert "作废" in (await next_sent(fake, 0, H01, "burned")).text
    fake.push(fake.message(ADMIN, ADMIN, "/invite grid_worker grid:G-03", name="刘德明"))
    n = len(fake.sent_to(ADMIN))
    await wait_for(lambda: len(fake.sent_to(ADMIN)) > n, what="second code")
    code = fake.sent_to(ADMIN)[-1].text.split("：", 1)[1].split()[0]
    fake.push(fake.message(staff_user, staff_user, f"/join {code}", name="新网格员"))
    assert "网格员" in (await next_sent(fake, 0, staff_user, "joined")).text
    fake.push(fake.message(staff_user + 1, staff_user + 1, f"/join {code}"))
    assert "无效" in (await next_sent(fake, 0, staff_user + 1, "used code")).text
    # Restart: a report in the new group reaches G-03's people; the new worker may act.
    await harness.bot.stop()  # type: ignore[union-attr]
    bot = await harness.start()
    n = len(fake.sent)
    fake.push(fake.message(new_group, 200001, "楼道里堆满了垃圾，臭气熏天，好几天没人清理"))
    card = await next_sent(fake, n, new_group, "reply in the bound group")
    ticket = await bot.store.get(next(iter(await bot.store.all_ids())))
    assert ticket is not None and ticket.origin == "G-03"
    n = len(fake.sent)
    fake.push(fake.message(new_group, staff_user, f"/ack {ticket.id}", name="新网格员"))
    await wait_for(lambda: _state(harness, ticket.id) == "acknowledged", what="ack by enrolled")
    assert card.chat == new_group


async def test_a_private_message_that_cannot_be_delivered_goes_to_the_staff_chat(
    harness: Harness,
) -> None:
    fake = harness.fake
    fake.blocked.add(RESIDENT)
    await harness.start()
    fake.push(fake.message(RESIDENT, RESIDENT, "/my"))  # the answer goes to the private chat
    staff = -1001000000221  # G-01's staff chat: the nearest above the resident's household
    fallback = await next_sent(fake, 0, staff, "the message in the staff chat")
    assert fallback.text.startswith("⚠️ 无法私信反映人")
    await quiet(harness)
    assert [c.status for c in fake.calls if c.method == "sendMessage" and c.chat == RESIDENT] == [
        403
    ]
    assert len(fake.sent) == 1
