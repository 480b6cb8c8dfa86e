"""What the bot does with one Telegram update: the core's use cases, or the admin commands.

/bind, /invite, /join and /revoke change the tree and the roster laid over the org file.

Every answer goes through the outbox in the same commit that marks the
message handled, so a redelivered update answers nothing twice.
"""

from __future__ import annotations

import logging
from typing import Any

from telegram import (
    Bot,
    BotCommand,
    BotCommandScopeAllGroupChats,
    BotCommandScopeAllPrivateChats,
    Update,
)
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bot.adapters.telegram import PLATFORM, chat_key, to_incoming
from bot.bindings import BindingStore, OverlaidConfig, invite_params
from bot.core.enrolment import (
    AdminCommand,
    AdminRefusal,
    AdminVerb,
    Binding,
    decide_bind,
    decide_invite,
    decide_revoke,
    parse_admin,
)
from bot.core.models import IncomingMessage, Lang, Reply
from bot.core.org import node_of_chat, person_of_account
from bot.core.workflow import node_params
from bot.render import Renderer
from bot.services import Handled, Service
from bot.storage.redis import OutboxEntry, reply_payload

log = logging.getLogger(__name__)

GROUP_COMMANDS = (
    "help", "status", "ack", "resolve", "note", "escalate",
    "open", "mine", "stats", "confirm", "reopen", "bind",
)  # fmt: skip
PRIVATE_COMMANDS = ("help", "my", "status", "mine", "join", "invite", "revoke")
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
            try:
                await update.callback_query.answer()
            except TelegramError as exc:  # answered before a redelivery, or too old
                log.debug("callback %s not answered: %s", update.callback_query.id, exc)
        return result

    async def admin(
        self, message: IncomingMessage, command: AdminCommand | AdminRefusal, thread: int | None
    ) -> None:
        """Carry out /bind, /invite, /join or /revoke, or refuse it; answer in the chat."""
        if await self.service.store.was_processed(message.key) is not None:
            return
        if isinstance(command, AdminRefusal):
            return await self._say(message, command.reason, dict(command.params))
        tree = self.config.context.tree
        person = person_of_account(tree, message.sender.account)
        if command.verb is AdminVerb.BIND:
            file_tree = self.config.file_context.tree
            current = node_of_chat(tree, message.chat)
            bind = decide_bind(
                file_tree, person, message.chat, message.private, command,
                current.id if current else None,
            )  # fmt: skip
            if isinstance(bind, AdminRefusal):
                return await self._say(message, bind.reason, dict(bind.params))
            await self.bindings.bind(Binding(bind.chat, bind.node, bind.staff, thread))
            await self.config.refresh(self.bindings, force=True)
            log.info("chat %s bound to %s by %s", bind.chat, bind.node, message.sender.account)
            node = tree.nodes[bind.node]
            return await self._say(message, "bound", {**node_params(node), "staff": bind.staff})
        if command.verb is AdminVerb.INVITE:
            invite = decide_invite(tree, person, message.private, command)
            if isinstance(invite, AdminRefusal):
                return await self._say(message, invite.reason, dict(invite.params))
            code = await self.bindings.create_invite(invite, message.sender.account)
            return await self._say(message, "invite_code", invite_params(tree, invite, code))
        if command.verb is AdminVerb.REVOKE:
            return await self.revoke(message, command)
        if not message.private:
            await self.bindings.burn_invite(command.code)
            return await self._say(message, "join_in_private", {})
        s = message.sender
        if s.account in self.config.file_context.tree.accounts:  # the file decides their role
            return await self._say(message, "join_in_file", {})
        joined = await self.bindings.join(command.code, s.account, s.name, s.lang)
        if isinstance(joined, AdminRefusal):
            if joined.reason == "join_locked":
                log.warning("%s: /join locked after failed attempts", s.account)
            return await self._say(message, joined.reason, dict(joined.params))
        await self.config.refresh(self.bindings, force=True)
        log.info("%s enrolled as %s of %s", s.account, joined.role.value, joined.scope)
        node = self.config.context.tree.nodes[joined.scope]
        await self._say(message, "joined", {**node_params(node), "role": joined.role.value})

    async def revoke(self, message: IncomingMessage, command: AdminCommand) -> None:
        """End a chat enrolment at once, for every process; the file's people stay."""
        tree = self.config.context.tree
        person = person_of_account(tree, message.sender.account)
        decided = decide_revoke(
            self.config.file_context.tree, person, message.private, command,
            self.config.enrolments, PLATFORM,
        )  # fmt: skip
        if isinstance(decided, AdminRefusal):
            return await self._say(message, decided.reason, dict(decided.params))
        revoked = await self.bindings.revoke(decided.account, message.sender.account)
        await self.config.refresh(self.bindings, force=True)
        if revoked is None:  # revoked by another process meanwhile
            return await self._say(message, "revoke_unknown", {"target": command.target})
        log.info("%s revoked by %s", revoked.account, message.sender.account)
        node = tree.nodes.get(revoked.scope)
        params = {**(node_params(node) if node else {}), "role": revoked.role.value}
        await self._say(
            message, "revoked", {**params, "name": revoked.name, "account": revoked.account}
        )

    async def migrate(self, old: str, new: str) -> None:
        """Keep a group's node when Telegram turns it into a supergroup with a new id."""
        tree = self.config.context.tree
        node = node_of_chat(tree, old)
        if node is None:
            return
        await self.bindings.bind(Binding(new, node.id, staff=node.staff_chat == old))
        await self.config.refresh(self.bindings, force=True)
        log.warning("chat %s migrated to %s: bound to %s", old, new, node.id)

    async def _say(self, message: IncomingMessage, template: str, params: dict[str, Any]) -> None:
        """Answer in the chat, quoting the message, committed with its handled marker."""
        reply = Reply(
            message.chat, template, params, message.sender.lang, reply_to=message.message_id
        )
        entry = OutboxEntry(PLATFORM, f"m:{message.key}:0", reply_payload(reply))
        await self.service.store.commit(None, None, (), [entry], message.key)


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
