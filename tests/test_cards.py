"""Cards stay true and refusals of a press reach the presser alone (simulator and outbox)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

import redis.asyncio
from aiohttp.test_utils import TestClient

from bot.card_edits import card_field
from bot.core.models import Lang, Reply
from bot.ports import Rendered, Sent
from bot.render import Renderer
from bot.sender import Sender
from bot.storage import keys
from bot.storage.decks import Decks
from bot.storage.redis import OutboxEntry, RedisStore, payload_reply, reply_payload
from bot.web.directory import by_activity, rooms
from bot.web.history import ChatMessage
from tests.test_web import client, parts, send, tree, until

__all__ = ["client"]  # the web app fixture, shared with test_web

CARD = {
    "id": "7", "category": "water", "category_names": {}, "severity": "normal", "urgent": False,
    "state": "open", "text": "停水", "reporter": "陈", "reporters": 1, "origin": "H-01",
    "origin_name": "一组", "origin_names": {}, "node": "V-01", "node_name": "东联村",
    "node_names": {}, "ack_due": 1e9, "resolve_due": 1.1e9, "close_due": None, "created_at": 0,
    "escalations": 0, "assignee": None, "resolution": "", "rating": None, "photos": 0,
    "has_location": False,
}  # fmt: skip


def view(seq: int, state: str, buttons: list[str], chat: str = "sim:V-01") -> dict:
    params = {k: CARD[k] for k in ("assignee", "reporters", "node", "node_name", "node_names")}
    params |= {"state": state, "ack_due": 1e9, "resolve_due": 1.1e9, "escalations": 0}
    return {"seq": seq, "params": params, "buttons": buttons, "live": [chat]}


def card_entry(key: str, seq: int = 1) -> OutboxEntry:
    reply = Reply("sim:V-01", "card", CARD, ticket="7", buttons=("ack", "resolve"), card=True)
    return OutboxEntry("sim", key, {**reply_payload(reply), "seq": seq})


def edit_entry(key: str, v: dict) -> OutboxEntry:
    return OutboxEntry("sim", key, {"edit_cards": "7", "view": v})


@dataclass
class Recorder:
    """A gateway at the edge: records sends and edits, as a platform would show them."""

    platform: str = "sim"
    sent: list[tuple[str, Rendered]] = field(default_factory=list)
    edits: list[tuple[str, str, Rendered]] = field(default_factory=list)
    first_id: int = 1  # the message id of its first send; the next ones follow

    async def send(self, chat: str, message: Rendered, reply_to: str | None) -> Sent:
        self.sent.append((chat, message))
        return Sent(str(self.first_id - 1 + len(self.sent)))

    async def edit(self, chat: str, message_id: str, message: Rendered) -> None:
        self.edits.append((chat, message_id, message))


@dataclass
class NoEdits:
    """A platform that cannot edit what it sent (WeCom's webhook cards)."""

    platform: str = "sim"
    sent: list[tuple[str, Rendered]] = field(default_factory=list)

    async def send(self, chat: str, message: Rendered, reply_to: str | None) -> Sent:
        self.sent.append((chat, message))
        return Sent(str(len(self.sent)))


async def test_a_card_is_edited_once_per_change_and_a_redelivered_edit_does_nothing(
    redis_async: redis.asyncio.Redis,
) -> None:
    store, gateway = RedisStore(redis_async), Recorder()
    sender = Sender(redis_async, gateway)
    await store.commit(None, None, (), [card_entry("c1")])
    await sender.drain()
    assert [m.buttons for _, m in gateway.sent] == [(("受理", "ack:7"), ("办结", "resolve:7"))]
    await store.commit(None, None, (), [edit_entry("e2", view(2, "acknowledged", ["resolve"]))])
    await sender.drain()
    assert len(gateway.edits) == 1
    chat, message_id, edited = gateway.edits[0]
    assert (chat, message_id) == ("sim:V-01", "1") and "处理中" in edited.text
    assert edited.buttons == (("办结", "resolve:7"),)
    # The same edit queued again (a redelivery), and an older view arriving late: no edit.
    await store.commit(None, None, (), [edit_entry("e2", view(2, "acknowledged", ["resolve"]))])
    await store.commit(None, None, (), [edit_entry("e1", view(1, "open", ["ack"]))])
    await sender.drain()
    assert len(gateway.edits) == 1
    # A change that leaves the card as it is (a note): nothing sent to the platform.
    await store.commit(None, None, (), [edit_entry("e3", view(3, "acknowledged", ["resolve"]))])
    await sender.drain()
    assert len(gateway.edits) == 1
    # Closed: the text says so and no button is left.
    await store.commit(None, None, (), [edit_entry("e4", view(4, "closed", []))])
    await sender.drain()
    assert len(gateway.edits) == 2 and gateway.edits[1][2].buttons == ()
    assert "已完结" in gateway.edits[1][2].text and await redis_async.xlen(sender.stream) == 0


async def test_an_edit_of_a_card_still_waiting_is_folded_into_its_send(
    redis_async: redis.asyncio.Redis,
) -> None:
    store, gateway = RedisStore(redis_async), Recorder()
    sender = Sender(redis_async, gateway)
    # The edit's view is known before the card goes out (stored by an earlier drain).
    await store.commit(None, None, (), [edit_entry("e2", view(2, "acknowledged", ["resolve"]))])
    await sender.drain()
    await store.commit(None, None, (), [card_entry("c1")])
    await sender.drain()
    assert gateway.edits == []
    [(_, message)] = gateway.sent
    assert "处理中" in message.text and message.buttons == (("办结", "resolve:7"),)


async def test_a_platform_that_cannot_edit_skips_the_edits(
    redis_async: redis.asyncio.Redis,
) -> None:
    store, gateway = RedisStore(redis_async), NoEdits()
    sender = Sender(redis_async, gateway)
    await store.commit(None, None, (), [card_entry("c1")])
    await store.commit(None, None, (), [edit_entry("e2", view(2, "acknowledged", ["resolve"]))])
    stats = await sender.drain()
    assert (stats.sent, stats.failed, stats.dropped) == (2, 0, 0)
    assert len(gateway.sent) == 1 and await redis_async.xlen(sender.stream) == 0


# -- in the simulator ------------------------------------------------------------------------


async def press(client: TestClient, person: str, chat: str, message_id: int, data: str) -> dict:
    response = await client.post(
        "/sim/api/press",
        json={"as": person, "chat": chat, "message_id": str(message_id), "data": data},
    )
    assert response.status == 200, await response.text()
    return await response.json()


async def test_a_refused_press_is_told_to_the_presser_alone(client: TestClient) -> None:
    await send(client, "p-chen-zhiqiang", "sim:H-01", "楼下停水两天了")
    card = (await until(client, "sim:V-01", lambda ms: len(ms) == 1))[0]
    # A grid worker of G-01 sits in the village group but does not handle village tickets.
    body = await press(client, "p-zhong-zhiwei", "sim:V-01", card.id, "ack:1")
    assert body["status"] == "refused" and "不在您的负责范围内" in body["notice"]
    assert "东联村" in body["notice"]
    # A typed command keeps its quoted reply in the group.
    said = await send(client, "p-zhong-zhiwei", "sim:V-01", "/ack 1")
    messages = await until(client, "sim:V-01", lambda ms: len(ms) == 3)
    assert messages[2].reply_to == str(said["message"]["id"])
    assert "不在您的负责范围内" in messages[2].text
    assert [m.text for m in messages[:2]] == [card.text, "/ack 1"]  # nothing for the press
    ticket = await parts(client).service.store.get("1")
    assert ticket is not None and ticket.state.value == "open"


async def test_the_card_in_the_group_follows_its_ticket(client: TestClient) -> None:
    await send(client, "p-chen-zhiqiang", "sim:H-01", "楼下停水两天了")
    card = (await until(client, "sim:V-01", lambda ms: len(ms) == 1))[0]
    history = parts(client).history

    async def shown() -> tuple[str, list[str]]:
        found = await history.get("sim:V-01", str(card.id))
        assert found is not None
        return found.text, [d for _, d in found.buttons]

    async def settled(check: object) -> tuple[str, list[str]]:
        await until(client, "sim:V-01", lambda ms: check(ms[0]))  # type: ignore[operator]
        return await shown()

    await press(client, "p-yang-zixuan", "sim:V-01", card.id, "ack:1")
    text, buttons = await settled(lambda m: "处理中" in m.text)
    assert buttons == ["resolve:1", "escalate:1"] and "杨子轩" not in text.split("\n")[0]
    # Escalated to the street: the village's card says where it went and offers nothing.
    await send(client, "p-yang-zixuan", "sim:V-01", "上报 1 需街道协调")
    text, buttons = await settled(lambda m: "已上报" in m.text)
    assert buttons == [] and "海湾街道" in text
    street = (await until(client, "sim:S-01", lambda ms: len(ms) >= 1))[0]
    assert [d for _, d in street.buttons] == ["ack:1", "resolve:1"]  # the top: no escalate
    # A neighbour reports the same: the street's card counts two reporters.
    await send(client, "p-luo-jiahao", "sim:H-01", "我家也停水了")
    await until(
        client, "sim:S-01", lambda ms: "等 2 人" in next(m for m in ms if m.id == street.id).text
    )
    # Dismissed: no live buttons anywhere.
    await send(client, "p-luo-bingkun", "sim:S-01", "驳回 1 已由水务公司统一处理")
    final = await until(
        client, "sim:S-01", lambda ms: "已驳回" in next(m for m in ms if m.id == street.id).text
    )
    assert next(m for m in final if m.id == street.id).buttons == ()
    assert (await shown())[1] == []
    assert await history.redis.exists(keys.deck("1"))


async def test_notices_name_places_in_the_readers_script(client: TestClient) -> None:
    body = await send(
        client, "p-mark-wilson", "sim:H-07", "No water in our building since yesterday"
    )
    assert body["status"] == "opened"
    ticket = body["ticket"]
    await send(client, "p-zhu-haiyan", "sim:V-02", f"上报 {ticket} 需要街道协调")
    told = await until(
        client,
        "sim:H-07",
        lambda ms: any("Escalated" in m.text or "escalated" in m.text for m in ms[2:]),
    )
    notice = next(m for m in told[2:] if "scalated" in m.text)
    assert "Nan'an Community" in notice.text and "南岸社区" not in notice.text
    assert "Haiwan Street" in notice.text


async def test_a_traditional_chinese_reader_reads_places_in_traditional(
    client: TestClient,
) -> None:
    body = await send(client, "p-au-kamtim", "sim:H-08", "樓下冇水兩日喇")
    assert body["status"] == "opened"
    ticket = body["ticket"]
    await send(client, "p-zhu-haiyan", "sim:V-02", f"上报 {ticket} 需要街道协调")
    told = await until(client, "sim:H-08", lambda ms: any("上報" in m.text for m in ms[2:]))
    notice = next(m for m in told[2:] if "上報" in m.text)
    assert "南岸社區" in notice.text and "海灣街道" in notice.text, notice.text
    assert "南岸社区" not in notice.text and "海湾街道" not in notice.text, notice.text


# -- the chat list, ticket links, the unknown person ------------------------------------------


def test_the_chat_list_starts_with_ones_own_group_then_the_latest() -> None:
    t = tree()
    worker, resident = t.people["p-zhong-zhiwei"], t.people["p-chen-zhiqiang"]
    own, rest = by_activity(t, worker, rooms(t, worker), {"sim:H-02": 20.0, "sim:V-01": 10.0})
    assert own is not None and own.chat == "sim:G-01"  # the grid they serve, not the village
    assert [r.chat for r in rest][:2] == ["sim:H-02", "sim:V-01"]
    assert [r.chat for r in rest][2:] == ["sim:H-01", "sim:H-03", "sim:p-zhong-zhiwei"]
    own, rest = by_activity(t, resident, rooms(t, resident), {"sim:p-chen-zhiqiang": 5.0})
    assert own is not None and own.chat == "sim:H-01"
    assert [r.chat for r in rest] == ["sim:p-chen-zhiqiang"]


async def test_the_page_lists_the_own_group_first(client: TestClient) -> None:
    await send(client, "p-chen-zhiqiang", "sim:H-01", "楼下停水两天了")
    page = await (await client.get("/sim", params={"as": "p-zhong-zhiwei"})).text()
    order = [c for c in re.findall(r'data-chat="([^"]+)"', page)]
    assert order[:2] == ["sim:G-01", "sim:H-01"]  # their grid, then where something happened
    assert 'data-own="1"' in page.split('data-chat="sim:G-01"')[1].split(">")[0]


async def test_the_page_orders_the_other_chats_by_their_latest_message(
    client: TestClient,
) -> None:
    async def order() -> list[str]:
        page = await (await client.get("/sim", params={"as": "p-zhong-zhiwei"})).text()
        return re.findall(r'data-chat="([^"]+)"', page)

    # Nothing said yet: their grid, then the rest lowest tier first.
    quiet = ["sim:H-01", "sim:H-02", "sim:H-03", "sim:V-01", "sim:p-zhong-zhiwei"]
    assert await order() == ["sim:G-01", *quiet]
    await send(client, "p-deng-jiahui", "sim:H-03", "大家早上好")  # chatter: no answer, no card
    assert await order() == ["sim:G-01", "sim:H-03", "sim:H-01", "sim:H-02", *quiet[3:]]
    await send(client, "p-guo-wanting", "sim:H-02", "谢谢大家")
    assert await order() == ["sim:G-01", "sim:H-02", "sim:H-03", "sim:H-01", *quiet[3:]]
    # Their own group stays on top however quiet it is.
    await send(client, "p-zhong-zhiwei", "sim:V-01", "收到")
    assert (await order())[:2] == ["sim:G-01", "sim:V-01"]


async def test_ticket_numbers_link_only_to_tickets_the_reader_may_see(client: TestClient) -> None:
    await send(client, "p-chen-zhiqiang", "sim:H-01", "楼下停水两天了")

    async def visible(person: str, ids: str) -> list[str]:
        response = await client.get("/sim/api/refs", params={"as": person, "ids": ids})
        assert response.status == 200
        return (await response.json())["visible"]

    assert await visible("p-chen-zhiqiang", "1,2,99,x") == ["1"]
    assert await visible("p-yang-zixuan", "1") == ["1"]  # the village handles it
    assert await visible("p-huang-meiling", "1") == []  # a neighbour in another group
    assert await visible("p-zhu-haiyan", "1") == []  # another village


async def test_an_unknown_person_gets_the_friendly_page_in_their_language(
    client: TestClient,
) -> None:
    response = await client.get("/sim", params={"as": "nobody"})
    assert response.status == 404 and response.content_type == "text/html"
    assert "模拟器里没有这个人" in await response.text()
    response = await client.get("/sim", params={"as": "nobody", "lang": "en"})
    page = await response.text()
    assert "There is no such person in the simulator" in page and 'href="/sim"' in page


async def test_a_reporters_confirm_and_rating_buttons_go_once_they_no_longer_apply(
    client: TestClient,
) -> None:
    """Walked in the demo: after 确认 the resident's notice still offered 确认/重开."""
    resident, household = "p-chen-zhiqiang", "sim:H-01"
    await send(client, resident, household, "楼下停水两天了")
    await send(client, "p-yang-zixuan", "sim:V-01", "办结 1 水管已修好，恢复供水")

    def data(m: object) -> list[str]:
        return [d for _, d in m.buttons]  # type: ignore[attr-defined]

    messages = await until(client, household, lambda ms: any("confirm:1" in data(m) for m in ms))
    resolved = next(m for m in messages if "confirm:1" in data(m))
    assert data(resolved) == ["confirm:1", "reopen:1"]
    await press(client, resident, household, resolved.id, "confirm:1")

    def shown(ms: list, message_id: int) -> object:
        return next(m for m in ms if m.id == message_id)

    # Closed: the notice that asked keeps its news, stops asking and offers nothing more; the
    # rating is live.
    messages = await until(client, household, lambda ms: data(shown(ms, resolved.id)) == [])
    now = shown(messages, resolved.id).text  # type: ignore[attr-defined]
    assert now.split("\n")[0] == resolved.text.split("\n")[0] and "请点" not in now
    closed = next(m for m in messages if "rate:1:5" in data(m))
    await press(client, resident, household, closed.id, "rate:1:5")
    messages = await until(client, household, lambda ms: data(shown(ms, closed.id)) == [])
    assert "评分" not in shown(messages, closed.id).text  # type: ignore[attr-defined]
    ticket = await parts(client).service.store.get("1")
    assert ticket is not None and ticket.state.value == "closed" and ticket.rating == 5


async def test_a_co_reporters_own_reopen_goes_while_the_ticket_is_handled_again(
    client: TestClient,
) -> None:
    """Walked in the demo: the first reporter pressed 重开, and the neighbour's 重开 stayed,
    answered by a refusal, while the ticket was being handled again."""
    household = "sim:H-01"
    await send(client, "p-chen-zhiqiang", household, "楼下停水两天了")
    await send(client, "p-luo-jiahao", household, "我家也停水了")
    await send(client, "p-yang-zixuan", "sim:V-01", "办结 1 水管已修好，恢复供水")

    def data(m: object) -> list[str]:
        return [d for _, d in m.buttons]  # type: ignore[attr-defined]

    messages = await until(
        client,
        household,
        lambda ms: sum(data(m) in (["confirm:1", "reopen:1"], ["reopen:1"]) for m in ms) == 2,
    )
    first = next(m for m in messages if data(m) == ["confirm:1", "reopen:1"])
    neighbour = next(m for m in messages if data(m) == ["reopen:1"])
    await press(client, "p-chen-zhiqiang", household, first.id, "reopen:1")

    def shown(ms: list, message_id: int) -> list[str]:
        return data(next(m for m in ms if m.id == message_id))

    await until(
        client, household, lambda ms: shown(ms, first.id) == [] and shown(ms, neighbour.id) == []
    )
    ticket = await parts(client).service.store.get("1")
    assert ticket is not None and ticket.state.value == "reopened"


async def test_a_staff_only_report_made_in_a_group_is_told_there_that_the_answer_is_private(
    client: TestClient,
) -> None:
    """Walked in the demo: a welfare report in the household group got nothing in the group
    (its receipt went to the private chat), so the resident saw silence where they spoke; on
    Telegram, one who never opened a private chat with the bot would hear nothing at all."""
    said = await send(client, "p-chen-zhiqiang", "sim:H-01", "我要跟老公离婚，他天天跟我吵架")
    ticket = await parts(client).service.store.get(said["ticket"])
    assert ticket is not None and ticket.visibility == "staff"
    private = await until(client, "sim:p-chen-zhiqiang", lambda ms: len(ms) == 1)
    assert f"#{ticket.id}" in private[0].text
    group = await until(client, "sim:H-01", lambda ms: len(ms) == 2)
    note = group[1]
    assert note.reply_to == str(said["message"]["id"]) and "私信" in note.text
    assert f"#{ticket.id}" not in note.text and "离婚" not in note.text


async def test_a_departments_steps_show_on_the_tickets_other_cards(client: TestClient) -> None:
    """Walked in the demo: the fire station pressed 到场, and the handlers' card never said so
    (only a separate notice did); a card kept its first department lines for ever."""
    said = await send(client, "p-liang-guohua", "sim:H-04", "5栋楼梯间堆满了电动车在充电，很危险")
    ticket_id = said["ticket"]
    ticket = await parts(client).service.store.get(ticket_id)
    assert ticket is not None and "D-fire" in ticket.departments
    handlers = f"sim:{ticket.node}"
    station = await until(client, "sim:D-fire", lambda ms: any(m.buttons for m in ms))
    card = next(m for m in station if m.buttons)
    await press(client, "p-li-jiaxin", "sim:D-fire", card.id, f"arrive:{ticket_id}")

    def carded(ms: list) -> bool:
        return any(f"#{ticket_id}" in m.text and "已到场" in m.text and "📌" in m.text for m in ms)

    await until(client, handlers, carded)


def test_a_flagged_tickets_card_says_it_is_overdue() -> None:
    """At the top of the ladder a missed deadline flags the ticket; its card must say so, not
    show a past time as if it were still to come."""
    params = {**CARD, "state": "open", "flagged": True}
    for lang, word in ((Lang.ZH_HANS, "已超时"), (Lang.ZH_HANT, "已逾時"), (Lang.EN, "overdue")):
        text = Renderer().render(Reply("sim:S-01", "card", params, lang)).text
        assert word in text, text
        calm = Renderer().render(Reply("sim:S-01", "card", {**CARD, "state": "open"}, lang)).text
        assert word not in calm


# What a department's card must and must not say once a step is pressed, per language: the
# button (and command) of a step done is gone, so its instruction must go too.
STEP_WORDS = {
    Lang.ZH_HANS: {
        "arrive": ("「到场」", "到场 {id}"),
        "assisted": ("「协办完成」", "协办完成 {id}"),
    },
    Lang.ZH_HANT: {
        "arrive": ("「到場」", "到場 {id}"),
        "assisted": ("「協辦完成」", "協辦完成 {id}"),
    },
    Lang.EN: {"arrive": ("Arrived", "/arrive {id}"), "assisted": ("Assist done", "/assisted {id}")},
}
DONE_WORDS = {
    Lang.ZH_HANS: ("已到场", "已协办完成"),
    Lang.ZH_HANT: ("已到場", "已協辦完成"),
    Lang.EN: ("arrived", "finished its part"),
}


async def recorded_cards(client: TestClient, ticket_id: str) -> list[dict[str, Any]]:
    """Return the payloads of a ticket's simulator cards as last brought up to date."""
    decks = Decks(parts(client).service.store.redis, "sim")
    found = [await decks.card(ticket_id, f) for f in await decks.fields(ticket_id)]
    return [card[0] for card in found if card is not None]


async def card_texts(client: TestClient, ticket_id: str, chat: str) -> dict[Lang, str]:
    """Return a ticket's card in ``chat`` as last brought up to date, in every language."""
    (payload,) = [p for p in await recorded_cards(client, ticket_id) if p["chat"] == chat]
    reply = payload_reply(payload)
    return {lang: Renderer().render(replace(reply, lang=lang)).text for lang in Lang}


async def test_a_department_card_asks_only_for_the_steps_still_to_press(
    client: TestClient,
) -> None:
    """Walked: after 到场 and 协办完成 the fire station's card still told it to press both."""
    said = await send(client, "p-liang-guohua", "sim:H-04", "5栋楼梯间堆满了电动车在充电，很危险")
    ticket_id = said["ticket"]
    station = await until(client, "sim:D-fire", lambda ms: any(m.buttons for m in ms))
    card = next(m for m in station if m.buttons)

    def shown(ms: list) -> ChatMessage:
        return next(m for m in ms if m.id == card.id)

    def labels(ms: list) -> list[str]:
        return [label for label, _ in shown(ms).buttons]

    for lang, text in (await card_texts(client, ticket_id, "sim:D-fire")).items():
        for step in ("arrive", "assisted"):
            assert all(w.format(id=ticket_id) in text for w in STEP_WORDS[lang][step]), text
    await press(client, "p-li-jiaxin", "sim:D-fire", card.id, f"arrive:{ticket_id}")
    arrived = shown(await until(client, "sim:D-fire", lambda ms: labels(ms) == ["协办完成"]))
    assert "「到场」" not in arrived.text and "请点「协办完成」" in arrived.text, arrived.text
    for lang, text in (await card_texts(client, ticket_id, "sim:D-fire")).items():
        gone, left = STEP_WORDS[lang]["arrive"], STEP_WORDS[lang]["assisted"]
        assert not any(w.format(id=ticket_id) in text for w in gone), text
        assert all(w.format(id=ticket_id) in text for w in left), text
        assert DONE_WORDS[lang][0] in text, text
    await press(client, "p-li-jiaxin", "sim:D-fire", card.id, f"assisted:{ticket_id}")
    done = shown(await until(client, "sim:D-fire", lambda ms: not shown(ms).buttons))
    assert "请点" not in done.text and "已协办完成" in done.text, done.text
    for lang, text in (await card_texts(client, ticket_id, "sim:D-fire")).items():
        for step in ("arrive", "assisted"):
            assert not any(w.format(id=ticket_id) in text for w in STEP_WORDS[lang][step]), text
        said_done = next(line for line in text.splitlines() if DONE_WORDS[lang][1] in line)
        assert DONE_WORDS[lang][0] in said_done, text
        assert len(re.findall(r"\d{1,2}:\d{2}", said_done)) == 2, text  # when each was done


# A department has no 受理 button: the handler's 受理 deadline on its card read as its own. Its
# card gives the lead's resolve deadline, worded as the lead's.
LEAD_DEADLINE = {
    Lang.ZH_HANS: ("前受理", "牵头方"),
    Lang.ZH_HANT: ("前受理", "牽頭方"),
    Lang.EN: ("Acknowledge by", "The lead is to resolve it by"),
}


async def test_a_department_card_gives_the_leads_deadline_as_the_leads(
    client: TestClient,
) -> None:
    """Walked: the fire station's card said ⏰ … 前受理, … 前办结 with no 受理 button of its own."""
    said = await send(client, "p-liang-guohua", "sim:H-04", "5栋楼梯间堆满了电动车在充电，很危险")
    ticket_id = said["ticket"]
    await until(client, "sim:D-fire", lambda ms: any(m.buttons for m in ms))
    ticket = await parts(client).service.store.get(ticket_id)
    assert ticket is not None and ticket.resolve_due is not None
    for lang, text in (await card_texts(client, ticket_id, "sim:D-fire")).items():
        handlers, lead = LEAD_DEADLINE[lang]
        assert handlers not in text, text
        (line,) = [line for line in text.splitlines() if line.startswith("⏰")]
        assert lead in line, text
        assert re.search(r"\d{1,2}:\d{2}", line), text  # the resolve deadline's time
    # Acknowledged, the card (brought up to date) still words the deadline as the lead's.
    await send(client, "p-pan-lijuan", "sim:G-02", f"受理 {ticket_id}")
    await until(client, "sim:D-fire", lambda ms: any("处理中" in m.text for m in ms))
    for lang, text in (await card_texts(client, ticket_id, "sim:D-fire")).items():
        (line,) = [line for line in text.splitlines() if line.startswith("⏰")]
        assert LEAD_DEADLINE[lang][1] in line, text


ESCALATED_WORDS = {
    Lang.ZH_HANS: ("⏫ 由东联村第二网格上报", "转派"),
    Lang.ZH_HANT: ("⏫ 由東聯村第二網格上報", "轉派"),
    Lang.EN: ("⏫ Escalated by", "Handed over"),
}


async def test_an_escalated_card_still_says_escalated_once_the_ticket_moves_on(
    client: TestClient,
) -> None:
    """Walked: the village's card of a ticket the grid escalated read "⏫ 由…上报" until the
    village dismissed it; then it read "🔀 由…转派" (handed over), which never happened."""
    said = await send(client, "p-liang-guohua", "sim:H-04", "5栋楼梯间堆满了电动车在充电，很危险")
    ticket_id = said["ticket"]
    await until(client, "sim:G-02", lambda ms: any(f"#{ticket_id}" in m.text for m in ms))
    await send(client, "p-pan-lijuan", "sim:G-02", f"上报 {ticket_id} 需要村里协调")
    await until(client, "sim:V-01", lambda ms: any(m.buttons for m in ms))
    for lang, text in (await card_texts(client, ticket_id, "sim:V-01")).items():
        assert ESCALATED_WORDS[lang][0] in text, text
    await send(client, "p-yang-zixuan", "sim:V-01", f"驳回 {ticket_id} 已由物业处理")
    card = (await until(client, "sim:V-01", lambda ms: "已驳回" in ms[0].text))[0]  # edited
    assert "⏫ 由东联村第二网格上报" in card.text and "转派" not in card.text, card.text
    for lang, text in (await card_texts(client, ticket_id, "sim:V-01")).items():
        present, absent = ESCALATED_WORDS[lang]
        assert present in text and absent not in text, text


ASSIGNED_WORDS = {
    Lang.ZH_HANS: ("已指派给您", "现由冼建华跟进"),
    Lang.ZH_HANT: ("已指派給您", "現由冼建华跟進"),  # names are as the roster spells them
    Lang.EN: ("has been assigned to you", "now with 冼建华"),
}


async def test_an_assignees_card_stops_saying_it_is_theirs_once_reassigned(
    client: TestClient,
) -> None:
    """Walked: 钟志伟's private card kept "👤 此工单已指派给您跟进" after the grid leader gave
    the ticket to someone else (and its 📌 line named the new assignee)."""
    said = await send(client, "p-chen-zhiqiang", "sim:H-01", "楼下KTV每晚唱到凌晨三点，吵得睡不着")
    ticket_id = said["ticket"]
    await until(client, "sim:G-01", lambda ms: any(f"#{ticket_id}" in m.text for m in ms))
    await send(client, "p-xian-jianhua", "sim:G-01", f"转派 {ticket_id} @钟志伟")
    mine = "sim:p-zhong-zhiwei"
    card = (await until(client, mine, lambda ms: any(m.buttons for m in ms)))[0]
    for lang, text in (await card_texts(client, ticket_id, mine)).items():
        assert ASSIGNED_WORDS[lang][0] in text, text
    await send(client, "p-xian-jianhua", "sim:G-01", f"转派 {ticket_id} @冼建华")
    shown = (await until(client, mine, lambda ms: not ms[0].buttons))[0]
    assert shown.id == card.id and "已指派给您" not in shown.text, shown.text
    for lang, text in (await card_texts(client, ticket_id, mine)).items():
        was, now = ASSIGNED_WORDS[lang]
        assert was not in text and now in text, text


SUPERSEDED_WORDS = {
    Lang.ZH_HANS: "请在新卡片上操作",
    Lang.ZH_HANT: "請在新卡片上操作",
    Lang.EN: "use that one",
}


async def test_a_reopened_tickets_old_card_gives_its_buttons_to_the_new_one(
    client: TestClient,
) -> None:
    """Walked: after 重开 the village's chat held the first card and the 🔁 card, both with
    受理/办结/上报; only the newest card of a ticket in a chat offers the handler's buttons."""
    resident, household, village = "p-chen-zhiqiang", "sim:H-01", "sim:V-01"
    await send(client, resident, household, "楼下停水两天了")
    first = (await until(client, village, lambda ms: any(m.buttons for m in ms)))[0]
    await send(client, "p-yang-zixuan", village, "办结 1 水管已修好，恢复供水")

    def data(m: ChatMessage) -> list[str]:
        return [d for _, d in m.buttons]

    messages = await until(client, household, lambda ms: any("reopen:1" in data(m) for m in ms))
    resolved = next(m for m in messages if "reopen:1" in data(m))
    await press(client, resident, household, resolved.id, "reopen:1")

    def settled(ms: list[ChatMessage]) -> bool:
        cards = [m for m in ms if "#1" in m.text and "📌" in m.text]
        return len(cards) == 2 and all("已重开" in m.text for m in cards)

    cards = [m for m in await until(client, village, settled) if "📌" in m.text]
    old, new = (
        next(m for m in cards if m.id == first.id),
        next(m for m in cards if m.id != first.id),
    )
    assert "🔁" in new.text and data(new) == ["ack:1", "resolve:1", "escalate:1"]
    assert data(old) == [], old.text
    assert (
        SUPERSEDED_WORDS[Lang.ZH_HANS] in old.text
        and SUPERSEDED_WORDS[Lang.ZH_HANS] not in new.text
    )
    stale = await Decks(parts(client).service.store.redis, "sim").card(
        "1", card_field(village, str(old.id))
    )
    assert stale is not None
    for lang in Lang:
        text = Renderer().render(replace(payload_reply(stale[0]), lang=lang)).text
        assert SUPERSEDED_WORDS[lang] in text, text
    # The new card is the live one as the ticket moves on: acknowledged, it offers 办结/上报.
    await send(client, "p-yang-zixuan", village, "受理 1")

    def acked(ms: list[ChatMessage]) -> bool:
        return any(m.id == new.id and data(m) == ["resolve:1", "escalate:1"] for m in ms)

    after = await until(client, village, acked)
    assert data(next(m for m in after if m.id == old.id)) == []
