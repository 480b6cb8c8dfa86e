"""Issue 14's "done when", walked in headless Chromium (Debian's, driven by Playwright) on the
real ``lianhu demo --seed``: a street official signs in from a chat link, reads the dashboard's
charts of the seeded week, finds a ticket by a word, exports the month and acts on a ticket;
a grid worker on a phone sees only their grid.

Screenshots at desktop and phone widths, in the three languages, go to tests/artifacts/
(dashboard-*.png).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.conftest import ROOT
from tests.test_browser import sign_in_by_link
from tests.test_demo import demo

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "tests" / "artifacts"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
WAIT = 15_000  # ms: what a step may take on a loaded machine before the test fails
STREET_STAFF = "p-luo-bingkun"
GRID_WORKER = "p-zhong-zhiwei"  # G-01
CHARTS = ("chart-states", "chart-trend", "chart-rates", "chart-categories")


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Run ``lianhu demo --seed`` (its own Redis, rq worker and web app) for the module."""
    with demo(tmp_path_factory.mktemp("demo"), "--seed") as (_, address):
        yield address


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            await chromium.close()


async def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


async def overflow(page: Page) -> list[str]:
    """Return the ids or tags of elements wider than the window, or reaching past its right edge."""
    return list(
        await page.evaluate(
            """() => { const w = document.documentElement.clientWidth; const out = [];
            for (const e of document.querySelectorAll('body *')) {
              const r = e.getBoundingClientRect();
              if (r.width && r.right > w + 1 && !e.closest('.scroll')) out.push(e.id || e.tagName);
            } return out; }"""
        )
    )


async def tile(page: Page, name: str) -> int:
    return int(await page.locator(f"#tile-{name} .tile-num").inner_text())


async def test_a_street_official_signs_in_reads_the_charts_finds_exports_and_acts(
    base: str, browser: Browser
) -> None:
    context = await browser.new_context(viewport=DESKTOP, accept_downloads=True)
    page = await context.new_page()
    await sign_in_by_link(page, base, STREET_STAFF)
    assert page.url.endswith("/dashboard")  # where street staff land
    # ...and one click from any console page.
    await page.locator("#nav-tickets").click()
    await page.wait_for_url("**/tickets")
    async with page.expect_navigation():
        await page.locator("#nav-dashboard").click()
    assert page.url.endswith("/dashboard")
    for lang in ("zh-Hans", "zh-Hant", "en"):
        await page.goto(f"{base}/dashboard?lang={lang}")
        for chart in CHARTS:
            svg = page.locator(f"svg[aria-labelledby^='{chart}']")
            await expect(svg).to_be_visible()
            assert await svg.locator("rect, path, circle").count() > 2, chart  # drawn, not empty
        assert await tile(page, "current") > 10  # the seeded week
        assert await overflow(page) == []
        await shot(page, f"dashboard-desktop-{lang}")
        for section in ("states", "trend", "rates", "categories", "tiers", "ranking"):
            path = ARTIFACTS / f"dashboard-desktop-{lang}-{section}.png"
            await page.locator(f"#{section}").screenshot(path=str(path))
    await page.goto(f"{base}/dashboard?lang=zh-Hans")
    # Export the month from the dashboard: a CSV Excel opens in Chinese, a row per node.
    async with page.expect_download() as downloading:
        await page.locator("#export button").click()
    download = await downloading.value
    assert re.fullmatch(r"lianhu-rates-\d{4}-\d{2}\.csv", download.suggested_filename)
    raw = Path(await download.path()).read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0][:2] == ["节点编号", "名称"] and "S-01" in {r[0] for r in rows[1:]}
    assert sum(int(r[3]) for r in rows[1:] if r[0] == "S-01") > 0  # received this month
    # Find a ticket by a word in it, from the list the dashboard links to.
    async with page.expect_navigation():
        await page.locator("#tile-active").click()
    await page.fill("#q", "电梯")
    async with page.expect_navigation():
        await page.locator("#apply").click()
    assert "q=" in page.url
    found = page.locator("#tickets tr[data-id]")
    await expect(found).to_have_count(1)  # the English report of the lift has no 电梯
    await expect(found.first).to_contain_text("电梯")
    await shot(page, "dashboard-desktop-search")
    # Act on it from the browser: acknowledge.
    ticket = await found.first.get_attribute("data-id")
    await page.locator(f'#tickets a[href="/tickets/{ticket}"]').first.click()
    await expect(page.locator("#state")).to_have_class(re.compile("state-open"))
    await page.locator("#act-ack button").click()
    await expect(page.locator("#done")).to_be_visible()
    await expect(page.locator("#state")).to_have_class(re.compile("state-acknowledged"))
    await expect(page.locator(".timeline")).to_contain_text("骆炳坤")
    await shot(page, "dashboard-desktop-acted")
    await context.close()


async def test_a_grid_worker_on_a_phone_sees_only_their_grid(base: str, browser: Browser) -> None:
    context = await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = await context.new_page()
    await sign_in_by_link(page, base, GRID_WORKER)
    for lang in ("zh-Hans", "zh-Hant", "en"):
        await page.goto(f"{base}/dashboard?lang={lang}")
        rows = page.locator("#ranking tbody tr[data-node]")
        await expect(rows).to_have_count(1)
        await expect(rows.first).to_have_attribute("data-node", "G-01")
        for chart in CHARTS:
            await expect(page.locator(f"svg[aria-labelledby^='{chart}']")).to_be_visible()
        assert await overflow(page) == []
        await shot(page, f"dashboard-phone-grid-worker-{lang}")
    # What the dashboard counts is what the list shows the grid worker, and no more.
    await page.goto(f"{base}/dashboard")
    counted = await tile(page, "current")
    await page.goto(f"{base}/tickets?state=all")
    listed = page.locator("#tickets tr[data-id]")
    await expect(listed).to_have_count(counted)
    assert 0 < counted < 10
    await shot(page, "dashboard-phone-grid-worker-list")
    # A ticket of another grid (the fire in 5栋, G-04's) is "not found" to them.
    street = await browser.new_context(viewport=DESKTOP)
    official = await street.new_page()
    await sign_in_by_link(official, base, STREET_STAFF)
    await official.goto(f"{base}/tickets?state=all&q=着火")
    other = await official.locator("#tickets tr[data-id]").first.get_attribute("data-id")
    await street.close()
    missing = await page.goto(f"{base}/tickets/{other}")
    assert missing is not None and missing.status == 404
    await context.close()


async def test_the_printed_page_drops_the_controls_and_keeps_the_charts(
    base: str, browser: Browser
) -> None:
    context = await browser.new_context(viewport={"width": 794, "height": 1123})
    page = await context.new_page()
    await sign_in_by_link(page, base, STREET_STAFF)
    await page.goto(f"{base}/dashboard")
    await page.emulate_media(media="print")
    await expect(page.locator(".topbar")).to_be_hidden()
    await expect(page.locator("#export")).to_be_hidden()
    await expect(page.locator("svg[aria-labelledby^='chart-rates']")).to_be_visible()
    assert await overflow(page) == []
    await shot(page, "dashboard-print")
    # A bar of the states chart opens the list with its filter.
    await page.emulate_media(media="screen")
    await page.locator("svg[aria-labelledby^='chart-states'] a").first.click()
    await page.wait_for_url("**/tickets?state=open**")
    await expect(page.locator("#tickets tbody tr").first).to_have_attribute("data-state", "open")
    await context.close()
