"""The loop as people live it: joining only the same problem, departments reporting in,
earlier handlers' notes, confirming a closed ticket, co-reporters, and lists kept from groups."""

from __future__ import annotations

import dataclasses
import re

from bot.core.models import Lang
from bot.core.org import Role
from bot.core.pacing import Pacing
from bot.core.ticket import EventKind
from bot.services import Handled
from bot.storage import keys
from bot.storage.redis import payload_reply
from tests.fake_bot_api import wait_for
from tests.telegram_fixtures import H01, RESIDENT, Harness, next_sent, quiet
from tests.test_services import RENDER, World
from tests.test_services import world as world  # the fixture, re-exported for these tests

NOISE = "楼下KTV每晚唱到凌晨三点，吵得睡不着"


async def test_open_mine_and_stats_asked_in_a_public_group_are_answered_privately(
    world: World,
) -> None:
    resident = world.person(Role.RESIDENT, "H-01")
    worker = world.person(Role.GRID_WORKER, "G-01")
    opened = await world.service.handle_message(world.message(resident, NOISE))
    assert opened.status == "opened"
    grid = world.tree.nodes["G-01"]
    world.service.pacing = Pacing(per_person=100)  # many questions: every answer is sent
    for i, text in enumerate(("待办", "/mine", "/stats")):
        asked = world.message(worker, text, chat=grid.chats[0])
        handled = await world.service.handle_message(asked)
        assert handled.status == "done", text
        sent = (await world.outbox())[-2:]
        assert [(p["chat"], p["template"]) for p in sent] == [
            (worker.accounts[0], "stats" if i == 2 else "ticket_list"),
            (grid.chats[0], "replied_privately"),
        ], text
        assert sent[1]["reply_to"] == asked.message_id
    # In the grid's staff chat, and in private, the answer stays where it was asked.
    for chat in (grid.staff_chat, worker.accounts[0]):
        assert chat is not None
        await world.service.handle_message(
            world.message(worker, "/stats", chat=chat, private=chat == worker.accounts[0])
        )
        (last,) = (await world.outbox())[-1:]
        assert (last["chat"], last["template"]) == (chat, "stats")


async def said(world: World, scope: str, text: str, role: Role = Role.RESIDENT) -> Handled:
    return await world.service.handle_message(world.message(world.person(role, scope), text))


async def test_a_different_problem_is_never_joined_nor_told_it_is_the_same(world: World) -> None:
    gas = await said(world, "H-02", "7号楼停气了，做不了饭")
    power = await said(world, "H-01", "停电了，冰箱都不制冷了")
    assert (gas.status, power.status) == ("opened", "opened") and power.ticket != gas.ticket
    told = [p for p in await world.outbox() if p["chat"] == world.tree.nodes["H-01"].chats[0]]
    assert [p["template"] for p in told] == ["ticket_opened"]  # never "you already reported"
    # A fire exit in another grid is not joined; the same building, named, is.
    exit_g1 = await said(world, "H-01", "5栋的消防通道被杂物堵住了")
    exit_g2 = await said(world, "H-04", "消防通道被电动车堵死了")
    assert exit_g2.status == "opened" and exit_g2.ticket != exit_g1.ticket
    same = await said(world, "H-04", "五栋消防通道又被堵了，杂物还在")
    assert (same.status, same.ticket) == ("joined", exit_g1.ticket)
    # The same sub-problem from a neighbour in the grid joins.
    water = await said(world, "H-01", "楼下停水两天了")
    assert (await said(world, "H-02", "又停水了")).ticket == water.ticket


async def test_a_graver_report_opens_its_own_ticket_linked_to_the_old_one(world: World) -> None:
    smell = await said(world, "H-01", "3栋楼道的垃圾好几天没人清理，很臭")
    danger = await said(world, "H-02", "3栋楼道里煤气味很重，怕会爆炸")
    assert (smell.status, danger.status) == ("opened", "opened")
    old, new = await world.store.get(smell.ticket or ""), await world.store.get(danger.ticket or "")
    assert old is not None and new is not None
    assert (new.category, new.severity) == ("emergency", "critical")
    assert new.related == (old.id,) and old.related == (new.id,)
    assert [e.kind for e in await world.store.history(old.id)][-1] is EventKind.RELATED
    sent = await world.outbox()
    cards = [p for p in sent if p["card"] and p["ticket"] == new.id]
    assert cards and all(f"#{old.id}" in p["text"] for p in cards if "🔗" in p["text"])
    assert any(f"相关工单：#{old.id}" in p["text"] for p in cards)
    notice = [p for p in sent if p["template"] == "related" and p["ticket"] == old.id]
    assert notice and f"#{new.id}" in notice[0]["text"] and "紧急险情" in notice[0]["text"]


