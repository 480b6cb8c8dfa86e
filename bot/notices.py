"""Notices of known incidents (bot.core.notices) on Redis: posted, answering, ended.

A notice is a snapshot (``lianhu:notice:n3``), an append-only history and a place in the
index of notices not ended yet, each written in one commit with its replies. Posting is
guarded by the command's message; answering a report by the report's message (handled
again: a duplicate, nothing counted twice) and the notice's history length. The end of
the window is a deadline in the ticket deadline index (``n3:0:notice``) with its rq job,
so rq's job and the sweeper both reach ``Service.handle_deadline``, which hands it here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from bot.core import deadlines as dl
from bot.core.classify import Match
from bot.core.commands import Command, Verb
from bot.core.models import Actor, IncomingMessage, Lang
from bot.core.notices import (
    NOTICE_KIND,
    Draft,
    Notice,
    NoticeProblem,
    Step,
    answer,
    end,
    expire,
    matching,
    may_post,
    notice_params,
    on_deadline,
    parse_notice,
    post,
    relevant,
)
from bot.core.org import HANDLER_ROLES, Node, Person, node_of_chat, person_of_account
from bot.core.workflow import Context, Refusal
from bot.ports import ScheduledJob
from bot.render import local_zone
from bot.storage import keys
from bot.storage.redis import CommitStatus, Extra, OutboxEntry, Record, dumps

if TYPE_CHECKING:
    from bot.services import Handled, Service

ATTEMPTS = 30
NOTICE_VERBS = frozenset({Verb.NOTICE, Verb.NOTICES, Verb.END_NOTICE})


async def get(service: Service, notice_id: str) -> Notice | None:
    """Return a notice, or None."""
    raw = await service.store.redis.get(keys.notice(notice_id))
    return Notice.from_dict(json.loads(raw)) if raw else None


async def open_notices(service: Service, now: float) -> list[Notice]:
    """Return the notices not ended yet whose window is not over."""
    redis = service.store.redis
    ids: list[Any] = await redis.zrangebyscore(keys.NOTICES, now, "+inf")
    if not ids:
        return []
    raws = await redis.mget(
        [keys.notice(i.decode() if isinstance(i, bytes) else str(i)) for i in ids]
    )
    return [Notice.from_dict(json.loads(r)) for r in raws if r]


async def history(service: Service, notice_id: str) -> list[dict[str, Any]]:
    """Return a notice's history, oldest first."""
    raws = await service.store.redis.lrange(keys.notice_events(notice_id), 0, -1)
    return [json.loads(r) for r in raws]


async def command(
    service: Service, ctx: Context, message: IncomingMessage, cmd: Command, person: Person | None
) -> Handled:
    """Carry out 通知, 通知列表 or 结束通知."""
    handler = person is not None and person.role in HANDLER_ROLES
    if cmd.verb is Verb.NOTICE and not handler and not message.text.lstrip().startswith("/"):
        # A resident's message that begins with 通知 (a forwarded notice) is no command.
        return await service._report(ctx, message)
    if cmd.verb is Verb.NOTICES:
        return await _list(service, ctx, message, person)
    if cmd.verb is Verb.END_NOTICE:
        return await _end(service, ctx, message, cmd, person)
    return await _post(service, ctx, message, cmd, person)


async def _post(
    service: Service, ctx: Context, message: IncomingMessage, cmd: Command, person: Person | None
) -> Handled:
    if person is None or person.role not in HANDLER_ROLES:
        return await service._refuse(message, "not_handler", {"verb": "notice"})
    here = node_of_chat(ctx.tree, message.chat)
    now = service.clock()
    draft = parse_notice(cmd.text, ctx.ruleset, ctx.tree, here, now, local_zone())
    if isinstance(draft, NoticeProblem):
        return await service._refuse(
            message, "notice_refused", {"problem": draft.problem, **draft.params}
        )
    return await post_draft(service, ctx, message, person, draft)


