"""What a report, a command or a deadline does to a ticket: events and replies, or a refusal.

Every function here is pure. The shell loads the ticket, calls one of them
with ``now``, stores the events it returns in one transaction and queues the
replies. A refusal changes nothing and says why, in the asker's language.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from bot.core import deadlines as dl
from bot.core.access import (
    assisting,
    co_reporter,
    first_reporter,
    for_co_reporter,
    handled_earlier,
    may_handle,
    may_view,
    staff_only,
)
from bot.core.cards import card_chats, department_buttons, live_buttons
from bot.core.classify import BY_FLAG, Match
from bot.core.commands import Command, Verb, Via
from bot.core.models import (
    Actor,
    IncomingMessage,
    Lang,
    Reply,
    Severity,
    Visibility,
    platform_of,
)
from bot.core.org import (
    HANDLER_ROLES,
    Node,
    NodeKind,
    OrgTree,
    Person,
    Role,
    ancestors,
    departments_for,
    handling_node,
    may_act,
    next_up,
)
from bot.core.personal import ERASED
from bot.core.privacy import mask
from bot.core.rules import RuleSet
from bot.core.sameness import Problem
from bot.core.ticket import EventKind, Reporter, Ticket, TicketEvent, TicketState, evolve


@dataclass(frozen=True)
class Context:
    """What the decisions read besides the ticket: rules, tree and time policy."""

    ruleset: RuleSet
    tree: OrgTree
    policy: dl.Policy = field(default_factory=dl.Policy)


@dataclass(frozen=True)
class Decision:
    """The ticket after a change, the events that made it, and what to send."""

    ticket: Ticket
    events: tuple[TicketEvent, ...] = ()
    replies: tuple[Reply, ...] = ()


@dataclass(frozen=True)
class Refusal:
    """Why a command was not carried out; ``reason`` names a template."""

    reason: str
    params: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


RESIDENT_BUTTONS = ("confirm", "reopen")


def reporter_of(message: IncomingMessage) -> Reporter:
    """Return the reporter record of a message."""
    s = message.sender
    return Reporter(s.account, s.name, message.chat, message.message_id, s.lang.value)


def open_ticket(
    ctx: Context,
    ticket_id: str,
    message: IncomingMessage,
    match: Match,
    origin: Node,
    now: float,
    related: Sequence[str] = (),
) -> Decision:
    """Open a ticket for a classified report made in ``origin``'s chat.

    ``related`` are open tickets of a nearby or lesser problem it is linked to (see
    bot.core.sameness); each of them records the link with ``link``.
    """
    category = ctx.ruleset.categories[match.category]
    node = handling_node(ctx.tree, category.start_tier, origin.id)
    tier = _tier(node)
    ack_due, resolve_due = dl.due_times(
        ctx.ruleset, match.category, tier, now, ctx.policy, urgent=match.urgent
    )
    departments = tuple(d.id for d in departments_for(ctx.tree, category, origin.id))
    event = TicketEvent(
        ticket_id,
        1,
        EventKind.OPENED,
        now,
        message.sender.account,
        message.sender.name,
        message.chat,
        MappingProxyType(
            {
                "category": match.category,
                "severity": category.severity.value,
                "urgent": match.urgent,
                "visibility": category.visibility.value,
                "text": message.text,
                "origin": origin.id,
                "node": node.id,
                "tier": tier,
                "reporter": vars(reporter_of(message)),
                "ack_due": ack_due,
                "resolve_due": resolve_due,
                "departments": list(departments),
                "matched": list(match.matched),
                "photos": list(message.photos),
                "location": list(message.location) if message.location else None,
                "related": list(related),
            }
        ),
    )
    ticket = evolve(None, event)
    by_flag = match.rule == BY_FLAG
    replies = [
        # After a flag the resident has had the emergency numbers: the notice refers to them.
        *_tell_reporters(ctx, ticket, category.reply_template, {"numbers_given": by_flag}),
        *_cards(ctx, ticket, node, "card"),
    ]
    if ticket.visibility != Visibility.PUBLIC and not message.private:
        # Answered privately: the group where they spoke hears only that (never what).
        replies.append(
            Reply(
                message.chat,
                "replied_privately",
                {"platform": platform_of(message.chat)},
                message.sender.lang,
                reply_to=message.message_id,
            )
        )
    for department in departments:
        node = ctx.tree.nodes[department]
        replies += _cards(ctx, ticket, node, "department_card")
    return Decision(ticket, (event,), tuple(replies))


def join_ticket(ctx: Context, ticket: Ticket, message: IncomingMessage, now: float) -> Decision:
    """Add another report of the same problem to an open ticket."""
    if ticket.reported_by(message.sender.account):  # the same person again: just remind them
        params = ticket_params(ctx, ticket, masked=True, again=True)
        if co_reporter(ticket, message.sender.account):
            params = for_co_reporter(params, reporter_of(message))
        reply = Reply(
            message.chat,
            "ticket_joined",
            params,
            message.sender.lang,
            reply_to=message.message_id,
            ticket=ticket.id,
        )
        return Decision(ticket, (), (reply,))
    event = _event(
        ticket,
        EventKind.JOINED,
        now,
        message.sender,
        message.chat,
        reporter=vars(reporter_of(message)),
        text=message.text,
    )
    after = evolve(ticket, event)
    joined = after.reporters[-1]
    reply = Reply(
        joined.chat if after.visibility == Visibility.PUBLIC else joined.account,
        "ticket_joined",
        for_co_reporter(ticket_params(ctx, after, masked=True), joined),
        Lang(joined.lang),
        reply_to=joined.message_id,
        ticket=after.id,
    )
    return Decision(after, (event,), (reply,))


def link(
    ctx: Context, ticket: Ticket, other: Ticket, actor: Actor, chat: str | None, now: float
) -> Decision:
    """Record on ``ticket`` that ``other`` is related; tell its handlers when it is active."""
    event = _event(ticket, EventKind.RELATED, now, actor, chat, other=other.id)
    after = evolve(ticket, event)
    replies: list[Reply] = []
    if after.state.active:
        info = {"other": other.id, "other_category": _category_names(ctx, other.category)}
        replies = _notices(ctx, after, ctx.tree.nodes[after.node], "related", **info)
    return Decision(after, (event,), tuple(replies))


def report_problem(ctx: Context, message: IncomingMessage, match: Match, origin: Node) -> Problem:
    """Return what bot.core.sameness compares of a new report."""
    category = ctx.ruleset.categories.get(match.category)
    staff = category is not None and category.visibility is Visibility.STAFF
    return Problem(match.category, match.severity.rank, match.urgent, origin.id,
                   _grid(ctx.tree, origin.id), message.text, staff)  # fmt: skip


def ticket_problem(ctx: Context, ticket: Ticket) -> Problem:
    """Return what bot.core.sameness compares of an open ticket."""
    return Problem(ticket.category, Severity(ticket.severity).rank, ticket.urgent, ticket.origin,
                   _grid(ctx.tree, ticket.origin), ticket.text, staff_only(ticket))  # fmt: skip


def _grid(tree: OrgTree, node_id: str) -> str:
    """Return the grid a node is in (the node itself when it has no grid above it)."""
    if node_id not in tree.nodes:
        return node_id
    chain = ancestors(tree, node_id)
    return next((n.id for n in chain if n.kind is NodeKind.GRID), node_id)


def apply(
    ctx: Context,
    ticket: Ticket,
    command: Command,
    actor: Actor,
    person: Person | None,
    chat: str,
    now: float,
    private: bool = False,
) -> Decision | Refusal:
    """Carry out ``command`` on ``ticket`` for ``actor`` (``person`` when on the roster).

    ``private`` says that ``chat`` is a one-to-one chat with the bot. Whoever may not
    see the ticket learns only that it was not found or is not theirs.
    """
    verb = command.verb
    if not may_view(ctx.tree, person, actor.account, ticket):
        return Refusal("no_such_ticket", {"id": ticket.id})
    handler = may_handle(ctx.tree, person, ticket)
    reporter = ticket.reported_by(actor.account)
    admin = handler and person is not None and person.role is Role.ADMIN
    if verb is Verb.STATUS:
        return _status(ctx, ticket, actor, chat, private)
    if verb in (Verb.CONFIRM, Verb.REOPEN, Verb.RATE):
        if first_reporter(ticket, actor.account) or admin:
            return _resident(ctx, ticket, command, actor, chat, now)
        if co_reporter(ticket, actor.account):
            return Refusal("co_reporter", {"id": ticket.id})
        return Refusal("not_reporter", {"id": ticket.id})
    if verb is Verb.NOTE and reporter and not handler:
        if ticket.state.final:
            return Refusal("ticket_final", {"id": ticket.id, "state": ticket.state.value})
        event = _event(ticket, EventKind.NOTED, now, actor, chat, note=command.text, by="reporter")
        after = evolve(ticket, event)
        node = ctx.tree.nodes[after.node]
        return Decision(
            after, (event,), tuple(_notices(ctx, after, node, "noted", note=command.text))
        )
    if verb in (Verb.ARRIVE, Verb.ASSISTED):
        return _department_step(ctx, ticket, command, actor, person, chat, now)
    if verb is Verb.NOTE and not handler:
        # A department asked to help, or a handler of an earlier stage (a grid worker replying
        # to the card after the ticket climbed), still knows the case: their note goes on the
        # timeline and to today's holders.
        department = assisting(ctx.tree, person, ticket)
        if department is not None:
            by: dict[str, Any] = {"by": "department", "department": department}
        elif handled_earlier(ctx.tree, person, ticket):
            by = {"by": "handler", "earlier": True}
        else:
            by = {}
        if by:
            if ticket.state.final:
                return Refusal("ticket_final", {"id": ticket.id, "state": ticket.state.value})
            return _chain(
                ctx, ticket, [], now, actor, chat, EventKind.NOTED,
                {"note": command.text, **by}, "noted", {"note": command.text},
            )  # fmt: skip
    if not handler:
        return Refusal(
            "not_in_scope"
            if person is not None and person.role in HANDLER_ROLES
            else "not_handler",
            {
                "id": ticket.id,
                "node": ticket.node,
                "node_name": _name(ctx, ticket.node),
                "node_names": _names(ctx, ticket.node),
            },
        )
    return _handle(ctx, ticket, command, actor, chat, now)


def _department_step(
    ctx: Context,
    ticket: Ticket,
    command: Command,
    actor: Actor,
    person: Person | None,
    chat: str,
    now: float,
) -> Decision | Refusal:
    """Record that a department asked to report in arrived, or finished its part."""
    department = assisting(ctx.tree, person, ticket)
    if department is None:
        return Refusal("not_department", {"id": ticket.id, "node": _name(ctx, ticket.node)})
    if ticket.state.final:
        return Refusal("ticket_final", {"id": ticket.id, "state": ticket.state.value})
    step = "arrived" if command.verb is Verb.ARRIVE else "assisted"
    if step in ticket.department_steps.get(department, {}):
        return Refusal("already_done_step", {"id": ticket.id, "step": command.verb.value})
    kind = EventKind.ARRIVED if step == "arrived" else EventKind.ASSISTED
    event = _event(ticket, kind, now, actor, chat, department=department, note=command.text)
    after = evolve(ticket, event)
    dept = ctx.tree.nodes[department]
    info: dict[str, Any] = {
        "department_name": dept.name,
        "department_names": _lang_names(dept),
        "by": actor.name,
        "at": now,
        "note": command.text,
    }
    replies = _notices(ctx, after, ctx.tree.nodes[after.node], step, **info)
    if chat not in {r.chat for r in replies}:  # the department's own group hears it too
        replies.append(
            Reply(chat, step, ticket_params(ctx, after, **info), actor.lang, ticket=after.id)
        )
    return Decision(after, (event,), tuple(replies))


def link_pair(
    ctx: Context,
    first: Ticket,
    second: Ticket,
    actor: Actor,
    person: Person | None,
    chat: str,
    now: float,
) -> tuple[Decision, Decision] | Refusal:
    """Link two tickets at a handler's word (``/link 42 43``): a ``related`` event on both."""
    for ticket in (first, second):
        if not may_view(ctx.tree, person, actor.account, ticket):
            return Refusal("no_such_ticket", {"id": ticket.id})
        if not may_handle(ctx.tree, person, ticket):
            return Refusal(
                "not_in_scope" if person is not None and person.role in HANDLER_ROLES
                else "not_handler",
                {"id": ticket.id, "node": _name(ctx, ticket.node)},
            )  # fmt: skip
    if first.id == second.id:
        return Refusal("link_self", {"id": first.id})
    if second.id in first.related:
        return Refusal("already_linked", {"id": first.id, "other": second.id})
    a, b = link(ctx, first, second, actor, chat, now), link(ctx, second, first, actor, chat, now)
    answer = Reply(chat, "linked", {"id": first.id, "other": second.id}, actor.lang)
    return Decision(a.ticket, a.events, (*a.replies, answer)), b


