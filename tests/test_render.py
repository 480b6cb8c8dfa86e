"""The chat texts: every template in every language, rendered from what the core really sends."""

from __future__ import annotations

import datetime as dt
import re
import shutil
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bot.core import deadlines as dl
from bot.core.classify import classify
from bot.core.commands import BadCommand, Command, Verb, Via, parse
from bot.core.models import Actor, IncomingMessage, Lang, Reply
from bot.core.org import OrgTree
from bot.core.rules import RuleSet
from bot.core.stats import node_stats
from bot.core.ticket import Ticket, TicketEvent
from bot.core.workflow import (
    Context,
    Decision,
    Refusal,
    apply,
    join_ticket,
    on_deadline,
    open_ticket,
    ticket_params,
)
from bot.render import CHINA_STANDARD_TIME, MAX_LENGTH, Renderer, UnknownTemplate, fit
from bot.sources import load_org, load_ruleset

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "templates"
CST = dt.timezone(dt.timedelta(hours=8))
NOW = dt.datetime(2024, 11, 24, 14, 0, tzinfo=CST).timestamp()
HOUR = 3600.0

NOTICES = [
    "ticket_opened", "emergency_opened", "inquiry_opened", "ticket_joined", "card", "department_card",
    "acknowledged", "noted", "assigned", "handed", "resolved", "closed", "reopened", "dismissed",
    "escalated", "overdue", "flagged", "rated", "status",
]  # fmt: skip
REFUSALS = [
    "co_reporter", "not_reporter", "ticket_final", "not_in_scope", "not_handler", "not_admin",
    "already_resolved", "already_acknowledged", "at_top", "unknown_command", "closed_report_again",
    "not_resolved", "unknown_person", "assignee_out_of_scope", "no_such_ticket", "needs_id",
    "needs_text", "needs_target", "needs_rating",
]  # fmt: skip
MESSAGES = [
    "ticket_list", "stats", "help", "replied_privately", "rules_invalid", "rules_reloaded",
    "slow_down",
]  # fmt: skip
TEMPLATE_NAMES = NOTICES + REFUSALS + MESSAGES

NOISE = "楼下大排档天天搞到凌晨两点，吵到冇觉瞓，老板电话13812345678"
NOISE_AGAIN = "楼下大排档夜晚好嘈，吵到凌晨两点都未收档"
FAMILY = "隔壁两公婆成日嗌交，老公同老婆闹离婚，小朋友喊到好惨，身份证号440301199003071234"
FIRE = "着火了！5楼厨房冒出好大的火"
INQUIRY = "想问下喺边度可以办居住证"
LEAKING = "楼道的水管爆了，水流得到处都是"


# -- driving the real core over the sample street --------------------------------------------


@pytest.fixture(scope="module")
def ruleset() -> RuleSet:
    return load_ruleset(ROOT / "routing_rules")


@pytest.fixture(scope="module")
def tree() -> OrgTree:
    return load_org(ROOT / "org" / "sample_street.yaml")


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(TEMPLATES)


