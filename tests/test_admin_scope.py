"""An administrator acts within their street (their scope's subtree) unless the file makes them global.

tests/data/two_streets.yaml holds two streets, an administrator of each and a global one.
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
from bot.core.pacing import Pacing
from bot.live import LiveConfig
from bot.services import Service
from bot.storage import keys
from bot.storage.redis import RedisStore
from tests.conftest import DATA, RULES_DIR
from tests.fake_bot_api import wait_for
from tests.helpers import NoJobs
from tests.telegram_fixtures import Harness, next_sent, quiet

ORG = DATA / "two_streets.yaml"
LIGHT = "村口的路灯坏了半个月，晚上黑漆漆的"
H01, G01, S02_GROUP = -1001000000131, -1001000000121, -1002000000101
RESIDENT, ADMIN_1, ADMIN_2, ADMIN_ALL = 100001, 100045, 200045, 300045
TYPED = [
    "受理 1", "备注 1 我来看看", "办结 1 修好了", "上报 1 上交", "转派 1 p-zhong",
    "驳回 1 不归我们", "查询 1", "确认 1", "重开 1 没修好", "评价 1 5",
]  # fmt: skip
BUTTONS = ["ack:1", "resolve:1", "escalate:1", "confirm:1", "reopen:1", "rate:1:5"]


class Clock:
    now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def service(redis_async: redis.asyncio.Redis) -> AsyncIterator[Service]:
    config = LiveConfig(RULES_DIR, ORG, Policy(scale=1.0))
    # One administrator sends dozens of commands here: no per-person allowance gets in the way.
    pacing = Pacing(per_person=1000)
    yield Service(RedisStore(redis_async), config, NoJobs(), Clock(), pacing=pacing)  # type: ignore[arg-type]


def said(
    account: int, chat: int, text: str, n: int, callback: str | None = None
) -> IncomingMessage:
    sender = Actor(f"telegram:{account}", str(account), None, Lang.ZH_HANS)
    return IncomingMessage(f"telegram:{chat}", f"m{n}", sender, text, 0.0, callback=callback)


async def outbox(client: redis.asyncio.Redis) -> list[dict[str, Any]]:
    rows = await client.xrange(keys.outbox("telegram"))
    payloads = [json.loads(fields[b"payload"]) for _, fields in rows]
    return [p for p in payloads if "edit_cards" not in p]  # card edits


async def test_an_admin_of_one_street_does_nothing_to_anothers_tickets(service: Service) -> None:
    opened = await service.handle_message(said(RESIDENT, H01, LIGHT, 1))
    assert (opened.status, opened.ticket) == ("opened", "1")
    messages = [said(ADMIN_2, S02_GROUP, text, 10 + i) for i, text in enumerate(TYPED)]
    messages += [said(ADMIN_2, G01, "", 30 + i, data) for i, data in enumerate(BUTTONS)]
    for message in messages:
        handled = await service.handle_message(message)
        assert (handled.status, handled.detail) == ("refused", "no_such_ticket"), message
    assert [e.kind.value for e in await service.store.history("1")] == ["opened"]
    # Their lists and statistics hold only their own street.
    for i, text in enumerate(["待办", "统计"]):
        await service.handle_message(said(ADMIN_2, ADMIN_2, text, 50 + i))
    answers = {p["template"]: p["params"] for p in await outbox(service.store.redis)}
    assert answers["ticket_list"]["tickets"] == []
    assert {r["node"] for r in answers["stats"]["rows"]} <= {"S-02", "V-11", "G-11", "H-11"} | {
        r["node"] for r in answers["stats"]["rows"] if r["node"].startswith("tier:")
    }
    # The administrator of the street and the global one may act.
    assert (await service.handle_message(said(ADMIN_1, G01, "受理 1", 60))).status == "done"
    done = await service.handle_message(said(ADMIN_ALL, G01, "备注 1 已派人", 61))
    assert done.status == "done"


async def test_an_overdue_flag_goes_only_to_the_administrators_of_its_street(
    service: Service,
) -> None:
    await service.handle_message(said(RESIDENT, H01, LIGHT, 1))
    clock = service.clock
    assert isinstance(clock, Clock)
    for _ in range(4):  # missed at the village, then at the street: flagged there
        clock.now += 30 * 24 * 3600
        await service.sweep()
    ticket = await service.store.get("1")
    assert ticket is not None and ticket.flagged and ticket.node == "S-01"
    flagged = {p["chat"] for p in await outbox(service.store.redis) if p["template"] == "flagged"}
    assert flagged == {f"telegram:{ADMIN_1}", f"telegram:{ADMIN_ALL}"}


async def test_bind_and_invite_stay_within_the_admins_street(harness: Harness) -> None:
    fake, group = harness.fake, -1009999000055
    bot = await harness.start(org=ORG)
    # An unbound group: the admin of street 2 cannot bind it to a node of street 1.
    fake.push(fake.message(group, ADMIN_2, "/bind grid:G-01", name="周建平"))
    refused = await next_sent(fake, 0, group, "bind refused")
    assert "不在您的管理范围内" in refused.text
    # The admin of street 1 binds it; the admin of street 2 cannot take it away.
    n = len(fake.sent)
    fake.push(fake.message(group, ADMIN_1, "/bind grid:G-01", name="刘德明"))
    assert "已绑定" in (await next_sent(fake, n, group, "bound")).text
    n = len(fake.sent)
    fake.push(fake.message(group, ADMIN_2, "/bind grid:G-11", name="周建平"))
    assert "不在您的管理范围内" in (await next_sent(fake, n, group, "rebind refused")).text
    assert bot.config.bindings[f"telegram:{group}"].node == "G-01"
    # Invite codes only for their own street.
    n = len(fake.sent)
    fake.push(fake.message(ADMIN_2, ADMIN_2, "/invite grid_worker grid:G-01", name="周建平"))
    assert "不在您的管理范围内" in (await next_sent(fake, n, ADMIN_2, "invite refused")).text
    n = len(fake.sent)
    fake.push(fake.message(ADMIN_2, ADMIN_2, "/invite grid_worker grid:G-11", name="周建平"))
    assert "/join" in (await next_sent(fake, n, ADMIN_2, "invite made")).text
    assert len(list(harness.sync.scan_iter(keys.invite("*")))) == 1
    # A button of street 1's card, pressed by the admin of street 2, changes nothing.
    n = len(fake.sent)
    fake.push(fake.message(H01, RESIDENT, LIGHT, name="陈志强"))
    card = await next_sent(fake, n, -1001000000111, "the card in the village group")
    n = len(fake.sent)
    fake.push(fake.callback(ADMIN_2, card, "ack:1", name="周建平"))
    await wait_for(lambda: "answerCallbackQuery" in fake.methods(), what="callback answered")
    answer = next(c for c in fake.calls if c.method == "answerCallbackQuery")
    assert "找不到工单 #1，或它不是您的" in answer.params["text"]  # to the presser alone
    await quiet(harness)
    assert len(fake.sent) == n  # nothing said in the group
    ticket = await bot.store.get("1")
    assert ticket is not None and ticket.seq == 1
