"""The web console over HTTP on the real app and Redis: sign-in links, sessions, scope, CSRF,
the list, acting, exports and live events."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import WSMsgType, WSServerHandshakeError
from aiohttp.test_utils import TestClient, TestServer

from bot.core.commands import Command, Verb
from bot.core.models import Actor, IncomingMessage, Lang
from bot.core.ticket import TicketState
from bot.settings import Settings
from bot.storage import keys
from bot.storage.logins import Grant, digest
from bot.web.app import CONFIG, PARTS, init_app
from bot.web.session import COOKIE, LOGINS
from tests.helpers import signed_in

WAIT = 15.0
GRID_G01 = "p-zhong-zhiwei"  # grid worker of 东联村第一网格 (G-01, in V-01)
CADRE_V01 = "p-yang-zixuan"  # village cadre of 东联村 (V-01)
STREET = "p-luo-bingkun"
ADMIN = "p-admin-liu"
RESIDENT = "p-chen-zhiqiang"  # lives in H-01 (G-01, V-01)


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[TestClient]:
    app = init_app(Settings(web_url="http://127.0.0.1"), redis_url, demo=True)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def send(client: TestClient, person: str, chat: str, text: str) -> dict:
    response = await client.post("/sim/api/send", json={"as": person, "chat": chat, "text": text})
    assert response.status == 200, await response.text()
    return await response.json()


async def three_tickets(client: TestClient) -> tuple[str, str, str]:
    """Open a water outage in V-01 (H-01), rubbish in V-02 (H-06) and a streetlight in V-01."""
    water = await send(client, RESIDENT, "sim:H-01", "楼下停水两天了")
    rubbish = await send(client, "p-he-shufen", "sim:H-06", "小区的垃圾桶都满了，好几天没人来清")
    light = await send(client, "p-liang-guohua", "sim:H-04", "巷口的路灯坏了一个星期")
    return water["ticket"], rubbish["ticket"], light["ticket"]


def ids_on(html: str) -> set[str]:
    return set(re.findall(r'<tr data-id="(\d+)"', html))


# -- signing in --------------------------------------------------------------------------------


async def test_web_in_a_private_chat_sends_a_link_that_works_once(client: TestClient) -> None:
    service = client.app[PARTS].service
    person = client.app[CONFIG].tree.people[CADRE_V01]
    actor = Actor("sim:p-yang-zixuan", person.name, person.id, Lang.ZH_HANS)
    # Asked in a group: refused, and no link exists anywhere.
    group = IncomingMessage("sim:V-01", "m1", actor, "登录后台", time.time())
    assert (await service.handle_message(group)).detail == "web_private_only"
    redis_client = service.store.redis
    assert await redis_client.keys(keys.web_login("*")) == []
    # Asked in private: a link in the private chat.
    private = IncomingMessage("sim:p-yang-zixuan", "m2", actor, "/web", time.time(), private=True)
    assert (await service.handle_message(private)).detail == "web_link"
    history = client.app[PARTS].history
    deadline = time.monotonic() + WAIT
    link = None
    while link is None:
        said = await history.recent("sim:p-yang-zixuan")
        link = next((m.text for m in said if "/login/" in m.text), None)
        assert time.monotonic() < deadline, [m.text for m in said]
        await asyncio.sleep(0.05)
    found = re.search(r"http://127\.0\.0\.1(/login/([A-Za-z0-9_-]+))", link)
    assert found is not None, link
    path, token = found[1], found[2]
    assert 0 < await redis_client.ttl(keys.web_login(digest(token))) <= 600  # short-lived
    # Opening the link (as a chat app's preview does) shows whose it is and uses nothing.
    for _ in range(2):
        page = await client.get(path)
        assert page.status == 200 and "杨子轩" in await page.text()
        assert COOKIE not in page.cookies
    signed = await client.post("/login", data={"token": token}, allow_redirects=False)
    assert signed.status == 303 and signed.headers["Location"] == "/mine"
    cookie = signed.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    assert (await client.get("/mine")).status == 200
    # Replayed: refused, and no session comes of it.
    client.session.cookie_jar.clear()
    again = await client.post("/login", data={"token": token}, allow_redirects=False)
    assert again.status == 410 and COOKIE not in again.cookies
    assert (await client.get(path)).status == 410


async def test_an_expired_or_altered_link_and_a_forged_cookie_are_refused(
    client: TestClient,
) -> None:
    logins = client.app[LOGINS]
    grant = Grant("sim:p-admin-liu", ADMIN, "zh-Hans", 0.0)
    token = await logins.issue(grant)
    altered = token[:-1] + ("A" if token[-1] != "A" else "B")
    refused = await client.post("/login", data={"token": altered}, allow_redirects=False)
    assert refused.status == 410 and COOKIE not in refused.cookies
    await logins.redis.pexpire(keys.web_login(digest(token)), 1)  # its ten minutes are over
    while await logins.redis.exists(keys.web_login(digest(token))):
        await asyncio.sleep(0.01)
    expired = await client.post("/login", data={"token": token}, allow_redirects=False)
    assert expired.status == 410 and "已失效" in await expired.text()
    # A cookie not signed here, or naming no session, is nobody.
    good = (await signed_in(client, ADMIN))["Cookie"]
    session_id, mac = good.split("=", 1)[1].rsplit(".", 1)
    for forged in (f"{session_id}.{mac[:-2]}xx", f"{session_id[:-2]}xx.{mac}", "anything"):
        page = await client.get("/tickets", headers={"Cookie": f"{COOKIE}={forged}"})
        assert page.status == 401 and "请先登录" in await page.text()
    assert (await client.get("/tickets", headers={"Cookie": good})).status == 200


async def test_signing_out_ends_the_session_on_the_server(client: TestClient) -> None:
    admin = await signed_in(client, ADMIN)
    page = await (await client.get("/tickets", headers=admin)).text()
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf is not None
    without = await client.post("/logout", data={}, headers=admin, allow_redirects=False)
    assert without.status == 403  # a sign-out from another site's form does nothing
    out = await client.post("/logout", data={"csrf": csrf[1]}, headers=admin, allow_redirects=False)
    assert out.status == 303
    assert (await client.get("/tickets", headers=admin)).status == 401  # the same cookie


async def test_over_https_the_cookie_is_secure(redis_url: str) -> None:
    app = init_app(Settings(web_url="https://console.example.org"), redis_url)
    async with TestClient(TestServer(app)) as https_client:
        token = await app[LOGINS].issue(Grant("sim:p-admin-liu", ADMIN, "en", 0.0))
        signed = await https_client.post("/login", data={"token": token}, allow_redirects=False)
        assert "Secure" in signed.headers["Set-Cookie"]
        # Without the demo there is no simulator, and nothing without a session.
        assert (await https_client.get("/sim")).status == 401
        assert (await https_client.post("/demo/signin", data={"as": ADMIN})).status == 401


ROUTES = ["/tickets", "/tickets.csv", "/mine", "/tickets/1", "/tickets/1/print", "/dashboard",
          "/export/rates.csv", "/"]  # fmt: skip


@pytest.mark.parametrize("lang", ["zh-Hans", "zh-Hant", "en"])
async def test_without_a_session_every_route_is_the_sign_in_page(
    client: TestClient, lang: str
) -> None:
    await three_tickets(client)
    words = {"zh-Hans": "请先登录", "zh-Hant": "請先登入", "en": "Please sign in first"}[lang]
    for route in ROUTES[:-1]:
        client.session.cookie_jar.clear()
        page = await client.get(route, params={"lang": lang})
        html = await page.text()
        assert page.status == 401 and words in html, route
        assert "停水" not in html and "#1" not in html
    acted = await client.post("/tickets/1/act", data={"verb": "ack"})
    assert acted.status == 401
    with pytest.raises(WSServerHandshakeError) as refused:
        await client.ws_connect("/tickets/ws")
    assert refused.value.status == 401
    assert (await client.app[PARTS].service.store.get("1")).state is TicketState.OPEN
    # The sign-in page's icon is served to whoever has no session yet (no 401 in the browser's
    # console on every page; the demo's walk found it).
    icon = re.search(r'<link rel="icon" href="([^"]+)"', html)
    assert icon is not None
    served = await client.get(icon.group(1))
    assert served.status == 200 and served.content_type == "image/svg+xml"


# -- scope ----------------------------------------------------------------------------------------


async def test_each_role_sees_its_scope_and_nothing_by_changing_the_id(
    client: TestClient,
) -> None:
    water, rubbish, light = await three_tickets(client)
    expected = {
        ADMIN: {water, rubbish, light},
        STREET: {water, rubbish, light},
        CADRE_V01: {water, light},  # their village
        GRID_G01: {water},  # reported in their grid (handled by the village)
        "p-pan-lijuan": {light},  # grid worker of G-02
        RESIDENT: {water},  # their own report
        "p-huang-meiling": set(),  # a resident who reported nothing
    }
    for person, visible in expected.items():
        who = await signed_in(client, person)
        listed = ids_on(await (await client.get("/tickets?state=all", headers=who)).text())
        assert listed == visible, person
        exported = await (await client.get("/tickets.csv?state=all", headers=who)).text()
        rows = list(csv.reader(io.StringIO(exported.lstrip("\ufeff"))))[1:]
        assert {r[0] for r in rows} == visible, person
        for ticket in {water, rubbish, light} - visible:
            for route in (f"/tickets/{ticket}", f"/tickets/{ticket}/print"):
                page = await client.get(route, headers=who)
                assert page.status == 404, (person, route)
                assert "找不到这张工单" in await page.text()


async def test_acting_needs_the_sessions_csrf_token_and_the_chats_permission(
    client: TestClient,
) -> None:
    water, rubbish, _ = await three_tickets(client)
    store = client.app[PARTS].service.store
    cadre = await signed_in(client, CADRE_V01)
    worker = await signed_in(client, GRID_G01)
    page = await (await client.get(f"/tickets/{water}", headers=cadre)).text()
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    key = re.search(r'name="key" value="([^"]+)-ack"', page)
    assert csrf is not None and key is not None and 'id="act-ack"' in page
    form = {"verb": "ack", "key": f"{key[1]}-ack"}
    worker_page = await (await client.get(f"/tickets/{water}", headers=worker)).text()
    worker_csrf = re.search(r'name="csrf" value="([^"]+)"', worker_page)
    assert worker_csrf is not None
    for bad in ({}, {"csrf": "x" * 32}, {"csrf": worker_csrf[1]}):  # none, forged, another's
        refused = await client.post(f"/tickets/{water}/act", data={**form, **bad}, headers=cadre)
        assert refused.status == 403
    assert (await store.get(water)).state is TicketState.OPEN
    # Outside the cadre's village: the same answer as a ticket that does not exist.
    outside = await client.post(
        f"/tickets/{rubbish}/act", data={**form, "csrf": csrf[1]}, headers=cadre
    )
    assert outside.status == 404 and (await store.get(rubbish)).state is TicketState.OPEN
    # The grid worker sees the village's ticket but may not act on it: refused, nothing changes.
    assert 'id="act-ack"' not in worker_page
    tried = await client.post(
        f"/tickets/{water}/act",
        data={"verb": "resolve", "key": "k" * 12, "text": "修好了", "csrf": worker_csrf[1]},
        headers=worker,
    )
    html = await tried.text()
    assert tried.status == 409 and 'id="refusal"' in html and "不在您的负责范围内" in html
    assert (await store.get(water)).state is TicketState.OPEN
    # The cadre acknowledges: done once, even if the form is sent twice.
    for _ in range(2):
        done = await client.post(
            f"/tickets/{water}/act", data={**form, "csrf": csrf[1]}, headers=cadre,
            allow_redirects=False,
        )  # fmt: skip
        assert done.status == 303
    ticket = await store.get(water)
    assert ticket.state is TicketState.ACKNOWLEDGED and ticket.seq == 2
    # The card in the village group changed in place, as when 受理 is pressed there.
    history = client.app[PARTS].history
    deadline = time.monotonic() + WAIT
    while True:
        cards = [m for m in await history.recent("sim:V-01") if m.buttons and f"#{water}" in m.text]
        if cards and "处理中" in cards[0].text:
            break
        assert time.monotonic() < deadline, [c.text for c in cards]
        await asyncio.sleep(0.05)
    # Resolving needs a result; with one it is resolved and shown with its handler.
    page = await (await client.get(f"/tickets/{water}", headers=cadre)).text()
    key = re.search(r'name="key" value="([^"]+)-resolve"', page)
    assert key is not None
    empty = {"verb": "resolve", "key": f"{key[1]}-resolve", "csrf": csrf[1], "text": ""}
    assert (await client.post(f"/tickets/{water}/act", data=empty, headers=cadre)).status == 400
    resolved = await client.post(
        f"/tickets/{water}/act", data={**empty, "text": "已协调水务公司恢复供水"}, headers=cadre
    )
    assert resolved.status == 200 and 'id="done"' in await resolved.text()
    assert (await store.get(water)).state is TicketState.RESOLVED


# -- the list, exports, 我的待办 ------------------------------------------------------------------


async def test_search_filters_sort_pages_and_the_csv_follow_the_url(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    water, rubbish, light = await three_tickets(client)
    admin = await signed_in(client, ADMIN)

    async def listed(query: str) -> list[str]:
        response = await client.get(f"/tickets?{query}", headers=admin)
        assert response.status == 200, await response.text()
        return re.findall(r'<tr data-id="(\d+)"', await response.text())

    assert await listed("") == [light, rubbish, water]  # newest first, all unfinished
    assert await listed("q=停水") == [water]
    assert await listed(f"q=%23{rubbish}") == [rubbish]  # by number
    assert await listed("q=梁国华") == [light]  # by reporter
    assert await listed("q=东联村") == [light, water]  # by place
    assert await listed("node=G-01") == [water]  # reported inside the subtree
    assert await listed("node=V-01&sort=id&desc=0") == [water, light]
    assert await listed("category=sanitation") == [rubbish]
    assert await listed("state=closed") == []
    service = client.app[PARTS].service
    ticket = await service.store.get(water)
    service.clock = lambda: ticket.ack_due + 10  # type: ignore[method-assign]
    assert water in await listed("overdue=1")
    # Pages: the page size holds, the next page follows on.
    monkeypatch.setattr("bot.core.listing.PAGE_SIZE", 2)
    first, second = await listed(""), await listed("page=2")
    assert first == [light, rubbish] and second == [water]
    exported = await client.get("/tickets.csv?node=V-01", headers=admin)
    body = await exported.read()
    assert body.startswith(b"\xef\xbb\xbf") and exported.content_type == "text/csv"
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[0][:4] == ["编号", "类别", "紧急程度", "状态"]
    assert [r[0] for r in rows[1:]] == [light, water]
    bad = await client.get("/tickets?sort=secret", headers=admin)
    assert bad.status == 400


async def test_a_formula_in_a_report_is_text_in_the_csv(client: TestClient) -> None:
    opened = await send(client, RESIDENT, "sim:H-01", "=HYPERLINK(1) 楼下停水两天了")
    admin = await signed_in(client, ADMIN)
    body = await (await client.get("/tickets.csv", headers=admin)).text()
    rows = list(csv.reader(io.StringIO(body.lstrip("\ufeff"))))
    assert rows[1][0] == opened["ticket"] and rows[1][13].startswith("'=")


async def test_my_queue_lists_overdue_first_and_the_sheet_says_which_deadline_was_met(
    client: TestClient,
) -> None:
    water, _, light = await three_tickets(client)
    service = client.app[PARTS].service
    store = service.store
    cadre = await signed_in(client, CADRE_V01)
    first = await store.get(water)
    later = await store.get(light)
    # Move the clock past the first acknowledgement deadline only.
    due = sorted([(first.ack_due, water), (later.ack_due, light)])
    assert due[0][0] < due[1][0]
    service.clock = lambda: (due[0][0] + due[1][0]) / 2  # type: ignore[method-assign]
    html = await (await client.get("/mine", headers=cadre)).text()
    items = re.findall(r'<li class="todo-item( is-late)?" data-id="(\d+)"', html)
    assert items == [(" is-late", due[0][1]), ("", due[1][1])]
    sheet = await (await client.get(f"/tickets/{due[0][1]}/print", headers=cadre)).text()
    assert re.findall(r'data-outcome="(\w+)"', sheet) == ["missed", "pending"]
    css = await (await client.get("/static/app.css")).text()
    assert "@media print" in css


# -- live ------------------------------------------------------------------------------------------


async def test_live_events_reach_only_viewers_who_may_see_the_ticket(client: TestClient) -> None:
    worker = await client.ws_connect("/tickets/ws", headers=await signed_in(client, GRID_G01))
    street = await client.ws_connect("/tickets/ws", headers=await signed_in(client, STREET))
    try:
        other = await send(client, "p-he-shufen", "sim:H-06", "小区的垃圾桶都满了，好几天没人来清")
        heard = json.loads((await street.receive(timeout=WAIT)).data)
        assert heard == {"type": "ticket", "id": other["ticket"]}
        mine = await send(client, RESIDENT, "sim:H-01", "楼下停水两天了")
        first = await worker.receive(timeout=WAIT)  # the other village's ticket never came
        assert first.type is WSMsgType.TEXT
        assert json.loads(first.data) == {"type": "ticket", "id": mine["ticket"]}
    finally:
        await worker.close()
        await street.close()


def test_a_session_of_someone_taken_off_the_roster_or_their_account_is_nobody() -> None:
    import dataclasses

    from bot.storage.logins import Session
    from bot.web.session import resolve
    from tests.test_web import tree

    full = tree()
    session = Session(Grant("sim:p-yang-zixuan", CADRE_V01, "zh-Hans", 0.0), "c", "d")
    assert resolve(full, session) is not None
    gone = dataclasses.replace(
        full, people={k: v for k, v in full.people.items() if k != CADRE_V01}
    )
    assert resolve(gone, session) is None
    moved = Session(Grant("sim:p-someone-else", CADRE_V01, "zh-Hans", 0.0), "c", "d")
    assert resolve(full, moved) is None


async def test_the_list_shows_unfinished_work_in_a_subtree_and_who_holds_each(
    client: TestClient,
) -> None:
    """Unfinished by default; the node filter takes the node's subtree, by where a ticket was
    reported or where it is now; each row and the ticket page say who holds it."""
    water, rubbish, light = await three_tickets(client)  # V-01 (H-01), V-02 (H-06), V-01 (H-04)
    noise = await send(client, "p-lin-weiming", "sim:H-09", "楼上邻居天天半夜装修，吵得睡不着")
    drain = await send(client, "p-huang-meiling", "sim:H-02", "小区门口的下水道堵了，污水漫出来了")
    dog = await send(client, "p-zhang-lihua", "sim:H-10", "楼道里堆满了杂物，消防通道都堵了")
    done, dismissed, closed = noise["ticket"], drain["ticket"], dog["ticket"]
    assert len({water, rubbish, light, done, dismissed, closed}) == 6
    service = client.app[PARTS].service
    tree = client.app[PARTS].simulator.tree

    async def act(person: str, verb: Verb, ticket: str, text: str = "", target: str = "") -> None:
        p = tree.people[person]
        actor = Actor(f"sim:{person}", p.name, person, Lang.ZH_HANS)
        command = Command(verb, ticket, text, target=target or None)
        handled = await service.act(command, actor, f"k-{verb.value}-{ticket}-{person}")
        assert handled.status != "refused", (verb, ticket, handled)

    village1, village2 = CADRE_V01, "p-zhu-haiyan"
    owner = {done: village2, dismissed: village1, closed: village2}
    await act(village1, Verb.ACK, water)  # acknowledged, held by a colleague of the village
    await act(village1, Verb.ASSIGN, water, target="p-wen-runsheng")
    await act(village1, Verb.ESCALATE, light, "需街道协调")  # escalated: now at the street
    await act(village2, Verb.ASSIGN, rubbish, target="D-environment")  # now at a department
    await act(owner[done], Verb.RESOLVE, done, "已上门劝导")
    await act(owner[dismissed], Verb.DISMISS, dismissed, "重复上报")
    await act(owner[closed], Verb.RESOLVE, closed, "已清理")
    await send(client, "p-zhang-lihua", "sim:H-10", f"/confirm {closed}")
    states = {t: (await service.store.get(t)).state.value for t in (water, rubbish, light, done,
              dismissed, closed)}  # fmt: skip
    assert states == {
        water: "acknowledged", rubbish: "open", light: "escalated", done: "resolved",
        dismissed: "dismissed", closed: "closed",
    }  # fmt: skip
    admin = await signed_in(client, ADMIN)

    async def listed(query: str) -> set[str]:
        response = await client.get(f"/tickets?{query}", headers=admin)
        assert response.status == 200, await response.text()
        return ids_on(await response.text())

    # All unfinished by default: open, acknowledged, escalated; not resolved, closed, dismissed.
    assert await listed("") == {water, rubbish, light}
    assert await listed("state=unfinished") == {water, rubbish, light}
    assert await listed("state=all") == {water, rubbish, light, done, dismissed, closed}
    # The node filter: its whole subtree, by origin or current node.
    assert await listed("node=G-02") == {light}  # reported below the grid, now at the street
    assert await listed("node=D-environment") == {rubbish}  # reported in V-02, now held here
    assert await listed("node=V-02") == {rubbish}  # reported in its subtree
    assert await listed("node=S-01") == {water, rubbish, light}
    assert await listed("node=G-04&state=all") == {done, closed}  # H-09 and H-10
    # Who holds each: the node and, when assigned, the person; in the list and on the ticket.
    page = await (await client.get("/tickets", headers=admin)).text()
    held = {
        i: re.sub(r"<[^>]+>|\s+", " ", cell).split()
        for i, cell in re.findall(
            r'<tr data-id="(\d+)".*?<td data-label="[^"]*" class="handler">(.*?)</td>', page, re.S
        )
    }
    assert held[water][:3] == ["东联村", "·", "温润生"], held[water]
    assert held[rubbish][0] == "生态环境分局" and "·" not in held[rubbish], held[rubbish]
    assert held[light][0] == "海湾街道", held[light]
    ticket = await (await client.get(f"/tickets/{water}", headers=admin)).text()
    assert re.search(r'id="handler">东联村 .*?<span id="assignee">温润生</span>', ticket, re.S)


@pytest.mark.parametrize("lang", ["zh-Hans", "zh-Hant", "en"])
async def test_the_sheets_deadline_table_has_one_heading_per_column(
    client: TestClient, lang: str
) -> None:
    """Walked in the demo: the 办结单's table read 阶段｜当前负责｜时限｜时限｜完成时间｜结果."""
    water = (await send(client, RESIDENT, "sim:H-01", "楼下停水两天了"))["ticket"]
    street = await signed_in(client, STREET)
    page = await client.get(f"/tickets/{water}/print", headers=street, params={"lang": lang})
    sheet = await page.text()
    head = re.search(r"<thead><tr>(.*?)</tr></thead>", sheet)
    assert head is not None
    headings = re.findall(r"<th>(.*?)</th>", head[1])
    assert len(headings) == 6 and len(set(headings)) == 6, headings
    current = {"zh-Hans": "当前负责", "zh-Hant": "目前負責"}.get(lang)
    assert current is None or current not in headings  # each stage's own, not the current one


