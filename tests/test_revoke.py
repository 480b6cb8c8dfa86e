"""Revoking enrolled staff (/revoke, ``lianhu org revoke``), the audit history, and /join limits.

The org file and chat enrolments: an enrolment stored in Redis never overrides a person
the file names, and a revocation wins over every enrolment made before it.
"""

from __future__ import annotations

import json
import re

import redis
import redis.asyncio

from bot.bindings import JOIN_ATTEMPTS, BindingStore, OverlaidConfig
from bot.core.deadlines import Policy
from bot.core.enrolment import Enrolment, Invite, overlay
from bot.core.models import Lang
from bot.core.org import Role, person_of_account
from bot.sources import load_org
from bot.storage import keys
from tests.conftest import RULES_DIR
from tests.telegram_fixtures import ADMIN, ORG, RESIDENT, Harness, next_sent, quiet
from tests.test_cli_invite import lianhu

CODE = re.compile(r"/join ([A-Z0-9]+)")
NEWCOMER = 880002


async def test_a_revoked_account_is_refused_at_once_in_every_process(
    harness: Harness, redis_async: redis.asyncio.Redis
) -> None:
    fake = harness.fake
    bot = await harness.start()
    fake.push(fake.message(ADMIN, ADMIN, "/invite grid_worker grid:G-03", name="刘德明"))
    code = CODE.search((await next_sent(fake, 0, ADMIN, "the code")).text)
    assert code is not None
    fake.push(fake.message(NEWCOMER, NEWCOMER, f"/join {code.group(1)}", name="新网格员"))
    assert "网格员" in (await next_sent(fake, 0, NEWCOMER, "joined")).text
    n = len(fake.sent)
    fake.push(fake.message(NEWCOMER, NEWCOMER, "待办", name="新网格员"))
    assert "仅限工作人员" not in (await next_sent(fake, n, NEWCOMER, "the open list")).text
    # Another process (a worker) holding its own overlaid config sees the enrolment.
    worker = OverlaidConfig(RULES_DIR, ORG, Policy())
    await worker.refresh(BindingStore(redis_async))
    account = f"telegram:{NEWCOMER}"
    assert person_of_account(worker.context.tree, account) is not None
    # The administrator revokes it in a private chat.
    n = len(fake.sent)
    fake.push(fake.message(ADMIN, ADMIN, f"/revoke @{account}", name="刘德明"))
    done = await next_sent(fake, n, ADMIN, "revoked")
    assert "已撤销" in done.text and "南岸社区第一网格" in done.text
    n = len(fake.sent)
    fake.push(fake.message(NEWCOMER, NEWCOMER, "待办", name="新网格员"))
    assert "仅限工作人员" in (await next_sent(fake, n, NEWCOMER, "refused")).text
    assert person_of_account(bot.config.context.tree, account) is None
    assert await worker.refresh(BindingStore(redis_async))  # the version moved: re-read
    assert person_of_account(worker.context.tree, account) is None
    # The audit history holds both, in order.
    audit = await BindingStore(redis_async).audit()
    assert [(e["action"], e["account"], e["by"]) for e in audit] == [
        ("enrol", account, f"telegram:{ADMIN}"),
        ("revoke", account, f"telegram:{ADMIN}"),
    ]
    assert [(e["role"], e["scope"]) for e in audit] == [("grid_worker", "G-03")] * 2
    # Refusals: in a group, by a non-admin, of someone the file names, of no one.
    await quiet(harness)
    cases = [
        (-1001000000101, ADMIN, f"/revoke {account}", "私聊"),
        (RESIDENT, RESIDENT, f"/revoke {account}", "仅限管理员"),
        (ADMIN, ADMIN, "/revoke telegram:100020", "组织架构文件"),
        (ADMIN, ADMIN, f"/revoke {account}", "找不到"),  # already revoked
        (ADMIN, ADMIN, "/revoke", "用法"),
    ]
    for chat, user, text, expected in cases:
        n = len(fake.sent)
        fake.push(fake.message(chat, user, text))
        assert expected in (await next_sent(fake, n, chat, text)).text, text


