"""Telegram: one function turns an update into an IncomingMessage; TelegramGateway sends.

What Lianhu takes from Telegram, deliberately:

- messages with text, a caption, photos (the largest size's file id) or a
  shared location, in groups and in private chats; a reply to a message
  keeps the replied message's id, so a reply to a ticket card acts on it;
- button presses (callback queries) on the bot's own cards;
- an *edited* message only as a first report: it keeps the original's
  message key, so an edit of a message that already opened a ticket (or ran
  a command) is a duplicate and changes nothing, while an edit that turns
  chatter into a report opens its ticket; an edit that reads as a command is
  ignored, so nobody can act on a ticket by rewriting an old message;
- nothing else: service messages (joins, pins, titles), channel posts,
  messages from bots (including anonymous admins, who post as a bot, and a
  linked channel's automatic forwards) and inline results are ignored — a
  bot that answers bots loops, and a channel has no residents.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from telegram import (
    Bot,
    ForceReply,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    MessageEntity,
    ReplyParameters,
    Update,
    User,
)
from telegram.error import BadRequest, ChatMigrated, Forbidden

from bot.core.commands import parse
from bot.core.enrolment import parse_admin
from bot.core.models import Actor, IncomingMessage, Lang
from bot.core.org import OrgTree, person_of_account
from bot.ports import Rendered, Sent

log = logging.getLogger(__name__)

PLATFORM = "telegram"
ALLOWED_UPDATES = ("message", "edited_message", "callback_query")
"""The update types the bot asks Telegram for; channel posts and the rest never arrive."""

Fallback = Callable[[str, str | None], Awaitable[str | None]]
"""Return the staff chat for a private message that could not be delivered (chat, ticket)."""


class Undeliverable(Exception):
    """A message Telegram refused for good (blocked, never started, no fallback): not retried."""


def chat_key(chat_id: int) -> str:
    """Return Lianhu's id of a Telegram chat (a private chat's id is its user's id)."""
    return f"{PLATFORM}:{chat_id}"


def chat_id_of(chat: str) -> int:
    """Return the Telegram chat id of a Lianhu chat id."""
    platform, _, raw = chat.partition(":")
    if platform != PLATFORM:
        raise ValueError(f"not a Telegram chat: {chat!r}")
    return int(raw)


def is_private(chat: str) -> bool:
    """Return whether a Telegram chat is a one-to-one chat (users have positive ids)."""
    return chat_id_of(chat) > 0


def lang_of(code: str | None) -> Lang:
    """Return the interface language for a Telegram language code."""
    code = (code or "").lower()
    if code.startswith("en"):
        return Lang.EN
    if code in ("zh-hant", "zh-tw", "zh-hk", "zh-mo"):
        return Lang.ZH_HANT
    return Lang.ZH_HANS


def actor_of(user: User, tree: OrgTree) -> Actor:
    """Return the actor of a Telegram user, in their roster language when on the roster."""
    account = chat_key(user.id)
    person = person_of_account(tree, account)
    if person is not None:
        return Actor(account, user.full_name, person.id, person.lang)
    return Actor(account, user.full_name, None, lang_of(user.language_code))


def to_incoming(update: Update, tree: OrgTree) -> IncomingMessage | None:
    """Return what an update says to the core, or None for what Lianhu ignores."""
    query = update.callback_query
    if query is not None:
        card = query.message
        if card is None or query.data is None or query.from_user.is_bot:
            return None  # a button of an inline result, or no data: not ours
        return IncomingMessage(
            chat=chat_key(card.chat.id),
            # Unique per press; the card's id comes first so a refusal can quote the card.
            message_id=f"{card.message_id}#cb{query.id}",
            sender=actor_of(query.from_user, tree),
            sent_at=card.date.timestamp(),
            callback=query.data,
            private=card.chat.type == "private",
        )
    edited = update.message is None and update.edited_message is not None
    message = update.message or update.edited_message
    if message is None or message.from_user is None or message.from_user.is_bot:
        return None
    if message.sender_chat is not None:  # posted as a chat: anonymous admin or channel
        return None
    text = message.text or message.caption or ""
    photos = (message.photo[-1].file_id,) if message.photo else ()
    place = message.location or (message.venue.location if message.venue else None)
    location = (place.latitude, place.longitude) if place else None
    if not (text.strip() or photos or location):
        return None  # service messages, stickers, voice notes
    if edited and (parse(text) is not None or parse_admin(text) is not None):
        return None
    return IncomingMessage(
        chat=chat_key(message.chat.id),
        message_id=str(message.message_id),
        sender=actor_of(message.from_user, tree),
        text=text,
        sent_at=message.date.timestamp(),
        reply_to=None if edited else _replied(message),
        photos=photos,
        location=location,
        private=message.chat.type == "private",
    )


def _replied(message: Message) -> str | None:
    """Return the id of the message this one replies to (not a forum topic's opening)."""
    replied = message.reply_to_message
    if replied is None or replied.forum_topic_created is not None:
        return None
    return str(replied.message_id)


