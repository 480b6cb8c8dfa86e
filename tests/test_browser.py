"""The simulator in headless Chromium (Debian's, driven by Playwright), on the real app.

The app runs on the session's real Redis with its real outbox Sender; deadlines
are run by the sweeper after the app's clock is moved past them (the same
``Service.sweep`` the worker runs), so no step depends on how fast the browser
is. Screenshots of the key steps go to tests/artifacts/ (desktop and phone).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiohttp import web
from playwright.async_api import Browser, Locator, Page, async_playwright, expect

from bot.core.ticket import EventKind, TicketState
from bot.settings import Settings
from bot.web.app import PARTS, init_app
from tests.conftest import ROOT

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "tests" / "artifacts"
WAIT = 15_000  # ms: what a step may take on a loaded machine before the test fails
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


class Clock:
    """The app's clock: real time plus an offset the test moves forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@dataclass
class Running:
    base: str
    app: web.Application
    clock: Clock


@pytest.fixture
async def running(redis_url: str) -> AsyncIterator[Running]:
    clock = Clock()
    app = init_app(Settings(), redis_url, clock=clock, demo=True)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield Running(f"http://{host}:{port}", app, clock)
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


async def shot(page: Page, name: str, full: bool = False) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full)


async def act_as(page: Page, person: str) -> None:
    """Switch person with the switcher at the top, as a user does."""
    async with page.expect_navigation():
        await page.select_option("#as", person)
    await expect(page.locator("#as")).to_have_value(person)


async def open_chat(page: Page, chat: str) -> None:
    await page.locator(f'.room[data-chat="{chat}"]').click()
    await expect(page.locator(f'.room.active[data-chat="{chat}"]')).to_be_visible()
    await expect(page.locator(f'#messages[data-chat="{chat}"]')).to_be_attached(timeout=WAIT)


async def say(page: Page, text: str) -> None:
    await page.fill("#text", text)
    await page.press("#text", "Enter")
    await expect(page.locator(".msg.mine .bubble", has_text=text).last).to_be_visible(timeout=WAIT)


async def goto_chat(page: Page, base: str, person: str, chat: str) -> None:
    """Open the simulator as a person on a chat and wait until its messages are in."""
    await page.goto(f"{base}/sim?as={person}&chat={chat}")
    await expect(page.locator(f'#messages[data-chat="{chat}"]')).to_be_attached(timeout=WAIT)


async def sign_in_by_link(page: Page, base: str, person: str) -> None:
    """Ask the bot for a link in the simulator's private chat, open it and press 登录.

    The link used is the one the bot has just sent, not one an earlier test asked for
    (those are spent)."""
    await goto_chat(page, base, person, f"sim:{person}")
    links = page.locator(".msg.bot .bubble", has_text="/login/")
    before = set(await links.all_inner_texts())
    await page.fill("#text", "登录后台")
    await page.locator("#send").click()
    await expect(links).to_have_count(len(before) + 1, timeout=WAIT)
    new = [text for text in await links.all_inner_texts() if text not in before]
    found = re.search(r"https?://\S+/login/[A-Za-z0-9_-]+", new[0] if new else "")
    assert found is not None, new
    await page.goto(found[0])
    async with page.expect_navigation():
        await page.locator("#login-go").click()
    await expect(page.locator("#logout")).to_be_visible()


async def console_as(page: Page, base: str, person: str) -> None:
    """Open the console as a person with the demo's button under the simulator's switcher."""
    await page.goto(f"{base}/sim?as={person}")
    async with page.expect_navigation():
        await page.locator("#demo-console button").click()
    await expect(page.locator("#logout")).to_be_visible()


def bot_text(page: Page, text: str) -> Locator:
    return page.locator(".msg.bot", has_text=text).last


@dataclass(frozen=True)
class Case:
    name: str
    text: str
    resident: str
    household: str
    village: str
    cadre: str