async def test_staff_link_two_tickets_in_their_scope(world: World) -> None:
    first = await said(world, "H-01", "楼下KTV每晚唱到凌晨三点，吵得睡不着")
    second = await said(world, "H-04", "广场舞音响太大声，晚上十点还在跳")
    worker = world.person(Role.GRID_WORKER, "G-01")
    refused = await world.service.handle_message(
        world.message(worker, f"关联 {first.ticket} {second.ticket}")
    )
    assert (refused.status, refused.detail) == ("refused", "no_such_ticket")  # G-02's
    cadre = world.person(Role.VILLAGE_CADRE, "V-01")
    for text in (f"关联 {first.ticket}", f"/link {first.ticket} {first.ticket}"):
        bad = await world.service.handle_message(world.message(cadre, text))
        assert (bad.status, bad.detail) == ("refused", "link_self")
    # The street sees both grids' tickets.
    staff = world.person(Role.STREET_STAFF)
    done = await world.service.handle_message(
        world.message(staff, f"/link {first.ticket} {second.ticket}")
    )
    assert done.status == "done"
    a, b = await world.store.get(first.ticket or ""), await world.store.get(second.ticket or "")
    assert a is not None and b is not None
    assert (a.related, b.related) == ((b.id,), (a.id,))
    again = await world.service.handle_message(
        world.message(staff, f"关联 {second.ticket} {first.ticket}")
    )
    assert (again.status, again.detail) == ("refused", "already_linked")


async def test_an_earlier_handlers_reply_to_the_old_card_is_a_note(world: World) -> None:
    opened = await said(world, "H-01", "楼下KTV每晚唱到凌晨三点，吵得睡不着")  # at grid G-01
    ticket_id = opened.ticket or ""
    worker = world.person(Role.GRID_WORKER, "G-01")
    up = await world.service.handle_message(world.message(worker, f"上报 {ticket_id} 屡劝不改"))
    assert up.status == "done"
    # The grid worker replies to the card in the grid's staff chat after it climbed.
    grid = world.tree.nodes["G-01"]
    assert grid.staff_chat is not None
    await world.redis.set(keys.card(grid.staff_chat, "900"), ticket_id)
    reply = world.message(worker, "老板答应今晚十点后关音响", chat=grid.staff_chat, reply_to="900")
    handled = await world.service.handle_message(reply)
    assert handled.status == "done"
    last = (await world.store.history(ticket_id))[-1]
    assert last.kind is EventKind.NOTED and last.data["earlier"] is True
    # Someone with no part in it replying to a card hears why, not silence.
    other = world.person(Role.GRID_WORKER, "G-03")
    chat = world.tree.nodes["G-03"].chats[0]
    await world.redis.set(keys.card(chat, "901"), ticket_id)
    refused = await world.service.handle_message(
        world.message(other, "我来看看", chat=chat, reply_to="901")
    )
    assert (refused.status, refused.detail) == ("refused", "no_such_ticket")


FIRE_GROUP, FIRE_STAFF, G01_GROUP = -1001000000310, 100044, -1001000000121


