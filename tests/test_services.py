"""The ticket services on a real Redis: reports, commands, deadlines, duplicates and crashes."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis
import redis.asyncio
from pydantic import ValidationError
from rq.registry import ScheduledJobRegistry

from bot.cli import worker
from bot.core.deadlines import Outcome, Policy, run_at
from bot.core.models import Actor, IncomingMessage, Lang
from bot.core.org import OrgTree, Person, Role
from bot.core.ticket import EventKind, TicketState
from bot.live import LiveConfig
from bot.ports import ScheduledJob
from bot.render import Renderer, local_zone
from bot.scheduling import RqScheduler, job_id
from bot.services import Service
from bot.settings import Settings
from bot.storage import keys
from bot.storage.redis import RedisStore, payload_reply
from tests.conftest import ROOT, RULES_DIR
from tests.helpers import owed

ORG = ROOT / "org" / "sample_street.yaml"
RENDER = Renderer()


@dataclass
class Clock:
    """A clock the test moves by hand (time is an edge of the system)."""

    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Schedules:
    """The real rq scheduler port, recording which deadline jobs it was asked for."""

    rq: RqScheduler
    calls: list[tuple[str, int, str, float]] = field(default_factory=list)

    def job(self, ticket_id: str, stage: int, kind: str, due: float) -> ScheduledJob:
        self.calls.append((ticket_id, stage, kind, due))
        return self.rq.job(ticket_id, stage, kind, due)

    def stored(self) -> list[str]:
        """Return the ids of the jobs in rq's scheduled registry."""
        return ScheduledJobRegistry(queue=self.rq.queue).get_job_ids()


@dataclass
class World:
    service: Service
    store: RedisStore
    redis: redis.asyncio.Redis
    clock: Clock
    schedules: Schedules
    tree: OrgTree
    counter: int = 0

    def person(self, role: Role, scope: str | None = None) -> Person:
        return next(
            p for p in self.tree.people.values()
            if p.role is role and (scope is None or p.scope == scope)
        )  # fmt: skip

    def message(
        self, person: Person, text: str, chat: str | None = None, **extra: Any
    ) -> IncomingMessage:
        self.counter += 1
        node = self.tree.nodes[person.scope]
        return IncomingMessage(
            chat=chat or node.chats[0], message_id=str(self.counter),
            sender=Actor(person.accounts[0], person.name, person.id, Lang(person.lang)),
            text=text, sent_at=self.clock.now, **extra,
        )  # fmt: skip

    async def outbox(self, platform: str = "telegram") -> list[dict[str, Any]]:
        """Return the queued replies, each with the text its sender renders for it."""
        rows = await self.redis.xrange(keys.outbox(platform))
        payloads = [json.loads(fields[b"payload"]) for _, fields in rows]
        payloads = [p for p in payloads if "edit_cards" not in p]  # card edits
        return [{**p, "text": RENDER(payload_reply(p)).text} for p in payloads]


@pytest.fixture
async def world(redis_async: redis.asyncio.Redis, redis_sync: redis.Redis) -> AsyncIterator[World]:
    config = LiveConfig(RULES_DIR, ORG, Policy(scale=1.0))
    store = RedisStore(redis_async)
    clock, schedules = Clock(), Schedules(RqScheduler(redis_sync))
    service = Service(store, config, schedules, clock)
    yield World(service, store, redis_async, clock, schedules, config.tree)


REPORT = "村口的路灯坏了半个月，晚上黑漆漆的，有事打我电话13812345678"


async def test_a_report_opens_a_ticket_with_a_card_and_deadlines(world: World) -> None:
    resident = world.person(Role.RESIDENT, "H-01")
    handled = await world.service.handle_message(world.message(resident, REPORT))
    assert handled.status == "opened"
    ticket = await world.store.get(handled.ticket or "")
    assert ticket is not None
    assert (ticket.category, ticket.node, ticket.state) == (
        "public_facilities",
        "V-01",
        TicketState.OPEN,
    )
    assert [e.kind for e in await world.store.history(ticket.id)] == [EventKind.OPENED]
    sent = await world.outbox()
    chats = {p["chat"] for p in sent}
    assert world.tree.nodes["V-01"].chats[0] in chats  # the card goes to the village group
    assert world.tree.nodes["H-01"].chats[0] in chats  # the resident is answered where they asked
    assert all("13812345678" not in p["text"] for p in sent)  # masked in public chats
    assert any("138****5678" in p["text"] for p in sent if p["card"])
    # One job per ticket at a time, and one index member: the earliest owed deadline.
    assert [(c[2], c[1]) for c in world.schedules.calls] == [("ack", 1)]
    second = run_at(world.schedules.calls[0][3])
    assert world.schedules.stored() == [job_id(second)]  # stored with it
    assert [m for m, _ in await owed(world.redis)] == [f"{ticket.id}:1:ack"]