class Street:
    """A small driver of the pure core: reports and commands as the shell would make them."""

    def __init__(self, ruleset: RuleSet, tree: OrgTree) -> None:
        self.ctx = Context(ruleset, tree)
        self.tree = tree
        self.tickets: dict[str, Ticket] = {}
        self.histories: dict[str, list[TicketEvent]] = defaultdict(list)
        self.replies: dict[str, list[Reply]] = defaultdict(list)
        self.seq = 0

    def actor(self, person: str) -> Actor:
        p = self.tree.people[person]
        return Actor(p.accounts[0], p.name, p.id, p.lang)

    def _message(self, person: str, text: str, **extra: Any) -> IncomingMessage:
        self.seq += 1
        chat = self.tree.nodes[self.tree.people[person].scope].chats[0]
        return IncomingMessage(chat, f"m{self.seq}", self.actor(person), text, NOW, **extra)

    def _keep(self, decision: Decision) -> Ticket:
        self.tickets[decision.ticket.id] = decision.ticket
        self.histories[decision.ticket.id] += decision.events
        for reply in decision.replies:
            self.replies[reply.template].append(reply)
        return decision.ticket

    def report(self, person: str, text: str, **extra: Any) -> Ticket:
        message = self._message(person, text, **extra)
        match = classify(text, self.ctx.ruleset)
        assert match is not None, text
        origin = self.tree.nodes[self.tree.people[person].scope]
        return self._keep(
            open_ticket(self.ctx, str(len(self.tickets) + 41), message, match, origin, NOW)
        )

    def join(self, ticket: str, person: str, text: str) -> Ticket:
        message = self._message(person, text)
        return self._keep(join_ticket(self.ctx, self.tickets[ticket], message, NOW + 60))

    def do(self, person: str, text: str, at: float = NOW + HOUR) -> Ticket | Refusal:
        command = parse(text)
        assert isinstance(command, Command), text
        return self.command(person, command, at)

    def command(self, person: str, command: Command, at: float = NOW + HOUR) -> Ticket | Refusal:
        assert command.ticket is not None
        actor = self.actor(person)
        chat = self.tree.nodes[self.tree.people[person].scope].chats[0]
        person_ = self.tree.people[person]
        outcome = apply(self.ctx, self.tickets[command.ticket], command, actor, person_, chat, at)
        if isinstance(outcome, Refusal):
            self.replies[outcome.reason].append(
                Reply(chat, outcome.reason, outcome.params, actor.lang)
            )
            return outcome
        return self._keep(outcome)

    def deadline(self, ticket: str, kind: dl.DeadlineKind, at: float) -> dl.Outcome:
        t = self.tickets[ticket]
        outcome, decision = on_deadline(self.ctx, t, kind, t.stage, at)
        if decision is not None:
            self._keep(decision)
        return outcome

    def refuse(self, person: str, text: str) -> None:
        """Record the refusal the shell sends for a command that does not parse."""
        command = parse(text)
        assert isinstance(command, BadCommand), text
        self.answer(person, command.problem, {"verb": command.verb.value})

    def answer(self, person: str, template: str, params: dict[str, Any]) -> None:
        chat = self.tree.nodes[self.tree.people[person].scope].chats[0]
        self.replies[template].append(Reply(chat, template, params, self.actor(person).lang))


