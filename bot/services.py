"""The use cases: load, decide with the pure core, commit in one step, queue the replies.

Every operation is idempotent. A message is marked handled in the same atomic
commit that stores its ticket and its replies, so handling it again finds the
mark and does nothing; a deadline re-reads the ticket and acts only if the
ticket still owes what the deadline stands for.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import logging
import random
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot import notices, questions, reports, resolving
from bot.card_edits import subject
from bot.core import deadlines as dl
from bot.core.access import co_reporter, staff_only
from bot.core.cards import card_platforms, card_view
from bot.core.classify import Match
from bot.core.commands import TICKET_VERBS, BadCommand, Command, Verb, Via, parse
from bot.core.digest import digest_replies, queue_order
from bot.core.models import (
    INTAKE_PLATFORMS,
    SYSTEM,
    Actor,
    IncomingMessage,
    Reply,
    Visibility,
    platform_of,
)
from bot.core.notices import NOTICE_KIND, is_announcement
from bot.core.org import (
    HANDLER_ROLES,
    Node,
    OrgTree,
    Person,
    Role,
    ancestors,
    may_act,
    node_of_chat,
    person_of_account,
    staff_chat,
)
from bot.core.pacing import Pacing, priority, same_answer, slow_down, to_sender
from bot.core.privacy import mask
from bot.core.prompts import PROMPT_KINDS, Said, press_of, typed_press
from bot.core.quiet import HELD_PLATFORM, held, stage_held, summaries
from bot.core.resolution import asks_for_result
from bot.core.sameness import nearest
from bot.core.stats import node_stats
from bot.core.ticket import EventKind, Ticket, TicketEvent, TicketState
from bot.core.triage import EMERGENCY, Action, Verdict, triage
from bot.core.workflow import (
    Context,
    Decision,
    Refusal,
    apply,
    join_ticket,
    link,
    link_pair,
    on_deadline,
    open_ticket,
    reopen_as_new,
    report_problem,
    ticket_params,
    ticket_problem,
)
from bot.core.worktime import working
from bot.live import LiveConfig
from bot.ports import Clock, ScheduledJob, Scheduler
from bot.render import local_zone
from bot.storage import keys
from bot.storage.learning import LearningStore
from bot.storage.logins import LINK_TTL, Grant, Logins
from bot.storage.prompts import PromptStore
from bot.storage.raw import text_of
from bot.storage.redis import (
    Change,
    CommitStatus,
    Extra,
    OutboxEntry,
    Pace,
    Pool,
    RedisStore,
    deadline_members,
    reply_payload,
)

if TYPE_CHECKING:
    from bot.classifier.engine import Engine

log = logging.getLogger(__name__)

ATTEMPTS = 30  # commits that lose a race reload and decide again; this many times at most
STATS_WINDOW = 30 * 24 * 3600.0
SWEEP_LIMIT = 100_000  # overdue deadlines one sweep reads (a day of a large district)
SWEEP_BATCH = 32  # deadlines checked at once: round trips overlap, Redis is not flooded
# Batches in flight at once: one is decided here while Redis runs the other's commits.
SWEEP_LANES = 2


@dataclass(frozen=True)
class Handled:
    """What handling one message did."""

    # ignored | unbound | opened | joined | duplicate | done | refused
    # | ask (unsure which problem: the resident was asked; detail is the question's id)
    # | danger (possibly dangerous, not an emergency ticket: a grid worker was asked to confirm)
    status: str
    ticket: str | None = None
    detail: str = ""
    verdict: Verdict | None = None  # the classifier's decision on a report
    # What to tell only the person who pressed a button (a refusal): the platform shows it
    # to them alone (Telegram's callback answer, the simulator's toast); nothing is queued.
    answer: Reply | None = None


class Service:
    """Lianhu's use cases over a store, the live config and a scheduler.

    Replies are queued as templates with their parameters; each platform's sender
    renders them (bot/sender.py), so handling a message does no text work.
    """

    def __init__(
        self,
        store: RedisStore,
        config: LiveConfig,
        scheduler: Scheduler,
        clock: Clock = time.time,
        classifier: Engine | None = None,
        pacing: Pacing | None = None,
        web_url: str | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.scheduler = scheduler
        self.clock = clock
        self.classifier = classifier  # None: the keyword rules alone decide
        self.pacing = pacing or Pacing()
        self.prompts = PromptStore(store.redis)
        self.learning = LearningStore(store.redis)
        self.logins = Logins(store.redis)
        # Where the web console is served (LIANHU_WEB_URL); None: /web says there is none.
        self.web_url = web_url
        # Work on one ticket (or one village's problem) in turn within this process;
        # the commit guards still settle races with other processes.
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def _lock(self, key: str) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    # -- incoming messages -------------------------------------------------------------

    async def handle_message(self, message: IncomingMessage) -> Handled:
        """Handle one message or button press from a chat."""
        log.debug("message %s from %s: %s", message.key, message.sender.account, message.text)
        ctx = self.config.context
        reply_ticket = None
        if message.reply_to:
            reply_ticket = await self.store.card_ticket(message.chat, message.reply_to)
        pressed = press_of(message.callback) if message.callback else typed_press(message.text)
        if pressed is not None:  # a button of a question the bot asked (danger, ask)
            return await questions.press(self, message, pressed)
        if message.callback is None:  # the result a 办结 press asked for?
            answered = await resolving.answer(self, ctx, message, reply_ticket)
            if answered is not None:
                return answered
        command = parse(message.text, message.callback, reply_ticket)
        if asks_for_result(command):
            assert isinstance(command, Command)
            return await resolving.ask(self, ctx, message, command)
        if command is None:
            return await self._report(ctx, message)
        person = person_of_account(ctx.tree, message.sender.account)
        if isinstance(command, BadCommand):
            return await self._refuse(message, command.problem, {"verb": command.verb.value})
        if command.verb in TICKET_VERBS:
            return await self._ticket_command(ctx, message, command, person)
        if command.verb in notices.NOTICE_VERBS:
            return await notices.command(self, ctx, message, command, person)
        return await self._query(ctx, message, command, person)

    async def classify(self, text: str) -> Verdict:
        """Return the verdict on ``text``: the model behind the rails, or the rules alone."""
        if self.classifier is None:
            return triage(text, self.config.context.ruleset, None)
        return await self.classifier.classify(text)  # in its thread pool

    async def _report(self, ctx: Context, message: IncomingMessage) -> Handled:
        verdict = await self.classify(message.text)
        origin = node_of_chat(ctx.tree, message.chat)
        if origin is not None and not message.private and message.text.strip():
            # Masked, for `lianhu rules replay` (capped by count and age).
            await self.learning.log(
                mask(message.text), verdict.category, verdict.action.value, self.clock()
            )
        emergency = verdict.danger and verdict.category == EMERGENCY
        if not verdict.danger and origin is not None and is_announcement(message.text):
            # A notice of planned work forwarded into the group: news, not a request.
            return Handled("ignored", detail="announcement", verdict=verdict)
        if verdict.action is not Action.TICKET and not emergency:
            if origin is None or message.private:
                return Handled("ignored", verdict=verdict)
            if verdict.danger:
                log.info("possible danger in %s (%s, p=%.2f): to confirm",
                         message.chat, verdict.category, verdict.confidence)  # fmt: skip
                return await questions.flag(self, ctx, message, verdict, origin)
            if message.text.strip() or message.photos:
                # Kept a few days: a household leader or grid worker may ticket it (立案).
                await self.prompts.keep(Said.of(message))
            if verdict.action is Action.ASK:
                log.info("unsure report in %s (%s, p=%.2f): to ask",
                         message.chat, verdict.category, verdict.confidence)  # fmt: skip
                return await questions.ask_resident(self, ctx, message, verdict, origin)
            return Handled("ignored", verdict=verdict)  # chatter: no answer
        match = verdict.match
        assert match is not None  # a ticket always has its category
        if origin is None:
            log.info("report in a chat bound to no node: %s", message.chat)
            return Handled("unbound")
        # A known incident answers it (looked for only when a notice is in force: see lookup).
        answerable = not verdict.danger and not message.private
        handled = await self.ticket_for(ctx, message, match, origin, notices_answer=answerable)
        if handled.status == "noticed":
            return dataclasses.replace(handled, verdict=verdict)
        if verdict.danger and not emergency and handled.status in ("opened", "joined"):
            log.info("possible danger in %s, opened as %s", message.chat, verdict.category)
            flagged = await questions.flag(self, ctx, message, verdict, origin, handled.ticket)
            return dataclasses.replace(handled, detail=flagged.detail, verdict=verdict)
        return handled

    async def ticket_for(
        self,
        ctx: Context,
        message: IncomingMessage,
        match: Match,
        origin: Node,
        *,
        notices_answer: bool = False,
    ) -> Handled:
        """Open a ticket for ``message`` as ``match``, or join it to an open one of its kind.

        With ``notices_answer``, a notice in force that matches answers it instead.
        """
        category = ctx.ruleset.categories.get(match.category)
        sensitive = category is not None and category.visibility is Visibility.STAFF
        # Joining switched off, or a staff-only matter (a neighbour's matching report must not
        # make them party to it): every such report is its own ticket, and links to none.
        if ctx.policy.join_window <= 0 or sensitive:
            return await self._open_or_join(ctx, message, match, origin, None, notices_answer)
        village = _join_scope(ctx.tree, origin).id
        pool = Pool(keys.recent(village), keys.recent_version(village))
        async with self._lock(pool.tickets):
            return await self._open_or_join(ctx, message, match, origin, pool, notices_answer)

    async def _open_or_join(
        self,
        ctx: Context,
        message: IncomingMessage,
        match: Match,
        origin: Node,
        pool: Pool | None,
        notices_answer: bool = False,
    ) -> Handled:
        """Join the same problem at the same place, else open a ticket linked to related ones."""
        for attempt in range(ATTEMPTS):
            await _back_off(attempt)
            now = self.clock()
            since = now - ctx.policy.join_window
            done, ids, version, in_force = await self.store.lookup(message.key, pool, since, now)
            if done is not None:
                return _duplicate(done)
            if notices_answer and in_force:
                noticed = await notices.answer_report(self, ctx, message, match, origin)
                if noticed is not None:
                    return noticed
            open_ = [t for t in await self.store.get_many(ids) if t.state.active]
            report = report_problem(ctx, message, match, origin)
            same, related = nearest(report, [(t.id, ticket_problem(ctx, t)) for t in open_])
            by_id = {t.id: t for t in open_}
            linked: list[tuple[Ticket, Ticket, Sequence[TicketEvent]]] = []
            outbox: list[OutboxEntry] = []
            if same is not None:
                before: Ticket | None = by_id[same]
                decision = join_ticket(ctx, by_id[same], message, now)
                status, opening = "joined", None
            else:
                before = None
                ticket_id = await self.store.next_id()
                decision = open_ticket(ctx, ticket_id, message, match, origin, now, related)
                status = "opened"
                opening = (
                    dataclasses.replace(pool, read=version, window=ctx.policy.join_window)
                    if pool
                    else None
                )
                for other_id in related:
                    other = link(ctx, by_id[other_id], decision.ticket, SYSTEM, message.chat, now)
                    linked.append((by_id[other_id], other.ticket, other.events))
                    outbox += self._outbox(other, message)
            result, value = await self.store.commit(
                before,
                decision.ticket,
                decision.events,
                self._outbox(decision, message) + outbox,
                message.key,
                opening,
                self._jobs(before, decision.ticket),
                linked,
            )
            if result is CommitStatus.OK:
                return Handled(status, decision.ticket.id)
            if result is CommitStatus.DUPLICATE:
                return _duplicate(value)
        raise RuntimeError(f"message {message.key}: gave up after {ATTEMPTS} conflicting commits")

    async def _ticket_command(
        self, ctx: Context, message: IncomingMessage, command: Command, person: Person | None
    ) -> Handled:
        assert command.ticket is not None
        if command.verb is Verb.LINK and command.target is not None:
            async with contextlib.AsyncExitStack() as locks:  # in id order: no deadlock
                for ticket_id in sorted({command.ticket, command.target}):
                    await locks.enter_async_context(self._lock(ticket_id))
                return await self._link(ctx, message, command, person)
        async with self._lock(command.ticket):
            return await self._command_on(ctx, message, command, person)

    async def _link(
        self, ctx: Context, message: IncomingMessage, command: Command, person: Person | None
    ) -> Handled:
        """Link two tickets at a handler's word: a ``related`` event on both, in one commit."""
        assert command.ticket is not None and command.target is not None
        for attempt in range(ATTEMPTS):
            await _back_off(attempt)
            now = self.clock()
            if (done := await self.store.was_processed(message.key)) is not None:
                return Handled("duplicate", done if done != "-" else None)
            first = await self.store.get(command.ticket)
            second = await self.store.get(command.target)
            for wanted, found in ((command.ticket, first), (command.target, second)):
                if found is None:
                    return await self.refuse_missing(message, wanted)
            assert first is not None and second is not None
            outcome = link_pair(ctx, first, second, message.sender, person, message.chat, now)
            if isinstance(outcome, Refusal):
                return await self._refuse(message, outcome.reason, dict(outcome.params))
            a, b = outcome
            result, _ = await self.store.commit(
                first, a.ticket, a.events, self._outbox(a, message) + self._outbox(b, message),
                message.key, linked=[(second, b.ticket, b.events)],
            )  # fmt: skip
            if result is CommitStatus.OK:
                return Handled("done", first.id, command.verb.value)
            if result is CommitStatus.DUPLICATE:
                return Handled("duplicate", first.id)
        raise RuntimeError(f"command {message.key}: gave up after {ATTEMPTS} conflicting commits")

    async def _reopen_as_new(
        self, ctx: Context, message: IncomingMessage, command: Command, old: Ticket
    ) -> Handled:
        """A co-reporter's 重开: a ticket of their own about their report, linked to the old one."""
        mine = next(r for r in old.reporters if r.account == message.sender.account)
        origin = node_of_chat(ctx.tree, mine.chat)
        category = ctx.ruleset.categories.get(old.category)
        if origin is None or category is None:
            return await self._refuse(message, "closed_report_again", {"id": old.id})
        own = next(
            (str(e.data.get("text") or "") for e in await self.store.history(old.id)
             if e.kind is EventKind.JOINED and e.actor == mine.account),
            "",
        )  # fmt: skip
        report = IncomingMessage(
            mine.chat,
            message.message_id if message.chat == mine.chat else mine.message_id,
            message.sender,
            command.text or own or old.category,
            message.sent_at,
        )
        match = Match(old.category, "reopen", 0, category.severity, old.urgent,
                      category.start_tier, ())  # fmt: skip
        new_id = await self.store.next_id()
        new, old_side = reopen_as_new(ctx, new_id, old, report, match, origin, self.clock())
        result, value = await self.store.commit(
            None, new.ticket, new.events,
            self._outbox(new, message) + self._outbox(old_side, message), message.key,
            jobs=self._jobs(None, new.ticket), linked=[(old, old_side.ticket, old_side.events)],
        )  # fmt: skip
        if result is CommitStatus.DUPLICATE:
            return _duplicate(value)
        if result is not CommitStatus.OK:  # the old ticket moved meanwhile: decide again
            return await self._command_on(
                ctx, message, command, person_of_account(ctx.tree, message.sender.account)
            )
        return Handled("opened", new.ticket.id, "reopened_as_new")

    async def _command_on(
        self, ctx: Context, message: IncomingMessage, command: Command, person: Person | None
    ) -> Handled:
        assert command.ticket is not None
        for attempt in range(ATTEMPTS):
            await _back_off(attempt)
            now = self.clock()
            if (done := await self.store.was_processed(message.key)) is not None:
                return Handled("duplicate", done if done != "-" else None)
            ticket = await self.store.get(command.ticket)
            if ticket is None:
                if command.via is Via.REPLY:
                    return Handled("ignored")
                return await self.refuse_missing(message, command.ticket)
            if (
                command.verb is Verb.REOPEN
                and co_reporter(ticket, message.sender.account)
                and ticket.state in (TicketState.RESOLVED, TicketState.CLOSED)
            ):
                return await self._reopen_as_new(ctx, message, command, ticket)
            outcome = apply(
                ctx, ticket, command, message.sender, person, message.chat, now, message.private
            )
            if isinstance(outcome, Refusal):
                if command.via is Via.REPLY and not _staff(person):
                    return Handled("ignored")  # a resident's chat reply: not for the bot
                return await self._refuse(message, outcome.reason, dict(outcome.params))
            events = outcome.events
            if not events:  # an answer (such as /status) quotes the question in its chat
                outcome = dataclasses.replace(
                    outcome, replies=tuple(_quoting(r, message) for r in outcome.replies)
                )
            result, _ = await self.store.commit(
                ticket if events else None,
                outcome.ticket if events else None,
                events,
                self._outbox(outcome, message),
                message.key,
                jobs=self._jobs(ticket, outcome.ticket) if events else (),
            )
            if result is CommitStatus.OK:
                if command.verb in (Verb.RECAT, Verb.DISMISS):  # a handler's label to learn from
                    category = outcome.ticket.category if command.verb is Verb.RECAT else "none"
                    source = "recat" if command.verb is Verb.RECAT else "dismissed"
                    who = message.sender.account
                    text = mask(ticket.text)
                    await self.learning.add_example(source, message.key, text, category, who, now)
                return Handled("done", ticket.id, command.verb.value)
            if result is CommitStatus.DUPLICATE:
                return Handled("duplicate", ticket.id)
        raise RuntimeError(f"command {message.key}: gave up after {ATTEMPTS} conflicting commits")

    async def _query(
        self, ctx: Context, message: IncomingMessage, command: Command, person: Person | None
    ) -> Handled:
        verb = command.verb
        if verb in (Verb.REPORT, Verb.HUMAN, Verb.OPEN_TICKET):
            return await reports.on_purpose(self, ctx, message, command, person)
        handler = person is not None and person.role in HANDLER_ROLES
        admin = person is not None and person.role is Role.ADMIN
        if verb is Verb.WEB:
            return await self._web_link(message, person)
        if verb is Verb.HELP:
            role = "admin" if admin else "handler" if handler else "resident"
            params: dict[str, Any] = {"role": role}
            if message.private:  # who they are to Lianhu, for the roster (never in a group)
                params["account"] = message.sender.account
            return await self._answer(message, "help", params)
        if verb in (Verb.RELOAD, Verb.RULES):
            if not admin:
                return await self._refuse(message, "not_admin", {"verb": verb.value})
            if verb is Verb.RELOAD:
                result = await self.check_config(force=True)
                if result.problems:
                    return await self._answer(message, "rules_invalid", _problems(result.problems))
            rs = self.config.ruleset
            return await self._answer(
                message,
                "rules_reloaded",
                {"rules": len(rs.rules), "categories": len(rs.categories)},
            )
        if verb is Verb.MY or verb is Verb.MINE:
            ids: list[str] = []
            if verb is Verb.MY:
                ids += await self.store.reported(message.sender.account)
            if person is not None and (verb is Verb.MINE or handler):
                ids += await self.store.ids(keys.by_assignee(person.id))
            return await self._list(ctx, message, verb.value, list(dict.fromkeys(ids)))
        if not handler or person is None:
            return await self._refuse(message, "not_handler", {"verb": verb.value})
        nodes = [n for n in ctx.tree.nodes if may_act(ctx.tree, person, n)]
        if verb is Verb.OPEN:
            return await self._list(ctx, message, "open", await self.store.active_at(nodes))
        now = self.clock()
        scope = set(nodes)
        tickets = [
            t
            for t in await self.store.get_many(await self.store.all_ids(now - STATS_WINDOW))
            if t.node in scope or t.origin in scope
        ]
        histories = await self.store.histories([t.id for t in tickets])
        rows = node_stats(tickets, histories, ctx.tree, now)
        return await self._answer_staff(
            ctx,
            message,
            "stats",
            {
                "rows": [vars(r) for r in rows if r.node in scope or r.node.startswith("tier:")],
                "since": now - STATS_WINDOW,
                "until": now,
                "days": round(STATS_WINDOW / 86400),
            },
        )

    async def _web_link(self, message: IncomingMessage, person: Person | None) -> Handled:
        """Send a one-time sign-in link to the web console, only ever in a private chat."""
        if not message.private:
            return await self._refuse(message, "web_private_only", {})
        if not self.web_url:
            return await self._answer(message, "web_unavailable", {})
        sender = message.sender
        grant = Grant(
            sender.account, person.id if person else None, sender.lang.value, self.clock()
        )
        token = await self.logins.issue(grant)
        url = f"{self.web_url.rstrip('/')}/login/{token}"
        return await self._answer(message, "web_link", {"url": url, "minutes": LINK_TTL // 60})

    async def act(self, command: Command, actor: Actor, key: str) -> Handled:
        """Carry out a ticket command given in the web console, as if typed in a private chat.

        The same checks, commit, notices and card edits as in a chat; a refusal comes back
        in ``Handled.answer`` for the page to show, and nothing is sent. ``key`` names the
        form that was sent, so that sending it twice acts once.
        """
        message = IncomingMessage(
            actor.account, f"web-{key}", actor, "", self.clock(), private=True, console=True
        )
        person = person_of_account(self.config.context.tree, actor.account)
        return await self._ticket_command(self.config.context, message, command, person)

    async def _list(
        self, ctx: Context, message: IncomingMessage, title: str, ids: Sequence[str]
    ) -> Handled:
        now = self.clock()
        tickets = await self.store.get_many(list(ids))
        if title != "my":  # a handler's queue: overdue first, then what is due next
            tickets = queue_order([t for t in tickets if t.state.active], now)
        params = {
            "title": title,
            "tickets": [ticket_params(ctx, t, masked=True, late=t.overdue(now)) for t in tickets],
        }
        if title != "my":  # a handler's list names tickets and places: staff eyes only
            return await self._answer_staff(ctx, message, "ticket_list", params)
        if message.private or not any(staff_only(t) for t in tickets):
            return await self._answer(message, "ticket_list", params)
        # A resident's own list names a staff-only matter: not in front of the group.
        return await self._answer_privately(message, "ticket_list", params)

    async def _answer_staff(
        self, ctx: Context, message: IncomingMessage, template: str, params: dict[str, Any]
    ) -> Handled:
        """Answer in private or a staff chat; asked in a public group, answer privately."""
        if message.private or staff_chat(ctx.tree, message.chat):
            return await self._answer(message, template, params)
        return await self._answer_privately(message, template, params)

    async def _answer_privately(
        self, message: IncomingMessage, template: str, params: dict[str, Any]
    ) -> Handled:
        """Send the answer to the asker privately; the group hears only that it was sent."""
        lang = message.sender.lang
        await self._commit_replies(
            message,
            [
                Reply(message.sender.account, template, params, lang),
                Reply(
                    message.chat,
                    "replied_privately",
                    {"platform": platform_of(message.chat)},
                    lang,
                    reply_to=message.message_id,
                ),
            ],
        )
        return Handled("done", detail=template)

    async def _answer(
        self, message: IncomingMessage, template: str, params: dict[str, Any]
    ) -> Handled:
        await self._say(message, template, params)
        return Handled("done", detail=template)

    async def refuse_missing(self, message: IncomingMessage, ticket_id: str) -> Handled:
        """Refuse a command on a ticket not in Redis: archived, or not found (or not theirs)."""
        reason = "ticket_archived" if await self.store.archived(ticket_id) else "no_such_ticket"
        return await self._refuse(message, reason, {"id": ticket_id})

    async def _refuse(
        self, message: IncomingMessage, reason: str, params: dict[str, Any]
    ) -> Handled:
        if message.callback is not None or message.console:  # to the presser alone
            answer = Reply(message.sender.account, reason, params, message.sender.lang)
            return Handled("refused", params.get("id"), reason, answer=answer)
        await self._say(message, reason, params)
        return Handled("refused", params.get("id"), reason)

    async def say_publicly(self, message: IncomingMessage, answer: Reply) -> None:
        """Queue a press's answer as a quoted reply in its chat (platforms with no private one)."""
        await self._say(message, answer.template, dict(answer.params))

    async def _say(self, message: IncomingMessage, template: str, params: dict[str, Any]) -> None:
        """Answer a message in its chat, quoting it, in the sender's language."""
        reply = Reply(
            message.chat, template, params, message.sender.lang, reply_to=message.message_id
        )
        await self._commit_replies(message, [reply])

    async def _commit_replies(self, message: IncomingMessage, replies: Sequence[Reply]) -> None:
        outbox = self._entries(replies, f"m:{message.key}", message)
        await self.store.commit(None, None, (), outbox, message.key)

    # -- deadlines ---------------------------------------------------------------------

    async def handle_deadline(self, ticket_id: str, stage: int, kind: str) -> dl.Outcome:
        """Check one deadline of a ticket and act if it is really missed."""
        if kind in PROMPT_KINDS:  # a question the bot asked: p12:0:danger
            return await questions.deadline(self, ticket_id, stage, kind)
        if kind == NOTICE_KIND:  # a notice's window: n3:0:notice
            return await notices.deadline(self, ticket_id, stage, kind)
        ctx = self.config.context
        async with self._lock(ticket_id):
            return await self._deadline(ctx, ticket_id, stage, kind)

    async def _deadline(
        self, ctx: Context, ticket_id: str, stage: int, kind: str, first: int = 0
    ) -> dl.Outcome:
        for attempt in range(first, ATTEMPTS):
            await _back_off(attempt)
            ticket = await self.store.get(ticket_id)
            outcome, change = self._deadline_change(ctx, ticket_id, stage, kind, ticket)
            result, _ = await self.store.commit_change(change)
            if change.after is None or result is CommitStatus.OK:
                _fired(ticket_id, stage, kind, outcome, change)
                return outcome
        raise RuntimeError(
            f"deadline {ticket_id}:{stage}:{kind}: gave up after {ATTEMPTS} conflicts"
        )

    def _deadline_change(
        self, ctx: Context, ticket_id: str, stage: int, kind: str, ticket: Ticket | None
    ) -> tuple[dl.Outcome, Change]:
        """Return what a deadline of ``ticket`` (as read) comes to, and the commit making it:
        the ticket's change (guarded by its history's length), or only the index or job
        writes when it does not act."""
        if ticket is None:
            return dl.Outcome.MOVED_ON, _forget(ticket_id, stage, kind)
        outcome, decision = on_deadline(ctx, ticket, dl.DeadlineKind(kind), stage, self.clock())
        if outcome is dl.Outcome.EARLY:
            due = dl.due_of(ticket, dl.DeadlineKind(kind))
            assert due is not None
            # A second later than due: a job id names its second, and this job (with the
            # due second's id) is still running, so the new one needs a new id.
            job = self.scheduler.job(ticket_id, stage, kind, due + 1.0)
            return outcome, Change(jobs=(job,) if job else ())
        if decision is None:
            return outcome, _forget(ticket_id, stage, kind)
        change = Change(
            ticket,
            decision.ticket,
            decision.events,
            self._outbox(decision),
            jobs=self._jobs(ticket, decision.ticket),
        )
        return outcome, change

    async def digest(self, at: str, zone: dt.tzinfo) -> int:
        """Queue today's digest once ``at`` (HH:MM in ``zone``) has passed; return messages queued.

        Once a day however many workers call it: the commit is guarded by a processed
        marker for the day, and each message has its own outbox key.
        """
        now = self.clock()
        local = dt.datetime.fromtimestamp(now, zone)
        if local.strftime("%H:%M") < at:
            return 0
        key = f"digest:{local.date().isoformat()}"
        if await self.store.was_processed(key):
            return 0
        ctx = self.config.context
        queues = await self.store.queues(ctx.tree.nodes)
        owed = [i for q in queues.values() for i in q]
        tickets = {t.id: t for t in await self.store.get_many(owed)}
        replies = digest_replies(
            ctx,
            {node: [tickets[i] for i in ids if i in tickets] for node, ids in queues.items()},
            now,
            local.date().isoformat(),
        )
        status, _ = await self.store.commit(None, None, (), self._entries(replies, key), key)
        return len(replies) if status is CommitStatus.OK else 0

    async def release_held(self, zone: dt.tzinfo, limit: int = 1000) -> int:
        """Send what quiet hours held, as one summary per chat, once the working day began.

        Return the summaries queued. The commit deletes the entries it summarised and is
        guarded by the held stream's length, so two workers never release the same cards.
        """
        ctx = self.config.context
        if not working(self.clock(), ctx.policy.work_hours, ctx.policy.work_days, zone):
            return 0
        stream = keys.outbox(HELD_PLATFORM)
        for attempt in range(ATTEMPTS):
            await _back_off(attempt)
            length = await self.store.redis.xlen(stream)
            found: Any = await self.store.redis.xrange(stream, count=limit) if length else []
            rows: list[Any] = list(found or [])
            if not rows:
                return 0
            payloads = [json.loads(fields[b"payload"]) for _, fields in rows]
            ids = {str(p.get("params", {}).get("id")) for p in payloads}
            current = {t.id: t for t in await self.store.get_many(sorted(ids))}
            replies = summaries(payloads, current)
            first, last = (text_of(rows[0][0]), text_of(rows[-1][0]))
            key = f"held:{first}:{last}"
            extra = Extra(drained=(stream, length, tuple(text_of(i) for i, _ in rows)))
            status, _ = await self.store.commit(
                None, None, (), self._entries(replies, key), key, extra=extra
            )
            if status is CommitStatus.OK:
                log.info("quiet hours: %d held cards released in %d summaries",
                         len(rows), len(replies))  # fmt: skip
                return len(replies)
            if status is CommitStatus.DUPLICATE:
                return 0
        raise RuntimeError(f"releasing held cards: gave up after {ATTEMPTS} conflicts")

    async def sweep(self, grace: float = 5.0) -> int:
        """Check every deadline overdue by more than ``grace`` seconds; return how many.

        All of them, SWEEP_BATCH at a time: a backlog (a worker down for an hour) is cleared
        in one sweep, not 500 per sweep. Several workers may sweep at once: each deadline is
        an atomic compare-and-set, so it fires once whoever gets there first.
        """
        return await self.check_due(self.clock() - grace)

    async def check_due(self, until: float) -> int:
        """Check every deadline due by ``until``, oldest first; return how many: the work of
        a second's deadline job (``bot.scheduling``) and of the sweeper. One found early
        (rq runs a job up to a second early) gets the next second's job. SWEEP_BATCH at a
        time (``_check_batch``), SWEEP_LANES batches in flight."""
        due = await self.store.due(until, limit=SWEEP_LIMIT)
        batches = [
            [(t, s, k) for t, s, k, _ in due[start : start + SWEEP_BATCH]]
            for start in range(0, len(due), SWEEP_BATCH)
        ]
        batches.reverse()  # popped from the end: oldest first

        async def lane() -> None:
            while batches:
                batch = batches.pop()
                try:
                    later = await self._check_batch(batch)
                except Exception as error:  # the other batches go on; this one next sweep
                    log.error("sweep: %d deadlines from %s:%s:%s failed", len(batch),
                              *batch[0], exc_info=error)  # fmt: skip
                    continue
                done = await asyncio.gather(
                    *(self._check_again(t, s, k, first) for t, s, k, first in later),
                    return_exceptions=True,
                )
                for (ticket_id, stage, kind, _), outcome in zip(later, done, strict=True):
                    if isinstance(outcome, BaseException):  # the others go on; next sweep
                        _failed(ticket_id, stage, kind, outcome)

        await asyncio.gather(*(lane() for _ in range(SWEEP_LANES)))
        return len(due)

    async def _check_batch(
        self, batch: Sequence[tuple[str, int, str]]
    ) -> list[tuple[str, int, str, int]]:
        """Check a batch of tickets' deadlines in two round trips: their tickets read in one,
        their commits sent in one (each its own compare-and-set on the ticket's history, as
        ``handle_deadline`` makes it). Return what is left for ``handle_deadline``'s way,
        with the attempt it starts at: questions, notices, tickets busy in this process, and
        commits that lost a race (read again and decided again)."""
        ctx = self.config.context
        later: list[tuple[str, int, str, int]] = []
        mine: list[tuple[str, int, str]] = []
        held: list[asyncio.Lock] = []
        for ticket_id, stage, kind in batch:
            lock = self._lock(ticket_id)
            if kind in PROMPT_KINDS or kind == NOTICE_KIND or lock.locked():
                later.append((ticket_id, stage, kind, 0))
            else:  # free: taken at once (acquire does not wait for a free lock)
                await lock.acquire()
                held.append(lock)
                mine.append((ticket_id, stage, kind))
        try:
            read = await self.store.read([t for t, _, _ in mine])
            planned: list[tuple[tuple[str, int, str], dl.Outcome, Change]] = []
            for (ticket_id, stage, kind), (ticket, _) in zip(mine, read, strict=True):
                try:
                    outcome, change = self._deadline_change(ctx, ticket_id, stage, kind, ticket)
                except Exception as error:  # the others go on; this one next sweep
                    _failed(ticket_id, stage, kind, error)
                    continue
                planned.append(((ticket_id, stage, kind), outcome, change))
            results = await self.store.commit_many([change for _, _, change in planned])
            for (deadline, outcome, change), result in zip(planned, results, strict=True):
                if isinstance(result, Exception):
                    _failed(*deadline, result)
                elif change.after is None or result[0] is CommitStatus.OK:
                    _fired(*deadline, outcome, change)
                else:  # another worker changed the ticket since it was read
                    later.append((*deadline, 1))
        finally:
            for lock in held:
                lock.release()
        return later

    async def _check_again(self, ticket_id: str, stage: int, kind: str, first: int) -> dl.Outcome:
        """Check one deadline ``handle_deadline``'s way, from attempt ``first``."""
        if first == 0:
            return await self.handle_deadline(ticket_id, stage, kind)
        async with self._lock(ticket_id):
            return await self._deadline(self.config.context, ticket_id, stage, kind, first)

    def _jobs(self, before: Ticket | None, after: Ticket) -> tuple[ScheduledJob, ...]:
        """Return the job for the ticket's earliest owed deadline, when that changed.

        One job at a time per ticket: the next is made when that one is settled
        (acknowledged, escalated, resolved). The DEADLINES index holds every owed
        deadline, so the sweeper finds any whose job was lost.
        """
        nearest = _earliest(deadline_members(after))
        if nearest is None or nearest == _earliest(deadline_members(before)):
            return ()
        member, due = nearest
        ticket_id, stage, kind = keys.parse_deadline_member(member)
        job = self.scheduler.job(ticket_id, stage, kind, due)
        return (job,) if job is not None else ()

    # -- configuration -----------------------------------------------------------------

    async def check_config(self, force: bool = False) -> Any:
        """Reload changed rule and org files; tell the administrators when they are invalid."""
        result = await self.config.reload_off_loop(force=force)
        if result.problems:
            log.warning("rules or org invalid, keeping the last good set: %s", result.problems[0])
            tree = self.config.tree
            replies = [
                Reply(account, "rules_invalid", _problems(result.problems), p.lang)
                for p in tree.people.values()
                if p.role is Role.ADMIN
                for account in p.accounts[:1]
            ]
            marker = f"config:{result.fingerprint}"  # each broken state is reported once
            await self.store.commit(None, None, (), self._entries(replies, marker), marker)
        elif result.changed:
            log.info("rules and org reloaded: %d rules", len(self.config.ruleset.rules))
            if self.classifier is not None:  # the rails at once, the model in the background
                self.classifier.update(self.config.ruleset)
        return result

    # -- outbox --------------------------------------------------------------------------

    def _outbox(
        self, decision: Decision, message: IncomingMessage | None = None
    ) -> list[OutboxEntry]:
        if decision.events:
            prefix = f"t:{decision.ticket.id}:{decision.events[-1].seq}"
        else:
            assert message is not None
            prefix = f"m:{message.key}"
        changed = decision.ticket if decision.events else None
        replies, waiting = list(decision.replies), []
        if changed is not None and self.config.context.policy.work_hours is not None:
            # Quiet hours: a calmer ticket's cards to groups wait for the working day.
            ctx, at = self.config.context, decision.events[-1].at
            hours, zone = ctx.policy.work_hours, local_zone()
            days = ctx.policy.work_days
            waiting = [r for r in replies if held(r, changed, ctx.tree, at, hours, days, zone)]
            replies = [r for r in replies if r not in waiting]
        entries = self._entries(replies, prefix, message, changed)
        entries += [
            OutboxEntry(HELD_PLATFORM, f"{prefix}:held:{i}", reply_payload(r))
            for i, r in enumerate(waiting)
        ]
        if changed is None:
            return entries
        for entry in entries:  # a card says which version of its ticket it shows
            if entry.payload.get("card") or subject(entry.payload):
                entry.payload["seq"] = changed.seq
        if decision.events[0].seq > 1:  # cards were sent before: bring them to this version
            entries += self._card_edits(changed, prefix, priority(changed))
        return entries

    def _card_edits(self, ticket: Ticket, prefix: str, rank: int) -> list[OutboxEntry]:
        """Return, per platform that may hold a card of ``ticket``, the entry editing them.

        Each with a key of its own: the sent marker of one platform's entry would settle the
        others' unsent (their cards were never edited).
        """
        ctx = self.config.context
        quiet = stage_held(ticket, ctx.policy.work_hours, ctx.policy.work_days, local_zone())
        params = ticket_params(ctx, ticket, masked=True)
        view = card_view(ctx.tree, ticket, params, renewed=not quiet)
        return [
            OutboxEntry(
                platform,
                f"{prefix}:{platform}:cards",
                {"edit_cards": ticket.id, "view": view},
                rank,
            )
            for platform in card_platforms(ctx.tree, ticket)
        ]

    def _entries(
        self,
        replies: Sequence[Reply],
        prefix: str,
        message: IncomingMessage | None = None,
        changed: Ticket | None = None,
    ) -> list[OutboxEntry]:
        """Return the outbox entries of replies to ``message`` (about ``changed``, if any)."""
        rank = priority(changed)
        paces = [
            self._pace(reply, message, f"{prefix}:{i}", capped=changed is None)
            for i, reply in enumerate(replies)
        ]
        if changed is not None:  # one change, one answer counted (the receipt and its note)
            first = next((i for i, pace in enumerate(paces) if pace is not None), None)
            paces = [pace if i == first else None for i, pace in enumerate(paces)]
        return [
            OutboxEntry(
                platform_of(reply.chat), f"{prefix}:{i}", reply_payload(reply), rank, paces[i]
            )
            for i, reply in enumerate(replies)
            # A feed or an Open311 client reads its requests back; no chat to tell.
            if platform_of(reply.chat) not in INTAKE_PLATFORMS
        ]

    def _pace(
        self, reply: Reply, message: IncomingMessage | None, key: str, capped: bool
    ) -> Pace | None:
        """Return how a reply to the writer of ``message`` is paced (see bot.core.pacing)."""
        if message is None or not to_sender(reply, message):
            return None
        same = same_answer(reply)
        p = self.pacing
        return Pace(
            message.sender.account, p.per_person, p.period, capped, f"{key}:slow",
            reply_payload(slow_down(message)),
            keys.same_reply(reply.chat, same) if same else None, p.same_window,
        )  # fmt: skip


def _staff(person: Person | None) -> bool:
    """Return whether ``person`` serves on the roster (their replies to cards are commands)."""
    return person is not None and person.role in HANDLER_ROLES


def _quoting(reply: Reply, message: IncomingMessage) -> Reply:
    """Return ``reply`` quoting ``message`` when it goes to the chat the message came from."""
    if reply.chat != message.chat or reply.reply_to is not None:
        return reply
    return dataclasses.replace(reply, reply_to=message.message_id)


def _duplicate(ticket_id: str) -> Handled:
    """Answer a message handled before: its commit did everything, deadline jobs included."""
    return Handled("duplicate", ticket_id if ticket_id not in ("", "-") else None)


def _forget(ticket_id: str, stage: int, kind: str) -> Change:
    """Return the commit dropping a deadline no longer owed from the index."""
    return Change(extra=Extra(deadlines={keys.deadline_member(ticket_id, stage, kind): None}))


def _fired(ticket_id: str, stage: int, kind: str, outcome: dl.Outcome, change: Change) -> None:
    if change.after is not None:
        log.info("ticket %s: %s deadline of stage %s: %s", ticket_id, kind, stage, outcome.value)


def _failed(ticket_id: str, stage: int, kind: str, error: BaseException) -> None:
    log.error("sweep: deadline %s:%s:%s failed", ticket_id, stage, kind, exc_info=error)


def _earliest(owed: dict[str, float]) -> tuple[str, float] | None:
    """Return the owed deadline due first, or None."""
    return min(owed.items(), key=lambda item: item[1]) if owed else None


async def _back_off(attempt: int) -> None:
    """Wait a little, more each time, before trying a lost race again (none the first time)."""
    if attempt:
        await asyncio.sleep(random.uniform(0, min(0.05, 0.002 * 2**attempt)))


def _join_scope(tree: OrgTree, origin: Node) -> Node:
    """Return the village (or the origin, when above it) within which reports join."""
    for node in ancestors(tree, origin.id):
        if node.tier is not None and node.tier.level >= 3:
            return node
    return origin


def _problems(problems: Sequence[Any]) -> dict[str, Any]:
    return {"problems": [str(p) for p in problems[:20]], "count": len(problems)}