CASES = [
    Case(
        "simplified", "楼下停水两天了", "p-chen-zhiqiang", "sim:H-01", "sim:V-01", "p-yang-zixuan"
    ),
    Case("traditional", "樓下停水兩天了", "p-deng-jiahui", "sim:H-03", "sim:V-01", "p-yang-zixuan"),
    Case("cantonese", "樓下冇水兩日喇", "p-au-kamtim", "sim:H-08", "sim:V-02", "p-zhu-haiyan"),
]
STREET_STAFF = "p-luo-bingkun"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_a_water_outage_from_report_to_confirmation(
    running: Running, browser: Browser, case: Case
) -> None:
    service = running.app[PARTS].service
    context = await browser.new_context(viewport=DESKTOP)
    page = await context.new_page()
    tag = f"{case.name}-desktop"

    # A resident reports the outage in the household group; the reply gives the ticket id.
    await goto_chat(page, running.base, case.resident, case.household)
    await say(page, case.text)
    reply = page.locator(".msg.bot .bubble", has_text=re.compile(r"#\d+")).last
    await expect(reply).to_be_visible(timeout=WAIT)
    found = re.search(r"#(\d+)", await reply.inner_text())
    assert found is not None
    ticket_id = found[1]
    await expect(page.locator(".msg.bot .quote", has_text=case.text)).to_be_visible()
    await shot(page, f"{tag}-1-reported")
    ticket = await service.store.get(ticket_id)
    assert ticket is not None
    assert (ticket.category, ticket.tier) == ("utilities", "village")  # what the rules say
    assert ticket.node == case.village.removeprefix("sim:")

    # The card is in the village group; the village cadre presses 受理 on it.
    await act_as(page, case.cadre)
    await open_chat(page, case.village)
    card = page.locator(".card", has_text=f"#{ticket_id}").last
    await expect(card).to_be_visible(timeout=WAIT)
    await expect(card).to_contain_text(case.text)
    await shot(page, f"{tag}-2-village-card")
    await card.get_by_role("button", name="受理").click()
    await expect(
        bot_text(page, "杨子轩" if case.cadre == "p-yang-zixuan" else "朱海燕")
    ).to_be_visible(timeout=WAIT)

    # The resident's group shows the update, quoting the report.
    await act_as(page, case.resident)
    await open_chat(page, case.household)
    notice = page.locator(".msg.bot", has_text=f"#{ticket_id}").filter(has_text="受理").last
    await expect(notice).to_be_visible(timeout=WAIT)
    await shot(page, f"{tag}-3-resident-update")
    acknowledged = await service.store.get(ticket_id)
    assert acknowledged is not None and acknowledged.state is TicketState.ACKNOWLEDGED

    # The resolution deadline passes: the sweeper escalates the ticket to the street group.
    assert acknowledged.resolve_due is not None
    running.clock.offset += acknowledged.resolve_due - running.clock() + 2.0
    assert await service.sweep(grace=0.0) == 1
    await act_as(page, STREET_STAFF)
    await open_chat(page, "sim:S-01")
    street_card = page.locator(".card", has_text=f"#{ticket_id}").filter(has_text="⏫").last
    await expect(street_card).to_be_visible(timeout=WAIT)
    await shot(page, f"{tag}-4-street-card")

    # The street centre resolves it with a note; the resident confirms.
    await say(page, f"办结 {ticket_id} 已协调水务公司抢修，恢复供水")
    await expect(bot_text(page, "已协调水务公司抢修")).to_be_visible(timeout=WAIT)
    await act_as(page, case.resident)
    await open_chat(page, case.household)
    confirm = page.locator(f'.card button[data-data="confirm:{ticket_id}"]').last
    await expect(confirm).to_be_visible(timeout=WAIT)
    await shot(page, f"{tag}-5-resolved")
    await confirm.click()
    await expect(page.locator(f'.card button[data-data^="rate:{ticket_id}:"]').first).to_be_visible(
        timeout=WAIT
    )
    await shot(page, f"{tag}-6-confirmed")

    # The ticket page shows the whole history.
    await console_as(page, running.base, STREET_STAFF)
    await page.goto(f"{running.base}/tickets/{ticket_id}")
    kinds = await page.locator("#timeline li").evaluate_all(
        "(items) => items.map(i => i.dataset.kind)"
    )
    assert kinds == ["opened", "acknowledged", "escalated", "resolved", "confirmed"]
    await expect(page.locator("#state")).to_have_attribute("class", re.compile("state-closed"))
    await shot(page, f"{tag}-7-ticket-page", full=True)
    history = [e.kind for e in await service.store.history(ticket_id)]
    assert history == [
        EventKind.OPENED, EventKind.ACKNOWLEDGED, EventKind.ESCALATED,
        EventKind.RESOLVED, EventKind.CONFIRMED,
    ]  # fmt: skip
    await context.close()


