"""办结 by button asks its presser for the result (issue 13, item 9).

Telegram: the real ptb stack against the fake Bot API; the simulator: its HTTP API.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.core.resolution import ASK_TTL
from bot.core.ticket import EventKind, TicketState
from bot.settings import Settings
from bot.storage import keys
from bot.web.app import PARTS, init_app
from tests.fake_bot_api import Call, wait_for
from tests.telegram_fixtures import (
    CADRE_V01,
    GRID_WORKER_G03,
    H01,
    LIGHT,
    RESIDENT,
    V01,
    Harness,
    next_sent,
    quiet,
)
from tests.test_web import send, until

PHOTO = [{"file_id": "f1", "file_unique_id": "u1", "width": 90, "height": 90}]


async def _card(h: Harness) -> Call:
    await h.start()
    await h.send(h.fake.message(H01, RESIDENT, LIGHT, name="陈志强"), False)
    return await next_sent(h.fake, 0, V01, "the card in the village group")


async def _press(h: Harness, card: Call) -> Call:
    """Press 办结 on ``card`` as the village cadre; return the question it asks."""
    n = len(h.fake.sent)
    await h.send(h.fake.callback(CADRE_V01, card, "resolve:1", name="杨子轩"), False)
    return await next_sent(h.fake, n, V01, "the question for the result")


async def _answer(h: Harness, question: Call, user: int, text: str, **extra: Any) -> Call:
    """Reply to ``question`` as ``user``; return the bot's next message in the village group."""
    n = len(h.fake.sent)
    reply_to = question.result["message_id"]
    await h.send(h.fake.message(V01, user, text, reply_to=reply_to, **extra), False)
    return await next_sent(h.fake, n, V01, f"the answer to {text!r}")


async def _state(h: Harness) -> TicketState:
    assert h.bot is not None
    ticket = await h.bot.store.get("1")
    assert ticket is not None
    return ticket.state


async def test_a_resolve_press_asks_its_presser_and_records_the_reply(harness: Harness) -> None:
    fake = harness.fake
    card = await _card(harness)
    question = await _press(harness, card)
    # A ForceReply for the presser alone, who is mentioned; nothing is resolved yet.
    assert question.json("reply_markup") == {"force_reply": True, "selective": True}
    [mention] = question.json("entities")
    assert mention["type"] == "text_mention" and mention["user"]["id"] == CADRE_V01
    assert "杨子轩" in question.text and "#1" in question.text
    await wait_for(lambda: "answerCallbackQuery" in fake.methods(), what="press answered")
    toast = [c for c in fake.calls if c.method == "answerCallbackQuery"][-1]
    assert "#1" in toast.params["text"]
    assert await _state(harness) is TicketState.OPEN
    pending = keys.resolving(f"telegram:{V01}", f"telegram:{CADRE_V01}")
    assert 0 < await harness.client.ttl(pending) <= ASK_TTL
    # Someone else's reply to the question is not the result.
    await harness.send(fake.message(V01, GRID_WORKER_G03, "已修好", reply_to=question.result["message_id"]), False)  # fmt: skip
    await quiet(harness)
    assert await _state(harness) is TicketState.OPEN
    assert await harness.client.get(pending) == b"1"
    # The presser cancels: nothing changes, and they are told so.
    told = await _answer(harness, question, CADRE_V01, "取消")
    assert "未办结" in told.text and "已取消" in told.text
    assert await _state(harness) is TicketState.OPEN
    assert await harness.client.get(pending) is None
    # An empty answer (a photo alone) changes nothing either.
    question = await _press(harness, card)
    told = await _answer(harness, question, CADRE_V01, "", photo=PHOTO)
    assert "未办结" in told.text and "没有收到结果" in told.text
    assert await _state(harness) is TicketState.OPEN
    # The result: recorded in the resolve event, on the card and in the resident's notice.
    question = await _press(harness, card)
    n = len(fake.sent)
    await harness.send(fake.message(V01, CADRE_V01, "路灯已更换", reply_to=question.result["message_id"]), False)  # fmt: skip
    notice = await next_sent(fake, n, H01, "the resident asked to confirm")
    assert "路灯已更换" in notice.text and notice.buttons == ["confirm:1", "reopen:1"]
    assert await _state(harness) is TicketState.RESOLVED
    assert harness.bot is not None
    resolved = [e for e in await harness.bot.store.history("1") if e.kind is EventKind.RESOLVED]
    assert [e.data["note"] for e in resolved] == ["路灯已更换"]
    await wait_for(lambda: "路灯已更换" in fake.showing(card)[0], what="the card shows it")
    await quiet(harness)
    assert fake.unexpected == []


async def test_a_late_answer_is_told_so_and_a_typed_resolve_still_works(
    harness: Harness,
) -> None:
    card = await _card(harness)
    question = await _press(harness, card)
    # The question lapses (Redis drops the key when its TTL runs out).
    await harness.client.delete(keys.resolving(f"telegram:{V01}", f"telegram:{CADRE_V01}"))
    told = await _answer(harness, question, CADRE_V01, "路灯已更换")
    assert "过期" in told.text and "#1" in told.text
    assert await _state(harness) is TicketState.OPEN
    # The typed command resolves in one step, with its result.
    n = len(harness.fake.sent)
    await harness.send(harness.fake.message(V01, CADRE_V01, "/resolve 1 路灯已更换"), False)
    notice = await next_sent(harness.fake, n, H01, "the resident asked to confirm")
    assert "路灯已更换" in notice.text
    assert await _state(harness) is TicketState.RESOLVED


# -- the simulator -------------------------------------------------------------------------


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[TestClient]:
    app = init_app(Settings(), redis_url, demo=True)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def test_the_simulator_asks_for_the_result_and_takes_the_presser_s_answer(
    client: TestClient,
) -> None:
    parts = client.app[PARTS]
    await send(client, "p-chen-zhiqiang", "sim:H-01", "楼下停水两天了")
    card = (await until(client, "sim:V-01", lambda ms: len(ms) == 1))[0]
    press = {"as": "p-yang-zixuan", "chat": "sim:V-01", "message_id": str(card.id)}
    response = await client.post("/sim/api/press", json={**press, "data": "resolve:1"})
    body = await response.json()
    assert (body["status"], body["ticket"]) == ("asked", "1") and "#1" in body["notice"]
    asked = await until(client, "sim:V-01", lambda ms: len(ms) == 2)
    assert "杨子轩" in asked[1].text and "办结结果" in asked[1].text
    ticket = await parts.service.store.get("1")
    assert ticket is not None and ticket.state is TicketState.OPEN
    # Another member's message is theirs, not the result; cancel; then the answer.
    await send(client, "p-zhong-zhiwei", "sim:V-01", "我去看一下")
    cancelled = await send(client, "p-yang-zixuan", "sim:V-01", "取消")
    assert cancelled["status"] == "refused"
    ticket = await parts.service.store.get("1")
    assert ticket is not None and ticket.state is TicketState.OPEN
    await client.post("/sim/api/press", json={**press, "data": "resolve:1"})
    done = await send(client, "p-yang-zixuan", "sim:V-01", "已通知水务公司抢修，恢复供水")
    assert (done["status"], done["ticket"]) == ("done", "1")
    ticket = await parts.service.store.get("1")
    assert ticket is not None and ticket.state is TicketState.RESOLVED
    notice = await until(client, "sim:H-01", lambda ms: any("恢复供水" in m.text for m in ms))
    assert any(m.buttons for m in notice if "恢复供水" in m.text)
