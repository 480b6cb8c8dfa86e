"""Notices of known incidents: a planned outage answers the residents who report it.

Staff post ``通知 停水 东联村 9:00-12:00 因管道维修停水`` (or ``/notice …``): a category,
the places it covers (nodes), a time window and the text. While the window is open, a
resident's report of that category from a household group inside one of the places is
answered with the notice instead of opening a ticket, and counted on it. The notice goes
once to every household group of its places; it ends itself when the window closes (a
deadline in the ticket deadline index, ``n3:0:notice``), or earlier at a handler's word.

Pure: the shell (bot/notices.py) loads notices, calls these with ``now`` and the local
zone, and commits the step they return with the notice's history length as the guard.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from bot.core import deadlines as dl
from bot.core.classify import classify
from bot.core.models import Actor, Lang, Reply
from bot.core.org import HANDLER_ROLES, Node, NodeKind, OrgTree, Person, ancestors, may_act
from bot.core.rules import RuleSet
from bot.core.text import normalise
from bot.core.workflow import Refusal, category_named

NOTICE_KIND = "notice"  # the kind of a notice's deadline in the DEADLINES index
LONGEST = 14 * 24 * 3600.0  # a window longer than two weeks is a typo, not an outage
NOT_FOR_NOTICES = frozenset({"emergency", "none"})  # an emergency is never answered by a notice


class NoticeState(StrEnum):
    """Whether a notice still answers reports."""

    ACTIVE = "active"
    ENDED = "ended"


@dataclass(frozen=True)
class Draft:
    """A notice as a person wrote it, checked against the rules and the tree."""

    category: str
    nodes: tuple[str, ...]
    starts: float
    ends: float
    text: str


@dataclass(frozen=True)
class Notice:
    """A posted notice: what, where, when, and how many reports it answered."""

    id: str  # "n3": also its deadline's id in the DEADLINES index
    category: str
    nodes: tuple[str, ...]
    starts: float
    ends: float
    text: str
    author: str  # the poster's account
    author_name: str
    chat: str  # where it was posted
    lang: str
    created_at: float
    state: NoticeState = NoticeState.ACTIVE
    answered: int = 0  # reports answered with it instead of a ticket
    ended_at: float | None = None
    ended_by: str | None = None  # an account, or "system" when the window closed
    seq: int = 1  # entries in its history: the commit guard

    def active(self, now: float) -> bool:
        """Return whether the notice answers reports at ``now``."""
        return self.state is NoticeState.ACTIVE and self.starts <= now < self.ends

    def to_dict(self) -> dict[str, Any]:
        """Return the snapshot as JSON-ready data."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["nodes"] = list(self.nodes)
        out["state"] = self.state.value
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Notice:
        """Return the snapshot stored as ``raw``."""
        data = dict(raw)
        data["nodes"] = tuple(data["nodes"])
        data["state"] = NoticeState(data["state"])
        return cls(**data)


@dataclass(frozen=True)
class Step:
    """A notice after a change, the history entry for it, and what to send."""

    notice: Notice
    event: Mapping[str, Any]
    replies: tuple[Reply, ...] = ()
    due: float | None = None  # the deadline to keep in the index (None: drop it)


@dataclass(frozen=True)
class NoticeProblem:
    """Why a notice could not be read; ``problem`` names a case of ``notice_refused``."""

    problem: str  # usage | category | place | window | window_over | window_long | text
    params: Mapping[str, Any] = field(default_factory=dict)


# -- reading what staff wrote --------------------------------------------------------------

