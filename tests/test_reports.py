"""Reports on purpose (报事, 找人), tickets from missed messages (立案), 改类, and learned examples."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import redis.asyncio

from bot.core.org import Role
from bot.core.ticket import EventKind
from bot.storage import keys
from bot.storage.learning import LearningStore
from tests.conftest import ROOT, RULES_DIR
from tests.test_services import World
from tests.test_services import world as world  # the fixture, re-exported for these tests

H01 = "telegram:-1001000000131"
G01_STAFF = "telegram:-1001000000221"
CHATTER = "今晚的火锅太好吃了"


async def test_report_forces_a_ticket_of_the_best_guess_or_the_general_category(
    world: World,
) -> None:
    resident = world.person(Role.RESIDENT, "H-01")
    assert (await world.service.handle_message(world.message(resident, CHATTER))).status == (
        "ignored"
    )
    forced = await world.service.handle_message(world.message(resident, f"报事 {CHATTER}"))
    ticket = await world.store.get(forced.ticket or "")
    assert ticket is not None and (ticket.category, ticket.text) == ("policy_inquiry", CHATTER)
    noise = await world.service.handle_message(
        world.message(resident, "/report 楼上天天半夜装修，电钻声吵得睡不着")
    )
    ticket = await world.store.get(noise.ticket or "")
    assert ticket is not None and ticket.category == "noise"
    empty = await world.service.handle_message(world.message(resident, "报事"))
    assert (empty.status, empty.detail) == ("refused", "needs_text")
    private = await world.service.handle_message(
        world.message(resident, "报事 路灯坏了", chat=resident.accounts[0], private=True)
    )
    assert (private.status, private.detail) == ("refused", "report_in_group")
    assert len(await world.store.all_ids()) == 2


async def test_human_posts_a_card_to_the_grid_worker_and_tells_the_resident(world: World) -> None:
    resident = world.person(Role.RESIDENT, "H-01")
    message = world.message(resident, "找人 我想当面问问低保的事，电话13812345678")
    handled = await world.service.handle_message(message)
    assert handled.status == "done"
    again = await world.service.handle_message(message)
    assert again.status == "duplicate"
    sent = await world.outbox()
    told = next(p for p in sent if p["template"] == "human_asked")
    assert (told["chat"], told["reply_to"]) == (H01, message.message_id)
    cards = {p["chat"]: p for p in sent if p["template"] == "human_card"}
    grid_worker = world.person(Role.GRID_WORKER, "G-01")
    assert set(cards) >= {G01_STAFF, grid_worker.accounts[0]}
    assert "低保" in cards[G01_STAFF]["text"] and resident.name in cards[G01_STAFF]["text"]
    assert not await world.store.all_ids()  # a person, not a ticket


async def test_a_leader_opens_a_ticket_from_a_missed_message_once(world: World) -> None:
    resident = world.person(Role.RESIDENT, "H-01")
    missed = world.message(resident, "门口那堆东西放了一个星期了，电话13812345678")
    first = await world.service.handle_message(missed)
    assert first.status in ("ignored", "ask")
    # A resident may not; the message's own author neither.
    other = world.person(Role.RESIDENT, "H-02")
    refused = await world.service.handle_message(
        world.message(other, "立案", chat=H01, reply_to=missed.message_id)
    )
    assert (refused.status, refused.detail) == ("refused", "not_handler")
    leader = world.person(Role.HOUSEHOLD_LEADER, "H-01")
    unknown = await world.service.handle_message(
        world.message(leader, "立案 外星人", chat=H01, reply_to=missed.message_id)
    )
    assert unknown.detail == "unknown_category"
    bare = await world.service.handle_message(world.message(leader, "立案", chat=H01))
    assert bare.detail == "open_needs_reply"
    opened = await world.service.handle_message(
        world.message(leader, "立案 环境卫生", chat=H01, reply_to=missed.message_id)
    )
    assert opened.status == "opened"
    ticket = await world.store.get(opened.ticket or "")
    assert ticket is not None and ticket.category == "sanitation"
    assert ticket.reporter.account == resident.accounts[0] and ticket.text == missed.text
    # Again, by the grid worker: refused, the message already opened a ticket.
    worker = world.person(Role.GRID_WORKER, "G-01")
    twice = await world.service.handle_message(
        world.message(worker, "/open_ticket", chat=H01, reply_to=missed.message_id)
    )
    assert (twice.status, twice.detail) == ("refused", "already_ticket")
    # A leader of another group: out of scope.
    far = world.person(Role.HOUSEHOLD_LEADER, "H-02")
    out = await world.service.handle_message(
        world.message(far, "立案", chat=H01, reply_to=missed.message_id)
    )
    assert out.detail == "open_not_in_scope"
    assert len(await world.store.all_ids()) == 1
    examples = await world.service.learning.examples()
    assert [(e["source"], e["category"]) for e in examples] == [("missed", "sanitation")]
    assert "13812345678" not in examples[0]["text"] and "138****5678" in examples[0]["text"]


async def test_a_message_that_opened_a_ticket_cannot_be_opened_again(world: World) -> None:
    resident = world.person(Role.RESIDENT, "H-01")
    report = world.message(resident, "村口的路灯坏了半个月，晚上黑漆漆的")
    opened = await world.service.handle_message(report)
    assert opened.status == "opened"
    worker = world.person(Role.GRID_WORKER, "G-01")
    again = await world.service.handle_message(
        world.message(worker, "立案", chat=H01, reply_to=report.message_id)
    )
    assert (again.status, again.detail) == ("refused", "already_ticket")


async def test_recat_changes_the_category_with_an_event_and_teaches(world: World) -> None:
    resident = world.person(Role.RESIDENT, "H-01")
    opened = await world.service.handle_message(
        world.message(resident, "村口的路灯坏了半个月，晚上黑漆漆的")
    )
    ticket_id = opened.ticket or ""
    cadre = world.person(Role.VILLAGE_CADRE, "V-01")
    chat = world.tree.nodes["V-01"].chats[0]
    bad = await world.service.handle_message(world.message(cadre, f"改类 {ticket_id} 外星人", chat))
    assert bad.detail == "unknown_category"
    same = await world.service.handle_message(
        world.message(cadre, f"改类 {ticket_id} public_facilities", chat)
    )
    assert same.detail == "same_category"
    by_resident = await world.service.handle_message(
        world.message(resident, f"/recat {ticket_id} utilities")
    )
    assert by_resident.status == "refused"
    done = await world.service.handle_message(
        world.message(cadre, f"改类 {ticket_id} 水电气", chat)
    )
    assert done.status == "done"
    ticket = await world.store.get(ticket_id)
    assert ticket is not None and (ticket.category, ticket.severity) == ("utilities", "normal")
    history = await world.store.history(ticket_id)
    assert history[-1].kind is EventKind.RECATEGORISED
    assert history[-1].data["from"] == "public_facilities"
    sent = await world.outbox()
    assert any(p["template"] == "recategorised" and "水电气" in p["text"] for p in sent)
    dismissed = await world.service.handle_message(
        world.message(cadre, f"驳回 {ticket_id} 不是问题", chat)
    )
    assert dismissed.status == "done"
    examples = await world.service.learning.examples()
    assert [(e["source"], e["category"]) for e in examples] == [
        ("recat", "utilities"),
        ("dismissed", "none"),
    ]


# -- lianhu rules learn | replay ---------------------------------------------------------------


def lianhu(redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("LIANHU_", "REDIS_URL"))}
    return subprocess.run(
        [sys.executable, "-m", "bot", "rules", *args],
        env={**base, "REDIS_URL": redis_url, "LIANHU_CLASSIFIER": "rules"},
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def rules_copy(tmp_path: Path) -> Path:
    target = tmp_path / "rules"
    subprocess.run(["cp", "-r", str(RULES_DIR), str(target)], check=True)
    (target / "examples" / "learned.jsonl").write_text("", encoding="utf-8")
    return target


async def test_learn_lists_accepts_into_the_learned_file_and_rejects(
    world: World, redis_url: str, tmp_path: Path
) -> None:
    learning = world.service.learning
    now = world.clock.now
    a = await learning.add_example("recat", "m/1", "路灯又坏了", "public_facilities", "x", now)
    b = await learning.add_example("dismissed", "m/2", "谢谢大家", "none", "x", now)
    c = await learning.add_example("missed", "m/3", "水管爆了", "utilities", "x", now)
    assert await learning.add_example("recat", "m/1", "路灯又坏了", "noise", "x", now) is None
    rules = rules_copy(tmp_path)
    listed = lianhu(redis_url, "learn", "--dir", str(rules))
    assert listed.returncode == 0, listed.stderr
    assert "路灯又坏了" in listed.stdout and "public_facilities" in listed.stdout
    unknown = lianhu(redis_url, "learn", "--dir", str(rules), "--accept", "999")
    assert unknown.returncode == 1 and "999" in unknown.stderr
    accepted = lianhu(redis_url, "learn", "--dir", str(rules), "--accept", str(a), str(b))
    assert accepted.returncode == 0, accepted.stderr
    lines = (rules / "examples" / "learned.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["category"] for line in lines] == ["public_facilities", "none"]
    rejected = lianhu(redis_url, "learn", "--dir", str(rules), "--reject", str(c))
    assert rejected.returncode == 0
    assert await learning.examples() == []
    check = lianhu(redis_url, "check", str(rules))  # the accepted examples are valid rules input
    assert check.returncode == 0, check.stderr


async def test_learn_refuses_to_accept_without_a_learned_file(
    world: World, redis_url: str, tmp_path: Path
) -> None:
    await world.service.learning.add_example("recat", "m/1", "路灯", "public_facilities", "x", 0)
    rules = rules_copy(tmp_path)
    text = (rules / "categories.yaml").read_text(encoding="utf-8")
    (rules / "categories.yaml").write_text(
        text.replace("  - examples/learned.jsonl\n", ""), encoding="utf-8"
    )
    refused = lianhu(redis_url, "learn", "--dir", str(rules), "--accept-all")
    assert refused.returncode == 1 and "learned.jsonl" in refused.stderr
    assert len(await world.service.learning.examples()) == 1


async def test_replay_prints_what_a_candidate_rule_set_would_change(
    world: World, redis_url: str, redis_async: redis.asyncio.Redis, tmp_path: Path
) -> None:
    resident = world.person(Role.RESIDENT, "H-01")
    for text in ["村口的路灯坏了半个月，晚上黑漆漆的", CHATTER, "小区门口的垃圾三天没人收了"]:
        await world.service.handle_message(world.message(resident, text))
    assert await redis_async.xlen(keys.CLASSIFIED) == 3
    same = lianhu(redis_url, "replay", "--since", "7d")
    assert same.returncode == 0, same.stderr
    assert "3 messages since 7d" in same.stdout and "0 would change" in same.stdout
    # A candidate that makes hot pot a sanitation matter.
    rules = rules_copy(tmp_path)
    with (rules / "sanitation.yaml").open("a", encoding="utf-8") as out:
        out.write(
            "\n  - {id: sanitation-hotpot, category: sanitation, priority: 99, keywords: [火锅]}\n"
        )
    changed = lianhu(redis_url, "replay", "--since", "7d", "--rules", str(rules))
    assert changed.returncode == 0, changed.stderr
    assert "1 would change" in changed.stdout and CHATTER in changed.stdout
    bad = lianhu(redis_url, "replay", "--since", "soon")
    assert bad.returncode == 2 and "--since" in bad.stderr


async def test_the_replay_log_keeps_no_message_older_than_its_age(
    redis_async: redis.asyncio.Redis,
) -> None:
    """Trimmed by age on a process's first log (then at most once a minute; by count always),
    a node of the stream at a time (``~``): of 300 messages from 1970, under 100 are left."""
    old = {"text": "旧", "category": "water", "action": "ticket", "at": "1.0"}
    for ms in range(1000, 1300):
        await redis_async.xadd(keys.CLASSIFIED, old, id=f"{ms}-0")  # type: ignore[arg-type]
    learning = LearningStore(redis_async)
    await learning.log("停水了", "water", "ticket", 2.0)
    await learning.log("又停水了", "water", "ticket", 3.0)
    texts = [row["text"] for row in await learning.classified(0.0)]
    assert texts[-2:] == ["停水了", "又停水了"] and texts.count("旧") < 100