@pytest.fixture(scope="module")
def street(ruleset: RuleSet, tree: OrgTree) -> Street:
    """Return a street after a day of reports, commands and deadlines: every template used."""
    s = Street(ruleset, tree)
    # A noise complaint in H-01 with a phone number, photos and a location; a neighbour joins.
    noise = s.report(
        "p-chen-zhiqiang", NOISE, photos=("photo-1", "photo-2"), location=(22.75, 114.52)
    ).id
    s.join(noise, "p-luo-jiahao", NOISE_AGAIN)
    s.join(noise, "p-luo-jiahao", NOISE_AGAIN)  # the same person again: a reminder
    s.do("p-chen-zhiqiang", f"受理 {noise}")  # a resident may not act
    s.do("p-pan-lijuan", f"受理 {noise}")  # a grid worker of another grid
    s.do("p-chen-zhiqiang", f"确认 {noise}")  # nothing to confirm yet
    s.do("p-zhong-zhiwei", f"受理 {noise}")
    s.do("p-zhong-zhiwei", f"受理 {noise}")  # twice
    s.do("p-zhong-zhiwei", f"备注 {noise} 今晚十点上门劝导")
    s.do("p-chen-zhiqiang", f"备注 {noise} 今晚又开始吵了")
    s.do("p-zhong-zhiwei", f"转派 {noise} @不存在的人")
    s.do("p-zhong-zhiwei", f"转派 {noise} p-pan-lijuan 请协助")
    s.do("p-zhong-zhiwei", f"转派 {noise} 冼建华 请跟进")
    s.do("p-huang-meiling", f"查询 {noise}")  # another village's resident
    s.do("p-chen-zhiqiang", f"查询 {noise}")
    s.command("p-zhong-zhiwei", Command(Verb.MY, noise))  # not a command on a ticket
    s.do("p-zhong-zhiwei", f"办结 {noise} 已约谈店主，承诺晚上十点前收档", at=NOW + 5 * HOUR)
    s.do("p-zhong-zhiwei", f"受理 {noise}")  # already resolved
    s.do("p-luo-jiahao", f"评价 {noise} 5")  # a joined reporter: the first reporter rates
    s.do("p-huang-meiling", f"确认 {noise}")  # another village's resident: not found
    s.do("p-zhong-zhiwei", f"确认 {noise}")  # a handler, not the reporter
    s.do("p-chen-zhiqiang", f"确认 {noise}", at=NOW + 6 * HOUR)
    s.do("p-chen-zhiqiang", f"评价 {noise} 5", at=NOW + 6 * HOUR)
    s.do("p-chen-zhiqiang", f"重开 {noise} 又吵了")  # closed: report again
    s.do("p-zhong-zhiwei", f"备注 {noise} 补记")  # final

    # A leak: escalated on purpose, then resolved, reopened, handed to a department, dismissed.
    leak = s.report("p-liang-guohua", LEAKING).id
    s.do("p-yang-zixuan", f"办结 {leak} 已关闭总阀并更换水管")
    s.do("p-liang-guohua", f"重开 {leak} 还是在漏水")
    s.do("p-yang-zixuan", f"上报 {leak} 主管破裂，需街道协调维修")
    s.do("p-luo-bingkun", f"上报 {leak} 再上报")  # the street is the top
    s.do("p-pan-lijuan", f"受理 {leak}")  # the origin's grid worker: now with the street
    s.do("p-luo-bingkun", f"转派 {leak} housing 请住建办派人维修")
    s.do("p-gan-baolian", f"驳回 {leak} 属物业维修范围，已告知物业")

    # Deadlines: a missed acknowledgement climbs; at the top it is flagged; silence closes.
    late = s.report("p-lin-weiming", NOISE).id
    assert s.deadline(late, dl.DeadlineKind.ACK, NOW + 30 * 24 * HOUR) is dl.Outcome.ESCALATE
    assert s.deadline(late, dl.DeadlineKind.ACK, NOW + 60 * 24 * HOUR) is dl.Outcome.ESCALATE
    assert s.deadline(late, dl.DeadlineKind.ACK, NOW + 90 * 24 * HOUR) is dl.Outcome.FLAG
    s.do("p-luo-bingkun", f"办结 {late} 已处理", at=NOW + 91 * 24 * HOUR)
    assert s.deadline(late, dl.DeadlineKind.CLOSE, NOW + 99 * 24 * HOUR) is dl.Outcome.CLOSE

    # An emergency, a policy question and a sensitive family matter (staff only).
    s.report("p-he-shufen", FIRE)
    s.report("p-zhang-lihua", INQUIRY)
    family = s.report("p-deng-jiahui", FAMILY).id
    s.do("p-wen-runsheng", f"备注 {family} 已联系妇联和社区民警")
    s.do("p-wen-runsheng", f"办结 {family} 已调解，双方签订协议")

    # The shell's own answers: bad commands, lists, statistics, help and administration.
    s.refuse("p-zhong-zhiwei", "受理")
    s.refuse("p-zhong-zhiwei", "办结 42")
    s.refuse("p-zhong-zhiwei", "转派 42")
    s.refuse("p-chen-zhiqiang", "评价 42 九")
    s.answer("p-chen-zhiqiang", "no_such_ticket", {"id": "999"})
    s.answer("p-chen-zhiqiang", "not_handler", {"verb": "open"})
    s.answer("p-zhong-zhiwei", "not_admin", {"verb": "reload"})
    tickets = [ticket_params(s.ctx, t, masked=True) for t in s.tickets.values()]
    for title in ("my", "mine", "open"):
        s.answer("p-zhong-zhiwei", "ticket_list", {"title": title, "tickets": tickets})
        s.answer("p-zhong-zhiwei", "ticket_list", {"title": title, "tickets": []})
    rows = node_stats(
        list(s.tickets.values()), [s.histories[t] for t in s.tickets], tree, NOW + 100 * 24 * HOUR
    )
    s.answer("p-luo-bingkun", "stats", {"rows": [vars(r) for r in rows]})
    s.answer("p-luo-bingkun", "stats", {"rows": []})
    for role in ("resident", "handler", "admin"):
        s.answer("p-zhong-zhiwei", "help", {"role": role})
    for platform in ("telegram", "wecom", "sim"):
        s.answer("p-chen-zhiqiang", "replied_privately", {"name": "陈志强", "platform": platform})
        s.answer("p-chen-zhiqiang", "replied_privately", {"platform": platform})
    s.answer("p-chen-zhiqiang", "slow_down", {"name": "陈志强"})
    problems = [
        f"routing_rules/noise.yaml:{i}:5: rules.{i}.keywords: Input should be a valid list"
        for i in range(1, 14)
    ]
    s.answer("p-admin-liu", "rules_invalid", {"problems": problems, "count": len(problems)})
    s.answer("p-admin-liu", "rules_invalid", {"problems": problems[:1], "count": 1})
    s.answer(
        "p-admin-liu",
        "rules_reloaded",
        {"rules": len(ruleset.rules), "categories": len(ruleset.categories)},
    )
    return s