async def test_chatter_gets_no_reply_and_opens_no_ticket(
    running: Running, browser: Browser
) -> None:
    context = await browser.new_context(viewport=DESKTOP)
    page = await context.new_page()
    await goto_chat(page, running.base, "p-chen-zhiqiang", "sim:H-01")
    await say(page, "大家早晨")
    # A question after it is answered; the Sender delivers in order, so once that answer is
    # here, an answer to the greeting would be here too.
    await say(page, "查询 999")
    answer = page.locator(".msg.bot").last
    await expect(answer).to_contain_text("999", timeout=WAIT)
    await expect(page.locator(".msg.bot")).to_have_count(1)
    await expect(answer.locator(".quote")).to_contain_text("查询 999")
    assert await running.app[PARTS].service.store.all_ids() == []
    await shot(page, "chatter-desktop")
    await context.close()


async def test_on_a_phone_the_list_and_the_chat_are_two_screens(
    running: Running, browser: Browser
) -> None:
    context = await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = await context.new_page()
    await page.goto(f"{running.base}/sim?as=p-chen-zhiqiang")
    await expect(page.locator("#rooms")).to_be_visible()
    await expect(page.locator("#chat")).to_be_hidden()
    await shot(page, "phone-1-list")
    await page.locator('.room[data-chat="sim:H-01"]').tap()
    await expect(page.locator("#chat")).to_be_visible()
    await expect(page.locator("#rooms")).to_be_hidden()
    # On a touch screen Enter is a new line; the send button sends (and the hint says no more).
    assert await page.get_attribute("#text", "placeholder") == "输入消息"
    await page.fill("#text", "楼下停水两天了")
    await page.press("#text", "Enter")
    await page.keyboard.type("三楼也是")
    assert await page.input_value("#text") == "楼下停水两天了\n三楼也是"
    assert await page.locator(".msg.mine").count() == 0
    await page.locator("#send").tap()
    await expect(page.locator(".msg.mine .bubble", has_text="三楼也是")).to_be_visible(timeout=WAIT)
    await expect(page.locator(".msg.bot .bubble", has_text="#")).to_be_visible(timeout=WAIT)
    # #N is a link: the ticket is the resident's own.
    await expect(page.locator(".msg.bot a.ticket-ref").first).to_be_visible(timeout=WAIT)
    await shot(page, "phone-2-chat")
    # Near the limit a counter appears.
    await page.fill("#text", "水" * 3600)
    await expect(page.locator("#counter")).to_be_hidden()  # below 90% of the limit: no counter
    await page.fill("#text", "水" * 3700)
    await expect(page.locator("#counter")).to_be_visible()
    await expect(page.locator("#counter")).to_have_text("3700 / 4096")
    await page.fill("#text", "")
    await expect(page.locator("#counter")).to_be_hidden()
    # Nothing is wider than the screen.
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"]
    await page.locator("#back").tap()
    await expect(page.locator("#rooms")).to_be_visible()
    await shot(page, "phone-3-back")
    await goto_chat(page, running.base, "p-yang-zixuan", "sim:V-01")
    await expect(page.locator(".card").last).to_be_visible(timeout=WAIT)
    await shot(page, "phone-4-card")
    await console_as(page, running.base, "p-yang-zixuan")
    await page.goto(f"{running.base}/tickets")
    await shot(page, "phone-5-tickets")
    await context.close()


