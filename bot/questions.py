"""The questions the bot asks (bot.core.prompts) on Redis: asked once, answered once, moved on.

A question is asked in one commit guarded by a pointer from its message (a message
handled again finds the pointer: a duplicate, nothing sent twice). An answer first opens
the ticket, if it opens one, through the ordinary report path keyed by the resident's
message (so a second press, here or in another process, cannot open a second ticket), then
records the answer in a commit guarded by the question's history length. Its deadline lives
in the ticket deadline index under the question's id (``p12:0:danger``): rq's job and the
sweeper reach ``Service.handle_deadline``, which hands it here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from bot.core import deadlines as dl
from bot.core.models import NONE_CATEGORY, IncomingMessage, Reply, platform_of
from bot.core.org import Node, person_of_account
from bot.core.pacing import URGENT
from bot.core.privacy import mask
from bot.core.prompts import (
    NO,
    YES,
    Press,
    Prompt,
    PromptKind,
    Step,
    answer,
    ask,
    escalate,
    on_prompt_deadline,
    raise_flag,
)
from bot.core.question_cards import question_platforms, question_view
from bot.core.triage import Verdict
from bot.core.workflow import Context, Refusal
from bot.ports import ScheduledJob
from bot.storage import keys
from bot.storage.prompts import pointer_record, prompt_record
from bot.storage.redis import CommitStatus, Extra, OutboxEntry, dumps, reply_payload

if TYPE_CHECKING:
    from bot.services import Handled, Service

ATTEMPTS = 30


async def flag(
    service: Service,
    ctx: Context,
    message: IncomingMessage,
    verdict: Verdict,
    origin: Node,
    ticket: str | None = None,
) -> Handled:
    """Flag possible danger in ``message`` (which opened ``ticket``, if any)."""
    from bot.services import Handled

    prompt_id = await service.prompts.next_id()
    step = raise_flag(ctx, prompt_id, message, verdict.category, origin, service.clock(), ticket)
    status, value = await _commit_new(service, message, step)
    if status is CommitStatus.DUPLICATE:
        return Handled("duplicate", ticket, detail=value)
    return Handled("danger", ticket, detail=step.prompt.id, verdict=verdict)


async def ask_resident(
    service: Service, ctx: Context, message: IncomingMessage, verdict: Verdict, origin: Node
) -> Handled:
    """Ask the resident whether to register ``message``, and as what."""
    from bot.services import Handled

    prompt_id = await service.prompts.next_id()
    step = ask(ctx, prompt_id, message, verdict.top, verdict.category, origin, service.clock())
    if step is None:  # nothing to offer: as if it were chatter
        return Handled("ignored", verdict=verdict)
    status, value = await _commit_new(service, message, step)
    if status is CommitStatus.DUPLICATE:
        return Handled("duplicate", detail=value)
    return Handled("ask", detail=step.prompt.id, verdict=verdict)


async def _commit_new(
    service: Service, message: IncomingMessage, step: Step
) -> tuple[CommitStatus, str]:
    prompt = step.prompt
    extra = Extra(
        absent=(keys.prompt_of(message.key),),
        history=(keys.prompt_events(prompt.id), 0, (dumps(step.event),)),
        records=(prompt_record(prompt), pointer_record(message.key, prompt)),
        deadlines=_deadlines(None, prompt),
    )
    outbox = _entries(service, step, message)
    return await service.store.commit(
        None, None, (), outbox, None, jobs=_job(service, prompt), extra=extra
    )


async def press(service: Service, message: IncomingMessage, pressed: Press) -> Handled:
    """Take a press of a question's button."""
    async with service._lock(f"prompt:{pressed.prompt}"):
        return await _press(service, message, pressed)


async def _press(service: Service, message: IncomingMessage, pressed: Press) -> Handled:
    from bot.services import Handled

    for _ in range(ATTEMPTS):
        ctx = service.config.context
        if (done := await service.store.was_processed(message.key)) is not None:
            return Handled("duplicate", done if done != "-" else None)
        prompt = await service.prompts.get(pressed.prompt)
        if prompt is None:
            return await service._refuse(message, "prompt_gone", {})
        person = person_of_account(ctx.tree, message.sender.account)
        step = answer(ctx, prompt, pressed, message.sender, person, service.clock())
        if isinstance(step, Refusal):
            return await service._refuse(message, step.reason, dict(step.params))
        ticket = None
        if step.opens is not None:
            # A confirmed danger on a message that already opened a ticket opens its own.
            suffix = "#danger" if prompt.ticket is not None else ""
            opened = await service.ticket_for(
                ctx, prompt.said.message(suffix), step.opens, ctx.tree.nodes[prompt.origin]
            )
            ticket = opened.ticket
        extra = Extra(
            history=(keys.prompt_events(prompt.id), prompt.seq, (dumps(step.event),)),
            records=(prompt_record(step.prompt),),
            deadlines=_deadlines(prompt, step.prompt),
        )
        outbox = _entries(service, step, message) + _card_edits(service, step, ticket)
        status, _ = await service.store.commit(None, None, (), outbox, message.key, extra=extra)
        if status is CommitStatus.DUPLICATE:
            return Handled("duplicate", ticket)
        if status is CommitStatus.OK:
            await _learn(service, prompt, pressed.choice, message)
            return Handled("done", ticket, detail=f"{prompt.kind.value}:{pressed.choice}")
    raise RuntimeError(f"question {pressed.prompt}: gave up after {ATTEMPTS} conflicts")


