"""Live updates by WebSocket: simulator chats get their messages, ticket pages "ticket N changed".

``ChatHistory.append`` publishes each simulator message on one Redis channel, and
every ticket commit publishes the ticket's id on another (``keys.TICKET_CHANGES``),
so the pages learn of them whichever process wrote them (the Sender, a request
handler, the worker, the seed). One subscriber per web process fans them out: a
simulator page receives only the messages of the chats its person is in; a console
page receives only ``{"type": "ticket", "id": N}``, never a chat's text, and only
for a ticket its signed-in viewer may see (read again from the roster in force).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Collection
from typing import Protocol

from aiohttp import web
from redis.asyncio import Redis

from bot.core.org import OrgTree
from bot.core.ticket import Ticket
from bot.storage.keys import TICKET_CHANGES
from bot.web import keys

log = logging.getLogger(__name__)


class Watcher(Protocol):
    """A signed-in viewer of console pages (``bot.web.session.Viewer``)."""

    def may_see(self, tree: OrgTree, ticket: Ticket) -> bool:
        """Return whether the viewer may learn anything of the ticket."""


class Hub:
    """The open pages of one web process, and the Redis subscription that feeds them."""

    def __init__(
        self,
        redis: Redis,
        load: Callable[[str], Awaitable[Ticket | None]],
        tree: Callable[[], OrgTree],
    ) -> None:
        self.redis = redis
        self.load = load
        self.tree = tree
        self._sockets: dict[web.WebSocketResponse, frozenset[str]] = {}
        self._watchers: dict[web.WebSocketResponse, tuple[Watcher, str]] = {}
        self.ready = asyncio.Event()

    def add(self, socket: web.WebSocketResponse, chats: Collection[str]) -> None:
        """Send ``socket`` the messages of ``chats``."""
        self._sockets[socket] = frozenset(chats)

    def watch(self, socket: web.WebSocketResponse, viewer: Watcher, session: str) -> None:
        """Send ``socket`` which of the tickets ``viewer`` may see change, and nothing else."""
        self._watchers[socket] = (viewer, session)

    def discard(self, socket: web.WebSocketResponse) -> None:
        """Stop sending to ``socket``."""
        self._sockets.pop(socket, None)
        self._watchers.pop(socket, None)

    async def end_session(self, session: str) -> None:
        """Close the sockets of a session that ended (signed out)."""
        for socket, (_, owner) in list(self._watchers.items()):
            if owner == session:
                self.discard(socket)
                await socket.close(code=1008)

    async def run(self) -> None:
        """Forward published messages until cancelled."""
        pubsub = self.redis.pubsub()
        try:
            await pubsub.subscribe(keys.LIVE, TICKET_CHANGES)
            self.ready.set()
            while True:
                item = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if item is None:
                    continue
                channel = item["channel"]
                channel = channel.decode() if isinstance(channel, bytes) else channel
                if channel == TICKET_CHANGES:
                    await self.changed(item["data"])
                else:
                    await self.broadcast(item["data"])
        finally:
            with contextlib.suppress(Exception):
                await pubsub.unsubscribe()
            await pubsub.aclose()

    async def broadcast(self, raw: bytes | str) -> None:
        """Send one published message to every socket whose person is in its chat."""
        text = raw.decode() if isinstance(raw, bytes) else raw
        chat = json.loads(text).get("chat")
        for socket, chats in list(self._sockets.items()):
            if chat in chats:
                await self._send(socket, text)

    async def changed(self, ticket: bytes | str) -> None:
        """Tell every console page whose viewer may see the ticket that it changed (its id)."""
        ticket_id = ticket.decode() if isinstance(ticket, bytes) else ticket
        if not self._watchers:
            return
        found = await self.load(ticket_id)
        if found is None:
            return
        tree = self.tree()
        text = json.dumps({"type": "ticket", "id": ticket_id})
        for socket, (viewer, _) in list(self._watchers.items()):
            if viewer.may_see(tree, found):
                await self._send(socket, text)

    async def _send(self, socket: web.WebSocketResponse, text: str) -> None:
        if socket.closed:
            self.discard(socket)
            return
        try:
            await socket.send_str(text)
        except (ConnectionError, RuntimeError):  # the page went away meanwhile
            self.discard(socket)

    async def close_all(self) -> None:
        """Close every socket (at shutdown, so that no page holds the server open)."""
        for socket in [*self._sockets, *self._watchers]:
            await socket.close(code=1001)
        self._sockets.clear()
        self._watchers.clear()