async def test_a_department_asked_to_report_in_finds_it_in_its_queue_and_reports_in_there(
    client: TestClient,
) -> None:
    """Walked in the demo: the fire station's liaison signed in to an empty 我的待办, and the
    ticket's page offered only 备注, while the station's card in the chat asked for 到场."""
    opened = await send(client, "p-liang-guohua", "sim:H-04", "5栋楼梯间堆满了电动车在充电，很危险")
    ticket_id = opened["ticket"]
    store = client.app[PARTS].service.store
    assert "D-fire" in (await store.get(ticket_id)).departments
    fire = await signed_in(client, "p-li-jiaxin")
    mine = await (await client.get("/mine", headers=fire)).text()
    assert f'data-id="{ticket_id}"' in mine
    page = await (await client.get(f"/tickets/{ticket_id}", headers=fire)).text()
    assert 'id="act-arrive"' in page and 'id="act-assisted"' in page and 'id="act-ack"' not in page
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    key = re.search(r'name="key" value="([^"]+)-arrive"', page)
    assert csrf is not None and key is not None
    arrived = await client.post(
        f"/tickets/{ticket_id}/act",
        data={"verb": "arrive", "key": f"{key[1]}-arrive", "csrf": csrf[1]},
        headers=fire,
    )
    assert arrived.status == 200 and 'id="done"' in await arrived.text()
    ticket = await store.get(ticket_id)
    assert "arrived" in ticket.department_steps["D-fire"]
    page = await (await client.get(f"/tickets/{ticket_id}", headers=fire)).text()
    assert 'id="act-arrive"' not in page and 'id="act-assisted"' in page
    key = re.search(r'name="key" value="([^"]+)-assisted"', page)
    assert key is not None
    done = {"verb": "assisted", "key": f"{key[1]}-assisted", "csrf": csrf[1], "text": "已清走"}
    assert (await client.post(f"/tickets/{ticket_id}/act", data=done, headers=fire)).status == 200
    assert "assisted" in (await store.get(ticket_id)).department_steps["D-fire"]
    # Its part done, the ticket leaves the station's queue (the grid still handles it).
    mine = await (await client.get("/mine", headers=fire)).text()
    assert f'data-id="{ticket_id}"' not in mine
    # Street staff, who may act on the department too, are not offered its steps.
    street = await (
        await client.get(f"/tickets/{ticket_id}", headers=await signed_in(client, STREET))
    ).text()
    assert 'id="act-arrive"' not in street


async def test_an_archived_ticket_page_says_it_was_archived(client: TestClient) -> None:
    water, _, _ = await three_tickets(client)
    store = client.app[PARTS].service.store
    await store.redis.setbit(keys.ARCHIVED, int(water), 1)  # as the archive leaves it:
    await store.redis.delete(keys.ticket(water))  # marked, gone from Redis
    who = await signed_in(client, CADRE_V01)
    page = await client.get(f"/tickets/{water}", headers=who)
    assert page.status == 404
    text = await page.text()
    assert "已归档" in text and "找不到这张工单" not in text
    page = await client.get("/tickets/999", headers=who)
    assert "找不到这张工单" in await page.text()
