"""The loop as people live it: joining only the same problem, departments reporting in,
earlier handlers' notes, confirming a closed ticket, co-reporters, and lists kept from groups."""

from __future__ import annotations

from bot.core.org import Role
from bot.core.pacing import Pacing
from tests.test_services import World
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
