"""Who sees and does what with a ticket: staff-only tickets, co-reporters and /status.

The Telegram test replays the attack a tester made on a real run: the other party of
a family dispute posted a matching report, became a co-reporter of the victim's
ticket, received her notes privately and closed it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis
import redis.asyncio

from bot.core.deadlines import Policy
from bot.core.models import Actor, IncomingMessage, Lang
from bot.core.org import Person
from bot.core.ticket import TicketState
from bot.live import LiveConfig
from bot.render import Renderer
from bot.scheduling import RqScheduler
from bot.services import Service
from bot.storage import keys
from bot.storage.redis import RedisStore, payload_reply
from tests.conftest import ROOT, RULES_DIR
from tests.telegram_fixtures import H01, OTHER_RESIDENT, RESIDENT, Harness, next_sent, quiet

ORG = ROOT / "org" / "sample_street.yaml"
RENDER = Renderer()

H02 = -1001000000132  # 黄美玲's household group, in the same village as H-01
V01_STAFF = -1001000000211
MEDIATOR_V01, LEADER_H01 = 100029, 100010
VICTIM = "我要跟老公离婚，他天天跟我吵架，我带孩子住在妇联庇护所"
OTHER_PARTY = "我老婆要跟我离婚，天天吵架闹得不可开交"
SECRET_NOTE = "已安排她暂住庇护所东湖路8号，联系电话13812345678"


async def test_a_matching_report_never_joins_a_staff_only_ticket(harness: Harness) -> None:
    fake = harness.fake
    bot = await harness.start()
    fake.push(fake.message(H01, RESIDENT, VICTIM, name="陈志强"))
    await next_sent(fake, 0, RESIDENT, "the victim answered privately")
    # The other party posts a matching report in their own household group.
    fake.push(fake.message(H02, OTHER_RESIDENT, OTHER_PARTY, name="黄美玲"))
    await next_sent(fake, 0, OTHER_RESIDENT, "the other party answered privately")
    first, second = await bot.store.get("1"), await bot.store.get("2")
    assert first is not None and second is not None  # two tickets, not one with two reporters
    assert [r.account for r in first.reporters] == [f"telegram:{RESIDENT}"]
    assert [r.account for r in second.reporters] == [f"telegram:{OTHER_RESIDENT}"]
    # The mediator notes where she is staying, then resolves.
    n = len(fake.sent)
    fake.push(fake.message(V01_STAFF, MEDIATOR_V01, f"备注 1 {SECRET_NOTE}", name="温润生"))
    await next_sent(fake, n, RESIDENT, "the note reaches the victim")
    fake.push(fake.message(V01_STAFF, MEDIATOR_V01, "办结 1 已调解", name="温润生"))
    await quiet(harness)
    # Nothing about ticket 1 reached the other party, in private or in their group.
    for chat in (OTHER_RESIDENT, H02):
        assert all("#1" not in c.text and "庇护所" not in c.text for c in fake.sent_to(chat))
    # The other party cannot confirm, reopen or rate her ticket, nor learn that it exists.
    for command in ("确认 1", "重开 1 没解决", "评价 1 1", "查询 1"):
        n = len(fake.sent)
        fake.push(fake.message(H02, OTHER_RESIDENT, command, name="黄美玲"))
        refusal = await next_sent(fake, n, H02, f"{command} refused")
        assert "找不到工单 #1，或它不是您的" in refusal.text
    ticket = await bot.store.get("1")
    assert ticket is not None and ticket.state is TicketState.RESOLVED


async def test_status_of_a_staff_only_ticket_is_answered_only_in_private(
    harness: Harness,
) -> None:
    fake = harness.fake
    await harness.start()
    fake.push(fake.message(H01, RESIDENT, VICTIM, name="陈志强"))
    await next_sent(fake, 0, RESIDENT, "the victim answered privately")
    await quiet(harness)
    # Asked in the household group: the group hears only "sent privately".
    n, private = len(fake.sent), len(fake.sent_to(RESIDENT))
    query = fake.push(fake.message(H01, RESIDENT, "查询 1", name="陈志强"))
    in_group = await next_sent(fake, n, H01, "the answer in the group")
    assert "私信" in in_group.text and "#1" not in in_group.text
    assert in_group.reply_to == query["message"]["message_id"]
    await quiet(harness)
    (status,) = fake.sent_to(RESIDENT)[private:]
    assert "#1" in status.text
    assert sorted(c.chat for c in fake.sent[n:]) == sorted([RESIDENT, H01])
    # The household leader (a neighbour) is told only "not found or not yours", in the group.
    n = len(fake.sent)
    fake.push(fake.message(H01, LEADER_H01, "查询 1", name="罗家豪"))
    refusal = await next_sent(fake, n, H01, "the leader refused")
    assert "找不到工单 #1，或它不是您的" in refusal.text
    await quiet(harness)
    assert [c.chat for c in fake.sent[n:]] == [H01]
    # /my in the group lists the staff-only matter privately too.
    n = len(fake.sent)
    fake.push(fake.message(H01, RESIDENT, "我的", name="陈志强"))
    await next_sent(fake, n, RESIDENT, "the list in private")
    in_group = await next_sent(fake, n, H01, "the answer in the group")
    assert "私信" in in_group.text and "#1" not in in_group.text


# -- co-reporters of a public ticket, on the services ------------------------------------------

NOISE = "楼下KTV每晚唱到凌晨三点，吵得睡不着，老板姓王"
NOISE_AGAIN = "楼上KTV吵到凌晨，睡不着觉"
NOTE = "已联系店主王先生13900001111，约好明晚上门"
RESOLUTION = "已约谈王先生，承诺十点前停业"


@pytest.fixture
async def service(
    redis_async: redis.asyncio.Redis, redis_sync: redis.Redis
) -> AsyncIterator[Service]:
    config = LiveConfig(RULES_DIR, ORG, Policy(scale=1.0))
    yield Service(RedisStore(redis_async), config, RqScheduler(redis_sync))


def said(service: Service, person: str, text: str, n: int) -> IncomingMessage:
    p: Person = service.config.tree.people[person]
    chat = service.config.tree.nodes[p.scope].chats[0]
    sender = Actor(p.accounts[0], p.name, p.id, Lang(p.lang))
    return IncomingMessage(chat, f"m{n}", sender, text, 1_800_000_000.0 + n)


async def outbox(client: redis.asyncio.Redis) -> list[dict[str, Any]]:
    rows = await client.xrange(keys.outbox("telegram"))
    payloads = [json.loads(fields[b"payload"]) for _, fields in rows]
    payloads = [p for p in payloads if "edit_cards" not in p]  # card edits
    return [{**p, "text": RENDER(payload_reply(p)).text} for p in payloads]


async def test_a_co_reporter_hears_progress_but_not_the_first_reporters_notes(
    service: Service, redis_async: redis.asyncio.Redis
) -> None:
    tree = service.config.tree
    first, co = "p-chen-zhiqiang", "p-huang-meiling"  # H-01 and H-02, both in village V-01
    co_chat = tree.nodes["H-02"].chats[0]
    opened = await service.handle_message(said(service, first, NOISE, 1))
    joined = await service.handle_message(said(service, co, NOISE_AGAIN, 2))
    assert (opened.status, joined.status, joined.ticket) == ("opened", "joined", opened.ticket)
    worker = "p-zhong-zhiwei"  # grid worker of G-01, where the ticket is
    for i, text in enumerate(["受理 1", f"备注 1 {NOTE}", f"办结 1 {RESOLUTION}"], start=3):
        assert (await service.handle_message(said(service, worker, text, i))).status == "done"
    sent = await outbox(redis_async)
    to_co = [p for p in sent if p["chat"] == co_chat]
    to_first = [p for p in sent if p["chat"] == tree.nodes["H-01"].chats[0]]
    # The first reporter hears the note and the resolution, with the buttons to answer.
    assert any("明晚上门" in p["text"] for p in to_first)
    assert any(RESOLUTION in p["text"] and p["buttons"] for p in to_first)
    # The co-reporter hears each step, but none of the words or names meant for the first.
    assert {p["template"] for p in to_co} >= {"ticket_joined", "acknowledged", "noted", "resolved"}
    for p in to_co:
        for secret in ("明晚上门", "139", "承诺十点", "唱到凌晨三点", "陈志强"):
            assert secret not in p["text"], (p["template"], p["text"])
        # Their only button is their own way to say it is not settled: 重开, a ticket of their own.
        assert p["buttons"] == (["reopen"] if p["template"] == "resolved" else [])
    # The co-reporter cannot confirm or rate the first reporter's report.
    for i, text in enumerate(["确认 1", "评价 1 1"], start=10):
        handled = await service.handle_message(said(service, co, text, i))
        assert (handled.status, handled.detail) == ("refused", "co_reporter")
    status = await service.handle_message(said(service, co, "查询 1", 20))
    assert status.status == "done"
    (answer,) = [p for p in await outbox(redis_async) if p["template"] == "status"]
    assert answer["chat"] == co_chat and "承诺十点" not in answer["text"] and "#1" in answer["text"]
    ticket = await service.store.get("1")
    assert ticket is not None and ticket.state is TicketState.RESOLVED
    # The first reporter confirms: the ticket closes; the co-reporter is told who confirmed.
    assert (await service.handle_message(said(service, first, "确认 1", 21))).status == "done"
    ticket = await service.store.get("1")
    assert ticket is not None and ticket.state is TicketState.CLOSED
    told = [p for p in await outbox(redis_async) if p["chat"] == co_chat][-1]
    assert told["template"] == "closed" and "反映人已确认解决" in told["text"]
    assert "陈志强" not in told["text"] and told["buttons"] == ["reopen"]
    # 确认 again on the closed ticket says it is closed.
    again = await service.handle_message(said(service, first, "确认 1", 22))
    assert (again.status, again.detail) == ("refused", "already_closed")
    said_again = (await outbox(redis_async))[-1]
    assert "已完结" in said_again["text"] and "无需再确认" in said_again["text"]
    # The co-reporter's 重开: a ticket of their own, linked to the first; the first is untouched.
    reopened = await service.handle_message(said(service, co, "重开 1 还是吵", 23))
    assert (reopened.status, reopened.detail) == ("opened", "reopened_as_new")
    new = await service.store.get(reopened.ticket or "")
    assert new is not None and new.related == ("1",) and new.text == "还是吵"
    assert [r.account for r in new.reporters] == [tree.people[co].accounts[0]]
    old = await service.store.get("1")
    assert old is not None and old.state is TicketState.CLOSED and old.related == (new.id,)
    answer = [p for p in await outbox(redis_async) if p["chat"] == co_chat][-1]
    assert answer["template"] == "reopened_as_new" and f"#{new.id}" in answer["text"]
    assert "#1" in answer["text"]
