"""The console's notice board over HTTP: staff only, the viewer's scope, CSRF, once per form;
a notice posted there answers residents' reports as one typed in a chat does."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot import notices
from bot.core.notices import NoticeState
from bot.render import local_zone
from bot.settings import Settings
from bot.storage import keys
from bot.web.app import PARTS, init_app
from tests.helpers import signed_in

GRID_G01 = "p-zhong-zhiwei"  # grid worker of G-01 (in V-01)
CADRE_V01 = "p-yang-zixuan"  # village cadre of V-01
CADRE_V02 = "p-zhu-haiyan"  # village cadre of V-02
RESIDENT = "p-chen-zhiqiang"  # lives in H-01 (G-01, V-01)


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[TestClient]:
    app = init_app(Settings(web_url="http://127.0.0.1"), redis_url, demo=True)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


def window() -> str:
    """Return a window as staff write it, from today 00:00 to tomorrow 23:00: open now."""
    today = dt.datetime.fromtimestamp(time.time(), local_zone()).date()
    tomorrow = today + dt.timedelta(days=1)
    return f"{today.month}月{today.day}日 0:00-{tomorrow.month}月{tomorrow.day}日 23:00"


def form_of(page: str) -> dict[str, str]:
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    key = re.search(r'name="key" value="([^"]+)"', page)
    assert csrf is not None and key is not None
    return {"csrf": csrf[1], "key": key[1]}


def water(places: list[str], **extra: str) -> list[tuple[str, str]]:
    fields = {"category": "utilities", "window": window(), "text": "管道维修，暂停供水", **extra}
    return [*fields.items(), *(("places", p) for p in places)]


async def count(client: TestClient) -> int:
    return int(await client.app[PARTS].service.store.redis.get(keys.NOTICE_SEQ) or 0)


async def test_only_staff_reach_the_board(client: TestClient) -> None:
    assert (await client.get("/notices")).status == 401
    resident = await signed_in(client, RESIDENT)
    assert (await client.get("/notices", headers=resident)).status == 403
    assert (await client.post("/notices", data={}, headers=resident)).status == 403
    worker = await signed_in(client, GRID_G01)
    page = await client.get("/notices", headers=worker)
    assert page.status == 200 and 'id="notice-form"' in await page.text()


async def test_posting_needs_the_sessions_csrf_token_and_writes_nothing_without(
    client: TestClient,
) -> None:
    cadre = await signed_in(client, CADRE_V01)
    worker = await signed_in(client, GRID_G01)
    form = form_of(await (await client.get("/notices", headers=cadre)).text())
    others = form_of(await (await client.get("/notices", headers=worker)).text())
    for bad in ({}, {"csrf": "x" * 32}, {"csrf": others["csrf"]}):  # none, forged, another's
        data = [("key", form["key"]), *bad.items(), *water(["V-01"])]
        assert (await client.post("/notices", data=data, headers=cadre)).status == 403
    assert await count(client) == 0


async def test_a_notice_posted_on_the_web_answers_reports_and_ends_early(
    client: TestClient,
) -> None:
    service = client.app[PARTS].service
    cadre = await signed_in(client, CADRE_V01)
    form = form_of(await (await client.get("/notices", headers=cadre)).text())
    # Sent twice (a double click, a retry): one notice.
    for _ in range(2):
        done = await client.post(
            "/notices", data=[*form.items(), *water(["V-01"])], headers=cadre,
            allow_redirects=False,
        )  # fmt: skip
        assert done.status == 303 and done.headers["Location"] == "/notices?done=posted"
    assert await count(client) == 1
    notice = await notices.get(service, "n1")
    assert notice is not None and notice.nodes == ("V-01",) and notice.category == "utilities"
    assert notice.active(service.clock())
    board = await (await client.get("/notices?done=posted", headers=cadre)).text()
    assert 'data-id="n1"' in board and "管道维修" in board and 'class="end-notice"' in board
    # A resident of the village reports the outage: answered with the notice, no ticket.
    said = await client.post(
        "/sim/api/send", json={"as": RESIDENT, "chat": "sim:H-01", "text": "家里停水了"}
    )
    answer = await said.json()
    assert answer["status"] == "noticed" and answer["ticket"] is None
    assert await service.store.all_ids() == []
    assert (await notices.get(service, "n1")).answered == 1
    # Ended from the board before its window closes.
    form = form_of(board)
    ended = await client.post("/notices/n1/end", data=form, headers=cadre, allow_redirects=False)
    assert ended.status == 303 and ended.headers["Location"] == "/notices?done=ended"
    after = await notices.get(service, "n1")
    assert after is not None and after.state is NoticeState.ENDED and after.ended_by
    assert 'data-id="n1"' not in await (await client.get("/notices", headers=cadre)).text()


async def test_the_board_keeps_to_the_viewers_scope(client: TestClient) -> None:
    service = client.app[PARTS].service
    cadre = await signed_in(client, CADRE_V01)
    form = form_of(await (await client.get("/notices", headers=cadre)).text())
    # Outside the cadre's village: refused with the chat's words, nothing written.
    outside = await client.post("/notices", data=[*form.items(), *water(["V-02"])], headers=cadre)
    html = await outside.text()
    assert outside.status == 403 and 'data-problem="scope"' in html and "管道维修" in html
    assert await count(client) == 0
    posted = await client.post(
        "/notices", data=[*form.items(), *water(["V-01"])], headers=cadre, allow_redirects=False
    )
    assert posted.status == 303
    # The grid worker of a grid in V-01 sees the village's notice but may not end it.
    worker = await signed_in(client, GRID_G01)
    board = await (await client.get("/notices", headers=worker)).text()
    assert 'data-id="n1"' in board and 'class="end-notice"' not in board
    tried = await client.post("/notices/n1/end", data=form_of(board), headers=worker)
    assert tried.status == 403 and 'data-problem="scope"' in await tried.text()
    # A handler of the other village does not see it at all: as if there were none.
    theirs = await signed_in(client, CADRE_V02)
    board = await (await client.get("/notices", headers=theirs)).text()
    assert 'data-id="n1"' not in board
    assert (await client.post("/notices/n1/end", data=form_of(board), headers=theirs)).status == 404
    assert (await notices.get(service, "n1")).state is NoticeState.ACTIVE


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"window": "someday"}, "window"),
        ({"window": "2020年1月1日 9:00-12:00"}, "window_over"),
        ({"category": "emergency"}, "category"),
        ({"category": "no_such"}, "category"),
        ({"text": "  "}, "text"),
    ],
)
async def test_a_bad_form_is_refused_with_the_reason_and_kept(
    client: TestClient, change: dict[str, str], problem: str
) -> None:
    cadre = await signed_in(client, CADRE_V01)
    form = form_of(await (await client.get("/notices", headers=cadre)).text())
    sent = await client.post("/notices", data=[*form.items(), *water(["V-01"], **change)],
                             headers=cadre)  # fmt: skip
    html = await sent.text()
    assert sent.status == 400 and f'data-problem="{problem}"' in html
    assert await count(client) == 0


async def test_unknown_places_are_refused(client: TestClient) -> None:
    cadre = await signed_in(client, CADRE_V01)
    form = form_of(await (await client.get("/notices", headers=cadre)).text())
    for places in ([], ["X-99"], ["D-police"]):
        sent = await client.post("/notices", data=[*form.items(), *water(places)], headers=cadre)
        assert sent.status == 400 and 'data-problem="place"' in await sent.text()
    assert await count(client) == 0


async def test_the_board_names_places_in_the_readers_script(client: TestClient) -> None:
    cadre = await signed_in(client, CADRE_V01)
    form = form_of(await (await client.get("/notices", headers=cadre)).text())
    posted = await client.post(
        "/notices", data=[*form.items(), *water(["V-01", "G-02"])], headers=cadre,
        allow_redirects=False,
    )  # fmt: skip
    assert posted.status == 303
    for lang, shown, never in (
        ("zh-Hant", "東聯村、東聯村第二網格", "东联村"),
        ("zh-Hans", "东联村、东联村第二网格", "東聯村"),
        ("en", "Donglian Village, Donglian Grid 2", "东联村"),
    ):
        page = await client.get("/notices", params={"lang": lang}, headers=cadre)
        row = re.search(r'data-id="n1".*?</li>', await page.text(), re.S)
        assert row is not None and shown in row[0] and never not in row[0], (lang, row)