_DATE = (
    r"(?:(?P<{0}word>今天|今日|明天|明日|后天|後天|today|tomorrow)"
    r"|(?:(?P<{0}year>\d{{4}})[-/年.])?(?P<{0}month>\d{{1,2}})(?:月|[-/.])"
    r"(?P<{0}day>\d{{1,2}})[日号號]?)"
)
_TIME = r"(?P<{0}h>\d{{1,2}})(?:[:：点點时時](?P<{0}m>\d{{2}}|半)?分?)"
_DASH = r"\s*(?:-|—|–|~|～|至|到|－)\s*"
_WINDOW = re.compile(
    rf"^\s*(?:{_DATE.format('a')})?\s*(?:全天|all day)?\s*(?:{_TIME.format('a')}{_DASH}"
    rf"(?:(?P<next>次日|翌日|第二天)\s*|{_DATE.format('b')}\s*)?{_TIME.format('b')})?",
    re.I,
)
_LEFT_OVER = re.compile(r"^\s*\d{1,2}[:：点點时時]")  # a time the window did not take
_SPLIT = re.compile(r"[、,，/;；]")


def parse_window(text: str, now: float, zone: dt.tzinfo) -> tuple[float, float, str] | None:
    """Return (start, end, the rest of ``text``) for a window at its start, else None.

    ``9:00-12:00`` is today, ``明天 9:00-12:00`` tomorrow, ``12月5日 9:00-12:00`` that
    day (next year when that date is long past), ``今天`` / ``12月5日`` alone the whole day;
    an end before its start is the next day (``22:00-6:00``, ``22:00-次日6:00``).
    """
    flat = unicodedata.normalize("NFKC", text)  # full-width digits and colons
    m = _WINDOW.match(flat)
    if m is None or not (m.group("aword") or m.group("amonth") or m.group("ah")):
        return None
    if _LEFT_OVER.match(flat[m.end() :]):  # "12月5日 9:00-12月25日": half a window is none
        return None
    # The rest as written (full-width punctuation kept) when folding kept every position.
    text = text if len(flat) == len(text) else flat
    today = dt.datetime.fromtimestamp(now, zone).date()
    day = _day(m, "a", today)
    if day is None:
        return None
    if m.group("ah") is None:
        start = _midnight(day, zone)
        return start.timestamp(), (start + dt.timedelta(days=1)).timestamp(), text[m.end() :]
    begin, end = _clock(m, "a"), _clock(m, "b")
    if begin is None or end is None:
        return None
    last = _day(m, "b", today) if (m.group("bword") or m.group("bmonth")) else day
    if last is None:
        return None
    start = _midnight(day, zone) + begin
    stop = _midnight(last, zone) + end
    if m.group("next") or (stop <= start and last == day):
        stop += dt.timedelta(days=1)
    return start.timestamp(), stop.timestamp(), text[m.end() :]


def _midnight(day: dt.date, zone: dt.tzinfo) -> dt.datetime:
    """Return the start of ``day`` in ``zone``."""
    return dt.datetime(day.year, day.month, day.day, tzinfo=zone)


def _day(m: re.Match[str], which: str, today: dt.date) -> dt.date | None:
    """Return the date a window's start (``a``) or end (``b``) names; ``today`` when none."""
    word = (m.group(f"{which}word") or "").casefold()
    if word in ("今天", "今日", "today") or not (word or m.group(f"{which}month")):
        return today
    if word:
        ahead = {"明天": 1, "明日": 1, "tomorrow": 1, "后天": 2, "後天": 2}[word]
        return today + dt.timedelta(days=ahead)
    year = int(m.group(f"{which}year")) if m.group(f"{which}year") else today.year
    try:
        day = dt.date(year, int(m.group(f"{which}month")), int(m.group(f"{which}day")))
    except ValueError:
        return None
    if not m.group(f"{which}year") and (today - day).days > 31:  # "1月3日" in December
        day = day.replace(year=year + 1)
    return day


def _clock(m: re.Match[str], which: str) -> dt.timedelta | None:
    hour = int(m.group(f"{which}h"))
    raw = m.group(f"{which}m")
    minute = 30 if raw == "半" else int(raw or 0)
    if hour > 24 or minute > 59 or (hour == 24 and minute):
        return None
    return dt.timedelta(hours=hour, minutes=minute)


