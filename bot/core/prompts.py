"""The questions the bot asks about a message it will not ticket on its own.

Two kinds, both one tap, both answered once:

- a danger flag: the model saw possible danger in a message it does not class as an
  emergency. The resident gets the emergency numbers at once; the grid worker of their
  household group gets a card with 确认危险 (a critical emergency ticket at the street) and
  不危险 (the normal path: the guessed category becomes a ticket, if it is one). Unanswered,
  the flag climbs: the village, then the street.
- an ask: the model is unsure which problem a message is. The resident is asked
  "需要我登记吗？" with the top two categories and 不用. Unanswered, the household leader of
  the group is asked once, privately, with the same choice.

Pure: the shell (bot/questions.py) loads a Prompt, calls these with ``now``, and commits
the step they return with the prompt's history length as the guard.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from bot.core import deadlines as dl
from bot.core.classify import BY_FLAG, Match
from bot.core.models import (
    Actor,
    IncomingMessage,
    Lang,
    Reply,
    Severity,
    Tier,
    Visibility,
    platform_of,
)
from bot.core.org import HANDLER_ROLES, Node, OrgTree, Person, Role, ancestors, may_act, next_up
from bot.core.privacy import mask
from bot.core.workflow import Context, Refusal, node_params

DANGER_WAIT = 10 * 60.0  # a flag nobody answers climbs a tier after this (scaled, floored)
ASK_WAIT = 30 * 60.0  # an ask the resident leaves unanswered goes to their household leader
YES, NO = "yes", "no"
EMERGENCY = "emergency"


class PromptKind(StrEnum):
    """What the bot asked."""

    DANGER = "danger"
    ASK = "ask"


PROMPT_KINDS = frozenset(k.value for k in PromptKind)


@dataclass(frozen=True)
class Said:
    """The message a question is about, as the resident wrote it."""

    chat: str
    message_id: str
    account: str
    name: str
    person: str | None
    lang: str
    text: str
    sent_at: float
    photos: tuple[str, ...] = ()
    location: tuple[float, float] | None = None

    @classmethod
    def of(cls, message: IncomingMessage) -> Said:
        """Return the record of ``message``."""
        s = message.sender
        return cls(
            message.chat, message.message_id, s.account, s.name, s.person, s.lang.value,
            message.text, message.sent_at, message.photos, message.location,
        )  # fmt: skip

    def message(self, suffix: str = "") -> IncomingMessage:
        """Return the message again (``suffix`` gives it another de-duplication key)."""
        actor = Actor(self.account, self.name, self.person, Lang(self.lang))
        return IncomingMessage(
            self.chat, self.message_id + suffix, actor, self.text, self.sent_at,
            photos=self.photos, location=self.location,
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """Return the record as JSON-ready data."""
        out = dict(vars(self))
        out["photos"] = list(self.photos)
        out["location"] = list(self.location) if self.location else None
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Said:
        """Return the record stored as ``raw``."""
        data = dict(raw)
        data["photos"] = tuple(data.get("photos") or ())
        loc = data.get("location")
        data["location"] = (float(loc[0]), float(loc[1])) if loc else None
        return cls(**data)


@dataclass(frozen=True)
class Prompt:
    """A question waiting for its one answer."""

    id: str  # "p12": also its deadline's id in the DEADLINES index
    kind: PromptKind
    said: Said
    origin: str  # the household group the message came from
    category: str  # the classifier's best guess ("none" for chatter)
    choices: tuple[str, ...]  # an ask's categories on offer
    node: str  # a flag: the node whose staff may answer now; an ask: the origin
    stage: int  # 0 when asked; +1 each time it climbs (a flag) or goes to the leader (an ask)
    due: float | None  # when the next step is due; None: nothing more will happen
    created_at: float
    ticket: str | None = None  # a flag on a message that already opened this ticket
    answer: str | None = None
    answered_by: str | None = None
    answered_account: str | None = None
    seq: int = 1  # events in its history: the commit guard

    def to_dict(self) -> dict[str, Any]:
        """Return the snapshot as JSON-ready data."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["kind"] = self.kind.value
        out["said"] = self.said.to_dict()
        out["choices"] = list(self.choices)
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Prompt:
        """Return the snapshot stored as ``raw``."""
        data = dict(raw)
        data["kind"] = PromptKind(data["kind"])
        data["said"] = Said.from_dict(data["said"])
        data["choices"] = tuple(data.get("choices") or ())
        return cls(**data)