async def test_chatter_gets_no_answer_and_is_kept_only_for_a_while(world: World) -> None:
    resident = world.person(Role.RESIDENT, "H-01")
    texts = ["大家早上好", "谢谢网格员，路灯已经修好了", "今晚的火锅太好吃了🔥", ""]
    for text in texts:
        assert (
            await world.service.handle_message(world.message(resident, text))
        ).status == "ignored"
    assert await world.outbox() == []
    # What is stored: the masked log for `rules replay` (capped), and each message for 立案,
    # which expires in three days. Nothing else: no ticket, no marker, no reply.
    stored = sorted(k.decode() for k in await world.redis.keys("*"))
    kept = [k for k in stored if k.startswith("lianhu:said:")]
    assert stored == sorted([keys.CLASSIFIED, *kept]) and len(kept) == 3
    for key in kept:
        assert 0 < await world.redis.ttl(key) <= 3 * 24 * 3600


async def test_the_same_message_twice_opens_one_ticket(world: World) -> None:
    resident = world.person(Role.RESIDENT, "H-01")
    message = world.message(resident, REPORT)
    first = await world.service.handle_message(message)
    second = await world.service.handle_message(message)
    assert (first.status, second.status) == ("opened", "duplicate")
    assert second.ticket == first.ticket
    assert await world.store.all_ids() == [first.ticket]
    assert await world.redis.xlen(keys.outbox("telegram")) == 2  # reply + card, once


async def test_a_second_resident_joins_the_open_ticket(world: World) -> None:
    first = world.person(Role.RESIDENT, "H-01")
    others = [
        p for p in world.tree.people.values() if p.role is Role.RESIDENT and p.scope != "H-01"
    ]
    same_village = next(p for p in others if world.tree.nodes[p.scope].parent in ("G-01", "G-02"))
    opened = await world.service.handle_message(world.message(first, REPORT))
    joined = await world.service.handle_message(
        world.message(same_village, "路灯坏了好多天了，晚上好黑")
    )
    assert joined.status == "joined" and joined.ticket == opened.ticket
    ticket = await world.store.get(opened.ticket or "")
    assert ticket is not None and [r.account for r in ticket.reporters] == [
        first.accounts[0], same_village.accounts[0],
    ]  # fmt: skip


async def test_acknowledge_escalate_resolve_confirm(world: World) -> None:
    resident = world.person(Role.RESIDENT, "H-01")
    opened = await world.service.handle_message(world.message(resident, REPORT))
    ticket_id = opened.ticket or ""
    # A resident cannot acknowledge; a grid worker is out of scope at the village; a cadre may.
    refused = await world.service.handle_message(world.message(resident, f"/ack {ticket_id}"))
    assert refused.status == "refused" and refused.detail == "not_handler"
    worker = world.person(Role.GRID_WORKER, "G-01")
    refused = await world.service.handle_message(world.message(worker, f"受理 {ticket_id}"))
    assert refused.detail == "not_in_scope"
    ticket = await world.store.get(ticket_id)
    assert ticket is not None and ticket.state is TicketState.OPEN  # refusals changed nothing
    # The acknowledgement deadline passes: the ticket climbs to the street.
    assert ticket.ack_due is not None
    world.clock.now = ticket.ack_due + 1
    assert await world.service.handle_deadline(ticket_id, 1, "ack") is Outcome.ESCALATE
    assert await world.service.handle_deadline(ticket_id, 1, "ack") is Outcome.MOVED_ON  # once only
    ticket = await world.store.get(ticket_id)
    assert ticket is not None and (ticket.node, ticket.state, ticket.stage) == (
        "S-01",
        TicketState.ESCALATED,
        2,
    )
    staff = world.person(Role.STREET_STAFF)
    assert (
        await world.service.handle_message(world.message(staff, f"/ack {ticket_id}"))
    ).status == "done"
    done = await world.service.handle_message(world.message(staff, f"办结 {ticket_id} 已更换灯泡"))
    assert done.status == "done"
    confirm = world.message(resident, "", callback=f"confirm:{ticket_id}")
    assert (await world.service.handle_message(confirm)).status == "done"
    ticket = await world.store.get(ticket_id)
    assert ticket is not None and ticket.state is TicketState.CLOSED
    kinds = [e.kind for e in await world.store.history(ticket_id)]
    assert kinds == [
        EventKind.OPENED, EventKind.ESCALATED, EventKind.ACKNOWLEDGED, EventKind.RESOLVED,
        EventKind.CONFIRMED,
    ]  # fmt: skip
    assert await owed(world.redis) == []  # nothing left owed
    assert await world.store.queues(["S-01"]) == {"S-01": []}