# -- every template, every language ----------------------------------------------------------


def test_the_scenario_uses_every_template(street: Street) -> None:
    assert set(street.replies) == set(TEMPLATE_NAMES)


def test_every_template_the_core_and_rules_name_exists(
    renderer: Renderer, ruleset: RuleSet
) -> None:
    workflow = (ROOT / "bot" / "core" / "workflow.py").read_text(encoding="utf-8")
    used = set(re.findall(r'(?:Refusal\(|Reply\([^,]+, )"([a-z_]+)"', workflow))
    used |= {c.reply_template for c in ruleset.categories.values()}
    assert used  # the pattern still finds them
    for lang in Lang:
        assert used <= renderer.macros(lang), lang
        assert set(TEMPLATE_NAMES) <= renderer.macros(lang), lang


@pytest.mark.parametrize("lang", list(Lang))
@pytest.mark.parametrize("template", TEMPLATE_NAMES)
def test_renders(street: Street, renderer: Renderer, template: str, lang: Lang) -> None:
    replies = street.replies[template]
    assert replies, f"the scenario sends no {template}"
    for reply in replies:
        rendered = renderer.render(replace(reply, lang=lang))
        text = rendered.text
        assert text and text == text.strip()
        assert "\n\n\n" not in text
        assert "None" not in text and "{{" not in text and "{%" not in text
        if template in NOTICES and "id" in reply.params:
            assert f"#{reply.params['id']}" in text
        if lang is not Lang.EN:
            assert re.search(r"[\u4e00-\u9fff]", text)


@pytest.mark.parametrize("lang", list(Lang))
def test_emergency_gives_the_numbers_first(street: Street, renderer: Renderer, lang: Lang) -> None:
    (reply,) = street.replies["emergency_opened"]
    text = renderer.render(replace(reply, lang=lang)).text
    head = "\n".join(text.splitlines()[:2])
    assert "110" in head and "119" in head and "120" in head


# What to do when the private answer did not arrive differs by platform: only Telegram needs
# /start; a WeCom robot answers once they write to it; the simulator's private chat is a list item.
PRIVATE_ADVICE = {
    "telegram": {Lang.ZH_HANS: "/start", Lang.ZH_HANT: "/start", Lang.EN: "/start"},
    "wecom": {Lang.ZH_HANS: "企业微信", Lang.ZH_HANT: "企業微信", Lang.EN: "WeCom"},
    "sim": {Lang.ZH_HANS: "「联户助手」", Lang.ZH_HANT: "「聯戶助手」", Lang.EN: '"Lianhu"'},
}


@pytest.mark.parametrize("lang", list(Lang))
@pytest.mark.parametrize("platform", list(PRIVATE_ADVICE))
def test_a_private_answer_tells_how_to_find_it_on_the_platform_of_the_group(
    ruleset: RuleSet, tree: OrgTree, renderer: Renderer, platform: str, lang: Lang
) -> None:
    s = Street(ruleset, tree)
    chat = f"{platform}:-1001000000131" if platform != "sim" else "sim:H-01"
    resident = replace(s.actor("p-chen-zhiqiang"), lang=lang)
    message = IncomingMessage(chat, "m1", resident, FAMILY, NOW)
    match = classify(FAMILY, ruleset)
    assert match is not None
    decision = open_ticket(s.ctx, "41", message, match, tree.nodes["H-01"], NOW)
    (reply,) = [r for r in decision.replies if r.template == "replied_privately"]
    text = renderer.render(reply).text
    assert PRIVATE_ADVICE[platform][lang] in text
    if platform != "telegram":
        assert "/start" not in text
    # The same for a staff-only ticket's status asked in the group.
    status = apply(
        s.ctx, decision.ticket, Command(Verb.STATUS, "41"), resident, None, chat, NOW + 60
    )
    assert isinstance(status, Decision)
    (reply,) = [r for r in status.replies if r.template == "replied_privately"]
    assert PRIVATE_ADVICE[platform][lang] in renderer.render(reply).text


