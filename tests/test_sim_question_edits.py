"""A question's messages in the web simulator are edited once it is answered."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from bot.core.triage import Action
from tests.test_cards import press
from tests.test_questions import ModelStandIn, model_verdict
from tests.test_telegram_questions import UNSURE, WATER
from tests.test_web import client, parts, send, until

__all__ = ["client"]  # the web app fixture, shared with test_web


def stand_in(c: TestClient) -> ModelStandIn:
    service = parts(c).service
    model = ModelStandIn(service.config.ruleset)
    service.classifier = model  # type: ignore[assignment]
    return model


async def test_an_answered_ask_in_the_simulator_shows_the_answer(client: TestClient) -> None:
    model = stand_in(client)
    model.said[UNSURE] = model_verdict(
        "noise", Action.ASK, False, (("noise", 0.35), ("sanitation", 0.3))
    )
    await send(client, "p-chen-zhiqiang", "sim:H-01", UNSURE)
    ask = (await until(client, "sim:H-01", lambda ms: len(ms) == 2 and ms[1].buttons))[1]
    await press(client, "p-chen-zhiqiang", "sim:H-01", ask.id, "ask:p1:no")
    messages = await until(
        client,
        "sim:H-01",
        lambda ms: "居民选择不用登记" in next(m for m in ms if m.id == ask.id).text,
    )
    shown = next(m for m in messages if m.id == ask.id)
    assert shown.buttons == () and "需要我登记吗" not in shown.text


async def test_a_confirmed_flag_in_the_simulator_shows_who_confirmed(client: TestClient) -> None:
    model = stand_in(client)
    model.said[WATER] = model_verdict("none", Action.IGNORE, True, (("none", 0.7),))
    await send(client, "p-chen-zhiqiang", "sim:H-01", WATER)
    mine = "sim:p-zhong-zhiwei"
    card = (await until(client, mine, lambda ms: any(m.buttons for m in ms)))[-1]
    await press(client, "p-zhong-zhiwei", mine, card.id, "danger:p1:yes")
    messages = await until(
        client,
        mine,
        lambda ms: "确认危险，已立紧急工单 #1" in next(m for m in ms if m.id == card.id).text,
    )
    assert next(m for m in messages if m.id == card.id).buttons == ()
