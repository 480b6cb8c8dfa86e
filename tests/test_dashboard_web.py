"""The dashboard page and the monthly CSV over HTTP, signed in, on the real app and seeded week."""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.core import dashboard as board
from bot.render import local_zone
from bot.seed import seed
from bot.settings import Settings
from bot.web.app import init_app
from tests.helpers import signed_in

STREET_STAFF = "p-luo-bingkun"
GRID_WORKER = "p-zhong-zhiwei"  # G-01 of V-01
RESIDENT = "p-chen-zhiqiang"


@pytest.fixture
async def seeded(redis_url: str) -> AsyncIterator[TestClient]:
    settings = Settings()
    await seed(settings, redis_url)
    async with TestClient(TestServer(init_app(settings, redis_url))) as client:
        yield client


def tile(html: str, name: str) -> int:
    found = re.search(rf'id="tile-{name}">.*?<span class="tile-num">(\d+)</span>', html, re.S)
    assert found, name
    return int(found.group(1))


async def listed(client: TestClient, who: dict[str, str], **filters: str) -> set[str]:
    """Return the ids the console's own list exports to ``who`` (every state unless told)."""
    params = {"state": "all", **filters}
    text = await (await client.get("/tickets.csv", params=params, headers=who)).text()
    return {row[0] for row in list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))[1:]}


async def test_the_page_and_the_export_need_a_session_and_are_refused_to_residents(
    seeded: TestClient,
) -> None:
    resident = await signed_in(seeded, RESIDENT, "en")
    for path in ("/dashboard", "/export/rates.csv"):
        seeded.session.cookie_jar.clear()
        nobody = await seeded.get(path)
        assert nobody.status == 401 and "请先登录" in await nobody.text()
        refused = await seeded.get(path, params={"lang": "en"}, headers=resident)
        assert refused.status == 403 and "for staff only" in await refused.text()


async def test_a_bad_month_is_refused_in_the_readers_language(seeded: TestClient) -> None:
    street = await signed_in(seeded, STREET_STAFF)
    for month, lang, words in (("2026-13", "zh-Hans", "月份无效"), ("May", "zh-Hant", "月份無效")):
        page = await seeded.get(
            "/export/rates.csv", params={"month": month, "lang": lang}, headers=street
        )
        html = await page.text()
        assert page.status == 400 and words in html and month in html


async def test_the_month_exports_as_csv_with_a_bom_scoped_like_the_page(
    seeded: TestClient,
) -> None:
    month = board.month_of(time.time(), local_zone())
    street_staff = await signed_in(seeded, STREET_STAFF)
    street = await seeded.get("/export/rates.csv", params={"month": month}, headers=street_staff)
    assert street.status == 200
    assert street.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert f"lianhu-rates-{month}.csv" in street.headers["Content-Disposition"]
    raw = await street.read()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0][:4] == ["节点编号", "名称", "层级", "收件数"]
    nodes = [r[0] for r in rows[1:]]
    assert {"S-01", "V-01", "V-02"} <= set(nodes) and nodes[-1] == ""
    assert all(len(r) == len(rows[0]) for r in rows)
    worker = await signed_in(seeded, GRID_WORKER)
    grid = await seeded.get("/export/rates.csv", params={"month": month}, headers=worker)
    mine = list(csv.reader(io.StringIO((await grid.read()).decode("utf-8-sig"))))
    assert [r[0] for r in mine[1:]] == ["G-01", ""]
    # The grid's total is the grid's own row, not the street's.
    assert mine[1][3:] == mine[2][3:] and mine[2][3] != rows[-1][3]


async def test_a_grid_worker_counts_only_their_grid(seeded: TestClient) -> None:
    street_staff, worker = (
        await signed_in(seeded, STREET_STAFF),
        await signed_in(seeded, GRID_WORKER),
    )
    street = await (await seeded.get("/dashboard", headers=street_staff)).text()
    grid = await (await seeded.get("/dashboard", headers=worker)).text()
    assert 'data-node="V-02"' in street and 'data-node="G-03"' in street
    assert 'data-node="G-01"' in grid
    assert 'data-node="V-01"' not in grid and 'data-node="G-03"' not in grid
    # The seeded week is recent: the dashboard counts exactly what the console lists to each.
    grid_ids, street_ids = await listed(seeded, worker), await listed(seeded, street_staff)
    assert tile(grid, "current") == len(grid_ids) < tile(street, "current") == len(street_ids)
    # Links into the list use the list's own filters.
    assert "/tickets?node=G-01" in grid and "/tickets?overdue=1" in street
    assert "/tickets?state=all" in street and "as=" not in street
    assert 'id="nav-dashboard"' in street


async def test_a_number_of_the_ranking_is_what_its_link_lists(seeded: TestClient) -> None:
    street = await signed_in(seeded, STREET_STAFF)
    html = await (await seeded.get("/dashboard", headers=street)).text()
    for node in ("V-01", "V-02", "G-01", "G-02"):
        shown = re.search(rf'href="/tickets\?node={node}">(\d+)</a>', html)
        unfinished = await listed(seeded, street, state="unfinished", node=node)
        assert (int(shown[1]) if shown else 0) == len(unfinished), node


async def test_street_staff_land_on_the_dashboard_handlers_on_their_queue(
    seeded: TestClient,
) -> None:
    from bot.storage.logins import Grant
    from bot.web.session import LOGINS

    for person, first in ((STREET_STAFF, "/dashboard"), ("p-admin-liu", "/dashboard"),
                          (GRID_WORKER, "/mine"), (RESIDENT, "/tickets")):  # fmt: skip
        token = await seeded.app[LOGINS].issue(Grant(f"sim:{person}", person, "zh-Hans", 0.0))
        signed = await seeded.post("/login", data={"token": token}, allow_redirects=False)
        assert signed.status == 303 and signed.headers["Location"] == first, person