@pytest.mark.parametrize("lang", list(Lang))
def test_a_redacted_card_shows_no_text_and_no_reporter(
    street: Street, renderer: Renderer, lang: Lang
) -> None:
    family = next(t for t in street.tickets.values() if t.text == FAMILY)
    replies = [r for rs in street.replies.values() for r in rs if r.ticket == family.id]
    redacted = [r for r in replies if r.params.get("redacted")]
    assert {r.template for r in redacted} == {"card", "department_card"}
    # Notices to the public chat of a node without a staff chat are redacted the same way.
    notices = [r for r in replies if r.params.get("redacted") is False]
    redacted += [replace(r, params={**r.params, "redacted": True}) for r in notices]
    assert {"noted", "resolved"} <= {r.template for r in redacted}
    for reply in redacted:
        text = renderer.render(replace(reply, lang=lang)).text
        assert f"#{family.id}" in text
        secrets = (
            "两公婆",
            "440301",
            "1234",
            "已联系妇联",
            "签订协议",
            "3组",
            family.reporter.name,
        )
        for secret in secrets:
            assert secret not in text, (reply.template, text)
    staff = [
        r for r in street.replies["card"] if r.ticket == family.id and not r.params.get("redacted")
    ]
    assert staff, "the staff chat gets the full card"
    full = renderer.render(replace(staff[0], lang=lang)).text
    assert "两公婆" in full and family.reporter.name in full


def test_public_texts_are_masked(street: Street, renderer: Renderer) -> None:
    for template, replies in street.replies.items():
        for reply in replies:
            text = renderer.render(reply).text
            if reply.chat.startswith("telegram:-"):  # a group
                assert "13812345678" not in text, template


def test_a_card_names_deadlines_origin_and_reporters(street: Street, renderer: Renderer) -> None:
    noise = next(t for t in street.tickets.values() if t.text == NOISE)
    card = next(r for r in street.replies["card"] if r.ticket == noise.id)
    text = renderer.render(card).text
    assert text.startswith("📋")
    assert "噪音扰民" in text and "东联村1组联户群" in text and "陈志强" in text
    assert "138****5678" in text and "11月26日 14:00 前受理" in text  # low severity: 48 h
    en = renderer.render(replace(card, lang=Lang.EN)).text
    assert "Noise" in en and "Acknowledge by 26 Nov 14:00" in en


def test_escalation_cards_say_from_where_and_why(street: Street, renderer: Renderer) -> None:
    leak = next(t for t in street.tickets.values() if t.text == LEAKING)
    cards = [renderer.render(r).text for r in street.replies["card"] if r.ticket == leak.id]
    assert any("主管破裂" in c and "东联村" in c for c in cards)  # on purpose, with the reason
    assert any("还是在漏水" in c for c in cards)  # reopened
    late = [renderer.render(r).text for r in street.replies["card"] if r.params.get("missed")]
    assert late and all("超时未受理" in c for c in late)


def test_the_assignee_gets_a_private_card(street: Street, renderer: Renderer) -> None:
    (card,) = [r for r in street.replies["card"] if r.params.get("assigned")]
    assert "指派给您" in renderer.render(card).text
    assert "assigned to you" in renderer.render(replace(card, lang=Lang.EN)).text


def test_closed_invites_a_rating_in_each_way_it_closes(street: Street, renderer: Renderer) -> None:
    by = {r.params["by"] for r in street.replies["closed"]}
    assert by == {"reporter", "timeout"}
    for reply in street.replies["closed"]:
        rendered = renderer.render(reply)
        if reply.params.get("co_reporter"):  # rating is the first reporter's; 重开 their own
            assert "评分" not in rendered.text
            assert [data for _, data in rendered.buttons] == [f"reopen:{reply.ticket}"]
        elif "redacted" not in reply.params:  # to the resident
            assert "评分" in rendered.text
            assert [data for _, data in rendered.buttons] == [
                f"rate:{reply.ticket}:{n}" for n in range(1, 6)
            ]


def test_help_lists_the_chinese_aliases(renderer: Renderer) -> None:
    resident = renderer.text("help", {"role": "resident"}, Lang.ZH_HANS)
    handler = renderer.text("help", {"role": "handler"}, Lang.ZH_HANS)
    admin = renderer.text("help", {"role": "admin"}, Lang.ZH_HANS)
    for word in ("查询", "我的", "确认", "重开", "评价", "/status"):
        assert word in resident
    assert "受理" not in resident
    for word in ("受理", "办结", "上报", "转派", "驳回", "备注", "待办", "统计", "/ack"):
        assert word in handler
    assert "/reload" in admin and "/reload" not in handler
    assert "辦結" in renderer.text("help", {"role": "handler"}, Lang.ZH_HANT)
    assert "/resolve" in renderer.text("help", {"role": "handler"}, Lang.EN)


