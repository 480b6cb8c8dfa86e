"""``/bind``, ``/invite``, ``/join`` and ``/revoke`` carried out for any platform's chat.

Every answer goes through the platform's outbox in the same commit that marks
the message handled, so a redelivered message answers nothing twice.
"""

from __future__ import annotations

import logging
from typing import Any

from bot.bindings import BindingStore, OverlaidConfig, invite_params
from bot.core.enrolment import (
    AdminCommand,
    AdminRefusal,
    AdminVerb,
    Binding,
    decide_bind,
    decide_invite,
    decide_revoke,
)
from bot.core.models import IncomingMessage, Reply, platform_of
from bot.core.org import node_of_chat, person_of_account
from bot.core.workflow import node_params
from bot.services import Service
from bot.storage.redis import OutboxEntry, reply_payload

log = logging.getLogger(__name__)


class ChatAdmin:
    """Bind chats to nodes and enrol staff with one-time codes, from chat."""

    def __init__(self, service: Service, config: OverlaidConfig, bindings: BindingStore) -> None:
        self.service = service
        self.config = config
        self.bindings = bindings

    async def handle(
        self,
        message: IncomingMessage,
        command: AdminCommand | AdminRefusal,
        thread: int | None = None,
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
        platform = platform_of(message.chat)
        decided = decide_revoke(
            self.config.file_context.tree, person, message.private, command,
            self.config.enrolments, platform,
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

    async def _say(self, message: IncomingMessage, template: str, params: dict[str, Any]) -> None:
        """Answer in the chat, quoting the message, committed with its handled marker."""
        reply = Reply(
            message.chat, template, params, message.sender.lang, reply_to=message.message_id
        )
        platform = platform_of(message.chat)
        entry = OutboxEntry(platform, f"m:{message.key}:0", reply_payload(reply))
        await self.service.store.commit(None, None, (), [entry], message.key)
