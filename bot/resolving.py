"""办结 by button on Redis: ask the presser for the result, then take their answer.

The question is a key per chat and presser holding the ticket id, with a TTL
(``bot.core.resolution.ASK_TTL``); a second key, kept longer, remembers that it was
asked, so that a reply after it lapsed is told so instead of being lost. The question
is sent as a message about the ticket, so a reply to it names the ticket: the presser's
reply is the result, while anyone else's is handled as any reply to a card.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.core.commands import Command, Verb, Via, parse
from bot.core.models import IncomingMessage, Reply
from bot.core.org import person_of_account
from bot.core.resolution import ASK_TTL, LATE_TTL, read_answer, result_command
from bot.core.workflow import Context, Refusal, apply
from bot.storage import keys
from bot.storage.raw import text_of

if TYPE_CHECKING:
    from bot.services import Handled, Service


async def ask(
    service: Service, ctx: Context, message: IncomingMessage, command: Command
) -> Handled:
    """Ask who pressed 办结 for the result; resolve nothing yet."""
    from bot.services import Handled

    assert command.ticket is not None
    ticket = await service.store.get(command.ticket)
    if ticket is None:
        return await service.refuse_missing(message, command.ticket)
    person = person_of_account(ctx.tree, message.sender.account)
    trial = Command(Verb.RESOLVE, ticket.id, "-", via=Via.BUTTON)
    outcome = apply(
        ctx, ticket, trial, message.sender, person, message.chat, service.clock(), message.private
    )
    if isinstance(outcome, Refusal):  # not theirs to resolve, or resolved already
        return await service._refuse(message, outcome.reason, dict(outcome.params))
    who = message.sender
    redis = service.store.redis
    pipe = redis.pipeline(transaction=True)
    pipe.set(keys.resolving(message.chat, who.account), ticket.id, ex=ASK_TTL)
    pipe.set(keys.resolving_asked(message.chat, who.account), ticket.id, ex=ASK_TTL + LATE_TTL)
    await pipe.execute()
    params = {"id": ticket.id, "name": who.name, "minutes": ASK_TTL // 60}
    question = Reply(
        message.chat, "resolve_ask", params, who.lang, ticket=ticket.id, force_reply=who.account
    )
    await service._commit_replies(message, [question])
    told = Reply(who.account, "resolve_asked", params, who.lang)
    return Handled("asked", ticket.id, "resolve", answer=told)


async def answer(
    service: Service, ctx: Context, message: IncomingMessage, reply_ticket: str | None
) -> Handled | None:
    """Take ``message`` as the result its sender owes, if it is one; None when it is not."""
    from bot.services import Handled

    who = message.sender.account
    redis = service.store.redis
    owed = await redis.get(keys.resolving(message.chat, who))
    if owed is None:
        if reply_ticket is None:
            return None
        asked = await redis.get(keys.resolving_asked(message.chat, who))
        if asked is None or text_of(asked) != reply_ticket:
            return None
        await redis.delete(keys.resolving_asked(message.chat, who))
        return await service._refuse(message, "resolve_late", {"id": reply_ticket})
    ticket = text_of(owed)
    if reply_ticket not in (None, ticket) or parse(message.text) is not None:
        return None  # a reply to another card, or a command: not the answer
    taken = await redis.getdel(keys.resolving(message.chat, who))
    await redis.delete(keys.resolving_asked(message.chat, who))
    if taken is None:  # another process took the answer first
        return Handled("duplicate", ticket)
    result = read_answer(message.text)
    if result is None:
        why = "empty" if not message.text.strip() else "cancelled"
        return await service._refuse(message, "resolve_not_done", {"id": ticket, "why": why})
    command = result_command(ticket, result)
    return await service._ticket_command(ctx, message, command, person_of_account(ctx.tree, who))
