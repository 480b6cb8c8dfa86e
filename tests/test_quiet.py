"""Quiet hours: a low-severity report at 23:00 reaches the grid group when the next working day
starts."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator

import pytest
import redis
import redis.asyncio
from pydantic import ValidationError

from bot.card_edits import viewed
from bot.core.deadlines import Policy
from bot.core.org import Role
from bot.core.quiet import HELD_PLATFORM, parse_hours
from bot.core.worktime import MONDAY_TO_FRIDAY, working
from bot.live import LiveConfig
from bot.render import local_zone
from bot.scheduling import RqScheduler
from bot.services import Service
from bot.settings import Settings
from bot.storage import keys
from bot.storage.redis import RedisStore
from tests.conftest import ROOT, RULES_DIR
from tests.helpers import sent
from tests.test_services import Clock, Schedules, World

ORG = ROOT / "org" / "sample_street.yaml"
ZONE = local_zone()
HOURS = (8 * 60 + 30, 18 * 60)


def local(day: int, hour: int, minute: int = 0) -> float:
    return dt.datetime(2026, 12, day, hour, minute, tzinfo=ZONE).timestamp()


@pytest.fixture
async def world(redis_async: redis.asyncio.Redis, redis_sync: redis.Redis) -> AsyncIterator[World]:
    config = LiveConfig(RULES_DIR, ORG, Policy(work_hours=HOURS))
    store = RedisStore(redis_async)
    clock, schedules = Clock(local(4, 23)), Schedules(RqScheduler(redis_sync))
    service = Service(store, config, schedules, clock)
    yield World(service, store, redis_async, clock, schedules, config.tree)


NOISE = "楼下KTV每晚唱到凌晨三点，吵得睡不着"  # noise: low severity, handled by the grid


async def test_a_low_report_at_23_reaches_the_grid_group_when_the_next_working_day_starts(
    world: World,
) -> None:
    resident = world.person(Role.RESIDENT, "H-01")
    handled = await world.service.handle_message(world.message(resident, NOISE))
    assert handled.status == "opened"
    ticket = await world.store.get(handled.ticket or "")
    assert ticket is not None and (ticket.severity, ticket.node) == ("low", "G-01")
    grid = world.tree.nodes["G-01"]
    queued = await world.outbox()
    # The resident is answered at once; no card reaches the grid's chats tonight.
    assert [p["template"] for p in queued] == ["ticket_opened"]
    rows = await world.redis.xrange(keys.outbox(HELD_PLATFORM))
    held = sorted(json.loads(f[b"payload"])["chat"] for _, f in rows)
    enforcement = world.tree.nodes["D-enforcement"]  # the department noise names: its card too
    assert held == sorted([*grid.chats, *enforcement.chats])
    # Reported at 23:00 on Friday 4 December: nothing is released on Saturday or Sunday, nor
    # on Monday before 08:30; at 08:30 on Monday one summary per chat, once.
    for day, hour, minute in ((5, 8, 31), (6, 12, 0), (7, 8, 29)):
        world.clock.now = local(day, hour, minute)
        assert await world.service.release_held(ZONE) == 0
    world.clock.now = local(7, 8, 31)
    assert await world.service.release_held(ZONE) == len(held)
    assert await world.service.release_held(ZONE) == 0
    assert await world.redis.xlen(keys.outbox(HELD_PLATFORM)) == 0
    telegram = await sent(world.redis)
    summary = [text for chat, text in telegram.delivered if chat == grid.chats[0]]
    assert len(summary) == 1 and f"#{ticket.id}" in summary[0] and "噪音扰民" in summary[0]
    # Besides the resident's answer, exactly one message per held chat: the summary.
    others = sorted(c for c, _ in telegram.delivered if c != resident_chat(world))
    assert others == [c for c in held if c.startswith("telegram:")]


async def test_a_question_at_23_on_friday_is_due_in_working_hours(world: World) -> None:
    # policy_inquiry has clock: working; low severity owes an answer in 2 days (48 hours):
    # counted from 08:30 on Monday at 9.5 hours a day, 47.5 by Friday, half an hour more.
    resident = world.person(Role.RESIDENT, "H-01")
    handled = await world.service.handle_message(world.message(resident, "高龄津贴怎么申请"))
    ticket = await world.store.get(handled.ticket or "")
    assert ticket is not None and ticket.category == "policy_inquiry"
    assert ticket.ack_due == local(14, 9)
    # A noise report is low too, but on the wall clock: two days from Friday 23:00.
    handled = await world.service.handle_message(world.message(resident, NOISE))
    noise = await world.store.get(handled.ticket or "")
    assert noise is not None and noise.ack_due == local(6, 23)


async def test_high_severity_goes_at_once_at_night(world: World) -> None:
    resident = world.person(Role.RESIDENT, "H-01")
    handled = await world.service.handle_message(
        world.message(resident, "厂里拖欠我们三个月工资了")
    )
    ticket = await world.store.get(handled.ticket or "")
    assert ticket is not None and ticket.severity == "high"
    assert any(p["card"] for p in await world.outbox())
    assert await world.redis.xlen(keys.outbox(HELD_PLATFORM)) == 0


async def test_during_the_day_cards_go_at_once(world: World) -> None:
    world.clock.now = local(4, 10)  # a Friday
    resident = world.person(Role.RESIDENT, "H-01")
    await world.service.handle_message(world.message(resident, NOISE))
    assert any(p["card"] for p in await world.outbox())
    assert await world.redis.xlen(keys.outbox(HELD_PLATFORM)) == 0


async def test_a_card_held_at_night_leaves_the_older_card_its_buttons(world: World) -> None:
    """A reopened ticket's new card gives the handler's buttons to itself (bot.core.cards); held
    by quiet hours it reaches the group only as a line of the morning summary, so the card
    the group holds keeps them."""
    world.clock.now = local(4, 10)  # a Friday
    resident = world.person(Role.RESIDENT, "H-01")
    handled = await world.service.handle_message(world.message(resident, NOISE))
    ticket_id = handled.ticket or ""
    grid = world.tree.nodes["G-01"]
    (card,) = [p for p in await world.outbox() if p["card"] and p["chat"] == grid.chats[0]]
    worker = world.person(Role.GRID_WORKER, "G-01")
    await world.service.handle_message(world.message(worker, f"办结 {ticket_id} 已劝导"))
    world.clock.now = local(4, 23)
    await world.service.handle_message(world.message(resident, f"重开 {ticket_id} 又吵了"))
    ticket = await world.store.get(ticket_id)
    assert ticket is not None and ticket.state.value == "reopened"
    assert await world.redis.xlen(keys.outbox(HELD_PLATFORM)) > 0  # the new card waits
    rows = await world.redis.xrange(keys.outbox("telegram"))
    edits = [json.loads(f[b"payload"]) for _, f in rows]
    view = [p["view"] for p in edits if p.get("edit_cards") == ticket_id][-1]
    shown = viewed(card, view)
    assert shown["buttons"] == ["ack", "resolve", "escalate"]
    assert not shown["params"].get("superseded")


async def test_without_working_hours_nothing_is_held(
    redis_async: redis.asyncio.Redis, redis_sync: redis.Redis
) -> None:
    config = LiveConfig(RULES_DIR, ORG, Policy())
    service = Service(RedisStore(redis_async), config, RqScheduler(redis_sync), Clock(local(4, 23)))
    world = World(service, service.store, redis_async, Clock(local(4, 23)),
                  Schedules(RqScheduler(redis_sync)), config.tree)  # fmt: skip
    await service.handle_message(world.message(world.person(Role.RESIDENT, "H-01"), NOISE))
    assert any(p["card"] for p in await world.outbox())
    assert await service.release_held(ZONE) == 0


def resident_chat(world: World) -> str:
    return world.tree.nodes["H-01"].chats[0]


def test_working_hours() -> None:
    assert parse_hours("08:30-18:00") == HOURS and parse_hours("") is None
    days = MONDAY_TO_FRIDAY
    assert working(local(4, 8, 30), HOURS, days, ZONE)
    assert not working(local(4, 18), HOURS, days, ZONE)
    assert not working(local(5, 10), HOURS, days, ZONE)  # Saturday
    for bad in ("8-18", "18:00-08:30", "08:30-25:00", "08:3-18:00", "x"):
        with pytest.raises(ValueError):
            parse_hours(bad)
    with pytest.raises(ValidationError, match="HH:MM-HH:MM"):
        Settings(work_hours="8 to 6")
    assert Settings(work_hours="08:30-18:00").policy().work_hours == HOURS
