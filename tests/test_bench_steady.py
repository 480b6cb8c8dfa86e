"""The steady soak's parts (bench/steady.py): its commands close every kind of bench report,
its archive leaves nothing of a ticket but the expiring markers, its memory reader and slopes."""

from __future__ import annotations

from pathlib import Path

import pytest

import bot.inbox as inbox_module
import bot.sender as sender_module
import bot.storage.redis as redis_store
from bench import steady
from bench.scale import REPORTS, Accepting
from bot.archive import DAY, Archive, ArchiveFiles
from bot.core.models import Actor, IncomingMessage, Lang
from bot.core.org import Role
from bot.core.ticket import TicketState
from bot.inbox import Inbox
from bot.render import local_zone
from bot.sender import Sender
from bot.storage import keys
from tests.test_services import World
from tests.test_services import world as world  # the fixture, re-exported for these tests


def typed(world: World, payload: dict[str, str]) -> IncomingMessage:
    """Return the message a payload stands for, as the bench's receivers make it."""
    sender = Actor(payload["account"], payload["name"], None, Lang.ZH_HANS)
    chat, text = payload["chat"], payload["text"]
    return IncomingMessage(chat, payload["message_id"], sender, text, world.clock.now)


@pytest.mark.parametrize("text", REPORTS)
async def test_the_closers_commands_close_a_ticket_and_the_archive_takes_it(
    world: World, tmp_path: Path, text: str
) -> None:
    resident = world.person(Role.RESIDENT, "H-01")
    opened = await world.service.handle_message(world.message(resident, text))
    assert opened.status == "opened" and opened.ticket is not None
    by_node = steady.handlers(world.tree)
    for phase in range(len(steady.PHASES)):
        ticket = await world.store.get(opened.ticket)
        assert ticket is not None and steady.ready(phase, ticket)
        if phase + 1 < len(steady.PHASES):
            assert not steady.ready(phase + 1, ticket)  # the next step waits for this one
        payload = steady.command(phase, ticket, world.tree, by_node)
        assert payload is not None, f"no handler at {ticket.node}"
        world.clock.now += 5
        handled = await world.service.handle_message(typed(world, payload))
        assert handled.status == "done", (steady.PHASES[phase], handled)
    closed = await world.store.get(opened.ticket)
    assert closed is not None and closed.state is TicketState.CLOSED

    world.clock.now += 30
    moved = Archive(world.redis, ArchiveFiles(tmp_path, local_zone(), world.clock))
    assert await moved.sweep(60 / DAY) == 0  # a minute's retention: not yet
    assert await moved.sweep(20 / DAY) == 1
    left = {steady.kind(k.decode()) async for k in world.redis.scan_iter(count=1000)}
    per_ticket = {k for k in left if "ticket" in k or "deck" in k or "cardsin" in k}
    assert per_ticket == set()  # its record, events, deck and card pointers are gone


def test_every_node_a_bench_ticket_reaches_has_a_handler(world: World) -> None:
    by_node = steady.handlers(world.tree)
    assert set(by_node) == set(world.tree.nodes)
    grid = by_node["G-01"]
    assert grid.role is Role.GRID_WORKER  # the closest handler, not the street's staff


def test_steps_come_due_in_order_and_wait_in_front() -> None:
    steps = steady.Steps(after=30.0)
    steps.opened(100.0, "1")
    steps.opened(101.0, "2")
    assert steps.due(0, 109.0) == []
    assert [i for _, i, _ in steps.due(0, 111.0)] == ["1", "2"]
    steps.done(0, 100.0, "1")
    steps.done(0, 101.0, "2")
    [first, second] = steps.due(1, 125.0)
    steps.later(1, [first, second])  # not ready: back in front, in order
    steps.opened(102.0, "3")
    assert [i for _, i, _ in steps.due(1, 125.0)] == ["1", "2"]


async def test_memory_by_kind_sums_the_expiring_markers_apart(world: World) -> None:
    await world.redis.set(keys.sent("t:1:1:0"), 1, ex=3600)
    await world.redis.set(keys.processed("telegram:1:2"), "1", ex=3600)
    await world.redis.set(keys.ticket("1"), "{}")
    found = await steady.sizes(world.redis)
    assert found["lianhu:sent:*"][1] == 1 and found["lianhu:msg:*"][1] == 1
    assert found["lianhu:ticket:*"][1:] == [1, 1]  # one key, without a TTL
    assert all(row[0] > 0 for row in found.values())


async def test_the_expiring_markers_are_sized_from_a_sample_of_them(world: World) -> None:
    """One in SAMPLED is sized, times their count: markers of one shape come out exact."""
    for i in range(40):
        await world.redis.set(keys.sent(f"t:{1000 + i}:1:0"), "1001", ex=3600)
    each = await world.redis.memory_usage(keys.sent("t:1000:1:0"), samples=0)
    found = await steady.sizes(world.redis)
    assert found["lianhu:sent:*"] == [40 * each, 40, 0]