async def test_a_department_reports_in_by_its_own_buttons(harness: Harness) -> None:
    """网格吹哨、部门报到: the fire station arrives and finishes its part from its own card."""
    fake = harness.fake
    bot = await harness.start()
    fake.push(fake.message(H01, RESIDENT, "5栋的消防通道被杂物堵住了", name="陈志强"))
    card = await next_sent(fake, 0, FIRE_GROUP, "the department card")
    assert card.buttons == ["arrive:1", "assisted:1"]  # 到场, 协办完成: not ack/resolve/escalate
    ticket = await bot.store.get("1")
    assert ticket is not None and ticket.category == "safety_hazard" and ticket.node == "G-01"
    await quiet(harness)  # every card of the report sent (the grid's may follow the department's)
    n = len(fake.sent)
    fake.push(fake.callback(FIRE_STAFF, card, "arrive:1", "李嘉欣"))
    # (The handling group's card may go out after the press on a loaded machine: look past it.)
    await wait_for(
        lambda: any(c.chat == G01_GROUP and "李嘉欣" in c.text for c in fake.sent[n:]),
        what="the handling group told of the arrival",
    )
    told = next(c for c in fake.sent[n:] if c.chat == G01_GROUP and "李嘉欣" in c.text)
    assert "消防" in told.text and "已到场" in told.text
    # A reply to the department card is the department's note; 协办完成 closes its part.
    n = len(fake.sent)
    fake.push(
        fake.message(
            FIRE_GROUP,
            FIRE_STAFF,
            "杂物已清走一半",
            name="李嘉欣",
            reply_to=card.result["message_id"],
        )
    )
    await next_sent(fake, n, G01_GROUP, "the note reaches the handling group")
    n = len(fake.sent)
    fake.push(fake.message(FIRE_GROUP, FIRE_STAFF, "协办完成 1 通道已打通", name="李嘉欣"))
    done = await next_sent(fake, n, G01_GROUP, "assist done")
    assert "协办完成" in done.text and "通道已打通" in done.text
    await quiet(harness)
    kinds = [e.kind for e in await bot.store.history("1")]
    assert kinds[-3:] == [EventKind.ARRIVED, EventKind.NOTED, EventKind.ASSISTED]
    assert all("不在您的负责范围" not in c.text for c in fake.sent_to(FIRE_GROUP))
    # Pressing 到场 again, or a resident pressing it: refused with the reason.
    n = len(fake.sent)
    fake.push(fake.message(FIRE_GROUP, FIRE_STAFF, "/arrive 1", name="李嘉欣"))
    assert "无需重复" in (await next_sent(fake, n, FIRE_GROUP, "already arrived")).text
    n = len(fake.sent)
    fake.push(fake.message(H01, RESIDENT, "到场 1", name="陈志强"))
    assert "只有被请来协办" in (await next_sent(fake, n, H01, "not a department")).text
    # The handling group's cards show it from now on (an escalation card, say).
    ticket = await bot.store.get("1")
    assert ticket is not None and set(ticket.department_steps["D-fire"]) == {"arrived", "assisted"}


NEW_TEMPLATES = {
    "related", "linked", "reopened_as_new", "arrived", "assisted", "already_closed",
    "not_department", "already_done_step", "link_self", "already_linked",
}  # fmt: skip


async def test_the_new_texts_render_in_every_language(world: World) -> None:
    world.service.pacing = Pacing(per_person=1000)
    cadre, fire = (
        world.person(Role.VILLAGE_CADRE, "V-01"),
        world.person(Role.DEPARTMENT_STAFF, "D-fire"),
    )
    first = await said(world, "H-01", "3栋楼道的垃圾好几天没人清理，很臭")
    second = await said(world, "H-02", "3栋楼道里煤气味很重，怕会爆炸")
    hazard = await said(world, "H-01", "5栋的消防通道被杂物堵住了")
    joined = await said(world, "H-02", "五栋消防通道又被堵了，杂物还在")
    assert joined.ticket == hazard.ticket
    h = hazard.ticket
    for person, text in [
        (fire, f"到场 {h}"),
        (fire, f"到场 {h}"),
        (fire, f"协办完成 {h} 通道已打通"),
        (world.person(Role.RESIDENT, "H-01"), f"到场 {h}"),
        (cadre, f"关联 {first.ticket}"),
        (cadre, f"关联 {first.ticket} {hazard.ticket}"),
        (cadre, f"关联 {first.ticket} {hazard.ticket}"),
        (world.person(Role.GRID_WORKER, "G-01"), f"办结 {h} 已清理"),
        (world.person(Role.RESIDENT, "H-01"), f"确认 {h}"),
        (world.person(Role.RESIDENT, "H-01"), f"确认 {h}"),
        (world.person(Role.RESIDENT, "H-02"), f"重开 {h} 又堵了"),
    ]:
        await world.service.handle_message(world.message(person, text))
    assert second.status == "opened"
    sent = [payload_reply(p) for p in await world.outbox()]
    seen = {r.template for r in sent}
    assert seen >= NEW_TEMPLATES, NEW_TEMPLATES - seen
    for reply in sent:
        for lang in Lang:
            text = RENDER(dataclasses.replace(reply, lang=lang)).text
            assert text and "None" not in text and "{{" not in text, (reply.template, lang)
            if lang is not Lang.EN:
                assert re.search(r"[\u4e00-\u9fff]", text)
