"""The closed loop on a real Redis with a real rq worker process, as the chats see it.

Time is compressed by configuration (LIANHU_DEADLINE_SCALE in the worker, the same
scale in the Policy of the service), never by sleeping through real deadlines:
24 hours to resolve a water outage last 8.6 seconds here. Every reply goes through
the real Sender to a recording gateway, and the tests check what reached each chat.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
import redis.asyncio

from bot.core.deadlines import Policy
from bot.core.models import Actor, IncomingMessage, Lang
from bot.core.org import OrgTree, Person, Role
from bot.core.ticket import EventKind, Ticket, TicketState
from bot.live import LiveConfig
from bot.scheduling import RqScheduler
from bot.services import Handled, Service
from bot.storage import keys
from bot.storage.redis import RedisStore
from tests.conftest import ROOT, RULES_DIR
from tests.helpers import Gateway, owed, run_worker, sent

ORG = ROOT / "org" / "sample_street.yaml"
SCALE = 2.5e-4  # a water outage: 4 h to acknowledge -> 3.6 s, 24 h to resolve -> 21.6 s (room for
# a worker process to start before the resolution deadline on a machine loaded by the suite: at
# 1e-4, 8.6 s, the worker started late under a load of 4 and the deadline had passed)
WATER = "又停水了，成栋楼冇水，已经两天了"


@dataclass
class Street:
    """The sample street with a service, a real rq worker to run, and the chats' mailboxes."""

    service: Service
    redis: redis.asyncio.Redis
    url: str
    tree: OrgTree
    counter: int = 0

    def person(self, person_id: str) -> Person:
        return self.tree.people[person_id]

    def chat(self, node: str) -> str:
        return self.tree.nodes[node].chats[0]

    async def say(self, person_id: str, text: str = "", **extra: Any) -> Handled:
        """Let a person write ``text`` (or press a button: callback=...) in their own group."""
        person = self.person(person_id)
        self.counter += 1
        message = IncomingMessage(
            extra.pop("chat", None) or self.chat(person.scope), f"m{self.counter}",
            Actor(person.accounts[0], person.name, person.id, Lang(person.lang)),
            text, time.time(), **extra,
        )  # fmt: skip
        return await self.service.handle_message(message)

    async def ticket(self, ticket_id: str) -> Ticket:
        ticket = await self.service.store.get(ticket_id)
        assert ticket is not None
        return ticket

    async def history(self, ticket_id: str) -> list[EventKind]:
        return [e.kind for e in await self.service.store.history(ticket_id)]

    async def delivered(self) -> Gateway:
        """Drain the outbox through the real Sender; return what reached the chats."""
        return await sent(self.redis)

    def run_worker(self) -> None:
        """Run `lianhu worker --burst`: the rq worker with its scheduler, until nothing is due."""
        proc = run_worker(self.url, SCALE)
        assert proc.returncode == 0, proc.stderr


@pytest.fixture
async def street(
    redis_url: str, redis_async: redis.asyncio.Redis, redis_sync: redis.Redis
) -> AsyncIterator[Street]:
    config = LiveConfig(RULES_DIR, ORG, Policy(scale=SCALE, close_after=3600.0))
    service = Service(RedisStore(redis_async), config, RqScheduler(redis_sync))
    yield Street(service, redis_async, redis_url, config.tree)


async def until(when: float) -> None:
    await asyncio.sleep(max(0.0, when - time.time()))


def texts_to(gateway: Gateway, chat: str) -> list[str]:
    return [text for c, text in gateway.delivered if c == chat]


# A resident of H-01 (grid G-01, village V-01), the village cadre and mediator of V-01, street staff.
RESIDENT, CADRE, MEDIATOR, STAFF = (
    "p-chen-zhiqiang",
    "p-yang-zixuan",
    "p-wen-runsheng",
    "p-luo-bingkun",
)


