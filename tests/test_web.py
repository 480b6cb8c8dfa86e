"""The web app through HTTP on the real app and Redis: simulator API, live socket, ticket views, seed."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable

import pytest
import redis
import redis.asyncio
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient, TestServer

from bot.core.deadlines import Policy
from bot.core.org import OrgTree, Role
from bot.core.personal import ERASED
from bot.live import LiveConfig
from bot.personal import PersonalData
from bot.seed import WEEK, AlreadySeeded, seed
from bot.settings import Settings
from bot.web.app import PARTS, Parts, init_app
from bot.web.directory import rooms
from bot.web.history import ChatMessage
from tests.conftest import ROOT, RULES_DIR
from tests.helpers import signed_in

ORG = ROOT / "org" / "sample_street.yaml"
WAIT = 15.0  # seconds a delivery may take on a loaded machine before the test fails


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[TestClient]:
    app = init_app(Settings(), redis_url, demo=True)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


def parts(client: TestClient) -> Parts:
    return client.app[PARTS]


async def until(
    client: TestClient, chat: str, found: Callable[[list[ChatMessage]], bool]
) -> list[ChatMessage]:
    """Wait until the chat's messages satisfy ``found``; fail after WAIT seconds."""
    deadline = time.monotonic() + WAIT
    while True:
        messages = await parts(client).history.recent(chat)
        if found(messages):
            return messages
        assert time.monotonic() < deadline, f"{chat}: {[m.text for m in messages]}"
        await asyncio.sleep(0.05)


async def send(client: TestClient, person: str, chat: str, text: str, **extra: object) -> dict:
    response = await client.post(
        "/sim/api/send", json={"as": person, "chat": chat, "text": text, **extra}
    )
    assert response.status == 200, await response.text()
    return await response.json()


def tree() -> OrgTree:
    return LiveConfig(RULES_DIR, ORG, Policy()).tree


# -- who sees which group ------------------------------------------------------------------


def test_each_role_sees_the_groups_of_its_place_in_the_ladder() -> None:
    t = tree()

    def seen(person: str) -> set[str]:
        return {r.chat for r in rooms(t, t.people[person])}

    assert seen("p-chen-zhiqiang") == {"sim:H-01", "sim:p-chen-zhiqiang"}  # resident
    assert seen("p-luo-jiahao") == {"sim:H-01", "sim:G-01", "sim:p-luo-jiahao"}  # leader
    assert seen("p-zhong-zhiwei") == {
        "sim:V-01", "sim:G-01", "sim:H-01", "sim:H-02", "sim:H-03", "sim:p-zhong-zhiwei",
    }  # fmt: skip
    cadre = seen("p-yang-zixuan")
    assert {"sim:S-01", "sim:V-01", "sim:G-01", "sim:G-02", "sim:H-05"} <= cadre
    assert not cadre & {"sim:V-02", "sim:G-03", "sim:H-06", "sim:D-police"}
    assert seen("p-tan-zhihui") == {"sim:S-01", "sim:D-police", "sim:p-tan-zhihui"}
    every_group = {c for n in t.nodes.values() for c in n.chats if c.startswith("sim:")}
    assert seen("p-luo-bingkun") == every_group | {"sim:p-luo-bingkun"}  # street staff
    assert seen("p-admin-liu") == every_group | {"sim:p-admin-liu"}
    kinds = [r.kind for r in rooms(t, t.people["p-admin-liu"])]
    assert kinds == sorted(kinds, key=["household", "grid", "village", "street", "department",
                                       "private"].index)  # fmt: skip
    assert all(p.role is not Role.RESIDENT or len(seen(p.id)) == 2 for p in t.people.values())


# -- the simulator's API -------------------------------------------------------------------


async def test_a_report_is_answered_in_its_group_and_carded_in_the_village(
    client: TestClient,
) -> None:
    body = await send(client, "p-chen-zhiqiang", "sim:H-01", "楼下停水两天了")
    assert (body["status"], body["ticket"]) == ("opened", "1")
    assert body["message"]["sender"] == "sim:p-chen-zhiqiang"
    report_id = str(body["message"]["id"])
    messages = await until(client, "sim:H-01", lambda ms: len(ms) == 2)
    reply = messages[1]
    assert reply.sender == "bot" and "#1" in reply.text
    assert reply.reply_to == report_id and reply.quote is not None
    assert reply.quote.text == "楼下停水两天了"
    cards = await until(client, "sim:V-01", lambda ms: len(ms) == 1)
    assert [d for _, d in cards[0].buttons] == ["ack:1", "resolve:1", "escalate:1"]

    # The cadre presses 受理 on the card: the resident's group hears of it.
    response = await client.post(
        "/sim/api/press",
        json={"as": "p-yang-zixuan", "chat": "sim:V-01", "message_id": str(cards[0].id),
              "data": "ack:1"},
    )  # fmt: skip
    assert (await response.json()) == {"status": "done", "ticket": "1", "detail": "ack"}
    update = await until(client, "sim:H-01", lambda ms: len(ms) == 3)
    assert "杨子轩" in update[2].text and update[2].reply_to == report_id