@dataclass(frozen=True)
class Step:
    """A question after a change, the history entry for it, what to send, what to open."""

    prompt: Prompt
    event: Mapping[str, Any]
    replies: tuple[Reply, ...] = ()
    opens: Match | None = None  # the shell opens (or joins) a ticket of this for the resident
    urgent: bool = False  # the replies go ahead of everything else waiting


@dataclass(frozen=True)
class Press:
    """A button of a question, pressed."""

    kind: PromptKind
    prompt: str
    choice: str


def press_of(data: str) -> Press | None:
    """Return the question button ``danger:p12:yes`` or ``ask:p12:noise``, or None."""
    parts = data.split(":")
    if len(parts) != 3 or parts[0] not in PROMPT_KINDS or not parts[1][1:].isdigit():
        return None
    return Press(PromptKind(parts[0]), parts[1], parts[2])


# Typed answers, for chats where buttons cannot come back (a WeCom group robot's push):
# "危险 12" / "不危险 12" for a flag, "登记 12 1" (the first category offered) / "不用 12"
# for an ask, in either script or English. The number is the question's, without its "p".
_TYPED_WORDS = {
    "危险": (PromptKind.DANGER, YES), "危險": (PromptKind.DANGER, YES),
    "danger": (PromptKind.DANGER, YES),
    "不危险": (PromptKind.DANGER, NO), "不危險": (PromptKind.DANGER, NO),
    "safe": (PromptKind.DANGER, NO),
    "登记": (PromptKind.ASK, ""), "登記": (PromptKind.ASK, ""), "register": (PromptKind.ASK, ""),
    "不用": (PromptKind.ASK, NO), "skip": (PromptKind.ASK, NO),
}  # fmt: skip
_TYPED = re.compile(
    r"/?(" + "|".join(sorted(_TYPED_WORDS, key=len, reverse=True)) + r")\s*[#pP]?(\d{1,9})"
    r"(?:\s+(\d))?",
    re.IGNORECASE,
)


def typed_press(text: str) -> Press | None:
    """Return the answer a whole message types (``危险 12``, ``登记 12 1``), or None."""
    found = _TYPED.fullmatch(text.strip())
    if found is None:
        return None
    kind, choice = _TYPED_WORDS[found.group(1).lower()]
    index = found.group(3)
    if choice == "":  # 登记: which of the categories offered, counted from 1
        if index is None:
            return None
        choice = index
    elif index is not None:
        return None
    return Press(kind, f"p{found.group(2)}", choice)


def button(kind: PromptKind, prompt_id: str, choice: str) -> str:
    """Return a question button's data (Telegram allows 64 bytes; category ids are short)."""
    return f"{kind.value}:{prompt_id}:{choice}"


def grid_of(tree: OrgTree, origin: str) -> Node:
    """Return the grid above a household group (or the origin itself when there is none)."""
    for node in ancestors(tree, origin):
        if node.tier is Tier.GRID:
            return node
    return tree.nodes[origin]