async def post_draft(
    service: Service, ctx: Context, message: IncomingMessage, person: Person, draft: Draft
) -> Handled:
    """Post a checked notice (typed in a chat, or sent from the console's form)."""
    from bot.services import Handled

    if (done := await service.store.was_processed(message.key)) is not None:
        return Handled("duplicate", detail=done)
    now = service.clock()
    refused = may_post(ctx.tree, person, draft.nodes)
    if refused is not None:  # before an id is taken: a refusal changes nothing
        return await service._refuse(message, refused.reason, dict(refused.params))
    notice_id = f"n{await service.store.redis.incr(keys.NOTICE_SEQ)}"
    names = _names(ctx, draft.category)
    step = post(ctx.tree, notice_id, draft, message.sender, person, message.chat, now, names)
    if isinstance(step, Refusal):
        return await service._refuse(message, step.reason, dict(step.params))
    status, value = await _commit(service, None, step, message, message.key)
    if status is CommitStatus.DUPLICATE:
        return Handled("duplicate", detail=value)
    return Handled("done", detail=notice_id)


def console_message(service: Service, actor: Actor, key: str) -> IncomingMessage:
    """Return a form sent from the web console as a message in the sender's private chat.

    ``key`` names the form, so that sending it twice acts once; a refusal is shown on the
    page, never sent (``IncomingMessage.console``).
    """
    return IncomingMessage(
        actor.account, f"web-{key}", actor, "", service.clock(), private=True, console=True
    )


async def console_post(service: Service, actor: Actor, key: str, draft: Draft) -> Handled:
    """Post a notice from the console's form, through the chat command's checks and commit."""
    ctx = service.config.context
    person = person_of_account(ctx.tree, actor.account)
    message = console_message(service, actor, key)
    if person is None or person.role not in HANDLER_ROLES:
        return await service._refuse(message, "not_handler", {"verb": "notice"})
    return await post_draft(service, ctx, message, person, draft)


async def console_end(service: Service, actor: Actor, key: str, notice_id: str) -> Handled:
    """End a notice early from the console, as ``结束通知 n3`` in a private chat."""
    ctx = service.config.context
    person = person_of_account(ctx.tree, actor.account)
    message = console_message(service, actor, key)
    return await _end(service, ctx, message, Command(Verb.END_NOTICE, None, notice_id), person)


async def _end(
    service: Service, ctx: Context, message: IncomingMessage, cmd: Command, person: Person | None
) -> Handled:
    from bot.services import Handled

    wanted = cmd.text.strip().split(None, 1)[0].lstrip("#").lower() if cmd.text.strip() else ""
    notice_id = wanted if wanted.startswith("n") else f"n{wanted}"
    if not wanted:
        return await service._refuse(message, "notice_refused", {"problem": "needs_id"})
    async with service._lock(f"notice:{notice_id}"):
        for _ in range(ATTEMPTS):
            if (done := await service.store.was_processed(message.key)) is not None:
                return Handled("duplicate", detail=done)
            notice = await get(service, notice_id)
            if notice is None:
                return await service._refuse(
                    message, "notice_refused", {"problem": "unknown", "id": wanted}
                )
            names = _names(ctx, notice.category)
            now = service.clock()
            step = end(ctx.tree, notice, message.sender, person, message.chat, now, names)
            if isinstance(step, Refusal):
                return await service._refuse(message, step.reason, dict(step.params))
            status, _ = await _commit(service, notice, step, message, message.key)
            if status is CommitStatus.DUPLICATE:
                return Handled("duplicate", detail=notice_id)
            if status is CommitStatus.OK:
                return Handled("done", detail=notice_id)
    raise RuntimeError(f"notice {notice_id}: gave up after {ATTEMPTS} conflicts")


async def _list(
    service: Service, ctx: Context, message: IncomingMessage, person: Person | None
) -> Handled:
    now = service.clock()
    here = node_of_chat(ctx.tree, message.chat)
    where = person.scope if person is not None else here.id if here is not None else None
    shown = relevant(await open_notices(service, now), ctx.tree, where, now)
    params = {
        "notices": [notice_params(ctx.tree, n, _names(ctx, n.category)) for n in shown],
    }
    return await service._answer(message, "notice_list", params)