async def test_report_ack_escalate_resolve_confirm(street: Street) -> None:
    """The whole loop: report, card, 受理, the resolution deadline missed, the street, 办结, 确认."""
    opened = await street.say(RESIDENT, WATER)
    assert opened.status == "opened"
    ticket_id = opened.ticket or ""
    first = await street.delivered()
    # The resident is answered in the household group, quoting the report; the card goes to
    # the village group (utilities start at the village) with the handlers' buttons.
    household, village, top = street.chat("H-01"), street.chat("V-01"), street.chat("S-01")
    assert any(f"#{ticket_id}" in t or ticket_id in t for t in texts_to(first, household))
    card = next(m for c, m, _ in first.messages if c == village)
    assert {data.split(":")[0] for _, data in card.buttons} >= {"ack", "resolve", "escalate"}
    assert "冇水" in card.text or "停水" in card.text
    # The village cadre presses 受理.
    acked = await street.say(CADRE, callback=f"ack:{ticket_id}", chat=village)
    assert acked.status == "done"
    ticket = await street.ticket(ticket_id)
    assert ticket.state is TicketState.ACKNOWLEDGED and ticket.resolve_due is not None
    told = await street.delivered()
    assert texts_to(told, household), "the resident hears of the acknowledgement"
    # The worker before the resolution deadline: nothing changes (the acknowledgement
    # deadline's job finds the ticket moved on).
    street.run_worker()
    assert (await street.ticket(ticket_id)) == ticket
    # The resolution deadline passes: the worker escalates the ticket to the street, once.
    await until(ticket.resolve_due + 1.1)
    street.run_worker()
    street.run_worker()
    ticket = await street.ticket(ticket_id)
    assert (ticket.state, ticket.node, ticket.stage) == (TicketState.ESCALATED, "S-01", 2)
    assert (await street.history(ticket_id)).count(EventKind.ESCALATED) == 1
    escalated = await street.delivered()
    assert any(ticket_id in t for t in texts_to(escalated, top)), "the card reaches the street"
    assert texts_to(escalated, household), "the resident is told it went up"
    # Street staff acknowledge and resolve it; the resident confirms with the button.
    assert (await street.say(STAFF, f"/ack {ticket_id}", chat=top)).status == "done"
    resolved = await street.say(STAFF, f"办结 {ticket_id} 水管已抢修，恢复供水", chat=top)
    assert resolved.status == "done"
    to_resident = [m for c, m, _ in (await street.delivered()).messages if c == household]
    assert len(to_resident) == 2  # acknowledged by the street, then resolved
    assert {d.split(":")[0] for _, d in to_resident[-1].buttons} >= {"confirm", "reopen"}
    assert "水管已抢修" in to_resident[-1].text and "自动完结" in to_resident[-1].text
    confirmed = await street.say(RESIDENT, callback=f"confirm:{ticket_id}")
    assert confirmed.status == "done"
    ticket = await street.ticket(ticket_id)
    assert ticket.state is TicketState.CLOSED
    # (The street's 4 hours to acknowledge last 1.4 s here: while the worker starts, they
    # may pass, and the overdue ticket is flagged to the administrators, once.)
    history = await street.history(ticket_id)
    assert history.count(EventKind.FLAGGED) <= 1
    assert [k for k in history if k is not EventKind.FLAGGED] == [
        EventKind.OPENED, EventKind.ACKNOWLEDGED, EventKind.ESCALATED, EventKind.ACKNOWLEDGED,
        EventKind.RESOLVED, EventKind.CONFIRMED,
    ]  # fmt: skip
    assert await owed(street.redis) == []
    street.run_worker()  # whatever job is left finds nothing to do
    assert (await street.ticket(ticket_id)) == ticket


async def test_reopen_then_the_quiet_period_closes_it(street: Street) -> None:
    """Resolved, reopened by the resident, resolved again; the worker closes it when quiet."""
    opened = await street.say(RESIDENT, WATER)
    ticket_id, village = opened.ticket or "", street.chat("V-01")
    assert (await street.say(CADRE, f"受理 {ticket_id}", chat=village)).status == "done"
    assert (await street.say(CADRE, f"办结 {ticket_id} 已恢复供水", chat=village)).status == "done"
    reopened = await street.say(RESIDENT, f"重开 {ticket_id} 还是没有水")
    assert reopened.status == "done"
    ticket = await street.ticket(ticket_id)
    assert ticket.state is TicketState.REOPENED
    assert (
        await street.say(CADRE, f"/resolve {ticket_id} 换了阀门", chat=village)
    ).status == "done"
    ticket = await street.ticket(ticket_id)
    assert ticket.state is TicketState.RESOLVED and ticket.close_due is not None
    await until(ticket.close_due + 1.1)
    street.run_worker()
    ticket = await street.ticket(ticket_id)
    assert ticket.state is TicketState.CLOSED
    assert await street.history(ticket_id) == [
        EventKind.OPENED, EventKind.ACKNOWLEDGED, EventKind.RESOLVED, EventKind.REOPENED,
        EventKind.RESOLVED, EventKind.CLOSED,
    ]  # fmt: skip
    gateway = await street.delivered()
    assert len(texts_to(gateway, street.chat("H-01"))) >= 4  # told at every step


async def test_a_duplicate_report_joins_then_assign_and_dismiss(street: Street) -> None:
    """A neighbour's report joins the ticket; it is assigned, then dismissed; jobs then idle."""
    neighbour = next(
        p for p in street.tree.people.values()
        if p.role is Role.RESIDENT and p.scope != "H-01"
        and street.tree.nodes[street.tree.nodes[p.scope].parent or ""].parent == "V-01"
    )  # fmt: skip
    opened = await street.say(RESIDENT, WATER)
    again = await street.say(RESIDENT, WATER)  # the same text is a new message: it joins
    joined = await street.say(neighbour.id, "我们这栋也停水了，一滴水都没有")
    ticket_id = opened.ticket or ""
    assert again.ticket == ticket_id and joined.ticket == ticket_id
    assert joined.status == "joined"
    ticket = await street.ticket(ticket_id)
    assert [r.account for r in ticket.reporters] == [
        street.person(RESIDENT).accounts[0], neighbour.accounts[0],
    ]  # fmt: skip
    village = street.chat("V-01")
    assigned = await street.say(CADRE, f"转派 {ticket_id} @{MEDIATOR}", chat=village)
    assert assigned.status == "done"
    assert (await street.ticket(ticket_id)).assignee == MEDIATOR
    dismissed = await street.say(MEDIATOR, f"驳回 {ticket_id} 计划停水，已发通知", chat=village)
    assert dismissed.status == "done"
    ticket = await street.ticket(ticket_id)
    assert ticket.state is TicketState.DISMISSED
    gateway = await street.delivered()
    # Both reporters are told; the reason, written for the first, only to the first.
    assert any("计划停水" in t for t in texts_to(gateway, street.chat("H-01")))
    to_neighbour = texts_to(gateway, street.chat(neighbour.scope))
    assert any("不予受理" in t for t in to_neighbour)
    assert not any("计划停水" in t for t in to_neighbour)
    # The acknowledgement deadline passes: its job finds the ticket dismissed and does nothing.
    assert await street.service.store.ids(keys.by_assignee(MEDIATOR)) == [ticket_id]
    await until(ticket.created_at + 4 * 3600 * SCALE + 1.1)
    street.run_worker()
    assert await street.ticket(ticket_id) == ticket
    assert await owed(street.redis) == []
