"""Notices of known incidents: the pure reading and matching, then the service on real Redis."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis
import redis.asyncio
from rq.registry import ScheduledJobRegistry

from bot import notices as shell
from bot.core.classify import Match
from bot.core.deadlines import Outcome, Policy, run_at
from bot.core.models import Lang, Reply, Severity, Tier
from bot.core.notices import (
    Notice,
    NoticeProblem,
    households,
    is_announcement,
    matching,
    parse_notice,
    parse_window,
)
from bot.core.org import Role
from bot.core.triage import Action, Source, Verdict
from bot.live import LiveConfig
from bot.render import Renderer, local_zone
from bot.scheduling import RqScheduler, job_id
from bot.services import Service
from bot.storage import keys
from bot.storage.redis import RedisStore
from tests import helpers
from tests.conftest import ROOT, RULES_DIR
from tests.test_services import Clock, Schedules, World

ORG = ROOT / "org" / "sample_street.yaml"
ZONE = local_zone()


def local(day: int, hour: int, minute: int = 0, month: int = 12) -> float:
    return dt.datetime(2026, month, day, hour, minute, tzinfo=ZONE).timestamp()


NOW = local(4, 8)  # Friday 4 December 2026, 08:00 in China


# -- reading a time window ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "start", "end", "rest"),
    [
        ("9:00-12:00 停水", local(4, 9), local(4, 12), " 停水"),
        ("９：００－１２：００，停水", local(4, 9), local(4, 12), "，停水"),
        ("今天 9点-12点半 检修", local(4, 9), local(4, 12, 30), " 检修"),
        ("明天9:00-12:00", local(5, 9), local(5, 12), ""),
        ("明日 14:00~18:00", local(5, 14), local(5, 18), ""),
        ("后天", local(6, 0), local(7, 0), ""),
        ("12月5日 9:00-12:00 维修", local(5, 9), local(5, 12), " 维修"),
        ("12月5号 13:00到17:30", local(5, 13), local(5, 17, 30), ""),
        ("12月5日", local(5, 0), local(6, 0), ""),
        ("12月5日 全天 停电", local(5, 0), local(6, 0), "停电"),
        ("2026-12-06 8:00~18:00", local(6, 8), local(6, 18), ""),
        ("12/5 9:00-12:00", local(5, 9), local(5, 12), ""),
        ("22:00-6:00", local(4, 22), local(5, 6), ""),
        ("22:00-次日6:00", local(4, 22), local(5, 6), ""),
        ("今天停水维修", local(4, 0), local(5, 0), "停水维修"),
        ("12月5日 9:00-12月6日 18:00 x", local(5, 9), local(6, 18), " x"),
        ("今天 20:00-明天 8:00", local(4, 20), local(5, 8), ""),
    ],
)
def test_windows_in_common_chinese_forms(text: str, start: float, end: float, rest: str) -> None:
    assert parse_window(text, NOW, ZONE) == (start, end, rest)


def test_a_date_long_past_is_next_year() -> None:
    start, end, _ = parse_window("1月3日 9:00-12:00", NOW, ZONE) or (0, 0, "")
    assert (start, end) == (local(3, 9, month=1) + 365 * 86400, local(3, 12, month=1) + 365 * 86400)


@pytest.mark.parametrize("text", ["东联村 9:00", "明早 9点", "25:00-26:00", "2月30日", "停水", ""])
def test_what_is_no_window(text: str) -> None:
    assert parse_window(text, NOW, ZONE) is None


# -- reading a notice ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def config() -> LiveConfig:
    return LiveConfig(RULES_DIR, ORG, Policy())


def test_a_notice_names_category_places_window_and_text(config: LiveConfig) -> None:
    tree, rules = config.tree, config.ruleset
    draft = parse_notice("停水 东联村 9:00-12:00 因管道维修停水，请提前储水", rules, tree, None,
                         NOW, ZONE)  # fmt: skip
    assert not isinstance(draft, NoticeProblem)
    assert (draft.category, draft.nodes, draft.starts, draft.ends, draft.text) == (
        "utilities", ("V-01",), local(4, 9), local(4, 12), "因管道维修停水，请提前储水",
    )  # fmt: skip
    # Traditional names, ids, several places; the category by its name.
    draft = parse_notice("水電氣 東聯村、G-03 明天 9:00-12:00 維修", rules, tree, None, NOW, ZONE)
    assert not isinstance(draft, NoticeProblem) and draft.nodes == ("V-01", "G-03")
    assert draft.category == "utilities" and draft.starts == local(5, 9)
    # No place: the place of the chat it is posted in.
    draft = parse_notice("停电 9:00-12:00 线路检修", rules, tree, tree.nodes["G-01"], NOW, ZONE)
    assert not isinstance(draft, NoticeProblem) and draft.nodes == ("G-01",)


@pytest.mark.parametrize(
    ("text", "problem", "params"),
    [
        ("停水", "usage", {}),
        ("火星 东联村 9:00-12:00 x", "category", {"word": "火星"}),
        ("着火 东联村 9:00-12:00 x", "category", {"word": "着火"}),  # never an emergency
        ("停水 火星村 9:00-12:00 x", "place", {"word": "火星村"}),
        ("停水 东联村、火星村 9:00-12:00 x", "place", {"word": "火星村"}),
        ("停水 东联村 明早 x", "window", {"word": "明早"}),
        ("停水 东联村 9:00-12:00", "text", {}),
        ("停水 东联村 12月3日 x", "window_over", {"ends": local(4, 0)}),
        ("停水 东联村 12月5日 9:00-12月25日 x", "window", {"word": "12月5日"}),
        ("停水 东联村 7:00-7:30 x", "window_over", {"ends": local(4, 7, 30)}),
        ("停水 东联村 12月5日 9:00-12月25日 18:00 x", "window_long", {"days": 14}),
    ],
)
def test_what_a_notice_cannot_be(
    config: LiveConfig, text: str, problem: str, params: dict[str, Any]
) -> None:
    assert parse_notice(text, config.ruleset, config.tree, None, NOW, ZONE) == NoticeProblem(
        problem, params
    )


def test_households_under_the_places(config: LiveConfig) -> None:
    assert [n.id for n in households(config.tree, ["V-01"])] == [f"H-0{i}" for i in range(1, 6)]
    assert [n.id for n in households(config.tree, ["G-03", "H-01"])] == [
        "H-01", "H-06", "H-07", "H-08",
    ]  # fmt: skip


def notice(**change: Any) -> Notice:
    base = Notice("n1", "utilities", ("V-01",), local(4, 9), local(4, 12), "维修",
                  "telegram:1", "杨", "telegram:-1", "zh-Hans", NOW)  # fmt: skip
    return Notice.from_dict({**base.to_dict(), **change})


def test_matching_needs_the_category_the_place_and_the_window(config: LiveConfig) -> None:
    tree, during = config.tree, local(4, 10)
    n = notice()
    assert matching([n], "utilities", "H-04", tree, during) == n
    assert matching([n], "noise", "H-04", tree, during) is None  # another category
    assert matching([n], "utilities", "H-06", tree, during) is None  # another village
    assert matching([n], "utilities", "H-04", tree, local(4, 8, 59)) is None  # not begun
    assert matching([n], "utilities", "H-04", tree, local(4, 12)) is None  # over
    assert matching([notice(state="ended")], "utilities", "H-04", tree, during) is None
    assert Notice.from_dict(json.loads(json.dumps(n.to_dict()))) == n


@pytest.mark.parametrize(
    "text",
    [
        "【停水通知】因管道维修，东联村将于12月5日9:00-12:00停水，请提前储水",
        "温馨提示：明天8点到12点计划停电检修，请相互转告",
        "停电公告 因线路改造 12月6日 8:00-18:00 南岸社区停电",
    ],
)
def test_a_forwarded_outage_notice_reads_as_an_announcement(text: str) -> None:
    assert is_announcement(text)


@pytest.mark.parametrize(
    "text",
    [
        "楼下停水两天了",
        "通知一下，今天又停水了，什么时候来水？",
        "停电了！电梯里有人",
        "公告栏坏了",
    ],
)
def test_a_report_is_no_announcement(text: str) -> None:
    assert not is_announcement(text)


@pytest.mark.parametrize("lang", list(Lang))
def test_the_notice_texts_render_in_every_language(config: LiveConfig, lang: Lang) -> None:
    renderer = Renderer()
    params = {
        **shell.notice_params(config.tree, notice(), {"zh-Hans": "水电气", "en": "Utilities"})
    }
    for template, extra in [
        ("notice_broadcast", {}), ("notice_posted", {"groups": 5}), ("notice_answer", {}),
        ("notice_ended", {"reason": "window"}), ("notice_ended", {"reason": "early"}),
        ("notice_list", {"notices": [params]}), ("notice_list", {"notices": []}),
        *[("notice_refused", {"problem": p, "word": "x", "days": 14, "ends": NOW})
          for p in ("usage", "category", "place", "window", "window_over", "window_long", "text",
                    "scope", "ended", "unknown", "needs_id")],
    ]:  # fmt: skip
        text = renderer.render(Reply("telegram:1", template, {**params, **extra}, lang)).text
        assert text and "None" not in text and "{{" not in text
        if template in ("notice_broadcast", "notice_answer"):
            assert "维修" in text and ("Donglian" if lang is Lang.EN else "联村") in text.replace(
                "聯", "联"
            )


# -- the service on Redis ------------------------------------------------------------------------


@pytest.fixture
async def world(redis_async: redis.asyncio.Redis, redis_sync: redis.Redis) -> AsyncIterator[World]:
    config = LiveConfig(RULES_DIR, ORG, Policy(scale=1.0))
    store = RedisStore(redis_async)
    clock, schedules = Clock(NOW), Schedules(RqScheduler(redis_sync))
    service = Service(store, config, schedules, clock)
    yield World(service, store, redis_async, clock, schedules, config.tree)


POST = "通知 停水 东联村 9:00-12:00 因管道维修停水，请提前储水"


async def post(world: World, text: str = POST) -> str:
    cadre = world.person(Role.VILLAGE_CADRE, "V-01")
    handled = await world.service.handle_message(world.message(cadre, text))
    assert handled.status == "done", handled
    return handled.detail


async def snapshot(world: World) -> dict[str, Any]:
    """Return every key and its value (what 'changes nothing' compares)."""
    out: dict[str, Any] = {}
    for key in sorted(await world.redis.keys("*")):
        kind = (await world.redis.type(key)).decode()
        if kind == "string":
            out[key.decode()] = await world.redis.get(key)
        elif kind == "list":
            out[key.decode()] = await world.redis.lrange(key, 0, -1)
        elif kind == "zset":
            out[key.decode()] = await world.redis.zrange(key, 0, -1, withscores=True)
        elif kind == "stream":
            out[key.decode()] = [f for _, f in await world.redis.xrange(key)]
        else:
            out[key.decode()] = kind
    return out


async def test_a_water_outage_notice_answers_reports_without_a_ticket(world: World) -> None:
    notice_id = await post(world)
    assert notice_id == "n1"
    sent = await world.outbox()
    broadcast = [p for p in sent if p["template"] == "notice_broadcast"]
    # Once to every household group of the village (H-01..H-05), nowhere else.
    assert sorted(p["chat"] for p in broadcast) == sorted(
        world.tree.nodes[f"H-0{i}"].chats[0] for i in range(1, 6)
    )
    assert "因管道维修停水" in broadcast[0]["text"] and "东联村" in broadcast[0]["text"]
    posted = [p for p in sent if p["template"] == "notice_posted"]
    assert len(posted) == 1 and "5 个联户群" in posted[0]["text"]
    assert len(await world.outbox("sim")) == 5  # the same groups in the simulator
    delivered = await helpers.sent(world.redis)  # through the real Sender, rendered
    assert sorted(c for c, t in delivered.delivered if "因管道维修停水" in t) == sorted(
        p["chat"] for p in broadcast
    )
    # The window closes itself: a deadline in the index and its rq job.
    member = keys.deadline_member("n1", 0, "notice")
    assert await world.redis.zscore(keys.DEADLINES, member) == local(4, 12)
    asked = [c for c in world.schedules.calls if c[2] == "notice"]
    assert [c[:2] for c in asked] == [("n1", 0)] and asked[0][3] >= local(4, 12)
    assert world.schedules.stored() == [job_id(run_at(asked[0][3]))]

    world.clock.now = local(4, 9, 30)
    before = len(await world.outbox())
    reports = []
    for scope in ("H-01", "H-04"):
        resident = world.person(Role.RESIDENT, scope)
        reports.append(world.message(resident, "楼下停水了，一滴水都没有"))
        handled = await world.service.handle_message(reports[-1])
        assert (handled.status, handled.detail, handled.ticket) == ("noticed", "n1", None)
    again = await world.service.handle_message(reports[0])  # delivered twice
    assert again.status == "duplicate"
    assert await world.store.all_ids() == []  # not a single ticket
    answers = (await world.outbox())[before:]
    assert [(p["template"], p["chat"], p["reply_to"]) for p in answers] == [
        ("notice_answer", r.chat, r.message_id) for r in reports
    ]
    assert "无需重复反映" in answers[0]["text"]
    found = await shell.get(world.service, "n1")
    assert found is not None and found.answered == 2
    assert [e["kind"] for e in await shell.history(world.service, "n1")] == [
        "posted", "answered", "answered",
    ]  # fmt: skip

    # Another village's report and another category open tickets as usual.
    other = await world.service.handle_message(
        world.message(world.person(Role.RESIDENT, "H-06"), "楼下停水了，一滴水都没有")
    )
    assert other.status == "opened"
    lamp = await world.service.handle_message(
        world.message(world.person(Role.RESIDENT, "H-01"), "村口的路灯坏了半个月，晚上黑漆漆的")
    )
    assert lamp.status == "opened"


async def test_a_notice_answers_a_traditional_chinese_reader_with_places_in_traditional(
    world: World,
) -> None:
    await post(world)  # posted in Simplified: 东联村
    world.clock.now = local(4, 9, 30)
    reader = world.person(Role.RESIDENT, "H-03")
    assert reader.lang == "zh-Hant"
    handled = await world.service.handle_message(world.message(reader, "樓下停水了，一滴水都沒有"))
    assert handled.status == "noticed"
    (answer,) = [p for p in await world.outbox() if p["template"] == "notice_answer"]
    assert "東聯村" in answer["text"] and "东联村" not in answer["text"], answer["text"]
    assert "無需重複反映" in answer["text"]


async def test_the_notice_ends_with_its_window_and_reports_open_tickets_again(
    world: World,
) -> None:
    await post(world)
    world.clock.now = local(4, 11, 59)
    # A deadline that fires early changes nothing and runs again.
    assert await world.service.handle_deadline("n1", 0, "notice") is Outcome.EARLY
    found = await shell.get(world.service, "n1")
    assert found is not None and found.state == "active"
    world.clock.now = local(4, 12, 0) + 0.5
    # The sweeper finds it in our own index (as after a restart that lost the rq job).
    assert await world.service.sweep(grace=0) == 1
    assert await world.service.handle_deadline("n1", 0, "notice") is Outcome.MOVED_ON  # once
    found = await shell.get(world.service, "n1")
    assert found is not None and (found.state, found.ended_by) == ("ended", "system")
    assert await world.redis.zcard(keys.DEADLINES) == 0
    assert await world.redis.zcard(keys.NOTICES) == 0
    ended = [p for p in await world.outbox() if p["template"] == "notice_ended"]
    assert len(ended) == 1 and "到期结束" in ended[0]["text"]
    # After the window: a ticket, as usual.
    handled = await world.service.handle_message(
        world.message(world.person(Role.RESIDENT, "H-01"), "楼下停水了，一滴水都没有")
    )
    assert handled.status == "opened"


async def test_a_notice_ended_early_answers_no_more(world: World) -> None:
    await post(world)
    world.clock.now = local(4, 10)
    resident = world.person(Role.RESIDENT, "H-02")
    outsider = world.person(Role.VILLAGE_CADRE, "V-02")
    refused = await world.service.handle_message(world.message(outsider, "结束通知 n1"))
    assert (refused.status, refused.detail) == ("refused", "notice_refused")
    cadre = world.person(Role.VILLAGE_CADRE, "V-01")
    done = await world.service.handle_message(world.message(cadre, "/endnotice 1"))
    assert (done.status, done.detail) == ("done", "n1")
    again = await world.service.handle_message(world.message(cadre, "结束通知 n1"))
    assert again.status == "refused"
    assert "已经结束" in (await world.outbox())[-1]["text"]
    assert await world.redis.zcard(keys.DEADLINES) == 0  # nothing left for the sweeper
    handled = await world.service.handle_message(world.message(resident, "停水了，家里没水"))
    assert handled.status == "opened"
    # The deadline job that still fires at 12:00 does nothing.
    world.clock.now = local(4, 12, 1)
    assert await world.service.handle_deadline("n1", 0, "notice") is Outcome.MOVED_ON
    history = [e["kind"] for e in await shell.history(world.service, "n1")]
    assert history == ["posted", "ended"]


async def test_the_list_shows_the_notices_in_force_here(world: World) -> None:
    await post(world)
    resident = world.person(Role.RESIDENT, "H-02")
    listed = await world.service.handle_message(world.message(resident, "通知列表"))
    assert listed.detail == "notice_list"
    text = (await world.outbox())[-1]["text"]
    assert "n1" in text and "东联村" in text
    elsewhere = world.person(Role.RESIDENT, "H-06")
    await world.service.handle_message(world.message(elsewhere, "/notices"))
    assert "没有生效的通知" in (await world.outbox())[-1]["text"]


@pytest.mark.parametrize(
    ("who", "text", "reason"),
    [
        ((Role.RESIDENT, "H-01"), "/notice 停水 东联村 9:00-12:00 维修", "not_handler"),
        ((Role.GRID_WORKER, "G-01"), "通知 停水 东联村 9:00-12:00 维修", "notice_refused"),
        ((Role.VILLAGE_CADRE, "V-01"), "通知 停水 火星村 9:00-12:00 维修", "notice_refused"),
        ((Role.VILLAGE_CADRE, "V-01"), "通知 停水 东联村 明早 维修", "notice_refused"),
        ((Role.VILLAGE_CADRE, "V-01"), "通知 停水 东联村 7:00-7:30 维修", "notice_refused"),
        ((Role.VILLAGE_CADRE, "V-01"), "通知", "notice_refused"),
        ((Role.VILLAGE_CADRE, "V-01"), "结束通知 n9", "notice_refused"),
    ],
)
async def test_a_bad_or_unauthorised_notice_is_refused_and_changes_nothing(
    world: World, who: tuple[Role, str], text: str, reason: str
) -> None:
    before = await snapshot(world)
    handled = await world.service.handle_message(world.message(world.person(*who), text))
    assert (handled.status, handled.detail) == ("refused", reason)
    after = await snapshot(world)
    outbox = after.pop(keys.outbox("telegram").encode().decode(), [])
    after = {k: v for k, v in after.items() if not k.startswith(("lianhu:msg:", "lianhu:pace:"))}
    assert after == before  # no notice, no id taken, no deadline: only the refusal queued
    assert len(outbox) == 1


class ModelSaysUtilities:
    """Stands in for the learned model (never trained in tests) when it calls a text an outage.

    The keyword rails already keep these texts from tickets; the model may not, and the
    announcement check must hold whatever the model says.
    """

    async def classify(self, text: str) -> Verdict:
        match = Match("utilities", "model", 1, Severity.NORMAL, False, Tier.VILLAGE, ())
        return Verdict("utilities", Tier.VILLAGE, 0.9, Action.TICKET, False, Source.MODEL,
                       match=match)  # fmt: skip

    def update(self, ruleset: object) -> None:
        return None


async def test_a_forwarded_outage_notice_never_becomes_a_ticket(world: World) -> None:
    world.service.classifier = ModelSaysUtilities()  # type: ignore[assignment]
    resident = world.person(Role.RESIDENT, "H-01")
    handled = await world.service.handle_message(world.message(resident, "楼下停水了"))
    assert handled.status == "opened"  # the stand-in does ticket a report
    for text in [
        "【停水通知】因管道维修，东联村将于12月5日9:00-12:00停水，请提前储水",
        "通知：因管道维修，明天9:00-12:00计划停水，请相互转告",
    ]:
        before = len(await world.outbox())
        handled = await world.service.handle_message(world.message(resident, text))
        assert (handled.status, handled.detail) == ("ignored", "announcement"), text
        assert len(await world.outbox()) == before  # no answer in the group
    assert len(await world.store.all_ids()) == 1


async def test_a_notice_window_closes_through_the_rq_worker(
    redis_url: str, redis_async: redis.asyncio.Redis, redis_sync: redis.Redis
) -> None:
    """The job stored with the notice is a real rq job: `lianhu worker` runs it and it ends."""
    import time

    config = LiveConfig(RULES_DIR, ORG, Policy())
    clock = Clock(time.time() - 3600)  # posted an hour ago, for a window that is now over
    service = Service(RedisStore(redis_async), config, RqScheduler(redis_sync), clock)
    start = dt.datetime.fromtimestamp(clock.now, ZONE)
    end = start + dt.timedelta(minutes=30)
    cadre = next(p for p in config.tree.people.values() if p.role is Role.VILLAGE_CADRE)
    # The date written out; an end past midnight is read as the next day.
    text = f"通知 停水 {cadre.scope} {start.month}月{start.day}日 {start:%H:%M}-{end:%H:%M} 维修"
    world = World(service, service.store, redis_async, clock,
                  Schedules(RqScheduler(redis_sync)), config.tree)  # fmt: skip
    assert await post_as(world, cadre, text) == "n1"
    registry = ScheduledJobRegistry(queue=RqScheduler(redis_sync).queue)
    assert len(registry.get_job_ids()) == 1
    result = helpers.run_worker(redis_url, 1.0)
    assert result.returncode == 0, result.stderr
    found = await shell.get(service, "n1")
    assert found is not None and found.state == "ended"
    assert await redis_async.zcard(keys.DEADLINES) == 0


async def post_as(world: World, person: Any, text: str) -> str:
    handled = await world.service.handle_message(world.message(person, text))
    assert handled.status == "done", handled
    return handled.detail
