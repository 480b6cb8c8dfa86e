"""The web console in headless Chromium (Debian's, driven by Playwright) as each role, on the
real app: signing in by the link the bot sends, the list, acting, 我的待办, desktop and phone.

Screenshots go to tests/artifacts/console-*.png.
"""

from __future__ import annotations

import re

from playwright.async_api import Browser, Page, expect

from bot.core.ticket import TicketState
from bot.web.app import PARTS
from tests import test_browser
from tests.test_browser import DESKTOP, PHONE, WAIT, Running, shot, sign_in_by_link

running = test_browser.running  # the simulator's fixtures: the real app, Debian's Chromium
browser = test_browser.browser


async def report(page: Page, base: str, person: str, chat: str, text: str) -> str:
    await test_browser.goto_chat(page, base, person, chat)
    await test_browser.say(page, text)
    reply = page.locator(".msg.bot .bubble", has_text=re.compile(r"#\d+")).last
    await expect(reply).to_be_visible(timeout=WAIT)
    found = re.search(r"#(\d+)", await reply.inner_text())
    assert found is not None
    return found[1]


def no_wider_than(width: int) -> str:
    return f"document.documentElement.scrollWidth <= {width}"


async def test_a_grid_worker_on_a_phone_sees_only_their_grid(
    running: Running, browser: Browser
) -> None:
    running.app[PARTS].service.web_url = running.base
    setup = await browser.new_page(viewport=DESKTOP)
    water = await report(setup, running.base, "p-chen-zhiqiang", "sim:H-01", "楼下停水两天了")
    other = await report(setup, running.base, "p-he-shufen", "sim:H-06", "小区的垃圾桶都满了")
    await setup.close()
    context = await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = await context.new_page()
    await sign_in_by_link(page, running.base, "p-zhong-zhiwei")
    # Signed in, the grid worker lands on 我的待办: nothing of theirs to act on yet...
    assert page.url.endswith("/mine")
    await page.goto(f"{running.base}/tickets")
    rows = page.locator("#tickets tr[data-id]")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_have_attribute("data-id", water)
    assert await page.evaluate(no_wider_than(PHONE["width"]))
    await shot(page, "console-phone-list-grid-worker", full=True)
    # ...and another grid's ticket is "not found", whatever its number.
    missing = await page.goto(f"{running.base}/tickets/{other}")
    assert missing is not None and missing.status == 404
    await page.goto(f"{running.base}/tickets/{water}")
    await expect(page.locator("#handler")).to_contain_text("东联村")
    await expect(page.locator("#act-ack")).to_have_count(0)  # the village handles it
    assert await page.evaluate(no_wider_than(PHONE["width"]))
    await shot(page, "console-phone-ticket-grid-worker", full=True)
    await context.close()


