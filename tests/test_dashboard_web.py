"""The dashboard page and the monthly CSV over HTTP, on the real app and the seeded demo week."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.core import dashboard as board
from bot.render import local_zone
from bot.seed import seed
from bot.settings import Settings
from bot.web.app import init_app

STREET_STAFF = "p-luo-bingkun"
GRID_WORKER = "p-zhong-zhiwei"  # G-01 of V-01


@pytest.fixture
async def seeded(redis_url: str) -> AsyncIterator[TestClient]:
    settings = Settings()
    await seed(settings, redis_url)
    async with TestClient(TestServer(init_app(settings, redis_url))) as client:
        yield client


async def test_the_page_and_the_export_refuse_who_is_not_staff(seeded: TestClient) -> None:
    for path in ("/dashboard", "/export/rates.csv"):
        seeded.session.cookie_jar.clear()  # the language chosen last time
        nobody = await seeded.get(path)
        assert nobody.status == 403 and "请先登录后台" in await nobody.text()
        resident = await seeded.get(path, params={"as": "p-chen-zhiqiang", "lang": "en"})
        assert resident.status == 403 and "for staff" in await resident.text()
        stranger = await seeded.get(path, params={"as": "p-nobody"})
        assert stranger.status == 403


async def test_a_bad_month_is_refused_in_the_readers_language(seeded: TestClient) -> None:
    for month, lang, words in (("2026-13", "zh-Hans", "月份无效"), ("May", "zh-Hant", "月份無效")):
        page = await seeded.get(
            "/export/rates.csv", params={"as": STREET_STAFF, "month": month, "lang": lang}
        )
        html = await page.text()
        assert page.status == 400 and words in html and month in html


async def test_the_month_exports_as_csv_with_a_bom_scoped_like_the_page(
    seeded: TestClient,
) -> None:
    month = board.month_of(time.time(), local_zone())
    street = await seeded.get("/export/rates.csv", params={"as": STREET_STAFF, "month": month})
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
    grid = await seeded.get("/export/rates.csv", params={"as": GRID_WORKER, "month": month})
    mine = [r[0] for r in csv.reader(io.StringIO((await grid.read()).decode("utf-8-sig")))]
    assert mine[1:] == ["G-01", ""]


async def test_a_grid_worker_sees_only_their_grid_on_the_page(seeded: TestClient) -> None:
    street = await (await seeded.get("/dashboard", params={"as": STREET_STAFF})).text()
    grid = await (await seeded.get("/dashboard", params={"as": GRID_WORKER})).text()
    assert 'data-node="V-02"' in street and 'data-node="G-03"' in street
    assert 'data-node="G-01"' in grid
    assert 'data-node="V-01"' not in grid and 'data-node="G-03"' not in grid
    # Links carry who is looking and the filter of the number.
    assert f"/tickets?as={GRID_WORKER}&amp;node=G-01" in grid
    assert f"/tickets?as={STREET_STAFF}&amp;overdue=1" in street
