"""What handlers read back: the open queue overdue first, and /stats with counts and a period."""

from __future__ import annotations

from bot.core.org import Role
from tests.test_services import World
from tests.test_services import world as world  # the fixture, re-exported for these tests

NOISE = "楼下KTV每晚唱到凌晨三点，吵得睡不着"  # noise: at the grid, 低 severity
HAZARD = "楼道里堆满了纸箱和旧床垫，消防通道都堵住了"  # safety hazard: at the grid, sooner due


async def test_open_lists_overdue_first_marked_with_who_holds_each(world: World) -> None:
    resident = world.person(Role.RESIDENT, "H-01")
    worker = world.person(Role.GRID_WORKER, "G-01")
    ids = []
    for text in (NOISE, HAZARD):
        handled = await world.service.handle_message(world.message(resident, text))
        assert handled.status == "opened", text
        ids.append(handled.ticket or "")
    noise, hazard = [await world.store.get(i) for i in ids]
    assert noise is not None and hazard is not None and noise.node == hazard.node == "G-01"
    assert noise.ack_due is not None and hazard.ack_due is not None
    # The noise ticket is acknowledged and assigned to the worker; the hazard waits.
    await world.service.handle_message(world.message(worker, f"/ack {noise.id}"))
    await world.service.handle_message(world.message(worker, f"/assign {noise.id} @{worker.id}"))
    # Later: the hazard's acknowledgement is overdue; the noise ticket's resolution is not yet.
    world.clock.now = hazard.ack_due + 60
    noise_now = await world.store.get(noise.id)
    assert noise_now is not None and noise_now.resolve_due is not None
    assert noise_now.resolve_due > world.clock.now
    await world.service.handle_message(world.message(worker, "待办"))
    text = [p for p in await world.outbox() if p["template"] == "ticket_list"][-1]["text"]
    lines = [line for line in text.splitlines() if line.startswith("#")]
    assert [line.split()[0] for line in lines] == [f"#{hazard.id}", f"#{noise.id}"]
    assert "⚠️受理已超时" in lines[0]
    assert "⚠️" not in lines[1] and f"·{worker.name}" in lines[1]


async def test_stats_show_counts_beside_rates_and_the_period(world: World) -> None:
    resident = world.person(Role.RESIDENT, "H-01")
    worker = world.person(Role.GRID_WORKER, "G-01")
    first = await world.service.handle_message(world.message(resident, NOISE))
    await world.service.handle_message(world.message(resident, HAZARD))
    await world.service.handle_message(world.message(worker, f"/ack {first.ticket}"))
    await world.service.handle_message(world.message(worker, "/stats"))
    text = [p for p in await world.outbox() if p["template"] == "stats"][-1]["text"]
    head = text.splitlines()[0]
    assert head.startswith("📊 办理情况（") and "近 30 天" in head
    grid = text[text.index("【东联村第一网格】") :].splitlines()
    assert grid[0] == "【东联村第一网格】待办 2，超时 0"
    # One acknowledgement decided (made in time); nothing resolved or rated yet: no data, "—".
    assert grid[1] == "及时受理 100%（1/1）｜按时办结 —｜满意 —"