async def answer_report(
    service: Service, ctx: Context, message: IncomingMessage, match: Match, origin: Node
) -> Handled | None:
    """Answer a report with the active notice it matches, or return None when none does."""
    from bot.services import Handled

    now = service.clock()
    found = matching(await open_notices(service, now), match.category, origin.id, ctx.tree, now)
    if found is None:
        return None
    async with service._lock(f"notice:{found.id}"):
        for _ in range(ATTEMPTS):
            notice = await get(service, found.id)
            now = service.clock()
            if notice is None or not notice.active(now):
                return None  # ended meanwhile: the report takes the ordinary path
            step = answer(
                ctx.tree, notice, message.sender, message.chat, message.message_id, now,
                _names(ctx, notice.category),
            )  # fmt: skip
            status, value = await _commit(service, notice, step, message, message.key)
            if status is CommitStatus.DUPLICATE:
                return Handled("duplicate", value if value not in ("", "-") else None)
            if status is CommitStatus.OK:
                return Handled("noticed", detail=notice.id)
    raise RuntimeError(f"notice {found.id}: gave up after {ATTEMPTS} conflicts")


async def deadline(service: Service, notice_id: str, stage: int, kind: str) -> dl.Outcome:
    """End a notice whose window is over (the deadline job and the sweeper call this)."""
    member = keys.deadline_member(notice_id, stage, kind)
    async with service._lock(f"notice:{notice_id}"):
        for _ in range(ATTEMPTS):
            ctx = service.config.context
            now = service.clock()
            notice = await get(service, notice_id)
            if notice is None:
                await service.store.redis.zrem(keys.DEADLINES, member)
                return dl.Outcome.MOVED_ON
            outcome = on_deadline(notice, now)
            if outcome is dl.Outcome.EARLY:  # rq rounds to seconds: run again after the end
                await service.store.commit(None, None, jobs=_job(service, notice, 1.0))
                return outcome
            if outcome is dl.Outcome.MOVED_ON:
                await service.store.redis.zrem(keys.DEADLINES, member)
                return outcome
            step = expire(ctx.tree, notice, now, _names(ctx, notice.category))
            status, _ = await _commit(service, notice, step, None, None)
            if status is CommitStatus.OK:
                return outcome
    raise RuntimeError(f"notice {notice_id}: gave up after {ATTEMPTS} conflicts")


async def _commit(
    service: Service,
    before: Notice | None,
    step: Step,
    message: IncomingMessage | None,
    message_key: str | None,
) -> tuple[CommitStatus, str]:
    """Commit a step: snapshot, history entry, index, deadline and job, replies; or nothing."""
    notice = step.notice
    member = keys.deadline_member(notice.id, 0, NOTICE_KIND)
    extra = Extra(
        history=(keys.notice_events(notice.id), before.seq if before else 0, (dumps(step.event),)),
        records=(Record(keys.notice(notice.id), dumps(notice.to_dict()), 0),),
        deadlines={member: step.due},
        zsets=((keys.NOTICES, notice.id, step.due),),
    )
    jobs = _job(service, notice) if before is None else ()
    outbox = _entries(service, step, message)
    return await service.store.commit(None, None, (), outbox, message_key, jobs=jobs, extra=extra)


def _entries(service: Service, step: Step, message: IncomingMessage | None) -> list[OutboxEntry]:
    """Return the outbox entries of a step; only answers to the writer count against pacing."""
    prefix = f"n:{step.notice.id}:{step.notice.seq}"
    mine = [r for r in step.replies if message is not None and r.chat == message.chat]
    rest = [r for r in step.replies if r not in mine]
    return service._entries(mine, f"{prefix}:r", message) + service._entries(rest, prefix)


def _job(service: Service, notice: Notice, later: float = 0.0) -> tuple[ScheduledJob, ...]:
    job = service.scheduler.job(notice.id, 0, NOTICE_KIND, notice.ends + later)
    return (job,) if job is not None else ()


def _names(ctx: Context, category: str) -> dict[str, str]:
    spec = ctx.ruleset.categories.get(category)
    if spec is None:
        return {lang.value: category for lang in Lang}
    return {lang.value: spec.name(lang) for lang in Lang}


__all__: Sequence[str] = (
    "NOTICE_VERBS", "answer_report", "command", "console_end", "console_post", "deadline", "get",
    "open_notices", "post_draft",
)  # fmt: skip