def reopen_as_new(
    ctx: Context,
    ticket_id: str,
    old: Ticket,
    message: IncomingMessage,
    match: Match,
    origin: Node,
    now: float,
) -> tuple[Decision, Decision]:
    """Open a new ticket for a co-reporter whose problem is not settled, linked to the old one.

    The access model keeps another person's ticket theirs: a co-reporter cannot reopen it,
    so their 重开 becomes a ticket of their own about their own report.
    """
    new = open_ticket(ctx, ticket_id, message, match, origin, now, related=(old.id,))
    told = tuple(
        dataclasses.replace(r, template="reopened_as_new", params={**r.params, "other": old.id})
        if r.chat in (message.chat, message.sender.account) and not r.card
        else r
        for r in new.replies
    )
    old_side = link(
        ctx, old, new.ticket, Actor(message.sender.account, message.sender.name), message.chat, now
    )
    return Decision(new.ticket, new.events, told), old_side


def _status(ctx: Context, ticket: Ticket, actor: Actor, chat: str, private: bool) -> Decision:
    """Answer ``/status``: a staff-only ticket only in private, a co-reporter without notes."""
    params = ticket_params(ctx, ticket, masked=True)
    if co_reporter(ticket, actor.account):
        reporter = next(r for r in ticket.reporters if r.account == actor.account)
        params = for_co_reporter(params, reporter)
    if private or not staff_only(ticket):
        return Decision(ticket, (), (Reply(chat, "status", params, actor.lang, ticket=ticket.id),))
    return Decision(
        ticket,
        (),
        (
            Reply(actor.account, "status", params, actor.lang, ticket=ticket.id),
            Reply(chat, "replied_privately", {"platform": platform_of(chat)}, actor.lang),
        ),
    )