def raise_flag(
    ctx: Context,
    prompt_id: str,
    message: IncomingMessage,
    category: str,
    origin: Node,
    now: float,
    ticket: str | None = None,
) -> Step:
    """Flag possible danger: the numbers to the resident now, a card to the grid's staff."""
    grid = grid_of(ctx.tree, origin.id)
    prompt = Prompt(
        prompt_id, PromptKind.DANGER, Said.of(message), origin.id, category, (), grid.id, 0,
        now + dl.scaled(DANGER_WAIT, ctx.policy), now, ticket,
    )  # fmt: skip
    numbers = Reply(
        message.chat, "danger_numbers", {"name": message.sender.name}, message.sender.lang,
        reply_to=message.message_id,
    )  # fmt: skip
    replies = (numbers, *flag_cards(ctx, prompt, grid))
    return Step(prompt, _entry("raised", now, node=grid.id), replies, urgent=True)


def ask(
    ctx: Context,
    prompt_id: str,
    message: IncomingMessage,
    top: tuple[tuple[str, float], ...],
    category: str,
    origin: Node,
    now: float,
) -> Step | None:
    """Ask the resident whether to register their message, offering the two likeliest kinds."""
    offered = [c for c, _ in top if c in ctx.ruleset.categories and c != EMERGENCY]
    if category in ctx.ruleset.categories and category not in offered:
        offered.insert(0, category)
    choices = tuple(offered[:2])
    if not choices:
        return None
    prompt = Prompt(
        prompt_id, PromptKind.ASK, Said.of(message), origin.id, category, choices, origin.id, 0,
        now + dl.scaled(ASK_WAIT, ctx.policy), now,
    )  # fmt: skip
    reply = Reply(
        message.chat, "ask_register", _ask_params(ctx, prompt), message.sender.lang,
        reply_to=message.message_id, buttons=_ask_buttons(prompt), card=True,
    )  # fmt: skip
    return Step(prompt, _entry("asked", now), (reply,))


def answer(
    ctx: Context, prompt: Prompt, press: Press, actor: Actor, person: Person | None, now: float
) -> Step | Refusal:
    """Take one answer to a question, or refuse it with the reason."""
    if press.kind is not prompt.kind:
        return Refusal("prompt_gone", {})
    if prompt.answer is not None:
        return Refusal("prompt_answered", {"by": prompt.answered_by or ""})
    if prompt.kind is PromptKind.DANGER:
        return _answer_flag(ctx, prompt, press, actor, person, now)
    resident = actor.account == prompt.said.account
    leader = (
        prompt.stage >= 1
        and person is not None
        and person.role is Role.HOUSEHOLD_LEADER
        and may_act(ctx.tree, person, prompt.origin)
    )
    if not (resident or leader):
        return Refusal("prompt_not_yours", {})
    if press.choice.isdigit():  # typed: the n-th category offered
        index = int(press.choice) - 1
        if not 0 <= index < len(prompt.choices):
            return Refusal("prompt_gone", {})
        press = replace(press, choice=prompt.choices[index])
    if press.choice != NO and press.choice not in prompt.choices:
        return Refusal("prompt_gone", {})
    after = _answered(prompt, press.choice, actor)
    event = _entry("answered", now, by=actor.account, answer=press.choice)
    if press.choice == NO:
        return Step(after, event)  # quietly: nothing to say, nothing opened
    return Step(after, event, opens=category_match(ctx, press.choice, "ask"))


def _answer_flag(
    ctx: Context, prompt: Prompt, press: Press, actor: Actor, person: Person | None, now: float
) -> Step | Refusal:
    if person is None or person.role not in HANDLER_ROLES:
        return Refusal("flag_not_in_scope", node_params(ctx.tree.nodes[prompt.node]))
    grid = grid_of(ctx.tree, prompt.origin).id
    # The staff of the node the flag has climbed to, and still the grid's (above the household).
    in_scope = may_act(ctx.tree, person, prompt.node) or may_act(ctx.tree, person, grid)
    if not in_scope or person.role is Role.HOUSEHOLD_LEADER:
        return Refusal("flag_not_in_scope", node_params(ctx.tree.nodes[prompt.node]))
    if press.choice not in (YES, NO):
        return Refusal("prompt_gone", {})
    after = _answered(prompt, press.choice, actor)
    event = _entry("answered", now, by=actor.account, answer=press.choice)
    node = ctx.tree.nodes[prompt.node]
    template = "flag_confirmed" if press.choice == YES else "flag_rejected"
    params = {**_flag_params(ctx, prompt, node, masked=True), "by": actor.name}
    notices = tuple(Reply(chat, template, params) for chat in _staff_chats(node))
    if press.choice == YES:
        emergency = category_match(ctx, EMERGENCY, BY_FLAG)
        return Step(after, event, notices, opens=emergency, urgent=True)
    opens = None
    if prompt.ticket is None and prompt.category in ctx.ruleset.categories:
        opens = category_match(ctx, prompt.category, BY_FLAG)
    return Step(after, event, notices, opens=opens)