async def test_unread_counts_and_live_messages_in_a_second_browser(
    running: Running, browser: Browser
) -> None:
    cadre = await (await browser.new_context(viewport=DESKTOP)).new_page()
    await goto_chat(cadre, running.base, "p-yang-zixuan", "sim:G-01")
    village_badge = cadre.locator('.room[data-chat="sim:V-01"] .badge')
    await expect(village_badge).to_be_hidden()
    resident = await (await browser.new_context(viewport=DESKTOP)).new_page()
    await goto_chat(resident, running.base, "p-chen-zhiqiang", "sim:H-01")
    await say(resident, "楼下停水两天了")
    # The cadre's open page learns of the card without a reload.
    await expect(village_badge).to_have_text("1", timeout=WAIT)
    await expect(cadre.locator('.room[data-chat="sim:H-01"] .badge')).to_have_text("2")
    await shot(cadre, "live-unread-desktop")
    await open_chat(cadre, "sim:V-01")
    await expect(village_badge).to_be_hidden()
    await cadre.reload()
    await expect(village_badge).to_be_hidden()  # read marks are kept


async def test_the_interface_speaks_three_languages(running: Running, browser: Browser) -> None:
    page = await (await browser.new_context(viewport=DESKTOP)).new_page()
    expected = {"zh-Hans": "联户模拟器", "zh-Hant": "聯戶模擬器", "en": "Lianhu simulator"}
    for lang, title in expected.items():
        await page.goto(f"{running.base}/sim?as=p-mark-wilson&lang={lang}")
        await expect(page.locator(".brand-sim")).to_have_text(title)
    await console_as(page, running.base, "p-luo-bingkun")  # the choice is remembered
    await page.goto(f"{running.base}/tickets")
    await expect(page.locator(".topbar")).to_contain_text("Tickets")
    await shot(page, "tickets-en-desktop")


async def test_a_card_follows_its_ticket_and_a_refused_press_is_a_toast(
    running: Running, browser: Browser
) -> None:
    resident = await browser.new_page(viewport=DESKTOP)
    await resident.goto(f"{running.base}/sim?as=p-chen-zhiqiang")
    await expect(resident.locator('.room.active[data-chat="sim:H-01"]')).to_be_visible()
    await say(resident, "楼下停水两天了")
    cadre = await browser.new_page(viewport=DESKTOP)
    await goto_chat(cadre, running.base, "p-yang-zixuan", "sim:V-01")
    card = cadre.locator(".card").last
    await expect(card.locator("button")).to_have_count(3, timeout=WAIT)
    worker = await browser.new_page(viewport=DESKTOP)
    await goto_chat(worker, running.base, "p-zhong-zhiwei", "sim:V-01")
    # The grid worker's press is refused to them alone; the group hears nothing of it.
    before = await cadre.locator(".msg").count()
    await worker.locator(".card").last.get_by_role("button", name="受理").click()
    await expect(worker.locator("#toast")).to_contain_text("不在您的负责范围内", timeout=WAIT)
    await shot(worker, "desktop-refused-press")
    # The cadre acknowledges: the card changes in place, live, on both pages.
    await card.get_by_role("button", name="受理").click()
    await expect(card).to_contain_text("处理中", timeout=WAIT)
    await expect(card.locator("button")).to_have_count(2)
    await expect(worker.locator(".card").last).to_contain_text("处理中", timeout=WAIT)
    await expect(cadre.locator(".msg")).to_have_count(before + 1)  # the acknowledgement notice
    await shot(cadre, "desktop-card-acknowledged")
    for page in (resident, cadre, worker):
        await page.close()