async def test_an_early_deadline_reschedules_itself(world: World) -> None:
    resident = world.person(Role.RESIDENT, "H-01")
    opened = await world.service.handle_message(world.message(resident, REPORT))
    ticket = await world.store.get(opened.ticket or "")
    assert ticket is not None and ticket.ack_due is not None
    world.clock.now = ticket.ack_due - 0.8  # the rq scheduler fires up to a second early
    world.schedules.calls.clear()
    assert await world.service.handle_deadline(ticket.id, 1, "ack") is Outcome.EARLY
    assert world.schedules.calls == [(ticket.id, 1, "ack", ticket.ack_due + 1.0)]
    assert job_id(run_at(ticket.ack_due + 1.0)) in world.schedules.stored()
    assert (await world.store.get(ticket.id)) == ticket


async def test_the_sweeper_recovers_a_lost_deadline_job(world: World) -> None:
    resident = world.person(Role.RESIDENT, "H-01")
    opened = await world.service.handle_message(world.message(resident, REPORT))
    ticket = await world.store.get(opened.ticket or "")
    assert ticket is not None and ticket.ack_due is not None
    world.clock.now = ticket.ack_due + 60  # the job never ran
    assert await world.service.sweep() == 1
    after = await world.store.get(ticket.id)
    assert after is not None and after.state is TicketState.ESCALATED
    assert await world.service.sweep() == 0


async def test_deadlines_due_in_one_second_share_one_job_that_checks_them_all(
    world: World,
) -> None:
    """Tickets opened together owe their deadlines in the same second: one rq job, which
    checks every deadline due by its second (and leaves the later ones alone)."""
    resident = world.person(Role.RESIDENT, "H-01")
    first = await world.service.handle_message(world.message(resident, REPORT))
    other = world.person(Role.RESIDENT, "H-06")  # another grid's: not joined to the first
    second = await world.service.handle_message(world.message(other, REPORT))
    tickets = await world.store.get_many([first.ticket or "", second.ticket or ""])
    assert len(tickets) == 2 and tickets[0].ack_due == tickets[1].ack_due
    world.clock.now += 1.0
    later = await world.service.handle_message(
        world.message(world.person(Role.RESIDENT, "H-04"), REPORT)
    )
    assert [c[0] for c in world.schedules.calls] == [t.id for t in tickets] + [later.ticket]
    due = run_at(tickets[0].ack_due or 0.0)
    assert world.schedules.stored() == [job_id(due), job_id(due + 1)]
    world.clock.now = due + 0.5
    assert await world.service.check_due(due) == 2  # what the job of that second does
    after = await world.store.get_many([t.id for t in tickets] + [later.ticket or ""])
    assert [t.state for t in after] == [TicketState.ESCALATED] * 2 + [TicketState.OPEN]


