"""Danger flags and asks on a real Redis: numbers at once, one answer, refusals, deadlines."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio
from rq import Queue
from rq.registry import ScheduledJobRegistry

from bot.card_edits import viewed
from bot.core.deadlines import Policy
from bot.core.models import Lang
from bot.core.org import Role
from bot.core.rules import RuleSet
from bot.core.triage import Action, Source, Verdict, triage
from bot.live import LiveConfig
from bot.scheduling import RqScheduler
from bot.services import Handled, Service
from bot.storage import keys
from bot.storage.redis import RedisStore, payload_reply
from tests import helpers
from tests.conftest import RULES_DIR
from tests.test_services import ORG, RENDER, Clock, Schedules, World

H01 = "telegram:-1001000000131"
G01_STAFF = "telegram:-1001000000221"
V01_STAFF = "telegram:-1001000000211"
S01_STAFF = "telegram:-1001000000201"
GRID_WORKER = "telegram:100020"  # 钟志伟, grid worker of G-01 (above H-01)
GRID_LEADER = "telegram:100024"  # 冼建华, grid leader of G-01


@dataclasses.dataclass
class ModelStandIn:
    """The classifier engine's edge: the rules' verdict, or what a model said of a few texts.

    Same ``classify`` (and ``update``) as bot.classifier.engine.Engine; no training.
    """

    ruleset: RuleSet
    said: dict[str, Verdict] = dataclasses.field(default_factory=dict)

    async def classify(self, text: str) -> Verdict:
        return self.said.get(text) or triage(text, self.ruleset, None)

    def update(self, ruleset: RuleSet) -> None:
        self.ruleset = ruleset


def model_verdict(
    category: str, action: Action, danger: bool, top: tuple[tuple[str, float], ...] = ()
) -> Verdict:
    """Return a verdict as the model would give it (match and tier left to the shell)."""
    return Verdict(category, None, top[0][1] if top else 0.4, action, danger, Source.MODEL, top)


@pytest.fixture
async def world(redis_async: redis.asyncio.Redis, redis_sync: redis.Redis) -> AsyncIterator[World]:
    config = LiveConfig(RULES_DIR, ORG, Policy(scale=1.0))
    store = RedisStore(redis_async)
    clock, schedules = Clock(), Schedules(RqScheduler(redis_sync))
    model = ModelStandIn(config.ruleset)
    service = Service(store, config, schedules, clock, classifier=model)  # type: ignore[arg-type]
    yield World(service, store, redis_async, clock, schedules, config.tree)


def model_of(world: World) -> ModelStandIn:
    assert isinstance(world.service.classifier, ModelStandIn)
    return world.service.classifier


def said_by_model(world: World, text: str, verdict: Verdict) -> str:
    """Make the stand-in model say ``verdict`` of ``text``; return the text."""
    rs = world.service.config.ruleset
    if verdict.category in rs.categories:
        real = triage("", rs, {verdict.category: verdict.confidence})
        verdict = dataclasses.replace(verdict, tier=real.tier, match=real.match)
    model_of(world).said[text] = verdict
    return text


def buttons(reply: dict[str, Any]) -> list[str]:
    return list(reply["buttons"])


async def press(world: World, who: tuple[Role, str | None], data: str, chat: str) -> Handled:
    role, scope = who
    person = world.person(role, scope)
    return await world.service.handle_message(world.message(person, "", chat=chat, callback=data))


# -- danger: indirect wordings ------------------------------------------------------------------

# Each wording either opens an emergency ticket (the rules' danger rail) or, where only a model
# would sense the danger, gets the emergency numbers at once and a flag for the grid worker.
INDIRECT = {
    "neighbour": ("隔壁的王阿婆好几天没见人了，门口有股臭味", "social_assistance", Action.TICKET),
    "roof edge": ("有个人坐在楼顶边上好久了，一直不下来", None, None),
    "fast water": ("几个小孩在河里玩水，水流很急", "none", Action.IGNORE),
    "domestic violence": ("我老公又打我了，我不敢回家", "family_dispute", Action.ASK),
    "gas": ("楼道里一股煤气味", None, None),
}


@pytest.mark.parametrize("case", list(INDIRECT), ids=list(INDIRECT))
async def test_indirect_danger_opens_an_emergency_or_gets_the_numbers_and_a_flag(
    world: World, case: str
) -> None:
    text, category, action = INDIRECT[case]
    if category is not None and action is not None:  # a model's danger, not the rules'
        top = ((category, 0.45), ("emergency", 0.2)) if category != "none" else (("none", 0.7),)
        said_by_model(world, text, model_verdict(category, action, True, top))
    resident = world.person(Role.RESIDENT, "H-01")
    handled = await world.service.handle_message(world.message(resident, text))
    sent = await world.outbox()
    tickets = [await world.store.get(i) for i in await world.store.all_ids()]
    if any(t is not None and t.category == "emergency" for t in tickets):
        assert any(p["template"] == "emergency_opened" for p in sent)
        assert "110" in next(p["text"] for p in sent if p["template"] == "emergency_opened")
        return
    numbers = [p for p in sent if p["template"] == "danger_numbers"]
    assert len(numbers) == 1 and numbers[0]["chat"] == H01
    assert numbers[0]["reply_to"] == str(world.counter)  # quoting the resident
    assert all(n in numbers[0]["text"] for n in ("110", "119", "120"))
    flags = [p for p in sent if p["template"] == "danger_flag"]
    assert {p["chat"] for p in flags} == {G01_STAFF, GRID_WORKER, GRID_LEADER}
    assert handled.detail.startswith("p")


async def test_the_flag_card_has_two_buttons_and_a_second_delivery_sends_nothing(
    world: World,
) -> None:
    text = said_by_model(
        world, "我老公又打我了，我不敢回家",
        model_verdict("family_dispute", Action.ASK, True, (("family_dispute", 0.45),)),
    )  # fmt: skip
    resident = world.person(Role.RESIDENT, "H-01")
    message = world.message(resident, text)
    first = await world.service.handle_message(message)
    again = await world.service.handle_message(message)
    assert (first.status, again.status) == ("danger", "duplicate")
    sent = await world.outbox()
    card = next(p for p in sent if p["chat"] == G01_STAFF)
    assert buttons(card) == [f"danger:{first.detail}:yes", f"danger:{first.detail}:no"]
    labels = [label for label, _ in RENDER(payload_reply(card)).buttons]
    assert labels == ["确认危险", "不危险"]
    # The numbers, the card in the grid's staff chat, and privately the grid's worker and leader.
    assert len(sent) == 4
    assert not await world.store.all_ids()  # nothing opened until a grid worker decides


async def flagged(world: World, text: str, category: str, action: Action) -> str:
    said_by_model(world, text, model_verdict(category, action, True, ((category, 0.45),)))
    resident = world.person(Role.RESIDENT, "H-01")
    handled = await world.service.handle_message(world.message(resident, text))
    assert handled.status == "danger"
    return handled.detail


async def test_confirming_opens_a_critical_emergency_at_the_street_for_the_resident(
    world: World,
) -> None:
    prompt = await flagged(world, "几个小孩在河里玩水，水流很急", "none", Action.IGNORE)
    before = len(await world.outbox())
    done = await press(world, (Role.GRID_WORKER, "G-01"), f"danger:{prompt}:yes", G01_STAFF)
    assert done.status == "done" and done.ticket is not None
    ticket = await world.store.get(done.ticket)
    assert ticket is not None
    assert (ticket.category, ticket.severity, ticket.node) == ("emergency", "critical", "S-01")
    resident = world.person(Role.RESIDENT, "H-01")
    assert ticket.reporter.account == resident.accounts[0]
    assert ticket.text == "几个小孩在河里玩水，水流很急"
    sent = (await world.outbox())[before:]
    templates = {p["template"] for p in sent}
    assert {"emergency_opened", "card", "department_card", "flag_confirmed"} <= templates
    # A second press, by anyone, is refused with a reason; nothing more is opened.
    again = await press(world, (Role.GRID_LEADER, "G-01"), f"danger:{prompt}:no", G01_STAFF)
    assert (again.status, again.detail) == ("refused", "prompt_answered")
    assert len(await world.store.all_ids()) == 1
    examples = await world.service.learning.examples()
    assert [(e["source"], e["category"]) for e in examples] == [("flag_confirmed", "emergency")]


NUMBERS = ("110", "119", "120")


@pytest.mark.parametrize("lang", list(Lang))
async def test_the_numbers_come_once_with_the_flag_and_the_ticket_notice_refers_to_them(
    world: World, lang: Lang
) -> None:
    prompt = await flagged(world, "几个小孩在河里玩水，水流很急", "none", Action.IGNORE)
    first = await world.outbox()
    numbers = next(p for p in first if p["template"] == "danger_numbers")
    said = RENDER(dataclasses.replace(payload_reply(numbers), lang=lang)).text
    assert all(n in said.splitlines()[0] for n in NUMBERS)  # at once, on its first line
    await press(world, (Role.GRID_WORKER, "G-01"), f"danger:{prompt}:yes", G01_STAFF)
    later = (await world.outbox())[len(first) :]
    (opened,) = [p for p in later if p["template"] == "emergency_opened"]
    assert opened["chat"] == H01
    text = RENDER(dataclasses.replace(payload_reply(opened), lang=lang)).text
    assert not any(n in text for n in NUMBERS)  # not a second time
    assert f"#{opened['ticket']}" in text
    # It still says whom to call, briefly: the numbers given before.
    referral = {Lang.ZH_HANS: "刚才提示", Lang.ZH_HANT: "剛才提示", Lang.EN: "numbers above"}
    assert referral[lang] in text


async def test_a_press_out_of_scope_is_refused_and_changes_nothing(world: World) -> None:
    prompt = await flagged(world, "几个小孩在河里玩水，水流很急", "none", Action.IGNORE)
    for who in [
        (Role.GRID_WORKER, "G-02"),
        (Role.RESIDENT, "H-01"),
        (Role.HOUSEHOLD_LEADER, "H-01"),
    ]:
        refused = await press(world, who, f"danger:{prompt}:yes", G01_STAFF)
        assert (refused.status, refused.detail) == ("refused", "flag_not_in_scope")
    assert not await world.store.all_ids()
    assert (await world.service.prompts.get(prompt)).answer is None  # type: ignore[union-attr]


async def test_not_dangerous_opens_the_guessed_category_or_nothing(world: World) -> None:
    prompt = await flagged(world, "我老公又打我了，我不敢回家", "family_dispute", Action.ASK)
    done = await press(world, (Role.GRID_WORKER, "G-01"), f"danger:{prompt}:no", G01_STAFF)
    ticket = await world.store.get(done.ticket or "")
    assert ticket is not None and ticket.category == "family_dispute"
    assert ticket.reporter.account == world.person(Role.RESIDENT, "H-01").accounts[0]
    sent = await world.outbox()
    assert not any(p["template"] == "emergency_opened" for p in sent)
    chatter = await flagged(world, "几个小孩在河边玩", "none", Action.IGNORE)
    nothing = await press(world, (Role.GRID_WORKER, "G-01"), f"danger:{chatter}:no", G01_STAFF)
    assert nothing.status == "done" and nothing.ticket is None
    assert len(await world.store.all_ids()) == 1


async def test_an_unanswered_flag_climbs_to_the_village_then_the_street(world: World) -> None:
    prompt = await flagged(world, "几个小孩在河里玩水，水流很急", "none", Action.IGNORE)
    member = keys.deadline_member(prompt, 0, "danger")
    assert await world.redis.zscore(keys.DEADLINES, member) == world.clock.now + 600
    assert (prompt, 0, "danger") in [c[:3] for c in world.schedules.calls]
    world.clock.now += 599  # early: nothing moves
    assert await world.service.sweep(grace=-10) == 1
    assert (await world.service.prompts.get(prompt)).stage == 0  # type: ignore[union-attr]
    world.clock.now += 2
    before = len(await world.outbox())
    await world.service.handle_deadline(prompt, 0, "danger")
    await world.service.handle_deadline(prompt, 0, "danger")  # at least once: no second card
    sent = (await world.outbox())[before:]
    assert {p["chat"] for p in sent if p["template"] == "danger_flag"} >= {V01_STAFF}
    assert len([p for p in sent if p["chat"] == V01_STAFF]) == 1
    world.clock.now += 610
    await world.service.sweep()
    sent = (await world.outbox())[before:]
    assert any(p["chat"] == S01_STAFF and p["template"] == "danger_flag" for p in sent)
    stored = await world.service.prompts.get(prompt)
    assert stored is not None and (stored.node, stored.due) == ("S-01", None)
    assert not await world.redis.zrangebyscore(keys.DEADLINES, "-inf", "+inf")
    # Out of scope still: a cadre of another village. The street's staff may answer now.
    other = await press(world, (Role.VILLAGE_CADRE, "V-02"), f"danger:{prompt}:yes", S01_STAFF)
    assert other.detail == "flag_not_in_scope"
    done = await press(world, (Role.STREET_STAFF, None), f"danger:{prompt}:yes", S01_STAFF)
    assert done.status == "done" and done.ticket is not None


async def test_a_danger_in_a_ticket_of_another_category_is_flagged_too(world: World) -> None:
    text = said_by_model(
        world, "隔壁的王阿婆好几天没见人了，门口有股臭味",
        model_verdict("social_assistance", Action.TICKET, True, (("social_assistance", 0.8),)),
    )  # fmt: skip
    resident = world.person(Role.RESIDENT, "H-01")
    handled = await world.service.handle_message(world.message(resident, text))
    assert handled.status == "opened" and handled.detail.startswith("p")
    sent = await world.outbox()
    assert {"danger_numbers", "danger_flag"} <= {p["template"] for p in sent}
    done = await press(world, (Role.GRID_WORKER, "G-01"), f"danger:{handled.detail}:yes", G01_STAFF)
    emergency = await world.store.get(done.ticket or "")
    assert emergency is not None and emergency.category == "emergency"
    assert emergency.id != handled.ticket
    # 不危险 on such a flag opens nothing more: the ticket exists.


# -- ask -------------------------------------------------------------------------------------


async def asked(world: World, text: str = "楼下那个东西又来了，怎么办") -> tuple[str, Any]:
    said_by_model(
        world, text,
        model_verdict("noise", Action.ASK, False, (("noise", 0.35), ("sanitation", 0.3), ("none", 0.2))),
    )  # fmt: skip
    resident = world.person(Role.RESIDENT, "H-01")
    message = world.message(resident, text)
    handled = await world.service.handle_message(message)
    assert handled.status == "ask"
    return handled.detail, message


async def test_an_ask_offers_the_top_two_categories_and_no_quoting_the_resident(
    world: World,
) -> None:
    prompt, message = await asked(world)
    again = await world.service.handle_message(message)
    assert again.status == "duplicate"
    (reply,) = await world.outbox()
    assert (reply["chat"], reply["reply_to"]) == (H01, message.message_id)
    assert "需要我登记吗" in reply["text"]
    assert buttons(reply) == [f"ask:{prompt}:noise", f"ask:{prompt}:sanitation", f"ask:{prompt}:no"]
    assert [b for b, _ in RENDER(payload_reply(reply)).buttons] == ["噪音扰民", "环境卫生", "不用"]


async def test_the_resident_picks_a_category_and_only_they_may(world: World) -> None:
    prompt, message = await asked(world)
    other = await press(world, (Role.RESIDENT, "H-02"), f"ask:{prompt}:noise", H01)
    leader = await press(world, (Role.HOUSEHOLD_LEADER, "H-01"), f"ask:{prompt}:noise", H01)
    assert {other.detail, leader.detail} == {"prompt_not_yours"}
    done = await press(world, (Role.RESIDENT, "H-01"), f"ask:{prompt}:noise", H01)
    ticket = await world.store.get(done.ticket or "")
    assert ticket is not None and ticket.category == "noise"
    assert ticket.reporter.message_id == message.message_id and ticket.text == message.text
    again = await press(world, (Role.RESIDENT, "H-01"), f"ask:{prompt}:sanitation", H01)
    assert again.detail == "prompt_answered"
    assert len(await world.store.all_ids()) == 1
    examples = await world.service.learning.examples()
    assert [(e["source"], e["category"]) for e in examples] == [("ask", "noise")]


async def test_no_thanks_ends_it_quietly(world: World) -> None:
    prompt, _ = await asked(world)
    before = len(await world.outbox())
    done = await press(world, (Role.RESIDENT, "H-01"), f"ask:{prompt}:no", H01)
    assert done.status == "done" and done.ticket is None
    assert len(await world.outbox()) == before
    world.clock.now += 3600
    await world.service.sweep()
    assert len(await world.outbox()) == before  # no ping to the leader after an answer


async def test_an_unanswered_ask_goes_once_to_the_household_leader_privately(world: World) -> None:
    prompt, message = await asked(world)
    world.clock.now += 30 * 60 + 10
    assert await world.service.sweep() == 1
    await world.service.sweep()
    sent = await world.outbox()
    leader = world.person(Role.HOUSEHOLD_LEADER, "H-01")
    pings = [p for p in sent if p["template"] == "ask_leader"]
    assert [p["chat"] for p in pings] == [leader.accounts[0]]
    assert message.text in pings[0]["text"] and buttons(pings[0])[-1] == f"ask:{prompt}:no"
    done = await press(
        world, (Role.HOUSEHOLD_LEADER, "H-01"), f"ask:{prompt}:sanitation", leader.accounts[0]
    )
    ticket = await world.store.get(done.ticket or "")
    assert ticket is not None and ticket.reporter.account == message.sender.account


async def test_the_ask_counts_against_the_pacing_allowance(world: World) -> None:
    resident = world.person(Role.RESIDENT, "H-01")
    for _ in range(world.service.pacing.per_person):
        await world.service.handle_message(world.message(resident, "/help"))
    await asked(world, "那个东西又来了")
    sent = await world.outbox()
    assert not any(p["template"] == "ask_register" for p in sent)
    assert [p["template"] for p in sent].count("slow_down") == 1


async def test_an_ask_about_a_message_a_leader_ticketed_is_not_pinged(world: World) -> None:
    prompt, message = await asked(world)
    leader = world.person(Role.HOUSEHOLD_LEADER, "H-01")
    opened = await world.service.handle_message(
        world.message(leader, "立案 噪音扰民", chat=H01, reply_to=message.message_id)
    )
    assert opened.status == "opened"
    before = len(await world.outbox())
    world.clock.now += 3600
    await world.service.sweep()
    assert len(await world.outbox()) == before
    late = await press(world, (Role.RESIDENT, "H-01"), f"ask:{prompt}:noise", H01)
    assert late.ticket == opened.ticket  # the same ticket, not a second one
    assert len(await world.store.all_ids()) == 1


async def test_a_sensitive_flag_in_a_grid_group_without_a_staff_chat_shows_no_text(
    redis_async: redis.asyncio.Redis, redis_sync: redis.Redis, tmp_path: Path
) -> None:
    org = tmp_path / "org.yaml"
    text = ORG.read_text(encoding="utf-8")
    line = '    staff_chat: "telegram:-1001000000221"\n'
    assert line in text
    org.write_text(text.replace(line, ""), encoding="utf-8")
    config = LiveConfig(RULES_DIR, org, Policy(scale=1.0))
    service = Service(
        RedisStore(redis_async), config, Schedules(RqScheduler(redis_sync)), Clock(),
        classifier=ModelStandIn(config.ruleset),  # type: ignore[arg-type]
    )  # fmt: skip
    world = World(service, service.store, redis_async, Clock(), service.scheduler, config.tree)  # type: ignore[arg-type]
    words = "我老公又打我了，我不敢回家"
    await flagged(world, words, "family_dispute", Action.ASK)
    cards = {p["chat"]: p for p in await world.outbox() if p["template"] == "danger_flag"}
    group = world.tree.nodes["G-01"].chats[0]
    assert set(cards) == {group, GRID_WORKER, GRID_LEADER}
    assert words not in cards[group]["text"] and "🔒" in cards[group]["text"]
    assert words in cards[GRID_WORKER]["text"]  # privately, in full


async def test_an_unanswered_flag_climbs_through_an_rq_worker(
    redis_url: str, redis_async: redis.asyncio.Redis, redis_sync: redis.Redis
) -> None:
    scale = 1e-3  # ten minutes become 0.6 s
    config = LiveConfig(RULES_DIR, ORG, Policy(scale=scale))
    service = Service(
        RedisStore(redis_async), config, RqScheduler(redis_sync), time.time,
        classifier=ModelStandIn(config.ruleset),  # type: ignore[arg-type]
    )  # fmt: skip
    world = World(service, service.store, redis_async, Clock(), service.scheduler, config.tree)  # type: ignore[arg-type]
    prompt = await flagged(world, "几个小孩在河里玩水，水流很急", "none", Action.IGNORE)
    scheduled = ScheduledJobRegistry(queue=Queue("lianhu", connection=redis_sync)).get_job_ids()
    stored = await service.prompts.get(prompt)
    assert stored is not None and stored.due is not None
    # The job of the second its answer is due in (or the next, with a moment's grace).
    [second] = [int(j.removeprefix("deadlines-")) for j in scheduled]
    assert stored.due <= second <= stored.due + 60
    await asyncio.sleep(max(0.0, stored.due + 1.2 - time.time()))
    result = await asyncio.to_thread(helpers.run_worker, redis_url, scale)
    assert result.returncode == 0, result.stderr
    after = await service.prompts.get(prompt)
    assert after is not None and after.stage >= 1 and after.node in ("V-01", "S-01")
    history = [e["kind"] for e in await service.prompts.history(prompt)]
    assert history[0] == "raised" and history[1] == "climbed"
    sent = await world.outbox()
    assert [p["chat"] for p in sent if p["template"] == "danger_flag"].count(V01_STAFF) == 1


FLAG_TEMPLATES = {"danger_flag", "flag_confirmed", "flag_rejected"}


async def answered_flags(world: World) -> list[dict[str, Any]]:
    """Flag twice, confirm one and reject the other; return every flag card and notice sent,
    and each card as its edit shows it."""
    confirm = await flagged(world, "几个小孩在河里玩水，水流很急", "none", Action.IGNORE)
    reject = await flagged(world, "有个人坐在楼顶边上好久了，一直不下来", "none", Action.IGNORE)
    await press(world, (Role.GRID_WORKER, "G-01"), f"danger:{confirm}:yes", G01_STAFF)
    await press(world, (Role.GRID_WORKER, "G-01"), f"danger:{reject}:no", G01_STAFF)
    rows = await world.redis.xrange(keys.outbox("telegram"))
    entries = [json.loads(fields[b"payload"]) for _, fields in rows]
    sent = [p for p in entries if p.get("template") in FLAG_TEMPLATES]
    assert {p["template"] for p in sent} == FLAG_TEMPLATES
    views = {p["edit_cards"]: p["view"] for p in entries if "edit_cards" in p}  # the last of each
    edited = [viewed(p, views.get(p["prompt"])) for p in sent if p["card"]]
    assert {p["params"].get("outcome") for p in edited} == {"confirmed", "rejected"}
    return [*sent, *edited]


async def test_no_flag_card_or_notice_shows_the_questions_internal_id(world: World) -> None:
    """Walked: the grid worker's card read "可能有危险，请核实（p2）" and the staff chat
    "p2 已由…确认危险": an id nobody types (a typed answer is 危险 2, WeCom's hint says so)."""
    for payload in await answered_flags(world):
        reply = payload_reply(payload)
        for lang in Lang:
            text = RENDER(dataclasses.replace(reply, lang=lang)).text
            assert not re.search(r"(?<![A-Za-z])p\d", text), (payload["template"], lang, text)


ASKS_TO_CHECK = {Lang.ZH_HANS: "请核实", Lang.ZH_HANT: "請核實", Lang.EN: "please check"}


async def test_an_answered_flags_card_no_longer_asks_to_check(world: World) -> None:
    """Walked: once 钟志伟 confirmed, his card read "⚠️ 可能有危险，请核实 … ✅ 钟志伟 确认危险",
    asking for what was done (and the chat list previewed "请核实")."""
    for payload in await answered_flags(world):
        if payload["template"] != "danger_flag":
            continue
        reply = payload_reply(payload)
        for lang in Lang:
            text = RENDER(dataclasses.replace(reply, lang=lang)).text
            first = text.splitlines()[0]
            assert first.startswith("⚠️") and len(first) < 40, (lang, text)  # a line of its own
            asks = ASKS_TO_CHECK[lang] in first
            assert asks == ("outcome" not in payload["params"]), (lang, text)


STILL_YOURS = {Lang.ZH_HANS: "您仍可", Lang.ZH_HANT: "您仍可", Lang.EN: "you may still"}


async def test_a_climbed_flags_card_says_whether_its_reader_may_still_answer(
    world: World,
) -> None:
    """Walked: once a flag climbed to the village, the grid worker's card read "⏫ 无人回应，
    已转至东联村核实" above buttons that still worked (the grid may still answer), and the
    village's card, once it climbed on to the street, read the same with none."""
    prompt = await flagged(world, "几个小孩在河里玩水，水流很急", "none", Action.IGNORE)
    for _ in range(2):  # to the village, then the street
        world.clock.now += 3600
        await world.service.sweep(grace=0.0)
    rows = await world.redis.xrange(keys.outbox("telegram"))
    entries = [json.loads(fields[b"payload"]) for _, fields in rows]
    view = [p["view"] for p in entries if p.get("edit_cards") == prompt][-1]
    cards = {p["chat"]: p for p in entries if p.get("template") == "danger_flag" and p["card"]}
    for chat, live in ((GRID_WORKER, True), (G01_STAFF, True), (V01_STAFF, False)):
        shown = viewed(cards[chat], view)
        assert bool(shown["buttons"]) is live
        for lang in Lang:
            text = RENDER(dataclasses.replace(payload_reply(shown), lang=lang)).text
            assert "⏫" in text and (STILL_YOURS[lang] in text) is live, (chat, lang, text)
