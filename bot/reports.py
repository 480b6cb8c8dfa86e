"""Reports made on purpose: 报事 (always a ticket), 找人 (a person), 立案 (a missed message).

报事 classifies the rest of the message and opens a ticket of the best guess; when the
classifier has none, of FORCED_FALLBACK. 立案 is a household leader's or grid worker's reply
to a resident's message that the bot did not ticket: the ticket's reporter and text are the
resident's, and the decision becomes a labelled example for review.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from bot.core.commands import Command, Verb
from bot.core.models import IncomingMessage
from bot.core.org import HANDLER_ROLES, Person, may_act, node_of_chat
from bot.core.privacy import mask
from bot.core.prompts import category_match, talk_to_person
from bot.core.workflow import Context, category_named, node_params
from bot.storage.redis import CommitStatus

if TYPE_CHECKING:
    from bot.services import Handled, Service

# A report forced with 报事 that the classifier cannot place: a general question for the
# village, which re-categorises it (改类) when it is something else.
FORCED_FALLBACK = "policy_inquiry"


async def on_purpose(
    service: Service,
    ctx: Context,
    message: IncomingMessage,
    command: Command,
    person: Person | None,
) -> Handled:
    """Carry out 报事, 找人 or 立案."""
    if command.verb is Verb.OPEN_TICKET:
        return await _open_missed(service, ctx, message, command, person)
    origin = node_of_chat(ctx.tree, message.chat)
    if origin is None or message.private:
        return await service._refuse(message, "report_in_group", {"verb": command.verb.value})
    text = command.text.strip()
    if command.verb is Verb.HUMAN:
        replies = talk_to_person(ctx, message, text, origin)
        outbox = service._entries(replies, f"m:{message.key}", message)
        status, _ = await service.store.commit(None, None, (), outbox, message.key)
        return _done(command) if status is CommitStatus.OK else _done(command, "duplicate")
    if not text:
        return await service._refuse(message, "needs_text", {"verb": command.verb.value})
    verdict = await service.classify(text)
    category = verdict.category if verdict.category in ctx.ruleset.categories else FORCED_FALLBACK
    match = verdict.match or category_match(ctx, category, "forced")
    return await service.ticket_for(ctx, dataclasses.replace(message, text=text), match, origin)


async def _open_missed(
    service: Service,
    ctx: Context,
    message: IncomingMessage,
    command: Command,
    person: Person | None,
) -> Handled:
    from bot.services import Handled

    if (done := await service.store.was_processed(message.key)) is not None:
        return Handled("duplicate", done if done != "-" else None)
    if person is None or person.role not in HANDLER_ROLES:
        return await service._refuse(message, "not_handler", {"verb": command.verb.value})
    origin = node_of_chat(ctx.tree, message.chat)
    if origin is None or message.private or not message.reply_to:
        return await service._refuse(message, "open_needs_reply", {})
    if not may_act(ctx.tree, person, origin.id):
        return await service._refuse(message, "open_not_in_scope", node_params(origin))
    key = f"{message.chat}/{message.reply_to}"
    opened = await service.store.was_processed(key)
    if opened not in (None, "", "-"):
        return await service._refuse(message, "already_ticket", {"id": opened})
    said = await service.prompts.said(key)
    if said is None:  # not a resident's message the bot kept (too old, a command, the bot's)
        return await service._refuse(message, "message_unknown", {})
    named = command.text.strip()
    category = category_named(ctx.ruleset, named) if named else None
    if named and category is None:
        return await service._refuse(message, "unknown_category", {"category": named})
    if category is None:
        guess = (await service.classify(said.text)).category
        category = guess if guess in ctx.ruleset.categories else FORCED_FALLBACK
    handled = await service.ticket_for(
        ctx, said.message(), category_match(ctx, category, "missed"), origin
    )
    if handled.status not in ("opened", "joined"):
        return await service._refuse(message, "already_ticket", {"id": handled.ticket or ""})
    await service.store.commit(None, None, (), (), message.key)  # the leader's reply is done
    await service.learning.add_example(
        "missed", key, mask(said.text), category, message.sender.account, service.clock()
    )
    return handled


def _done(command: Command, status: str = "done") -> Handled:
    from bot.services import Handled

    return Handled(status, detail=command.verb.value)
