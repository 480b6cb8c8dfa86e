"""What the bot does with one Telegram update: the core's use cases, or the admin commands.

/bind, /invite, /join and /revoke change the tree and the roster laid over the org file.

The admin commands are ``bot.chat_admin``'s, shared with the other platforms.
"""

from __future__ import annotations

import logging

from telegram import (
    Bot,
    BotCommand,
    BotCommandScopeAllGroupChats,
    BotCommandScopeAllPrivateChats,
    Update,
)
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bot.adapters.telegram import chat_key, to_incoming
from bot.bindings import BindingStore, OverlaidConfig
from bot.chat_admin import ChatAdmin
from bot.core.enrolment import AdminCommand, AdminRefusal, Binding, parse_admin
from bot.core.models import IncomingMessage, Lang
from bot.core.org import node_of_chat
from bot.render import Renderer
from bot.services import Handled, Service

log = logging.getLogger(__name__)

GROUP_COMMANDS = (
    "help", "status", "ack", "resolve", "note", "escalate",
    "open", "mine", "stats", "confirm", "reopen", "report", "human", "bind",
)  # fmt: skip
PRIVATE_COMMANDS = ("help", "my", "status", "mine", "join", "invite", "revoke")
CALLBACK_TEXT = 200  # what answerCallbackQuery takes
CALLBACK_TOAST = 60  # longer answers are shown as an alert, which waits to be read
MENU_LANGUAGES = ((None, Lang.ZH_HANS), ("zh", Lang.ZH_HANS), ("en", Lang.EN))
"""Telegram language codes (None: everyone else) and the language of their menu."""


class Router:
    """Turn updates into the core's IncomingMessage and hand them to the use cases."""

    def __init__(
        self,
        service: Service,
        config: OverlaidConfig,
        bindings: BindingStore,
        renderer: Renderer,
    ) -> None:
        self.service = service
        self.config = config
        self.bindings = bindings
        self.renderer = renderer
        self.chat_admin = ChatAdmin(service, config, bindings)

    async def on_update(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Handle one update (a ptb handler callback); raise to leave it in the inbox."""
        await self.handle(update)

    async def handle(self, update: Update) -> Handled | None:
        """Handle one update and return what the core did with it."""
        await self.config.refresh(self.bindings)
        message = update.message
        if message is not None and message.migrate_to_chat_id:
            await self.migrate(chat_key(message.chat.id), chat_key(message.migrate_to_chat_id))
            return None
        incoming = to_incoming(update, self.config.context.tree)
        result = None
        if incoming is not None:
            admin = parse_admin(incoming.text) if incoming.callback is None else None
            if admin is None:
                result = await self.service.handle_message(incoming)
            else:
                thread = message.message_thread_id if message and message.is_topic_message else None
                await self.admin(incoming, admin, thread)
        if update.callback_query is not None:
            text, alert = self.callback_answer(result)
            try:
                await update.callback_query.answer(text, show_alert=alert)
            except TelegramError as exc:  # answered before a redelivery, or too old
                log.debug("callback %s not answered: %s", update.callback_query.id, exc)
        return result

    def callback_answer(self, result: Handled | None) -> tuple[str | None, bool]:
        """Return a press's answer for its presser alone, and whether it is long (an alert)."""
        if result is None or result.answer is None:
            return None, False
        text = self.renderer.render(result.answer).text
        if len(text) > CALLBACK_TEXT:
            text = text[: CALLBACK_TEXT - 1] + "…"
        return text, len(text) > CALLBACK_TOAST

    async def admin(
        self, message: IncomingMessage, command: AdminCommand | AdminRefusal, thread: int | None
    ) -> None:
        """Carry out /bind, /invite, /join or /revoke, or refuse it; answer in the chat."""
        await self.chat_admin.handle(message, command, thread)

    async def migrate(self, old: str, new: str) -> None:
        """Keep a group's node when Telegram turns it into a supergroup with a new id."""
        tree = self.config.context.tree
        node = node_of_chat(tree, old)
        if node is None:
            return
        await self.bindings.bind(Binding(new, node.id, staff=node.staff_chat == old))
        await self.config.refresh(self.bindings, force=True)
        log.warning("chat %s migrated to %s: bound to %s", old, new, node.id)


async def set_menus(bot: Bot, renderer: Renderer) -> None:
    """Publish the command menus for groups and private chats, in Chinese and English."""
    for code, lang in MENU_LANGUAGES:
        for scope, names in (
            (BotCommandScopeAllGroupChats(), GROUP_COMMANDS),
            (BotCommandScopeAllPrivateChats(), PRIVATE_COMMANDS),
        ):
            commands = [
                BotCommand(name, renderer.text("command_description", {"command": name}, lang))
                for name in names
            ]
            await bot.set_my_commands(commands, scope=scope, language_code=code)