def test_slopes_and_what_an_expiring_kind_levels_off_at() -> None:
    samples = [
        (t, {"lianhu:sent:*": [1000 * t, 1, 0], "lianhu:ticket:*": [5000, 1, 1]})
        for t in (0.0, 30.0, 60.0, 90.0)
    ]
    found = steady.slopes(samples, 30.0, 90.0)
    assert found == {"lianhu:sent:*": pytest.approx(60_000), "lianhu:ticket:*": 0.0}
    per_report, held = steady.plateau(60_000, rate=10, ttl=7 * DAY)
    assert per_report == pytest.approx(100)  # 1,000 B a second at 10 reports a second
    assert held == pytest.approx(100 * 10 * 7 * DAY)


def test_the_steady_report_judges_ticket_keys_apart_from_the_bounded_kinds() -> None:
    samples = [
        (t, {
            "lianhu:ticket:*": [5000, 10, 10], "lianhu:sent:*": [100 * t, 1, 0],
            "lianhu:outbox:telegram": [50 * t, 1, 1], "bench:latencies": [int(t), 1, 1],
        })
        for t in (60.0, 90.0, 120.0)
    ]  # fmt: skip
    lines: list[str] = []
    found = steady.steady_report(samples, [(t, 1e6 + 200 * t) for t, _ in samples], 60.0,
                                 120.0, 10, lines.append)  # fmt: skip
    assert found["= hot"] == 0.0  # the tickets' keys are flat
    assert found["= expiring"] == pytest.approx(6000)
    assert found["= outbox"] == pytest.approx(3000)
    assert found["= used_memory"] == pytest.approx(12_000)
    assert steady.group("rq:job:*").startswith("deadline jobs")
    assert any("lianhu:sent:*: 10 B a report" in line for line in lines)


async def test_marker_ttl_shortens_every_marker_and_pointer_a_report_leaves(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--marker-ttl: in a process of the bench, an update's, a handled message's and a
    delivery's markers, and the sender's pointers, live the seconds it says; decks do not."""
    for module, name in ((inbox_module, "SEEN_TTL"), (redis_store, "PROCESSED_TTL"),
                         (sender_module, "SENT_TTL"), (sender_module, "CARD_TTL")):  # fmt: skip
        monkeypatch.setattr(module, name, getattr(module, name))  # put back after the test
    monkeypatch.delenv(steady.MARKER_TTL, raising=False)
    assert steady.shorten_markers() is None and sender_module.SENT_TTL == 7 * DAY
    monkeypatch.setenv(steady.MARKER_TTL, "240")
    assert steady.shorten_markers() == 240
    assert steady.EXPIRING["lianhu:sent:*"] == 7 * DAY  # the real TTLs, for the projection
    inbox = Inbox(world.redis, "telegram")
    assert await inbox.put(1, '{"text": "x"}')
    resident = world.person(Role.RESIDENT, "H-01")
    opened = await world.service.handle_message(world.message(resident, "楼下停水两天了"))
    assert opened.status == "opened"
    sender = Sender(world.redis, Accepting("telegram"), "bench-telegram")
    assert (await sender.drain()).sent > 0
    ttls: dict[str, list[int]] = {}
    async for name in world.redis.scan_iter(count=1000):
        ttls.setdefault(steady.kind(name.decode()), []).append(await world.redis.ttl(name))
    for kind in (*steady.EXPIRING, steady.POINTERS):
        assert ttls[kind] and all(0 < ttl <= 240 for ttl in ttls[kind]), (kind, ttls[kind])
    assert all(ttl > 240 for ttl in ttls["lianhu:deck:*"])  # a deck leaves with its ticket


def test_with_short_markers_the_report_tells_a_reports_share_of_what_they_hold() -> None:
    """Level markers (--marker-ttl 100 at 10 reports a second: 1,000 alive) of 50 KB say 50 B
    a report, and 50 B x 10,000 reports a day x 7 days at their real TTL."""
    samples = [(t, {"lianhu:sent:*": [50_000, 1000, 0], "bench:latencies": [int(t), 1, 1]})
               for t in (60.0, 90.0, 120.0)]  # fmt: skip
    lines: list[str] = []
    found = steady.steady_report(samples, [(t, 1e6 + t) for t, _ in samples], 60.0, 120.0, 10,
                                 lines.append, marker_ttl=100)  # fmt: skip
    assert found["= expiring"] == 0.0
    assert any("lianhu:sent:*: 50 B a report" in line and "3.5 MB at 10,000" in line
               for line in lines), lines  # fmt: skip
    assert any("less the bench's own keys and rq's deadline jobs" in line and ": 0 B/min" in line
               for line in lines), lines  # fmt: skip