def parse_notice(
    text: str,
    ruleset: RuleSet,
    tree: OrgTree,
    here: Node | None,
    now: float,
    zone: dt.tzinfo,
) -> Draft | NoticeProblem:
    """Read ``<category> [<places>] <window> <text>``; the places default to ``here``."""
    parts = text.strip().split(None, 1)
    if len(parts) < 2:
        return NoticeProblem("usage")
    word, rest = parts
    category = notice_category(word, ruleset)
    if category is None:
        return NoticeProblem("category", {"word": word})
    window = parse_window(rest, now, zone)
    if window is not None and here is not None:
        nodes: tuple[str, ...] = (here.id,)
    else:
        place, _, after = rest.partition(" ")
        words = [name for name in _SPLIT.split(place) if name]
        found = [find_node(tree, name) for name in words]
        unknown = [w for w, f in zip(words, found, strict=True) if f is None]
        if not words or unknown:
            return NoticeProblem("place", {"word": unknown[0] if unknown else place})
        nodes = tuple(dict.fromkeys(n.id for n in found if n is not None))
        window = parse_window(after, now, zone)
        if window is None:
            return NoticeProblem("window", {"word": after.split(None, 1)[0] if after else ""})
    return _draft(category, nodes, window, now)


def form_draft(
    category: str,
    places: Sequence[str],
    window: str,
    text: str,
    ruleset: RuleSet,
    tree: OrgTree,
    now: float,
    zone: dt.tzinfo,
) -> Draft | NoticeProblem:
    """Read a notice from the console's form: a category id, node ids, a window, the text.

    The same checks as ``parse_notice``: a category notices may name, known places, a window
    as the chat writes it (``明天 9:00-12:00``) that is not over nor longer than two weeks.
    """
    if category not in ruleset.categories or category in NOT_FOR_NOTICES:
        return NoticeProblem("category", {"word": category})
    unknown = [
        p for p in places if p not in tree.nodes or tree.nodes[p].kind is NodeKind.DEPARTMENT
    ]
    if not places or unknown:
        return NoticeProblem("place", {"word": unknown[0] if unknown else ""})
    parsed = parse_window(window, now, zone)
    if parsed is None or parsed[2].strip():
        return NoticeProblem("window", {"word": window.strip()})
    starts, ends, _ = parsed
    return _draft(category, tuple(dict.fromkeys(places)), (starts, ends, text), now)


def _draft(
    category: str, nodes: tuple[str, ...], window: tuple[float, float, str], now: float
) -> Draft | NoticeProblem:
    """Return the draft, or why its window or text will not do."""
    starts, ends, body = window
    if ends <= now:
        return NoticeProblem("window_over", {"ends": ends})
    if ends - starts > LONGEST:
        return NoticeProblem("window_long", {"days": round(LONGEST / 86400)})
    body = body.strip().lstrip("，,。:：;；").strip()
    if not body:
        return NoticeProblem("text")
    return Draft(category, nodes, starts, ends, body)


def notice_category(word: str, ruleset: RuleSet) -> str | None:
    """Return the category a word names (id, name, or a defining keyword such as 停水)."""
    category = category_named(ruleset, word) or category_named(ruleset, normalise(word))
    if category is None:
        match = classify(word, ruleset)
        category = match.category if match is not None else None
    return None if category in NOT_FOR_NOTICES or category is None else category


def find_node(tree: OrgTree, name: str) -> Node | None:
    """Return the place a person named by id or by a name in any script, or None."""
    wanted = normalise(name.strip())
    for node in tree.nodes.values():
        if node.kind is NodeKind.DEPARTMENT:
            continue
        names = {node.id, node.name, *node.names.values()}
        if wanted in {normalise(n) for n in names}:
            return node
    return None


# -- posting, answering, ending ----------------------------------------------------------------


