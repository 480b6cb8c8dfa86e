"""The sweeper finds only deadlines whose jobs were really lost."""

from __future__ import annotations

import logging

import pytest

from bot.cli import worker
from bot.core.deadlines import Outcome
from bot.core.org import Role
from bot.core.ticket import EventKind, TicketState
from bot.settings import Settings
from tests.conftest import RULES_DIR
from tests.helpers import owed
from tests.test_services import ORG, World
from tests.test_services import world as world  # the fixture, re-exported for these tests

FIRE = "3栋5楼着火了，好多烟，快来人"


async def test_a_flag_at_the_street_leaves_no_deadline_for_the_sweeper(world: World) -> None:
    resident = world.person(Role.RESIDENT, "H-01")
    opened = await world.service.handle_message(world.message(resident, FIRE))
    ticket = await world.store.get(opened.ticket or "")
    assert ticket is not None and ticket.node == "S-01" and ticket.ack_due is not None
    world.clock.now = ticket.ack_due + 1  # the ack job runs on time, at the top of the ladder
    assert await world.service.handle_deadline(ticket.id, 1, "ack") is Outcome.FLAG
    flagged = await world.store.get(ticket.id)
    assert flagged is not None and flagged.flagged and flagged.state is TicketState.OPEN
    assert await owed(world.redis) == []
    world.clock.now += 3600
    assert await world.service.sweep() == 0  # was 1: the flagged ack looked lost


async def test_a_really_lost_job_is_still_found(world: World) -> None:
    resident = world.person(Role.RESIDENT, "H-01")
    opened = await world.service.handle_message(world.message(resident, FIRE))
    ticket = await world.store.get(opened.ticket or "")
    assert ticket is not None and ticket.ack_due is not None
    world.clock.now = ticket.ack_due + 60  # its job never ran
    assert await world.service.sweep() == 1
    flagged = await world.store.get(ticket.id)
    assert flagged is not None and flagged.flagged
    assert await world.service.sweep() == 0


async def test_the_index_holds_the_earliest_deadline_and_the_next_one_once_settled(
    world: World,
) -> None:
    """One member per ticket: the acknowledgement's, then the resolution's, and neither job
    lost goes unnoticed."""
    resident = world.person(Role.RESIDENT, "H-01")
    cadre = world.person(Role.VILLAGE_CADRE, "V-01")
    opened = await world.service.handle_message(world.message(resident, "村口的路灯坏了半个月"))
    ticket = await world.store.get(opened.ticket or "")
    assert ticket is not None and ticket.ack_due is not None and ticket.resolve_due is not None
    assert await owed(world.redis) == [(f"{ticket.id}:1:ack", ticket.ack_due)]
    acked = await world.service.handle_message(world.message(cadre, f"/ack {ticket.id}"))
    assert acked.status == "done", acked
    assert await owed(world.redis) == [(f"{ticket.id}:1:resolve", ticket.resolve_due)]
    world.clock.now = ticket.resolve_due + 60  # the resolution's job never ran
    assert await world.service.sweep() == 1
    moved = await world.store.get(ticket.id)
    assert moved is not None and moved.escalations == 1 and moved.stage == 2
    assert await owed(world.redis) == [(f"{ticket.id}:2:ack", moved.ack_due)]


async def test_the_worker_warns_only_of_a_deadline_whose_job_really_was_lost(
    world: World, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The sweeper's round as the worker runs it: a street flag made by its job is no warning;
    a deadline whose job never ran is, once, and the sweeper does the job's work."""
    settings = Settings(REDIS_URL=redis_url, rules_dir=RULES_DIR, org_file=ORG, digest_at="")
    flagged_on_time = await world.service.handle_message(
        world.message(world.person(Role.RESIDENT, "H-01"), FIRE)
    )
    lost = await world.service.handle_message(
        world.message(world.person(Role.RESIDENT, "H-06"), FIRE)  # another village: its own
    )
    first = await world.store.get(flagged_on_time.ticket or "")
    second = await world.store.get(lost.ticket or "")
    assert first is not None and second is not None and first.id != second.id
    assert first.node == second.node == "S-01" and first.ack_due and second.ack_due
    world.clock.now = first.ack_due + 1  # the first one's job runs on time: flagged
    assert await world.service.handle_deadline(first.id, 1, "ack") is Outcome.FLAG
    world.clock.now = max(first.ack_due, second.ack_due) + 3600  # the second one's never ran

    async def warnings() -> list[str]:
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="bot.cli.worker"):
            worker.report(await worker.tick(settings, world.clock), settings)
        return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]

    assert await warnings() == ["sweeper: 1 overdue deadlines had lost their jobs"]
    after = await world.store.get(second.id)
    assert after is not None and after.flagged  # the sweeper did what the lost job would have
    assert await warnings() == []  # and says it once
    history = [e.kind for e in await world.store.history(first.id)]
    assert history.count(EventKind.FLAGGED) == 1