async def test_a_reply_to_a_card_is_a_note_on_its_ticket(client: TestClient) -> None:
    await send(client, "p-chen-zhiqiang", "sim:H-01", "楼下停水两天了")
    card = (await until(client, "sim:V-01", lambda ms: len(ms) == 1))[0]
    body = await send(client, "p-yang-zixuan", "sim:V-01", "已通知水务公司", reply_to=str(card.id))
    assert body["status"] == "done" and body["message"]["quote"]["sender"] == "bot"
    history = await parts(client).service.store.history("1")
    assert [e.kind.value for e in history] == ["opened", "acknowledged", "noted"]


async def test_a_problem_reported_again_after_it_was_settled_opens_a_new_ticket(
    client: TestClient,
) -> None:
    first = await send(client, "p-chen-zhiqiang", "sim:H-01", "楼下停水两天了")
    done = await send(client, "p-yang-zixuan", "sim:V-01", f"办结 {first['ticket']} 已修好")
    assert done["status"] == "done"
    # Within the join window, in the same village: the settled ticket is not joined.
    again = await send(client, "p-huang-meiling", "sim:H-02", "今天一直没有自来水")
    assert (again["status"], again["ticket"]) == ("opened", "2")
    joined = await send(client, "p-guo-wanting", "sim:H-02", "又停水了")
    assert (joined["status"], joined["ticket"]) == ("joined", "2")


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"as": "p-chen-zhiqiang", "chat": "sim:V-01", "text": "hi"}, 403, "not_member"),
        ({"as": "p-nobody", "chat": "sim:H-01", "text": "hi"}, 404, "unknown_person"),
        ({"as": "p-chen-zhiqiang", "chat": "sim:H-01", "text": "  "}, 400, "empty"),
        ({"as": "p-chen-zhiqiang", "chat": "sim:H-01", "text": "水" * 4097}, 400, "too_long"),
        ({"as": "p-chen-zhiqiang", "chat": "sim:H-01", "text": 5}, 400, "bad_request"),
        ({"as": "p-chen-zhiqiang", "chat": "sim:H-01", "text": "hi", "reply_to": "77"}, 404,
         "no_such_message"),
    ],
)  # fmt: skip
async def test_bad_messages_are_refused_and_change_nothing(
    client: TestClient, redis_sync: redis.Redis, body: dict, status: int, error: str
) -> None:
    response = await client.post("/sim/api/send", json=body)
    assert response.status == status
    assert (await response.json())["error"] == error
    assert redis_sync.keys("lianhu:sim:chat:*") == [] and redis_sync.keys("lianhu:ticket:*") == []


async def test_the_api_takes_only_json_and_only_real_buttons(client: TestClient) -> None:
    form = await client.post("/sim/api/send", data={"as": "p-chen-zhiqiang", "text": "x"})
    assert form.status == 415  # a form from another site cannot post as someone
    await send(client, "p-chen-zhiqiang", "sim:H-01", "楼下停水两天了")
    card = (await until(client, "sim:V-01", lambda ms: len(ms) == 1))[0]
    forged = {"as": "p-yang-zixuan", "chat": "sim:V-01", "message_id": str(card.id)}
    response = await client.post("/sim/api/press", json={**forged, "data": "dismiss:1"})
    assert response.status == 400 and (await response.json())["error"] == "no_such_button"
    response = await client.post(
        "/sim/api/press", json={**forged, "message_id": "999", "data": "ack:1"}
    )
    assert response.status == 404
    ticket = await parts(client).service.store.get("1")
    assert ticket is not None and ticket.state.value == "open"


