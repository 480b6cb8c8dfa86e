"""Turn "/ack 42", "受理 42", "辦結 42 已修好", a button or a reply to a card into a Command.

A Chinese alias counts only at the start of a message and only when a
ticket id, a space or the end follows it, so that "确认一下时间" stays
a message. Aliases are compared after normalisation, so Traditional forms
(辦結, 確認, 轉派) work without being listed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from bot.core.text import normalise


class Verb(StrEnum):
    """Everything a person can ask the bot to do."""

    ACK = "ack"
    NOTE = "note"
    RESOLVE = "resolve"
    ESCALATE = "escalate"
    ASSIGN = "assign"
    DISMISS = "dismiss"
    STATUS = "status"
    MY = "my"
    MINE = "mine"
    OPEN = "open"
    STATS = "stats"
    CONFIRM = "confirm"
    REOPEN = "reopen"
    RATE = "rate"
    HELP = "help"
    RELOAD = "reload"
    RULES = "rules"
    LINK = "link"  # two tickets are related: /link 42 43
    ARRIVE = "arrive"  # a department asked to report in is on the scene
    ASSISTED = "assisted"  # a department asked to report in has done its part
    REPORT = "report"  # a report on purpose: always a ticket
    HUMAN = "human"  # talk to a person: the grid worker gets the message
    OPEN_TICKET = "open_ticket"  # a leader or grid worker tickets a resident's missed message
    RECAT = "recat"  # a handler changes a ticket's category
    NOTICE = "notice"  # staff post a notice of a known incident (bot.core.notices)
    NOTICES = "notices"  # the notices in force here
    END_NOTICE = "endnotice"  # end a notice before its window closes
    WEB = "web"  # a one-time link to the web console, asked for in a private chat


class Via(StrEnum):
    """How a command arrived."""

    TEXT = "text"
    BUTTON = "button"
    REPLY = "reply"  # a plain reply to a ticket card or notice


# Verbs that act on one ticket, and those whose text part is required when typed.
TICKET_VERBS = frozenset(
    {
        Verb.ACK,
        Verb.NOTE,
        Verb.RESOLVE,
        Verb.ESCALATE,
        Verb.ASSIGN,
        Verb.DISMISS,
        Verb.STATUS,
        Verb.CONFIRM,
        Verb.REOPEN,
        Verb.RATE,
        Verb.LINK,
        Verb.ARRIVE,
        Verb.ASSISTED,
        Verb.RECAT,
    }
)
TEXT_REQUIRED = frozenset(
    {Verb.NOTE, Verb.RESOLVE, Verb.ESCALATE, Verb.DISMISS, Verb.REOPEN, Verb.RECAT}
)
BUTTON_VERBS = frozenset(
    {
        Verb.ACK,
        Verb.RESOLVE,
        Verb.ESCALATE,
        Verb.CONFIRM,
        Verb.REOPEN,
        Verb.RATE,
        Verb.ARRIVE,
        Verb.ASSISTED,
    }
)

ALIASES: dict[str, Verb] = {
    "受理": Verb.ACK,
    "接单": Verb.ACK,
    "备注": Verb.NOTE,
    "跟进": Verb.NOTE,
    "办结": Verb.RESOLVE,
    "已办结": Verb.RESOLVE,
    "上报": Verb.ESCALATE,
    "转派": Verb.ASSIGN,
    "指派": Verb.ASSIGN,
    "交办": Verb.ASSIGN,
    "驳回": Verb.DISMISS,
    "查询": Verb.STATUS,
    "进度": Verb.STATUS,
    "我的": Verb.MY,
    "我负责的": Verb.MINE,
    "我的待办": Verb.MINE,
    "待办": Verb.OPEN,
    "统计": Verb.STATS,
    "确认": Verb.CONFIRM,
    "重开": Verb.REOPEN,
    "评价": Verb.RATE,
    "帮助": Verb.HELP,
    "重载规则": Verb.RELOAD,
    "规则": Verb.RULES,
    "关联": Verb.LINK,
    "到场": Verb.ARRIVE,
    "协办完成": Verb.ASSISTED,
    "报事": Verb.REPORT,
    "找人": Verb.HUMAN,
    "立案": Verb.OPEN_TICKET,
    "改类": Verb.RECAT,
    "改分类": Verb.RECAT,
    "通知": Verb.NOTICE,
    "发通知": Verb.NOTICE,
    "通知列表": Verb.NOTICES,
    "结束通知": Verb.END_NOTICE,
    "登录后台": Verb.WEB,
}
ENGLISH: dict[str, Verb] = {verb.value: verb for verb in Verb} | {"start": Verb.HELP}

_ALIAS_LENGTHS = sorted({len(a) for a in ALIASES}, reverse=True)
_ID = r"#?(\d{1,12})"
_AFTER_ALIAS = re.compile(r"^(?:$|[\s:：#\d])")
_TICKET_ARGS = re.compile(rf"^\s*{_ID}(?:\s+|$|(?=[^\d]))(.*)$", re.S)
_MENTION = re.compile(r"^\s*(@?\S+)\s*(.*)$", re.S)


@dataclass(frozen=True)
class Command:
    """A parsed command."""

    verb: Verb
    ticket: str | None = None
    text: str = ""
    target: str | None = None  # whom to assign ("@name", a person id, a department); /link's other
    rating: int | None = None
    via: Via = Via.TEXT


@dataclass(frozen=True)
class BadCommand:
    """A command word with arguments that do not fit; ``problem`` names the template."""

    verb: Verb
    problem: str  # needs_id | needs_text | needs_target | needs_rating


def parse(
    text: str, callback: str | None = None, reply_ticket: str | None = None
) -> Command | BadCommand | None:
    """Return the command in a message, or None when it is an ordinary message.

    ``reply_ticket`` is the ticket of the card or notice the message replies to.
    """
    if callback is not None:
        return _parse_button(callback)
    stripped = text.strip()
    found = _verb(stripped)
    if found is None:
        if reply_ticket is not None and stripped:
            return Command(Verb.NOTE, reply_ticket, stripped, via=Via.REPLY)
        return None
    verb, rest = found
    if verb not in TICKET_VERBS:
        return Command(verb, text=rest.strip())
    ticket, rest = _ticket(rest, reply_ticket)
    if ticket is None:
        return BadCommand(verb, "needs_id")
    rest = rest.strip()
    if verb is Verb.ASSIGN:
        m = _MENTION.match(rest)
        if not m:
            return BadCommand(verb, "needs_target")
        return Command(verb, ticket, m.group(2).strip(), target=m.group(1))
    if verb is Verb.LINK:
        m = _TICKET_ARGS.match(rest)
        if not m:
            return BadCommand(verb, "link_self")
        return Command(verb, ticket, m.group(2).strip(), target=m.group(1).lstrip("0") or "0")
    if verb is Verb.RATE:
        if not re.fullmatch(r"[1-5]", rest[:1] or "x"):
            return BadCommand(verb, "needs_rating")
        return Command(verb, ticket, rest[1:].strip(), rating=int(rest[0]))
    if verb in TEXT_REQUIRED and not rest:
        return BadCommand(verb, "needs_text")
    return Command(verb, ticket, rest)


def _verb(text: str) -> tuple[Verb, str] | None:
    """Return the verb a message starts with and the rest of it."""
    if text.startswith("/"):
        word, _, rest = text[1:].partition(" ")
        word = word.split("@", 1)[0].casefold()  # /ack@LianhuBot in groups
        verb = ENGLISH.get(word)
        if verb is None:
            return None
        return verb, rest
    for length in _ALIAS_LENGTHS:
        head = normalise(text[:length])
        verb = ALIASES.get(head)
        if verb is not None and _AFTER_ALIAS.match(text[length:]):
            return verb, text[length:].lstrip(":：")
    return None


def _ticket(rest: str, reply_ticket: str | None) -> tuple[str | None, str]:
    m = _TICKET_ARGS.match(rest)
    if m:
        return m.group(1).lstrip("0") or "0", m.group(2)
    return reply_ticket, rest


def _parse_button(data: str) -> Command | BadCommand | None:
    """Return the command of a button's data: ``ack:42``, ``rate:42:5``."""
    parts = data.split(":")
    try:
        verb = Verb(parts[0])
    except ValueError:
        return None
    if verb not in BUTTON_VERBS or len(parts) < 2 or not parts[1].isdigit():
        return None
    if verb is Verb.RATE:
        if len(parts) != 3 or parts[2] not in {"1", "2", "3", "4", "5"}:
            return BadCommand(verb, "needs_rating")
        return Command(verb, parts[1], rating=int(parts[2]), via=Via.BUTTON)
    return Command(verb, parts[1], via=Via.BUTTON)


def button_data(verb: Verb, ticket: str, rating: int | None = None) -> str:
    """Return the data of a button (at most 64 bytes on Telegram)."""
    return f"{verb.value}:{ticket}" + (f":{rating}" if rating is not None else "")