def _handle(
    ctx: Context, ticket: Ticket, command: Command, actor: Actor, chat: str, now: float
) -> Decision | Refusal:
    verb, state = command.verb, ticket.state
    if state.final:
        return Refusal("ticket_final", {"id": ticket.id, "state": state.value})
    if verb is Verb.NOTE:
        events = []
        if command.via is Via.REPLY and state.awaiting_ack:  # a handler's reply to the card
            events.append(_event(ticket, EventKind.ACKNOWLEDGED, now, actor, chat))
        return _chain(
            ctx,
            ticket,
            events,
            now,
            actor,
            chat,
            EventKind.NOTED,
            {"note": command.text, "by": "handler"},
            "noted",
            {"note": command.text},
        )
    if state is TicketState.RESOLVED:
        return Refusal("already_resolved", {"id": ticket.id})
    if verb is Verb.ACK:
        if not state.awaiting_ack:
            return Refusal("already_acknowledged", {"id": ticket.id})
        return _chain(
            ctx, ticket, [], now, actor, chat, EventKind.ACKNOWLEDGED, {}, "acknowledged", {}
        )
    if verb is Verb.RESOLVE:
        close = dl.close_due(now, ctx.policy)
        return _chain(
            ctx,
            ticket,
            [],
            now,
            actor,
            chat,
            EventKind.RESOLVED,
            {"note": command.text, "close_due": close},
            "resolved",
            {"note": command.text},
            buttons=RESIDENT_BUTTONS,
        )
    if verb is Verb.DISMISS:
        return _chain(
            ctx,
            ticket,
            [],
            now,
            actor,
            chat,
            EventKind.DISMISSED,
            {"reason": command.text},
            "dismissed",
            {"reason": command.text},
        )
    if verb is Verb.ESCALATE:
        up = next_up(ctx.tree, ticket.node)
        if up is None:
            return Refusal("at_top", {"id": ticket.id})
        return _move(ctx, ticket, up, EventKind.ESCALATED, now, actor, chat, command.text)
    if verb is Verb.ASSIGN:
        return _assign(ctx, ticket, command, actor, chat, now)
    if verb is Verb.RECAT:
        return _recategorise(ctx, ticket, command, actor, chat, now)
    return Refusal("unknown_command", {"verb": verb.value})