def test_lists_and_stats(street: Street, renderer: Renderer) -> None:
    lists = {
        (r.params["title"], bool(r.params["tickets"])): renderer.render(r).text
        for r in street.replies["ticket_list"]
    }
    assert "暂时没有" in lists["open", False]
    assert "#41" in lists["my", True] and "#41" not in lists["my", False]
    stats = renderer.render(street.replies["stats"][0]).text
    assert "东联村第一网格" in stats and "%" in stats and "网格合计" in stats
    assert "暂无数据" in renderer.render(street.replies["stats"][1]).text


def test_rules_invalid_names_each_problem(renderer: Renderer) -> None:
    problems = ["routing_rules/noise.yaml:12:5: rules.0.keywords: Input should be a valid list"]
    text = renderer.text("rules_invalid", {"problems": problems, "count": 1}, Lang.ZH_HANS)
    assert problems[0] in text
    many = [f"a.yaml:{i}:1: x: bad" for i in range(30)]
    text = renderer.text("rules_invalid", {"problems": many, "count": 30}, Lang.EN)
    assert "a.yaml:9:1" in text and "a.yaml:10:1" not in text and "30" in text


# -- buttons ---------------------------------------------------------------------------------

LABELS = {
    Lang.ZH_HANS: ["受理", "办结", "上报", "确认", "重开"],
    Lang.ZH_HANT: ["受理", "辦結", "上報", "確認", "重開"],
    Lang.EN: ["Acknowledge", "Resolve", "Escalate", "Confirm", "Reopen"],
}


@pytest.mark.parametrize("lang", list(Lang))
def test_buttons(renderer: Renderer, lang: Lang) -> None:
    reply = Reply("sim:G-01", "rated", {"id": "42", "category": "noise", "category_names": {}, "rating": 5},
                  lang, ticket="42", buttons=("ack", "resolve", "escalate", "confirm", "reopen"))  # fmt: skip
    rendered = renderer.render(reply)
    assert rendered.buttons == tuple(
        zip(
            LABELS[lang],
            ["ack:42", "resolve:42", "escalate:42", "confirm:42", "reopen:42"],
            strict=True,
        )
    )
    rate = renderer.render(replace(reply, buttons=("rate",)))
    assert rate.buttons == tuple((f"★{n}", f"rate:42:{n}") for n in range(1, 6))
    for _, data in rate.buttons:
        assert parse("", callback=data) == Command(
            Verb.RATE, "42", rating=int(data[-1]), via=Via.BUTTON
        )


def test_card_buttons_come_from_the_core(street: Street, renderer: Renderer) -> None:
    card = street.replies["card"][0]
    assert card.ticket
    rendered = renderer.render(card)
    assert [d for _, d in rendered.buttons] == [
        f"{a}:{card.ticket}" for a in ("ack", "resolve", "escalate")
    ]
    resolved = next(r for r in street.replies["resolved"] if r.buttons)
    assert [label for label, _ in renderer.render(resolved).buttons] == ["确认", "重开"]


def test_no_buttons_without_a_ticket(renderer: Renderer) -> None:
    with pytest.raises(ValueError, match="no ticket"):
        renderer.render(
            Reply("sim:H-01", "rules_reloaded", {"rules": 1, "categories": 1}, buttons=("ack",))
        )


# -- limits and errors -----------------------------------------------------------------------


def test_a_long_message_is_cut_to_telegrams_limit(renderer: Renderer) -> None:
    problems = [
        f"routing_rules/noise.yaml:{i}:5: rules.0.keywords: " + "很长的说明" * 200
        for i in range(10)
    ]
    text = renderer.text("rules_invalid", {"problems": problems, "count": 10}, Lang.ZH_HANS)
    assert len(text) == MAX_LENGTH and text.endswith("…")
    assert text.startswith("⚠️")