def reply_markup(buttons: tuple[tuple[str, str], ...]) -> InlineKeyboardMarkup | None:
    """Return inline buttons: actions in one row, ratings (★1..★5) in another."""
    if not buttons:
        return None
    actions = [InlineKeyboardButton(label, callback_data=data) for label, data in buttons]
    rows = [
        [b for b in actions if not str(b.callback_data).startswith("rate:")],
        [b for b in actions if str(b.callback_data).startswith("rate:")],
    ]
    return InlineKeyboardMarkup([row for row in rows if row])


def _reply_id(reply_to: str | None) -> int | None:
    """Return the Telegram message id to quote (a button press quotes its card)."""
    if not reply_to:
        return None
    head = reply_to.split("#", 1)[0]
    return int(head) if head.isdigit() else None


class TelegramGateway:
    """The ChatGateway of Telegram: cards with buttons, quoted replies, topics, fallbacks."""

    platform = PLATFORM

    def __init__(
        self,
        bot: Bot,
        *,
        fallback: Fallback | None = None,
        undelivered: Callable[[str], str] | None = None,
        thread_of: Callable[[str], int | None] | None = None,
        migrated: Callable[[str, str], Awaitable[None]] | None = None,
    ) -> None:
        self.bot = bot
        self.fallback = fallback
        self.undelivered = undelivered or (lambda text: text)
        self.thread_of = thread_of or (lambda chat: None)
        self.migrated = migrated

    async def send(self, chat: str, message: Rendered, reply_to: str | None) -> Sent:
        """Deliver one message (the ChatGateway port)."""
        return await self.deliver(chat, message, reply_to)

    async def deliver(
        self, chat: str, message: Rendered, reply_to: str | None, ticket: str | None = None
    ) -> Sent:
        """Deliver one message; a private one that cannot be goes to the staff chat instead."""
        try:
            return await self._send(chat, message, reply_to)
        except (Forbidden, BadRequest) as exc:
            if not is_private(chat) or not _unreachable(exc):
                if isinstance(exc, Forbidden):  # removed from the group: retrying cannot help
                    raise Undeliverable(f"{chat}: {exc.message}") from exc
                raise
            target = await self.fallback(chat, ticket) if self.fallback else None
            log.warning(
                "private message to %s undeliverable (%s); %s",
                chat, exc.message, f"sent to staff chat {target}" if target else "no staff chat",
            )  # fmt: skip
            if target is None:
                raise Undeliverable(f"{chat}: {exc.message}") from exc
            wrapped = Rendered(self.undelivered(message.text), message.buttons)
            try:
                return await self._send(target, wrapped, None)
            except Forbidden as again:
                raise Undeliverable(f"{target}: {again.message}") from again

    async def edit(self, chat: str, message_id: str, message: Rendered) -> None:
        """Edit a card in place: new text, and only its live buttons.

        Telegram refuses an edit that changes nothing ("message is not modified"): the
        card already shows it, so that counts as done.
        """
        try:
            # No reply_markup removes the keyboard (ptb would send an empty one as "{}").
            await self.bot.edit_message_text(
                message.text, chat_id=chat_id_of(chat), message_id=int(message_id),
                reply_markup=reply_markup(message.buttons),
            )  # fmt: skip
        except BadRequest as exc:
            if "not modified" not in exc.message.lower():
                raise

    async def _send(self, chat: str, message: Rendered, reply_to: str | None) -> Sent:
        quoted = _reply_id(reply_to)
        kwargs: dict[str, Any] = {"reply_markup": reply_markup(message.buttons)}
        if message.force_reply is not None:
            kwargs.update(_ask_reply(message.text, *message.force_reply))
        if quoted is not None:
            # A reply lands in the replied message's forum topic by itself.
            kwargs["reply_parameters"] = ReplyParameters(quoted, allow_sending_without_reply=True)
        else:
            kwargs["message_thread_id"] = self.thread_of(chat)
        try:
            sent = await self.bot.send_message(chat_id_of(chat), message.text, **kwargs)
        except ChatMigrated as exc:  # the group became a supergroup with a new id
            new = chat_key(exc.new_chat_id)
            log.warning("chat %s migrated to %s", chat, new)
            if self.migrated is not None:
                await self.migrated(chat, new)
            sent = await self.bot.send_message(exc.new_chat_id, message.text, **kwargs)
        return Sent(str(sent.message_id))


def _ask_reply(text: str, account: str, name: str) -> dict[str, Any]:
    """Return a ForceReply for one user: selective, so only the user the text mentions sees it.

    A button's presser wrote no message to reply to, so the text names them with a mention
    (a text_mention entity over their name, which needs no username).
    """
    out: dict[str, Any] = {"reply_markup": ForceReply(selective=True)}
    start = text.find(name) if name else -1
    if start >= 0:

        def units(part: str) -> int:  # Telegram counts offsets in UTF-16 code units
            return len(part.encode("utf-16-le")) // 2

        user = User(chat_id_of(account), name, is_bot=False)
        out["entities"] = [
            MessageEntity(MessageEntity.TEXT_MENTION, units(text[:start]), units(name), user=user)
        ]
    return out


def _unreachable(exc: Forbidden | BadRequest) -> bool:
    """Return whether a refusal means the user never started the bot or blocked it."""
    return isinstance(exc, Forbidden) or "chat not found" in exc.message.lower()