def resolve_by_feed(
    ctx: Context, ticket: Ticket, actor: Actor, chat: str, note: str, now: float
) -> Decision | Refusal:
    """Resolve a ticket a data feed opened, when the feed says the problem is over.

    The feed is the reporter, so no handler's scope applies; the resolution is an event
    like a handler's, and the handlers' group is told.
    """
    return _handle(ctx, ticket, Command(Verb.RESOLVE, ticket.id, note), actor, chat, now)


def _resident(
    ctx: Context, ticket: Ticket, command: Command, actor: Actor, chat: str, now: float
) -> Decision | Refusal:
    verb, state = command.verb, ticket.state
    if verb is Verb.RATE:
        if state not in (TicketState.RESOLVED, TicketState.CLOSED):
            return Refusal("not_resolved", {"id": ticket.id})
        event = _event(ticket, EventKind.RATED, now, actor, chat, rating=command.rating)
        after = evolve(ticket, event)
        reply = Reply(chat, "rated", ticket_params(ctx, after), actor.lang, ticket=after.id)
        return Decision(after, (event,), (reply,))
    if state is TicketState.CLOSED and verb is Verb.REOPEN:
        return Refusal("closed_report_again", {"id": ticket.id})
    if state.final and verb is Verb.CONFIRM:
        return Refusal("already_closed", {"id": ticket.id, "state": state.value})
    if state is not TicketState.RESOLVED:
        return Refusal("not_resolved", {"id": ticket.id})
    if verb is Verb.CONFIRM:
        event = _event(ticket, EventKind.CONFIRMED, now, actor, chat)
        after = evolve(ticket, event)
        replies = _tell_reporters(ctx, after, "closed", {"by": "reporter"}, rate=True)
        replies += _notices(ctx, after, ctx.tree.nodes[after.node], "closed", by="reporter")
        return Decision(after, (event,), tuple(replies))
    ack_due, resolve_due = dl.due_times(
        ctx.ruleset, ticket.category, ticket.tier, now, ctx.policy, urgent=ticket.urgent
    )
    event = _event(
        ticket,
        EventKind.REOPENED,
        now,
        actor,
        chat,
        reason=command.text,
        ack_due=ack_due,
        resolve_due=resolve_due,
    )
    after = evolve(ticket, event)
    replies = _tell_reporters(ctx, after, "reopened", {"reason": command.text})
    replies += _cards(ctx, after, ctx.tree.nodes[after.node], "card", reason=command.text)
    return Decision(after, (event,), tuple(replies))