def test_fit_counts_utf16_units_like_telegram() -> None:
    assert fit("短") == "短"
    assert fit("字" * MAX_LENGTH) == "字" * MAX_LENGTH
    assert fit("字" * (MAX_LENGTH + 1)) == "字" * (MAX_LENGTH - 1) + "…"
    emoji = fit("🚨" * 3000)  # two UTF-16 units each
    assert emoji.endswith("…") and len(emoji.encode("utf-16-le")) // 2 <= MAX_LENGTH
    assert fit("字 " * 3000).endswith("字…")  # no space before the ellipsis


@pytest.mark.parametrize("lang", list(Lang))
def test_unknown_template(renderer: Renderer, lang: Lang) -> None:
    with pytest.raises(UnknownTemplate, match=rf"'no_such_template'.*{lang.value}"):
        renderer.text("no_such_template", {}, lang)
    with pytest.raises(UnknownTemplate):
        renderer.render(Reply("sim:H-01", "no_such_template", {}, lang))


def test_a_missing_parameter_is_an_error(renderer: Renderer) -> None:
    from jinja2 import UndefinedError

    with pytest.raises(UndefinedError):
        renderer.text("no_such_ticket", {}, Lang.ZH_HANS)


# -- formatting helpers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lang", "expected"),
    [(Lang.ZH_HANS, "11月24日 14:00"), (Lang.ZH_HANT, "11月24日 14:00"), (Lang.EN, "24 Nov 14:00")],
)
def test_when(renderer: Renderer, lang: Lang, expected: str) -> None:
    reply = Reply("sim:H-01", "status", {**_ticket(), "ack_due": NOW}, lang)
    assert expected in renderer.render(reply).text


def test_when_is_local_time_in_china_whatever_the_process_zone() -> None:
    utc = dt.datetime(2024, 11, 30, 16, 5, tzinfo=dt.UTC).timestamp()  # 1 Dec 00:05 in Guangdong
    for tz in (None, CHINA_STANDARD_TIME):
        renderer = Renderer(TEMPLATES, tz=tz)
        params = {**_ticket(), "ack_due": utc}
        assert "12月1日 00:05" in renderer.text("status", params, Lang.ZH_HANS)
        assert "1 Dec 00:05" in renderer.text("status", params, Lang.EN)


def test_local_zone_falls_back_when_tzdata_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    import zoneinfo

    import bot.render

    def missing(key: str) -> zoneinfo.ZoneInfo:
        raise zoneinfo.ZoneInfoNotFoundError(key)

    monkeypatch.setattr(bot.render, "ZoneInfo", missing)
    assert bot.render.local_zone() is CHINA_STANDARD_TIME


def test_category_falls_back_to_simplified(renderer: Renderer) -> None:
    params = {**_ticket(), "category_names": {"zh-Hans": "噪音扰民"}}
    assert "噪音扰民" in renderer.text("status", params, Lang.EN)
    params = {**_ticket(), "category_names": {"zh-Hans": "噪音扰民", "en": "Noise"}}
    assert "Noise" in renderer.text("status", params, Lang.EN)


def test_node_names_in_the_readers_language_when_given(renderer: Renderer) -> None:
    params = {**_ticket(), "node_names": {"en": "Donglian Grid 1"}}
    assert "Donglian Grid 1" in renderer.text("status", params, Lang.EN)
    assert "东联村第一网格" in renderer.text("status", params, Lang.ZH_HANS)


@pytest.mark.parametrize("lang", list(Lang))
def test_state_names(renderer: Renderer, lang: Lang) -> None:
    names = {renderer.text("status", {**_ticket(), "state": s}, lang).splitlines()[1] for s in
             ("open", "acknowledged", "resolved", "closed", "escalated", "reopened", "dismissed")}  # fmt: skip
    assert len(names) == 7


def test_durations_and_rates(renderer: Renderer) -> None:
    row = {"node": "G-01", "node_name": "东联村第一网格", "tier": "grid", "open": 2, "overdue": 1,
           "response_rate": 0.875, "resolution_rate": None, "satisfaction_rate": 1.0,
           "median_ack": 25 * 60.0, "median_resolve": 26 * HOUR + 30 * 60}  # fmt: skip
    zh = renderer.text("stats", {"rows": [row]}, Lang.ZH_HANS)
    assert "88%" in zh and "—" in zh and "100%" in zh and "25分钟" in zh and "1天2小时" in zh
    en = renderer.text("stats", {"rows": [row]}, Lang.EN)
    assert "25 min" in en and "1 d 2 h" in en