async def test_the_cli_revokes_and_prints_the_audit(
    redis_url: str, redis_async: redis.asyncio.Redis
) -> None:
    store = BindingStore(redis_async)
    code = await store.create_invite(Invite(Role.VILLAGE_CADRE, "V-02"), by="cli")
    assert await store.join(code, "telegram:555001", "新干部", Lang.ZH_HANS) == Invite(
        Role.VILLAGE_CADRE, "V-02"
    )
    done = lianhu("org", "revoke", "telegram:555001", REDIS_URL=redis_url)
    assert done.returncode == 0 and "revoked" in done.stdout, done.stderr
    assert await redis_async.hget(keys.ENROLMENTS, "telegram:555001") is None
    again = lianhu("org", "revoke", "telegram:555001", REDIS_URL=redis_url)
    assert again.returncode == 1 and "no enrolment" in again.stderr
    named = lianhu("org", "revoke", "telegram:100020", REDIS_URL=redis_url)
    assert named.returncode == 1 and "p-zhong-zhiwei" in named.stderr
    audit = lianhu("org", "audit", "--json", REDIS_URL=redis_url)
    entries = [json.loads(line) for line in audit.stdout.splitlines()]
    assert [(e["action"], e["account"], e["by"]) for e in entries] == [
        ("enrol", "telegram:555001", "cli"),
        ("revoke", "telegram:555001", "cli"),
    ]
    table = lianhu("org", "audit", REDIS_URL=redis_url)
    assert table.returncode == 0 and "revoke\ttelegram:555001" in table.stdout


def test_the_file_wins_over_enrolments_and_a_revocation_over_earlier_ones() -> None:
    tree = load_org(ORG)
    worker = tree.people[tree.accounts["telegram:100020"]]
    # An enrolment of an account the file names changes nothing.
    promoted = Enrolment("telegram:100020", "钟志伟", Role.ADMIN, "S-01", at=10.0)
    assert overlay(tree, {}, {"telegram:100020": promoted}).people[worker.id] == worker
    assert (
        person_of_account(overlay(tree, {}, {"telegram:100020": promoted}), "telegram:100020")
        == worker
    )
    # A revocation voids the enrolments made before it, not a later one.
    new = Enrolment("telegram:9", "新人", Role.GRID_WORKER, "G-03", at=10.0)
    assert (
        person_of_account(
            overlay(tree, {}, {"telegram:9": new}, {"telegram:9": 10.0}), "telegram:9"
        )
        is None
    )
    later = overlay(tree, {}, {"telegram:9": new}, {"telegram:9": 9.0})
    assert person_of_account(later, "telegram:9") is not None


async def test_join_is_refused_after_five_wrong_codes_and_for_people_in_the_file(
    harness: Harness, redis_sync: redis.Redis
) -> None:
    fake = harness.fake
    await harness.start()
    fake.push(fake.message(ADMIN, ADMIN, "/invite grid_worker grid:G-03", name="刘德明"))
    code = CODE.search((await next_sent(fake, 0, ADMIN, "the code")).text)
    assert code is not None
    for i in range(JOIN_ATTEMPTS):
        n = len(fake.sent)
        fake.push(fake.message(NEWCOMER, NEWCOMER, f"/join ABCDEF{i + 2}2"))
        assert "无效" in (await next_sent(fake, n, NEWCOMER, "wrong code")).text
    n = len(fake.sent)
    fake.push(fake.message(NEWCOMER, NEWCOMER, f"/join {code.group(1)}"))
    assert "次数过多" in (await next_sent(fake, n, NEWCOMER, "locked")).text
    assert redis_sync.exists(keys.invite(code.group(1)))  # the right code is not used up
    # A resident the file names cannot take a role with a code: the file decides.
    n = len(fake.sent)
    fake.push(fake.message(RESIDENT, RESIDENT, f"/join {code.group(1)}"))
    assert "组织架构文件" in (await next_sent(fake, n, RESIDENT, "named in the file")).text
    assert redis_sync.exists(keys.invite(code.group(1)))
    assert redis_sync.hlen(keys.ENROLMENTS) == 0