def on_deadline(
    ctx: Context, ticket: Ticket, kind: dl.DeadlineKind, stage: int, now: float
) -> tuple[dl.Outcome, Decision | None]:
    """Return what a deadline firing does: an outcome, and the decision when it acts."""
    top = next_up(ctx.tree, ticket.node) is None
    outcome = dl.check(ticket, kind, stage, now, top)
    system = Actor("system", "Lianhu")
    if outcome is dl.Outcome.ESCALATE:
        up = next_up(ctx.tree, ticket.node)
        assert up is not None
        return outcome, _move(
            ctx, ticket, up, EventKind.ESCALATED, now, system, None, "", missed=kind.value
        )
    if outcome is dl.Outcome.FLAG:
        event = _event(ticket, EventKind.FLAGGED, now, system, None, missed=kind.value)
        after = evolve(ticket, event)
        replies = [
            Reply(
                account,
                "flagged",
                ticket_params(ctx, after, missed=kind.value),
                Lang(p.lang),
                ticket=after.id,
            )
            for p in ctx.tree.people.values()
            if p.role is Role.ADMIN and may_act(ctx.tree, p, after.node)
            for account in _private_accounts(p, after)
        ]
        replies += _notices(ctx, after, ctx.tree.nodes[after.node], "overdue", missed=kind.value)
        return outcome, Decision(after, (event,), tuple(replies))
    if outcome is dl.Outcome.CLOSE:
        event = _event(ticket, EventKind.CLOSED, now, system, None, by="timeout")
        after = evolve(ticket, event)
        replies = _tell_reporters(ctx, after, "closed", {"by": "timeout"}, rate=True)
        return outcome, Decision(after, (event,), tuple(replies))
    return outcome, None