async def test_messages_and_read_marks(client: TestClient) -> None:
    await send(client, "p-chen-zhiqiang", "sim:H-01", "楼下停水两天了")
    await until(client, "sim:H-01", lambda ms: len(ms) == 2)
    history = parts(client).history
    assert await history.unread("p-luo-jiahao", ["sim:H-01"]) == {"sim:H-01": 2}
    assert await history.unread("p-chen-zhiqiang", ["sim:H-01"]) == {"sim:H-01": 1}
    page = await client.get("/sim/api/messages", params={"as": "p-luo-jiahao", "chat": "sim:H-01"})
    assert [m["sender"] for m in (await page.json())["messages"]] == [
        "sim:p-chen-zhiqiang", "bot",
    ]  # fmt: skip
    assert await history.unread("p-luo-jiahao", ["sim:H-01"]) == {"sim:H-01": 0}
    older = await client.get(
        "/sim/api/messages", params={"as": "p-luo-jiahao", "chat": "sim:H-01", "before": "2"}
    )
    assert [m["id"] for m in (await older.json())["messages"]] == [1]
    outside = await client.get(
        "/sim/api/messages", params={"as": "p-he-shufen", "chat": "sim:H-01"}
    )
    assert outside.status == 403


async def test_the_live_socket_sends_each_page_only_its_chats(client: TestClient) -> None:
    mine = await client.ws_connect("/sim/ws?as=p-chen-zhiqiang")
    other = await client.ws_connect("/sim/ws?as=p-he-shufen")  # another village
    street = await signed_in(client, "p-luo-bingkun")  # street staff see both villages
    tickets = await client.ws_connect("/tickets/ws", headers=street)  # the console's pages
    try:
        opened = await send(client, "p-chen-zhiqiang", "sim:H-01", "楼下停水两天了")
        got = [json.loads((await mine.receive(timeout=WAIT)).data) for _ in range(2)]
        assert [(m["chat"], m["sender"]) for m in got] == [
            ("sim:H-01", "sim:p-chen-zhiqiang"), ("sim:H-01", "bot"),
        ]  # fmt: skip
        # A ticket page hears which ticket changed, and nothing anyone wrote.
        change = json.loads((await tickets.receive(timeout=WAIT)).data)
        assert change == {"type": "ticket", "id": opened["ticket"]}
        # The other village's resident heard nothing (a greeting in their group comes first).
        await send(client, "p-he-shufen", "sim:H-06", "大家早晨")
        first = await other.receive(timeout=WAIT)
        assert first.type is WSMsgType.TEXT and json.loads(first.data)["chat"] == "sim:H-06"
        # The ticket page heard nothing of the chatter: its next message is the next ticket.
        later = await send(client, "p-he-shufen", "sim:H-06", "巷口的路灯坏了一个星期")
        change = json.loads((await tickets.receive(timeout=WAIT)).data)
        assert change == {"type": "ticket", "id": later["ticket"]}
    finally:
        for socket in (mine, other, tickets):
            await socket.close()


# -- pages ---------------------------------------------------------------------------------


async def test_pages_speak_the_chosen_language(client: TestClient) -> None:
    page = await client.get("/sim")
    assert page.status == 200 and "联户模拟器" in await page.text()
    english = await client.get("/sim", params={"lang": "en", "as": "p-mark-wilson"})
    assert "Lianhu simulator" in await english.text()
    assert english.cookies["lang"].value == "en"
    client.session.cookie_jar.clear()
    hant = await client.get("/tickets", headers={"Accept-Language": "zh-HK,zh;q=0.8"})
    assert hant.status == 401 and "請先登入" in await hant.text()
    unknown = await client.get("/sim", params={"as": "p-nobody"})
    assert unknown.status == 404


async def test_ticket_list_filters_and_ticket_page(client: TestClient) -> None:
    await send(client, "p-chen-zhiqiang", "sim:H-01", "楼下停水两天了，电话13812345678")
    await send(client, "p-he-shufen", "sim:H-06", "小区的垃圾桶都满了，好几天没人来清")
    service = parts(client).service
    admin = await signed_in(client, "p-admin-liu")

    async def listed(**query: str) -> list[str]:
        response = await client.get("/tickets", params=query, headers=admin)
        assert response.status == 200
        text = await response.text()
        return [i for i in ("1", "2") if f'data-id="{i}"' in text]

    assert await listed() == ["1", "2"]
    assert await listed(node="V-01") == ["1"]
    assert await listed(node="V-02", category="sanitation") == ["2"]
    assert await listed(node="H-01") == ["1"]  # by where it came from, too
    assert await listed(state="acknowledged") == []
    assert await listed(overdue="1") == []
    ticket = await service.store.get("1")
    assert ticket is not None and ticket.ack_due is not None
    client.app[PARTS].service.clock = lambda: ticket.ack_due + 10  # type: ignore[misc]
    assert await listed(overdue="1") == ["1"]
    bad = await client.get("/tickets", params={"state": "lost"}, headers=admin)
    assert bad.status == 400 and "state" in await bad.text()
    page = await client.get("/tickets/1", headers=admin)
    html = await page.text()
    assert page.status == 200 and 'data-kind="opened"' in html
    assert "13812345678" not in html and "138****5678" in html  # masked on the pages
    assert (await client.get("/tickets/999", headers=admin)).status == 404
    assert (await client.get("/tickets/..%2F1", headers=admin)).status == 404