async def test_a_village_cadre_finds_acts_and_sees_their_queue_on_desktop_and_phone(
    running: Running, browser: Browser
) -> None:
    service = running.app[PARTS].service
    service.web_url = running.base
    setup = await browser.new_page(viewport=DESKTOP)
    water = await report(setup, running.base, "p-chen-zhiqiang", "sim:H-01", "楼下停水两天了")
    light = await report(
        setup, running.base, "p-liang-guohua", "sim:H-04", "巷口的路灯坏了一个星期"
    )
    await setup.close()
    page = await browser.new_page(viewport=DESKTOP)
    await sign_in_by_link(page, running.base, "p-yang-zixuan")
    await page.goto(f"{running.base}/tickets")
    await page.fill("#q", "停水")
    async with page.expect_navigation():
        await page.locator("#apply").click()
    assert "q=" in page.url  # the search is in the address: a bookmark
    await expect(page.locator("#tickets tr[data-id]")).to_have_count(1)
    await shot(page, "console-desktop-search")
    await page.locator(f'#tickets a[href="/tickets/{water}"]').click()
    await page.locator("#act-ack button").click()
    await expect(page.locator("#done")).to_be_visible()
    await expect(page.locator("#state")).to_have_class(re.compile("state-acknowledged"))
    ticket = await service.store.get(water)
    assert ticket is not None and ticket.state is TicketState.ACKNOWLEDGED
    # A resolve without a result is stopped by the form; with one it is done.
    await page.fill("#act-resolve input[name=text]", "已协调水务公司恢复供水")
    await page.locator("#act-resolve button").click()
    await expect(page.locator("#state")).to_have_class(re.compile("state-resolved"))
    await shot(page, "console-desktop-ticket-resolved", full=True)
    # The printable 办结单.
    await page.goto(f"{running.base}/tickets/{water}/print")
    await expect(page.locator("#promises tr[data-outcome]")).to_have_count(2)
    await page.emulate_media(media="print")
    await expect(page.locator(".no-print")).to_be_hidden()
    await shot(page, "console-desktop-print", full=True)
    await page.close()
    # On a phone: 我的待办 (the streetlight is still open), a ticket and the list.
    context = await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    phone = await context.new_page()
    await sign_in_by_link(phone, running.base, "p-yang-zixuan")
    await phone.goto(f"{running.base}/mine")
    await expect(phone.locator("#mine li")).to_have_count(1)
    await expect(phone.locator("#mine li").first).to_have_attribute("data-id", light)
    assert await phone.evaluate(no_wider_than(PHONE["width"]))
    await shot(phone, "console-phone-mine", full=True)
    await phone.goto(f"{running.base}/tickets/{light}")
    assert await phone.evaluate(no_wider_than(PHONE["width"]))
    await shot(phone, "console-phone-ticket", full=True)
    await phone.goto(f"{running.base}/tickets?state=all")
    await expect(phone.locator("#tickets tr[data-id]")).to_have_count(2)
    assert await phone.evaluate(no_wider_than(PHONE["width"]))
    await shot(phone, "console-phone-list", full=True)
    await context.close()


async def test_a_resident_sees_only_their_own_and_cannot_act(
    running: Running, browser: Browser
) -> None:
    running.app[PARTS].service.web_url = running.base
    setup = await browser.new_page(viewport=DESKTOP)
    mine = await report(setup, running.base, "p-chen-zhiqiang", "sim:H-01", "楼下停水两天了")
    await report(setup, running.base, "p-huang-meiling", "sim:H-02", "巷口的路灯坏了一个星期")
    await setup.close()
    page = await browser.new_page(viewport=PHONE)
    await sign_in_by_link(page, running.base, "p-chen-zhiqiang")
    assert page.url.endswith("/tickets")
    await expect(page.locator("#tickets tr[data-id]")).to_have_count(1)
    await page.goto(f"{running.base}/tickets/{mine}")
    await expect(page.locator("#act-ack, #act-resolve")).to_have_count(0)
    await shot(page, "console-phone-resident", full=True)
    await page.locator("#logout").click()
    await expect(page.locator("#signin")).to_be_visible()
    await page.goto(f"{running.base}/tickets/{mine}")
    await expect(page.locator("#signin")).to_be_visible()
    await page.close()


async def test_the_notice_forms_places_never_break_inside_a_name(
    running: Running, browser: Browser
) -> None:
    """Walked in the demo: 东联村3组联户群 broke over two lines in the unstyled form."""
    for viewport in (DESKTOP, PHONE):
        page = await browser.new_page(viewport=viewport)
        await test_browser.console_as(page, running.base, "p-luo-bingkun")
        await page.goto(f"{running.base}/notices")
        places = page.locator("#notice-form .place")
        assert await places.count() >= 10
        broken = await places.evaluate_all(
            "ls => ls.filter(l => l.getClientRects().length !== 1).map(l => l.textContent)"
        )
        assert broken == []
        assert await page.evaluate(no_wider_than(viewport["width"]))
        await shot(page, f"console-notices-{viewport['width']}", full=True)
        await page.close()