def _assign(
    ctx: Context, ticket: Ticket, command: Command, actor: Actor, chat: str, now: float
) -> Decision | Refusal:
    target = (command.target or "").lstrip("@")
    department = _department(ctx, ticket, target)
    if department is not None:
        return _move(ctx, ticket, department, EventKind.HANDED, now, actor, chat, command.text)
    person = _person(ctx, target)
    if person is None:
        return Refusal("unknown_person", {"target": command.target or ""})
    if person.role not in HANDLER_ROLES or not may_act(ctx.tree, person, ticket.node):
        return Refusal("assignee_out_of_scope", {"name": person.name, "id": ticket.id})
    decision = _chain(
        ctx,
        ticket,
        [],
        now,
        actor,
        chat,
        EventKind.ASSIGNED,
        {"person": person.id, "name": person.name, "note": command.text},
        "assigned",
        {"assignee": person.name},
    )
    private = tuple(
        Reply(
            account,
            "card",
            ticket_params(ctx, decision.ticket, masked=False, assigned=person.id),
            Lang(person.lang),
            ticket=ticket.id,
            buttons=live_buttons(ctx.tree, decision.ticket),
            card=True,
        )
        for account in _private_accounts(person, decision.ticket)
    )
    return Decision(decision.ticket, decision.events, decision.replies + private)


def category_named(ruleset: RuleSet, text: str) -> str | None:
    """Return the category a person named by id or by a name in any language, or None."""
    wanted = text.strip().casefold()
    for category_id, spec in ruleset.categories.items():
        if wanted == category_id.casefold() or wanted in (
            n.casefold() for n in spec.names.values()
        ):
            return category_id
    return None


def _recategorise(
    ctx: Context, ticket: Ticket, command: Command, actor: Actor, chat: str, now: float
) -> Decision | Refusal:
    """Change a ticket's category (its severity and visibility follow; it stays where it is)."""
    category = category_named(ctx.ruleset, command.text)
    if category is None:
        return Refusal("unknown_category", {"category": command.text.strip()})
    if category == ticket.category:
        return Refusal("same_category", ticket_params(ctx, ticket))
    spec = ctx.ruleset.categories[category]
    before = ctx.ruleset.categories.get(ticket.category)
    data = {
        "category": category,
        "severity": spec.severity.value,
        "visibility": spec.visibility.value,
        "urgent": ticket.urgent or spec.severity.value == "critical",
        "from": ticket.category,
    }
    info = {"from_names": dict(before.names) if before else {}, "from_category": ticket.category}
    return _chain(
        ctx, ticket, [], now, actor, chat, EventKind.RECATEGORISED, data, "recategorised", info
    )


def _move(
    ctx: Context,
    ticket: Ticket,
    to: Node,
    kind: EventKind,
    now: float,
    actor: Actor,
    chat: str | None,
    reason: str,
    **extra: Any,
) -> Decision:
    """Escalate or hand ``ticket`` to ``to``: a new stage with new deadlines there."""
    tier = _tier(to)
    ack_due, resolve_due = dl.due_times(
        ctx.ruleset, ticket.category, tier, now, ctx.policy, urgent=ticket.urgent
    )
    event = _event(
        ticket,
        kind,
        now,
        actor,
        chat,
        node=to.id,
        tier=tier,
        reason=reason,
        ack_due=ack_due,
        resolve_due=resolve_due,
        **{"from": ticket.node},
        **extra,
    )
    after = evolve(ticket, event)
    notice = "escalated" if kind is EventKind.ESCALATED else "handed"
    info = {
        "from_name": _name(ctx, ticket.node),
        "from_names": _names(ctx, ticket.node),
        "reason": reason,
        **extra,
    }
    replies = _tell_reporters(ctx, after, notice, info)
    replies += _notices(ctx, after, ctx.tree.nodes[ticket.node], notice, **info)
    # The card says how the ticket came (up, or handed over) for good: its state moves on.
    replies += _cards(ctx, after, to, "card", **info, moved=notice)
    return Decision(after, (event,), tuple(replies))