# -- the seed --------------------------------------------------------------------------------


async def test_the_seed_plays_a_week_with_every_state(redis_url: str) -> None:
    settings = Settings()
    states = await seed(settings, redis_url)
    assert set(states) == {
        "open", "acknowledged", "escalated", "reopened", "resolved", "closed", "dismissed",
    }  # fmt: skip
    assert sum(states.values()) == sum(not r.chatter for r in WEEK) - 2  # two joined
    with pytest.raises(AlreadySeeded):
        await seed(settings, redis_url)
    client = redis.Redis.from_url(redis_url)
    try:
        chats = client.keys("lianhu:sim:chat:*")
        assert len(chats) >= 15  # households, grids, villages, street, departments
        # Every message of the week is dated within it; nothing is dated in the future.
        stamps = [json.loads(m)["at"] for c in chats for m in client.zrange(c, 0, -1)]
        assert max(stamps) <= time.time() and min(stamps) >= time.time() - 8 * 24 * 3600
        assert client.zcard("rq:scheduled:lianhu") > 0  # the deadlines still owed have jobs
    finally:
        client.close()


async def test_a_forgotten_reporter_shows_as_erased_on_the_ticket_page(
    client: TestClient, redis_async: redis.asyncio.Redis
) -> None:
    await send(client, "p-chen-zhiqiang", "sim:H-01", "楼下停水两天了，电话13812345678")
    done = await PersonalData(redis_async).forget(["telegram:100001", "sim:p-chen-zhiqiang"], True)
    assert done.tickets == {"1": 5} and done.messages >= 1
    expected = {"zh-Hans": "删除了 5 项个人信息（应本人要求）", "zh-Hant": "刪除了 5 項個人資料（應本人要求）",
                "en": "erased 5 fields of personal data (on request)"}  # fmt: skip
    admin = await signed_in(client, "p-admin-liu")
    for lang, words in expected.items():
        client.session.cookie_jar.clear()
        page = await client.get("/tickets/1", params={"lang": lang}, headers=admin)
        html = await page.text()
        assert page.status == 200 and 'data-kind="erased"' in html and words in html
        assert "陈志强" not in html and "停水两天" not in html and ERASED in html


async def test_a_ticket_page_shows_related_tickets_and_department_steps(
    client: TestClient,
) -> None:
    await send(client, "p-chen-zhiqiang", "sim:H-01", "3栋楼道的垃圾好几天没人清理，很臭")
    danger = await send(client, "p-huang-meiling", "sim:H-02", "3栋楼道里煤气味很重，怕会爆炸")
    assert (danger["status"], danger["ticket"]) == ("opened", "2")
    done = await send(client, "p-li-jiaxin", "sim:D-fire", "到场 2")
    assert done["status"] == "done"
    admin = await signed_in(client, "p-admin-liu")
    html = await (await client.get("/tickets/1", headers=admin)).text()
    assert '<a href="/tickets/2">#2</a>' in html and 'data-kind="related"' in html
    assert "关联工单 #2" in html
    html = await (await client.get("/tickets/2", headers=admin)).text()
    assert '<a href="/tickets/1">#1</a>' in html and "已到场" in html


async def test_after_the_seed_the_weeks_handlers_are_answered_at_once(redis_url: str) -> None:
    # The seed's answers to a handler counted against their per-minute allowance in real time;
    # a street official asking for a sign-in link right after `lianhu demo --seed` got nothing.
    await seed(Settings(), redis_url)
    app = init_app(Settings(web_url="http://127.0.0.1"), redis_url, sender=False, demo=True)
    async with TestClient(TestServer(app)) as seeded:
        for person in ("p-luo-bingkun", "p-yang-zixuan", "p-zhong-zhiwei"):
            await send(seeded, person, f"sim:{person}", "登录后台")
    client = redis.Redis.from_url(redis_url)
    try:
        queued = [json.loads(e[b"payload"]) for _, e in client.xrange("lianhu:outbox:sim")]
    finally:
        client.close()
    links = {q["chat"] for q in queued if q.get("template") == "web_link"}
    assert links == {"sim:p-luo-bingkun", "sim:p-yang-zixuan", "sim:p-zhong-zhiwei"}