async def test_a_crash_before_the_commit_leaves_nothing_and_the_retry_completes(
    world: World,
) -> None:
    resident = world.person(Role.RESIDENT, "H-01")
    message = world.message(resident, REPORT)
    real_commit = world.store.commit

    async def crash(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("injected")

    world.store.commit = crash  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        await world.service.handle_message(message)
    assert await world.redis.exists(keys.processed(message.key)) == 0
    assert await world.redis.xlen(keys.outbox("telegram")) == 0
    world.store.commit = real_commit  # type: ignore[method-assign]
    retried = await world.service.handle_message(message)
    assert retried.status == "opened"
    assert len(await world.store.all_ids()) == 1


async def test_a_crash_after_the_commit_is_finished_by_the_retry(world: World) -> None:
    """The commit ran but its answer was lost: the retry finds everything done, once."""
    resident = world.person(Role.RESIDENT, "H-01")
    message = world.message(resident, REPORT)
    real_commit = world.store.commit

    async def commit_then_crash(*args: Any, **kwargs: Any) -> Any:
        await real_commit(*args, **kwargs)
        raise ConnectionError("injected")

    world.store.commit = commit_then_crash  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        await world.service.handle_message(message)
    world.store.commit = real_commit  # type: ignore[method-assign]
    retried = await world.service.handle_message(message)
    assert retried.status == "duplicate"
    assert len(await world.store.all_ids()) == 1
    assert [c[2] for c in world.schedules.calls] == ["ack"]
    assert len(world.schedules.stored()) == 1  # the deadline job came with the commit
    assert await world.redis.xlen(keys.outbox("telegram")) == 2  # reply and card, once


async def opened_at_grid(world: World) -> str:
    resident = world.person(Role.RESIDENT, "H-01")
    handled = await world.service.handle_message(
        world.message(resident, "楼下KTV每晚唱到凌晨三点，吵得睡不着")
    )
    assert handled.status == "opened"
    ticket = await world.store.get(handled.ticket or "")
    assert ticket is not None and ticket.node == "G-01"
    return ticket.id


async def test_resolve_then_reopen_then_confirm(world: World) -> None:
    ticket_id = await opened_at_grid(world)
    worker = world.person(Role.GRID_WORKER, "G-01")
    resident = world.person(Role.RESIDENT, "H-01")
    assert (
        await world.service.handle_message(world.message(worker, f"/resolve {ticket_id} 已劝停"))
    ).status == "done"
    reopen = await world.service.handle_message(
        world.message(resident, f"重开 {ticket_id} 今晚又吵了")
    )
    assert reopen.status == "done"
    ticket = await world.store.get(ticket_id)
    assert ticket is not None and (ticket.state, ticket.stage) == (TicketState.REOPENED, 2)
    assert (
        await world.service.handle_message(world.message(worker, f"办结 {ticket_id} 已罚款"))
    ).status == "done"
    assert (
        await world.service.handle_message(world.message(resident, f"确认 {ticket_id}"))
    ).status == "done"
    rate = world.message(resident, "", callback=f"rate:{ticket_id}:5")
    assert (await world.service.handle_message(rate)).status == "done"
    ticket = await world.store.get(ticket_id)
    assert ticket is not None and (ticket.state, ticket.rating) == (TicketState.CLOSED, 5)
    late = await world.service.handle_message(world.message(resident, f"重开 {ticket_id} 又吵"))
    assert (late.status, late.detail) == ("refused", "closed_report_again")


async def test_dismiss_with_a_reason(world: World) -> None:
    ticket_id = await opened_at_grid(world)
    worker = world.person(Role.GRID_WORKER, "G-01")
    bare = await world.service.handle_message(world.message(worker, f"驳回 {ticket_id}"))
    assert (bare.status, bare.detail) == ("refused", "needs_text")
    done = await world.service.handle_message(world.message(worker, f"驳回 {ticket_id} 重复投诉"))
    assert done.status == "done"
    ticket = await world.store.get(ticket_id)
    assert ticket is not None and ticket.state is TicketState.DISMISSED
    assert await world.store.queues(["G-01"]) == {"G-01": []}
    assert await owed(world.redis) == []


async def test_assign_a_colleague_and_hand_to_a_department(world: World) -> None:
    ticket_id = await opened_at_grid(world)
    leader = world.person(Role.GRID_LEADER)
    worker = world.person(Role.GRID_WORKER, "G-01")
    outsider = world.person(Role.GRID_WORKER, "G-03")
    refused = await world.service.handle_message(
        world.message(worker, f"转派 {ticket_id} @{outsider.name}")
    )
    assert (refused.status, refused.detail) == ("refused", "assignee_out_of_scope")
    assigned = await world.service.handle_message(
        world.message(leader, f"/assign {ticket_id} {worker.id}")
    )
    assert assigned.status == "done"
    ticket = await world.store.get(ticket_id)
    assert ticket is not None and ticket.assignee == worker.id
    assert await world.store.ids(keys.by_assignee(worker.id)) == [ticket_id]
    handed = await world.service.handle_message(
        world.message(worker, f"/assign {ticket_id} @enforcement 夜间执法")
    )
    assert handed.status == "done"
    ticket = await world.store.get(ticket_id)
    assert ticket is not None and (ticket.node, ticket.tier, ticket.assignee) == (
        "D-enforcement",
        "department",
        None,
    )
    assert await world.store.ids(keys.by_assignee(worker.id)) == []
    staff = next(
        p
        for p in world.tree.people.values()
        if p.role is Role.DEPARTMENT_STAFF and p.scope == "D-enforcement"
    )
    assert (
        await world.service.handle_message(
            world.message(
                staff, f"/ack {ticket_id}", chat=world.tree.nodes["D-enforcement"].chats[0]
            )
        )
    ).status == "done"
    sent = await world.outbox()
    assert any(p["chat"] == world.tree.nodes["D-enforcement"].chats[0] and p["card"] for p in sent)


async def test_lists_and_stats(world: World) -> None:
    ticket_id = await opened_at_grid(world)
    resident = world.person(Role.RESIDENT, "H-01")
    worker = world.person(Role.GRID_WORKER, "G-01")
    await world.service.handle_message(world.message(worker, f"/ack {ticket_id}"))
    mine = await world.service.handle_message(world.message(resident, "我的"))
    assert mine.detail == "ticket_list"
    todo = await world.service.handle_message(world.message(worker, "待办"))
    assert todo.detail == "ticket_list"
    stats = await world.service.handle_message(world.message(worker, "/stats"))
    assert stats.detail == "stats"
    refused = await world.service.handle_message(world.message(resident, "/stats"))
    assert (refused.status, refused.detail) == ("refused", "not_handler")
    sent = {p["template"]: p for p in await world.outbox()}
    assert f"{ticket_id}" in sent["ticket_list"]["text"]
    assert "【东联村第一网格】待办 1，超时 0" in sent["stats"]["text"]
    assert "及时受理 100%" in sent["stats"]["text"]  # acknowledged before its deadline


async def test_stats_go_up_the_ladder(world: World) -> None:
    """Rows in the order tickets climb: grid before village before street, then tier totals."""
    await opened_at_grid(world)  # grid
    resident = world.person(Role.RESIDENT, "H-01")
    await world.service.handle_message(world.message(resident, REPORT))  # village
    await world.service.handle_message(world.message(resident, "救命！三楼着火了"))  # street
    admin = world.person(Role.ADMIN, "S-01")
    await world.service.handle_message(world.message(admin, "/stats"))
    text = {p["template"]: p for p in await world.outbox()}["stats"]["text"]
    heads = [line.split("】")[0] + "】" for line in text.splitlines() if line.startswith("【")]
    assert heads == [
        "【东联村第一网格】", "【东联村】", "【海湾街道】",
        "【网格合计】", "【村（社区）合计】", "【街道合计】",
    ]  # fmt: skip


async def test_the_morning_digest_lists_each_groups_queue_once_a_day(world: World) -> None:
    zone = local_zone()
    morning = dt.datetime.fromtimestamp(world.clock.now, zone).replace(hour=8, minute=0)
    world.clock.now = morning.timestamp()
    grid_ticket = await opened_at_grid(world)
    resident = world.person(Role.RESIDENT, "H-01")
    village = await world.service.handle_message(world.message(resident, REPORT))
    assert await world.service.digest("08:30", zone) == 0  # not yet its time
    world.clock.now += 3600
    # Two workers at once: one digest.
    queued = await asyncio.gather(*(world.service.digest("08:30", zone) for _ in range(2)))
    assert sorted(queued) == [0, 2]
    assert await world.service.digest("08:30", zone) == 0  # once a day
    digests = {p["chat"]: p["text"] for p in await world.outbox() if p["template"] == "digest"}
    grid, cadres = world.tree.nodes["G-01"].staff_chat, world.tree.nodes["V-01"].staff_chat
    assert set(digests) == {grid, cadres}  # only the groups that owe work, in their staff chats
    assert f"#{grid_ticket} 噪音扰民" in digests[grid] and "共 1 张" in digests[grid]
    assert f"#{village.ticket} 公共设施" in digests[cadres] and "超时" not in digests[cadres]
    # Three days on both are overdue: said first, and counted.
    world.clock.now += 3 * 24 * 3600
    assert await world.service.digest("08:30", zone) == 2
    late = [p["text"] for p in await world.outbox() if p["template"] == "digest"][-1]
    assert "共 1 张，其中 1 张已超时" in late and "⚠️" in late


async def test_a_report_after_the_ticket_was_settled_opens_a_new_one(world: World) -> None:
    """The join pointer outlives a ticket dismissed or closed within the window: not joined."""
    resident = world.person(Role.RESIDENT, "H-01")
    first = await world.service.handle_message(world.message(resident, REPORT))
    cadre = world.person(Role.VILLAGE_CADRE, "V-01")
    dismissed = await world.service.handle_message(
        world.message(cadre, f"驳回 {first.ticket} 已修好", chat=world.tree.nodes["V-01"].chats[0])
    )
    assert dismissed.status == "done"
    again = await world.service.handle_message(world.message(resident, REPORT))
    assert again.status == "opened" and again.ticket != first.ticket
    third = await world.service.handle_message(world.message(resident, "路灯还是坏的"))
    assert (third.status, third.ticket) == ("joined", again.ticket)


async def test_a_traditional_chinese_resident_reads_places_in_traditional(world: World) -> None:
    resident = next(
        p for p in world.tree.people.values() if p.role is Role.RESIDENT and p.lang == "zh-Hant"
    )
    opened = await world.service.handle_message(world.message(resident, "村口嘅路燈壞咗半個月"))
    assert opened.status == "opened"
    ticket = await world.store.get(opened.ticket or "")
    assert ticket is not None
    node = world.tree.nodes[ticket.node]
    answer = next(
        p for p in await world.outbox() if p["chat"] == world.tree.nodes[resident.scope].chats[0]
    )
    assert node.names[Lang.ZH_HANT] in answer["text"], answer["text"]


async def test_help_in_a_private_chat_tells_a_newcomer_their_account(world: World) -> None:
    private = IncomingMessage(
        "telegram:987654", "1", Actor("telegram:987654", "新同事"), "/start", private=True
    )
    assert (await world.service.handle_message(private)).status == "done"
    in_group = world.message(world.person(Role.RESIDENT, "H-01"), "/help")
    assert (await world.service.handle_message(in_group)).status == "done"
    answers = {p["chat"]: p["text"] for p in await world.outbox()}
    assert "telegram:987654" in answers["telegram:987654"]
    assert "账号" not in answers[world.tree.nodes["H-01"].chats[0]]  # never shown in a group


async def test_private_cards_go_to_the_account_on_the_tickets_platform(world: World) -> None:
    resident = world.person(Role.RESIDENT, "H-01")
    opened = await world.service.handle_message(world.message(resident, REPORT, chat="sim:H-01"))
    cadre = world.person(Role.VILLAGE_CADRE, "V-01")
    mediator = next(p for p in world.tree.people.values() if p.id == "p-wen-runsheng")
    assigned = await world.service.handle_message(
        world.message(cadre, f"转派 {opened.ticket} @{mediator.id}", chat="sim:V-01")
    )
    assert assigned.status == "done"
    private = [p for p in await world.outbox("sim") if p["chat"] == f"sim:{mediator.id}"]
    assert len(private) == 1 and private[0]["card"]
    assert not [p for p in await world.outbox("telegram") if p["chat"] in mediator.accounts]


@pytest.mark.parametrize("value", ["8:30", "24:00", "08:60", "morning"])
def test_a_digest_time_that_is_no_time_is_refused(value: str) -> None:
    with pytest.raises(ValidationError, match="HH:MM"):
        Settings(digest_at=value)
    assert Settings(digest_at="").digest_at == ""  # no digest
    assert Settings(digest_at="07:05").digest_at == "07:05"


async def test_the_worker_sends_the_digest_when_its_time_has_come(
    world: World, redis_url: str
) -> None:
    await opened_at_grid(world)
    settings = Settings(REDIS_URL=redis_url, rules_dir=RULES_DIR, org_file=ORG, digest_at="")
    assert await worker.digest(settings) == 0  # turned off
    assert await worker.digest(settings.model_copy(update={"digest_at": "00:00"})) == 1
    assert [p["template"] for p in await world.outbox()][-1] == "digest"