def _chain(
    ctx: Context,
    ticket: Ticket,
    before: Sequence[TicketEvent],
    now: float,
    actor: Actor,
    chat: str | None,
    kind: EventKind,
    data: Mapping[str, Any],
    notice: str,
    info: Mapping[str, Any],
    buttons: tuple[str, ...] = (),
) -> Decision:
    """Apply ``before`` then one event of ``kind``; tell the reporters and the node's chat."""
    events, current = [], ticket
    for event in before:
        current = evolve(current, event)
        events.append(event)
    event = _event(current, kind, now, actor, chat, **data)
    after = evolve(current, event)
    events.append(event)
    info = {**info, "by": actor.name}
    replies = _tell_reporters(ctx, after, notice, info, buttons=buttons)
    replies += _notices(ctx, after, ctx.tree.nodes[after.node], notice, **info)
    return Decision(after, tuple(events), tuple(replies))


def _event(
    ticket: Ticket, kind: EventKind, now: float, actor: Actor, chat: str | None, **data: Any
) -> TicketEvent:
    return TicketEvent(
        ticket.id,
        ticket.seq + 1,
        kind,
        now,
        actor.account,
        actor.name,
        chat,
        MappingProxyType(data),
    )


def _tell_reporters(
    ctx: Context,
    ticket: Ticket,
    template: str,
    info: Mapping[str, Any],
    buttons: tuple[str, ...] = (),
    rate: bool = False,
) -> list[Reply]:
    """Tell every reporter, in the group where they asked (privately for staff-only matters).

    Co-reporters hear the progress without what was written for the first reporter;
    confirming, reopening and rating are the first reporter's, and a co-reporter's 重开
    opens a ticket of their own (``reopen_as_new``).
    """
    public = ticket.visibility == Visibility.PUBLIC
    out = []
    for i, r in enumerate(ticket.reporters):
        if r.account == ERASED:  # they asked to be forgotten: nothing more reaches them
            continue
        params = ticket_params(ctx, ticket, masked=public, **info)
        offered = ("rate",) if rate else buttons
        if i:  # a co-reporter's own way to say their problem is not settled: a new ticket
            reopen = ("reopen",) if template in ("resolved", "closed") else ()
            params, offered = for_co_reporter(params, r), reopen
        out.append(
            Reply(
                r.chat if public else r.account,
                template,
                params,
                Lang(r.lang),
                reply_to=r.message_id if public else None,
                ticket=ticket.id,
                buttons=offered,
            )
        )
    return out


def _cards(
    ctx: Context,
    ticket: Ticket,
    node: Node,
    template: str,
    **info: Any,
) -> list[Reply]:
    """Return the ticket cards for a node: full in its staff chat, redacted if sensitive."""
    staff_only = ticket.visibility == Visibility.STAFF
    if node.department:  # a department asked to report in: its own steps still to press
        buttons = department_buttons(ticket, node.id)
        # Its card words what is left to press, and what it has done (kept true on edits).
        info = {**info, "department": node.id, "to_press": list(buttons)}
    else:  # only the handler's buttons that apply: no escalate at the top
        buttons = live_buttons(ctx.tree, ticket)
    out = []
    for chat in card_chats(node, staff_only):
        if chat == node.staff_chat:
            params = ticket_params(ctx, ticket, masked=False, **info)
        else:
            params = ticket_params(ctx, ticket, masked=True, redacted=staff_only, **info)
        out.append(Reply(chat, template, params, ticket=ticket.id, buttons=buttons, card=True))
    return out


def _notices(ctx: Context, ticket: Ticket, node: Node, template: str, **info: Any) -> list[Reply]:
    """Return short notices of a change for a node's chats (no buttons)."""
    staff_only = ticket.visibility == Visibility.STAFF
    chats = [node.staff_chat] if staff_only and node.staff_chat else list(node.chats)
    return [
        Reply(
            chat,
            template,
            ticket_params(
                ctx, ticket, masked=True, redacted=staff_only and chat != node.staff_chat, **info
            ),
            ticket=ticket.id,
        )
        for chat in chats
    ]