def on_prompt_deadline(ctx: Context, prompt: Prompt, stage: int, now: float) -> dl.Outcome:
    """Return what a question's deadline firing at ``now`` should do (see ``escalate``)."""
    if prompt.answer is not None or stage != prompt.stage or prompt.due is None:
        return dl.Outcome.MOVED_ON
    return dl.Outcome.EARLY if now < prompt.due else dl.Outcome.ESCALATE


def escalate(ctx: Context, prompt: Prompt, now: float) -> Step:
    """Move an unanswered question on: a flag up a tier, an ask to the household leader."""
    if prompt.kind is PromptKind.ASK:
        after = replace(prompt, stage=prompt.stage + 1, due=None, seq=prompt.seq + 1)
        leaders = [
            p for p in ctx.tree.people.values()
            if p.role is Role.HOUSEHOLD_LEADER and p.scope == prompt.origin
            and p.accounts[0] != prompt.said.account
        ]  # fmt: skip
        params = {**_ask_params(ctx, prompt), "name": prompt.said.name, "text": prompt.said.text}
        replies = tuple(
            Reply(
                account,
                "ask_leader",
                params,
                Lang(p.lang),
                buttons=_ask_buttons(prompt),
                card=True,
            )
            for p in leaders
            for account in _private(p, prompt.said.chat)
        )
        return Step(after, _entry("to_leader", now), replies)
    up = next_up(ctx.tree, prompt.node)
    if up is None:  # the street was told and nobody answered: nothing higher to ask
        after = replace(prompt, due=None, seq=prompt.seq + 1)
        return Step(after, _entry("unanswered", now))
    top = next_up(ctx.tree, up.id) is None
    due = None if top else now + dl.scaled(DANGER_WAIT, ctx.policy)
    after = replace(prompt, node=up.id, stage=prompt.stage + 1, due=due, seq=prompt.seq + 1)
    if top:  # at the street the flag waits for an answer with no further deadline
        after = replace(after, due=None)
    missed = ctx.tree.nodes[prompt.node]
    cards = flag_cards(ctx, after, up, missed=missed.name)
    return Step(after, _entry("climbed", now, node=up.id), cards, urgent=True)


def category_match(ctx: Context, category: str, source: str) -> Match:
    """Return the match a ticket of ``category`` opens with, decided by a person (``source``)."""
    spec = ctx.ruleset.categories[category]
    urgent = spec.severity is Severity.CRITICAL
    return Match(category, source, 100, spec.severity, urgent, spec.start_tier, ())


def _answered(prompt: Prompt, choice: str, actor: Actor) -> Prompt:
    return replace(
        prompt, answer=choice, answered_by=actor.name, answered_account=actor.account, due=None,
        seq=prompt.seq + 1,
    )  # fmt: skip


def _entry(kind: str, now: float, **data: Any) -> dict[str, Any]:
    return {"kind": kind, "at": now, **data}