async def _learn(service: Service, prompt: Prompt, choice: str, message: IncomingMessage) -> None:
    """Keep a handler's or resident's answer as a labelled example for review."""
    if prompt.kind is PromptKind.DANGER:
        source = "flag_confirmed" if choice == YES else "flag_rejected"
        category = "emergency" if choice == YES else prompt.category
    else:
        source, category = "ask", (NONE_CATEGORY if choice == NO else choice)
    await service.learning.add_example(
        source, message.key, mask(prompt.said.text), category, message.sender.account,
        service.clock(),
    )  # fmt: skip


async def deadline(service: Service, prompt_id: str, stage: int, kind: str) -> dl.Outcome:
    """Move an unanswered question on when its deadline has really passed."""
    async with service._lock(f"prompt:{prompt_id}"):
        for _ in range(ATTEMPTS):
            ctx = service.config.context
            now = service.clock()
            member = keys.deadline_member(prompt_id, stage, kind)
            prompt = await service.prompts.get(prompt_id)
            if prompt is None:
                await service.store.redis.zrem(keys.DEADLINES, member)
                return dl.Outcome.MOVED_ON
            outcome = on_prompt_deadline(ctx, prompt, stage, now)
            if outcome is dl.Outcome.EARLY:
                assert prompt.due is not None
                await service.store.commit(None, None, jobs=_job(service, prompt, 1.0))
                return outcome
            if outcome is dl.Outcome.MOVED_ON or await _ticketed(service, prompt):
                await service.store.redis.zrem(keys.DEADLINES, member)
                return dl.Outcome.MOVED_ON
            step = escalate(ctx, prompt, now)
            extra = Extra(
                history=(keys.prompt_events(prompt.id), prompt.seq, (dumps(step.event),)),
                records=(prompt_record(step.prompt),),
                deadlines=_deadlines(prompt, step.prompt),
            )
            outbox = _entries(service, step, None) + _card_edits(service, step, None)
            status, _ = await service.store.commit(
                None, None, (), outbox, None,
                jobs=_job(service, step.prompt), extra=extra,
            )  # fmt: skip
            if status is CommitStatus.OK:
                return dl.Outcome.ESCALATE
        raise RuntimeError(f"question {prompt_id}: gave up after {ATTEMPTS} conflicts")


async def _ticketed(service: Service, prompt: Prompt) -> bool:
    """Return whether an ask's message became a ticket another way (a leader's 立案)."""
    if prompt.kind is not PromptKind.ASK:
        return False
    done = await service.store.was_processed(f"{prompt.said.chat}/{prompt.said.message_id}")
    return done not in (None, "", "-")


def _deadlines(before: Prompt | None, after: Prompt) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    if before is not None and before.due is not None:
        out[keys.deadline_member(before.id, before.stage, before.kind.value)] = None
    if after.due is not None:
        out[keys.deadline_member(after.id, after.stage, after.kind.value)] = after.due
    return out


def _job(service: Service, prompt: Prompt, later: float = 0.0) -> tuple[ScheduledJob, ...]:
    if prompt.due is None or prompt.answer is not None:
        return ()
    job = service.scheduler.job(prompt.id, prompt.stage, prompt.kind.value, prompt.due + later)
    return (job,) if job is not None else ()


def _entries(service: Service, step: Step, message: IncomingMessage | None) -> list[OutboxEntry]:
    """Return the outbox entries of a step: urgent ones unpaced, an ask within the allowance."""
    prefix = f"q:{step.prompt.id}:{step.prompt.seq}"
    if not step.urgent:
        entries = service._entries(step.replies, prefix, message)
    else:
        entries = [_urgent(reply, f"{prefix}:{i}") for i, reply in enumerate(step.replies)]
    for entry in entries:  # a message asking the question: recorded when sent, kept true
        if entry.payload.get("card"):
            entry.payload.update(prompt=step.prompt.id, seq=step.prompt.seq)
    return entries


def _card_edits(service: Service, step: Step, ticket: str | None) -> list[OutboxEntry]:
    """Return, per platform that may hold a message asking the question, the entry editing them.

    The same entries as a ticket's (``Service._card_edits``): the sender brings every
    recorded message of the question to the view, exactly once.
    """
    ctx, prompt = service.config.context, step.prompt
    if prompt.answer is None and prompt.kind is PromptKind.ASK:
        return []  # gone to the leader: the resident may still answer, their message stands
    if prompt.answer is None and not step.replies:
        return []  # a flag nobody answered at the street: it stays open as it is
    view = question_view(ctx, prompt, ticket)
    key = f"q:{prompt.id}:{prompt.seq}"  # a key per platform, as a ticket's
    rank = URGENT if prompt.kind is PromptKind.DANGER else 0
    return [
        OutboxEntry(
            platform, f"{key}:{platform}:cards", {"edit_cards": prompt.id, "view": view}, rank
        )
        for platform in question_platforms(ctx, prompt)
    ]


def _urgent(reply: Reply, key: str) -> OutboxEntry:
    # The emergency numbers and danger cards always go, ahead of everything else waiting.
    return OutboxEntry(platform_of(reply.chat), key, reply_payload(reply), URGENT)


__all__: Sequence[str] = ("ask_resident", "deadline", "flag", "press")