def post(
    tree: OrgTree,
    notice_id: str,
    draft: Draft,
    actor: Actor,
    person: Person | None,
    chat: str,
    now: float,
    names: Mapping[str, str],
) -> Step | Refusal:
    """Post a notice: it goes once to every household group of its places.

    ``names`` are the category's names by language, for the texts.
    """
    refused = may_post(tree, person, draft.nodes)
    if refused is not None:
        return refused
    notice = Notice(
        notice_id, draft.category, draft.nodes, draft.starts, draft.ends, draft.text,
        actor.account, actor.name, chat, actor.lang.value, now,
    )  # fmt: skip
    groups = households(tree, draft.nodes)
    params = {**notice_params(tree, notice, names), "groups": len(groups)}
    replies = [
        Reply(chat_id, "notice_broadcast", params, Lang.ZH_HANS)
        for node in groups
        for chat_id in node.chats
    ]
    replies.append(Reply(chat, "notice_posted", params, actor.lang))
    event = {"kind": "posted", "at": now, "actor": actor.account, "name": actor.name,
             "chat": chat, "notice": notice.to_dict()}  # fmt: skip
    return Step(notice, event, tuple(replies), notice.ends)


def may_post(tree: OrgTree, person: Person | None, nodes: Iterable[str]) -> Refusal | None:
    """Return why ``person`` may not post a notice for ``nodes``, or None when they may."""
    if person is None or person.role not in HANDLER_ROLES:
        return Refusal("not_handler", {"verb": "notice"})
    outside = [n for n in nodes if not may_act(tree, person, n)]
    if outside:
        return Refusal("notice_refused", {"problem": "scope", **_places(tree, outside)})
    return None


def households(tree: OrgTree, nodes: Iterable[str]) -> list[Node]:
    """Return the household groups at or under ``nodes``, in tree order, each once."""
    wanted = set(nodes)
    return [
        node
        for node in tree.nodes.values()
        if node.kind is NodeKind.HOUSEHOLD and any(a.id in wanted for a in ancestors(tree, node.id))
    ]


def matching(
    notices: Sequence[Notice], category: str, origin: str, tree: OrgTree, now: float
) -> Notice | None:
    """Return the active notice that answers a report of ``category`` from ``origin``."""
    if origin not in tree.nodes:
        return None
    above = {node.id for node in ancestors(tree, origin)}
    found = [
        n for n in notices if n.active(now) and n.category == category and above & set(n.nodes)
    ]
    return min(found, key=lambda n: (n.starts, n.id)) if found else None


def relevant(
    notices: Sequence[Notice], tree: OrgTree, where: str | None, now: float
) -> list[Notice]:
    """Return the notices not over that cover ``where`` or a place under it, ending first."""
    if where is None or where not in tree.nodes:
        return []
    above = {node.id for node in ancestors(tree, where)}

    def near(node_id: str) -> bool:
        return node_id in tree.nodes and (
            node_id in above or where in {a.id for a in ancestors(tree, node_id)}
        )

    found = [
        n
        for n in notices
        if n.state is NoticeState.ACTIVE and now < n.ends and any(near(x) for x in n.nodes)
    ]
    return sorted(found, key=lambda n: (n.ends, n.id))


def answer(
    tree: OrgTree,
    notice: Notice,
    actor: Actor,
    chat: str,
    message_id: str,
    now: float,
    names: Mapping[str, str],
) -> Step:
    """Answer a matching report with the notice, and count it."""
    after = replace(notice, answered=notice.answered + 1, seq=notice.seq + 1)
    params = notice_params(tree, after, names)
    reply = Reply(chat, "notice_answer", params, actor.lang, reply_to=message_id)
    event = {"kind": "answered", "at": now, "actor": actor.account, "chat": chat,
             "message": message_id}  # fmt: skip
    return Step(after, event, (reply,), after.ends)


