"""The dashboard of the seeded demo week in headless Chromium (Debian's, driven by Playwright).

Screenshots at desktop and phone widths, in the three languages, go to tests/artifacts/.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from playwright.async_api import Browser, Page, async_playwright, expect

from bot.seed import seed
from bot.settings import Settings
from bot.web.app import init_app
from tests.conftest import ROOT

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "tests" / "artifacts"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
STREET_STAFF = "p-luo-bingkun"
GRID_WORKER = "p-zhong-zhiwei"  # G-01


@pytest.fixture
async def base(redis_url: str) -> AsyncIterator[str]:
    settings = Settings()
    await seed(settings, redis_url)
    runner = web.AppRunner(init_app(settings, redis_url), handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


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


async def test_a_street_official_sees_the_charts_of_the_week_at_desktop_and_phone(
    base: str, browser: Browser
) -> None:
    for size, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        context = await browser.new_context(viewport=viewport, is_mobile=size == "phone")
        page = await context.new_page()
        for lang in ("zh-Hans", "zh-Hant", "en"):
            await page.goto(f"{base}/dashboard?as={STREET_STAFF}&lang={lang}")
            await expect(page.locator("#chart-states-title")).to_be_attached()
            for chart in ("chart-states", "chart-trend", "chart-rates", "chart-categories"):
                await expect(page.locator(f"svg[aria-labelledby^='{chart}']")).to_be_visible()
            assert await page.locator("#chart-trend-title").count() == 1
            assert await overflow(page) == []
            await shot(page, f"dashboard-{size}-{lang}")
            if lang == "en" or size == "phone":
                for section in ("states", "trend", "rates", "categories", "tiers", "ranking"):
                    path = ARTIFACTS / f"dashboard-{size}-{lang}-{section}.png"
                    await page.locator(f"#{section}").screenshot(path=str(path))
        await context.close()


async def test_the_printed_page_drops_the_controls_and_keeps_the_charts(
    base: str, browser: Browser
) -> None:
    page = await (await browser.new_context(viewport={"width": 794, "height": 1123})).new_page()
    await page.goto(f"{base}/dashboard?as={STREET_STAFF}")
    await page.emulate_media(media="print")
    await expect(page.locator(".topbar")).to_be_hidden()
    await expect(page.locator("#export")).to_be_hidden()
    await expect(page.locator("svg[aria-labelledby^='chart-rates']")).to_be_visible()
    assert await overflow(page) == []
    await shot(page, "dashboard-print")


async def test_a_bar_opens_the_ticket_list_with_its_filter(base: str, browser: Browser) -> None:
    page = await (await browser.new_context(viewport=DESKTOP)).new_page()
    await page.goto(f"{base}/dashboard?as={STREET_STAFF}")
    await page.locator("#chart-states-title").wait_for(state="attached")
    await page.locator("svg[aria-labelledby^='chart-states'] a").first.click()
    await page.wait_for_url("**/tickets?**state=open**")
    await expect(page.locator("#tickets tbody tr").first).to_have_attribute("data-state", "open")


async def test_a_grid_worker_on_a_phone_ranks_only_their_grid(base: str, browser: Browser) -> None:
    context = await browser.new_context(viewport=PHONE, is_mobile=True)
    page = await context.new_page()
    await page.goto(f"{base}/dashboard?as={GRID_WORKER}")
    rows = page.locator("#ranking tbody tr[data-node]")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_have_attribute("data-node", "G-01")
    await shot(page, "dashboard-phone-grid-worker")
    await context.close()