def flag_cards(ctx: Context, prompt: Prompt, node: Node, **info: Any) -> tuple[Reply, ...]:
    """Return the flag's cards for a node: its staff chat (else its groups), its staff privately."""
    buttons = (button(prompt.kind, prompt.id, YES), button(prompt.kind, prompt.id, NO))
    how: dict[str, Any] = {"buttons": buttons, "card": True}
    out = [
        Reply(chat, "danger_flag", {**_flag_params(ctx, prompt, node, not inside), **info}, **how)
        for chat, inside in _staff_targets(node)
    ]
    for person in ctx.tree.people.values():
        if person.scope != node.id or person.role in (Role.ADMIN, Role.HOUSEHOLD_LEADER):
            continue
        if person.role not in HANDLER_ROLES:
            continue
        params = {**_flag_params(ctx, prompt, node, masked=False), **info}
        out += [
            Reply(account, "danger_flag", params, Lang(person.lang), buttons=buttons, card=True)
            for account in _private(person, prompt.said.chat)
        ]
    return tuple(out)


def _staff_targets(node: Node) -> list[tuple[str, bool]]:
    """Return (chat, staff-only) where a node's staff read: the staff chat, else its groups."""
    if node.staff_chat:
        return [(node.staff_chat, True)]
    return [(chat, False) for chat in node.chats]


def _staff_chats(node: Node) -> list[str]:
    return [chat for chat, _ in _staff_targets(node)]


def _private(person: Person, chat: str) -> list[str]:
    """Return the person's private chat on the platform of ``chat``, if they have one."""
    platform = platform_of(chat) + ":"
    return [a for a in person.accounts if a.startswith(platform)][:1]


def _flag_params(ctx: Context, prompt: Prompt, node: Node, masked: bool) -> dict[str, Any]:
    origin = ctx.tree.nodes[prompt.origin]
    category = ctx.ruleset.categories.get(prompt.category)
    # A group (not a staff chat) hears of a sensitive matter only that there is one.
    redacted = masked and category is not None and category.visibility is Visibility.STAFF
    return {
        **node_params(node),
        "id": prompt.id,
        "text": "" if redacted else mask(prompt.said.text) if masked else prompt.said.text,
        "redacted": redacted,
        "reporter": "" if redacted else prompt.said.name,
        "origin_name": origin.name,
        "origin_names": {lang.value: name for lang, name in origin.names.items()},
        "category": prompt.category,
        "category_names": dict(category.names) if category else {},
        "ticket": prompt.ticket,
        "stage": prompt.stage,
    }


def _ask_params(ctx: Context, prompt: Prompt) -> dict[str, Any]:
    return {
        "id": prompt.id,
        "choice_names": {
            c: dict(ctx.ruleset.categories[c].names)
            for c in prompt.choices
            if c in ctx.ruleset.categories
        },
    }


def _ask_buttons(prompt: Prompt) -> tuple[str, ...]:
    choices = (*prompt.choices, NO)
    return tuple(button(prompt.kind, prompt.id, c) for c in choices)


def talk_to_person(
    ctx: Context, message: IncomingMessage, text: str, origin: Node
) -> tuple[Reply, ...]:
    """Return 找人: a card for the grid worker with the message, and a word to the resident."""
    grid = grid_of(ctx.tree, origin.id)
    base = {
        **node_params(grid),
        "text": text,
        "reporter": message.sender.name,
        "origin_name": origin.name,
        "origin_names": {lang.value: name for lang, name in origin.names.items()},
    }
    out = [
        Reply(chat, "human_card", {**base, "text": text if staff else mask(text)})
        for chat, staff in _staff_targets(grid)
    ]
    for person in ctx.tree.people.values():
        if person.scope == grid.id and person.role in (Role.GRID_WORKER, Role.GRID_LEADER):
            out += [
                Reply(account, "human_card", base, Lang(person.lang))
                for account in _private(person, message.chat)
            ]
    told = Reply(
        message.chat, "human_asked", node_params(grid), message.sender.lang,
        reply_to=message.message_id,
    )  # fmt: skip
    return (told, *out)