def end(
    tree: OrgTree,
    notice: Notice,
    actor: Actor,
    person: Person | None,
    chat: str,
    now: float,
    names: Mapping[str, str],
) -> Step | Refusal:
    """End a notice before its window closes, at a handler's word."""
    if person is None or person.role not in HANDLER_ROLES:
        return Refusal("not_handler", {"verb": "endnotice"})
    if not all(may_act(tree, person, n) for n in notice.nodes):
        return Refusal("notice_refused", {"problem": "scope", **_places(tree, notice.nodes)})
    if notice.state is NoticeState.ENDED or notice.ends <= now:
        return Refusal("notice_refused", {"problem": "ended", "id": notice.id})
    return _ended(tree, notice, actor.account, chat, now, names, "early", actor.lang)


def on_deadline(notice: Notice, now: float) -> dl.Outcome:
    """Return what the notice's deadline should do at ``now``."""
    if notice.state is NoticeState.ENDED:
        return dl.Outcome.MOVED_ON
    return dl.Outcome.EARLY if now < notice.ends else dl.Outcome.CLOSE


def expire(tree: OrgTree, notice: Notice, now: float, names: Mapping[str, str]) -> Step:
    """Close a notice whose window is over; its poster's chat is told how many it answered."""
    return _ended(tree, notice, "system", notice.chat, now, names, "window", Lang(notice.lang))


def _ended(
    tree: OrgTree,
    notice: Notice,
    by: str,
    chat: str,
    now: float,
    names: Mapping[str, str],
    reason: str,
    lang: Lang,
) -> Step:
    after = replace(notice, state=NoticeState.ENDED, ended_at=now, ended_by=by, seq=notice.seq + 1)
    params = {**notice_params(tree, after, names), "reason": reason}
    event = {"kind": "ended", "at": now, "actor": by, "chat": chat, "reason": reason}
    return Step(after, event, (Reply(chat, "notice_ended", params, lang),), None)


def notice_params(tree: OrgTree, notice: Notice, names: Mapping[str, str]) -> dict[str, Any]:
    """Return what the notice templates read."""
    return {
        "id": notice.id,
        "category_names": dict(names),
        "category": notice.category,
        "starts": notice.starts,
        "ends": notice.ends,
        "text": notice.text,
        "answered": notice.answered,
        "state": notice.state.value,
        **_places(tree, notice.nodes),
    }


def _places(tree: OrgTree, nodes: Iterable[str]) -> dict[str, Any]:
    places = []
    for node_id in nodes:
        node = tree.nodes.get(node_id)
        if node is None:
            places.append({lang.value: node_id for lang in Lang})
            continue
        places.append({lang.value: node.names.get(lang) or node.name for lang in Lang})
    return {"places": places}


# -- a notice forwarded into a group ---------------------------------------------------------

_HEADING = re.compile(r"通知|公告|告知|温馨提示|notice", re.I)
_PLANNED = re.compile(
    r"(?:计划|预计|将于|将会|检修|维修|施工|改造|抢修|切换|升级)[^。！!]{0,40}?"
    r"(?:停水|停电|停气|断水|断电|限水|降压|停止供)"
    r"|(?:停水|停电|停气|断水|断电)[^。！!]{0,6}(?:通知|公告|告知)",
)


def is_announcement(text: str) -> bool:
    """Return whether ``text`` reads as a notice of planned work, not a resident's report.

    A heading word (通知, 公告, 温馨提示) with planned-work wording and a time window, or a
    titled notice of an outage (停水通知): forwarded into a group, it must not open a ticket.
    """
    flat = normalise(text)
    if not _HEADING.search(flat) or not _PLANNED.search(flat):
        return False
    return bool(re.search(r"\d{1,2}[:：点時时]\d{0,2}|\d{1,2}月\d{1,2}[日号]|明天|今天", flat))


__all__: Sequence[str] = (
    "Draft",
    "Notice",
    "NoticeProblem",
    "NoticeState",
    "Step",
    "answer",
    "end",
    "expire",
    "form_draft",
    "households",
    "is_announcement",
    "matching",
    "may_post",
    "notice_params",
    "on_deadline",
    "parse_notice",
    "parse_window",
    "post",
    "relevant",
)