async def test_ticket_numbers_link_only_when_visible_and_shift_enter_is_a_new_line(
    running: Running, browser: Browser
) -> None:
    """On a desktop: #N in what a person wrote is a link only to a ticket that exists and that
    they may see; Enter sends, Shift+Enter starts a new line."""
    simulator = running.app[PARTS].simulator
    other = await simulator.say("p-he-shufen", "sim:H-06", "小区的垃圾桶都满了，好几天没人来清")
    own = await simulator.say("p-chen-zhiqiang", "sim:H-01", "楼下停水两天了")
    theirs, mine = other.handled.ticket, own.handled.ticket
    assert theirs and mine and theirs != mine
    page = await (await browser.new_context(viewport=DESKTOP)).new_page()
    await goto_chat(page, running.base, "p-chen-zhiqiang", "sim:H-01")
    await page.fill("#text", f"看 #{mine}")
    await page.press("#text", "Shift+Enter")
    await page.keyboard.type(f"和 #{theirs} 还有 #999")
    assert await page.input_value("#text") == f"看 #{mine}\n和 #{theirs} 还有 #999"
    assert await page.locator(".msg.mine").count() == 1  # only the report: nothing sent yet
    await page.press("#text", "Enter")
    said = page.locator(".msg.mine .bubble").last
    await expect(said).to_contain_text("#999", timeout=WAIT)
    await expect(page.locator("#text")).to_have_value("")
    # Loaded afresh, the page asks about all three numbers at once.
    await page.reload()
    said = page.locator(".msg.mine .bubble").last
    await expect(said.locator("a.ticket-ref")).to_have_text([f"#{mine}"], timeout=WAIT)
    assert await said.locator("a.ticket-ref").get_attribute("href") == f"/tickets/{mine}"
    await expect(said.locator(".ticket-ref-text")).to_have_text([f"#{theirs}", "#999"])
    assert "\n" in await said.inner_text()  # the new line was kept
    await shot(page, "ticket-refs-desktop")


async def test_staff_land_in_their_own_work_group_then_the_latest_chats(
    running: Running, browser: Browser
) -> None:
    parts = running.app[PARTS]
    await parts.simulator.say("p-chen-zhiqiang", "sim:H-01", "楼下停水两天了")
    deadline = time.monotonic() + WAIT / 1000
    while (
        len(await parts.history.recent("sim:V-01")) < 1
        or len(await parts.history.recent("sim:H-01")) < 2
    ):  # the card in the village group and the receipt, sent by the outbox
        assert time.monotonic() < deadline, "the card and the receipt never came"
        await asyncio.sleep(0.05)
    await parts.simulator.say("p-deng-jiahui", "sim:H-03", "大家早晨")  # the latest: chatter
    page = await (await browser.new_context(viewport=DESKTOP)).new_page()
    rooms = page.locator(".room")
    # (who, their own group, the chats with an older message: the card's and the receipt's)
    for person, own, older in (
        ("p-zhong-zhiwei", "sim:G-01", {"sim:H-01", "sim:V-01"}),
        ("p-yang-zixuan", "sim:V-01", {"sim:H-01"}),
    ):
        await page.goto(f"{running.base}/sim?as={person}")
        # On a desktop the page opens their own work group, not the latest chat...
        await expect(page.locator(".room.active")).to_have_attribute("data-chat", own)
        name = await rooms.first.get_attribute("data-name")
        await expect(page.locator("#chat-title")).to_have_text(name or "")
        # ...which tops the list; the other chats follow, the latest first.
        chats = await rooms.evaluate_all("(rs) => rs.map((r) => r.dataset.chat)")
        assert chats[:2] == [own, "sim:H-03"], chats
        assert set(chats[2 : 2 + len(older)]) == older, chats
    await shot(page, "chat-list-own-first-desktop")