def _ticket() -> dict[str, Any]:
    return {
        "id": "42", "category": "noise", "category_names": {"zh-Hans": "噪音扰民", "zh-Hant": "噪音擾民", "en": "Noise"},
        "severity": "low", "urgent": False, "state": "open", "text": "楼下好吵", "reporter": "陈志强",
        "reporters": 1, "origin": "H-01", "origin_name": "东联村1组联户群", "node": "G-01",
        "node_name": "东联村第一网格", "ack_due": NOW, "resolve_due": NOW + 48 * HOUR, "created_at": NOW,
        "escalations": 0, "assignee": None, "resolution": "", "rating": None, "photos": 0,
        "has_location": False,
    }  # fmt: skip


# -- the language files agree ----------------------------------------------------------------


def macro_mismatches(renderer: Renderer) -> dict[Lang, set[str]]:
    """Return, per language, the macros it lacks or adds compared with zh-Hans."""
    expected = renderer.macros(Lang.ZH_HANS)
    return {
        lang: set(renderer.macros(lang) ^ expected)
        for lang in Lang
        if renderer.macros(lang) != expected
    }


def test_every_language_defines_the_same_macros(renderer: Renderer) -> None:
    assert set(TEMPLATE_NAMES) <= renderer.macros(Lang.ZH_HANS)
    assert macro_mismatches(renderer) == {}


def test_a_macro_missing_from_one_language_is_caught(tmp_path: Path) -> None:
    shutil.copytree(TEMPLATES, tmp_path / "templates")
    en = tmp_path / "templates" / "chat" / "en.j2"
    text = en.read_text(encoding="utf-8")
    start = text.index("{% macro rated(p) %}")
    end = text.index("{% endmacro %}", start) + len("{% endmacro %}")
    en.write_text(text[:start] + text[end:], encoding="utf-8")
    assert macro_mismatches(Renderer(tmp_path / "templates")) == {Lang.EN: {"rated"}}


def test_a_co_reporter_is_told_the_same_way_on_in_every_language(
    street: Street, renderer: Renderer
) -> None:
    """Walked in the demo: in English a co-reporter was told to send /note, in Chinese 重开."""
    words = {Lang.ZH_HANS: "重开 {id}", Lang.ZH_HANT: "重開 {id}", Lang.EN: "/reopen {id}"}
    told = [r for r in street.replies["resolved"] if r.params.get("co_reporter")]
    assert told
    for reply in told:
        for lang, word in words.items():
            text = renderer.render(replace(reply, lang=lang)).text
            assert word.format(id=reply.ticket) in text, (lang, text)


def test_a_notice_whose_question_is_answered_stops_asking(
    street: Street, renderer: Renderer
) -> None:
    """Its buttons gone (bot.card_edits), a notice no longer says 请点「确认」 or asks for stars."""
    asked = [r for r in street.replies["resolved"] if r.buttons == ("confirm", "reopen")]
    rated = [r for r in street.replies["closed"] if r.buttons == ("rate",)]
    assert asked and rated
    for reply in (*asked, *rated):
        for lang in Lang:
            before = renderer.render(replace(reply, lang=lang)).text
            after = renderer.render(
                replace(reply, lang=lang, params={**reply.params, "answered": True})
            ).text
            assert after.split("\n")[0] == before.split("\n")[0]
            for asking in ("请点", "請點", "Tap Confirm", "评分", "評分", "rate our service"):
                assert asking not in after, (lang, after)


@pytest.mark.parametrize("lang", list(Lang))
def test_an_assignees_card_recorded_before_it_named_its_person_still_says_theirs(
    street: Street, renderer: Renderer, lang: Lang
) -> None:
    """A private card sent before cards named whom they were assigned to (``assigned=True``)
    and edited to a view that names the assignee (``assignee_id``) still tells its reader the
    ticket is theirs, not "it was assigned to you, now with …"."""
    card = next(r for r in street.replies["card"] if r.params.get("assigned"))
    person = card.params["assigned"]
    old = {**card.params, "assigned": True, "assignee_id": person}
    now = {**card.params, "assigned": person, "assignee_id": person}
    moved = {**card.params, "assigned": person, "assignee_id": "p-someone-else"}
    text = {
        name: renderer.render(replace(card, params=params, lang=lang)).text
        for name, params in (("old", old), ("now", now), ("moved", moved))
    }
    head = {name: next(line for line in t.splitlines() if "👤" in line) for name, t in text.items()}
    assert head["old"] == head["now"] != head["moved"], head