def _private_accounts(person: Person, ticket: Ticket) -> list[str]:
    """Return where to write to a person privately about a ticket.

    Their account on the platform the ticket was reported on (a ticket from the
    simulator reaches their simulator chat), else their first account.
    """
    platform = platform_of(ticket.reporter.chat) + ":"
    same = [a for a in person.accounts if a.startswith(platform)]
    return same[:1] or list(person.accounts[:1])


def ticket_params(ctx: Context, ticket: Ticket, masked: bool = True, **info: Any) -> dict[str, Any]:
    """Return what templates may show of a ticket, masked for public chats."""
    category = ctx.ruleset.categories.get(ticket.category)
    return {
        "id": ticket.id,
        "category": ticket.category,
        "category_names": dict(category.names) if category else {},
        "severity": ticket.severity,
        "urgent": ticket.urgent,
        "state": ticket.state.value,
        "text": mask(ticket.text) if masked else ticket.text,
        "reporter": ticket.reporter.name,
        "reporters": len(ticket.reporters),
        "origin": ticket.origin,
        "origin_name": _name(ctx, ticket.origin),
        "origin_names": _names(ctx, ticket.origin),
        "node": ticket.node,
        "node_name": _name(ctx, ticket.node),
        "node_names": _names(ctx, ticket.node),
        "ack_due": ticket.ack_due,
        "resolve_due": ticket.resolve_due,
        "close_due": ticket.close_due,
        "created_at": ticket.created_at,
        "escalations": ticket.escalations,
        "stage": ticket.stage,  # a card of an older stage in a chat with a newer one is stale
        "flagged": ticket.flagged,
        "assignee": ticket.assignee_name,
        "assignee_id": ticket.assignee,  # an assignee's own card tells whether it is still theirs
        "resolution": mask(ticket.resolution) if masked else ticket.resolution,
        "rating": ticket.rating,
        "photos": len(ticket.photos),
        "has_location": ticket.location is not None,
        "related": list(ticket.related),
        "department_steps": _steps(ctx, ticket),
        **{k: (mask(v) if masked and isinstance(v, str) else v) for k, v in info.items()},
    }


def _steps(ctx: Context, ticket: Ticket) -> list[dict[str, Any]]:
    """Return what each department asked to report in has done, for cards."""
    return [
        {"node": node, "node_name": _name(ctx, node), "node_names": _names(ctx, node), **steps}
        for node, steps in ticket.department_steps.items()
    ]


def _category_names(ctx: Context, category_id: str) -> dict[str, str]:
    category = ctx.ruleset.categories.get(category_id)
    return {str(k): v for k, v in category.names.items()} if category else {}


def _department(ctx: Context, ticket: Ticket, target: str) -> Node | None:
    """Return the department node named by id or kind, under the ticket's street."""
    street = ancestors(ctx.tree, ticket.origin)[-1]
    for node in ctx.tree.nodes.values():
        if (
            node.kind is NodeKind.DEPARTMENT
            and node.parent == street.id
            and target in (node.id, node.department)
        ):
            return node
    return None


def _person(ctx: Context, target: str) -> Person | None:
    """Return the person named by id, account or display name."""
    people = ctx.tree.people
    if target in people:
        return people[target]
    for person in people.values():
        if target == person.name or target in person.accounts:
            return person
    return None


def _tier(node: Node) -> str:
    return node.tier.value if node.tier is not None else NodeKind.DEPARTMENT.value


def _name(ctx: Context, node_id: str) -> str:
    node = ctx.tree.nodes.get(node_id)
    return node.name if node else node_id


def _names(ctx: Context, node_id: str) -> dict[str, str]:
    """Return a node's names in the other languages, for templates (the `place` filter)."""
    node = ctx.tree.nodes.get(node_id)
    return _lang_names(node) if node else {}


def node_params(node: Node) -> dict[str, Any]:
    """Return what the chat templates say of a node (``node_label``, the `place` filter)."""
    return {
        "node": node.id,
        "node_name": node.name,
        "node_names": _lang_names(node),
        "kind": node.kind.value,
    }


def _lang_names(node: Node) -> dict[str, str]:
    return dict(node.coded_names)
