"""Live updates by WebSocket: simulator chats get their messages, ticket pages "ticket N changed".

``ChatHistory.append`` publishes each simulator message on one Redis channel, and
every ticket commit publishes the ticket's id on another (``keys.TICKET_CHANGES``),
so the pages learn of them whichever process wrote them (the Sender, a request
handler, the worker, the seed). One subscriber per web process fans them out: a
simulator page receives only the messages of the chats its person is in; a ticket
page receives only ``{"type": "ticket", "id": N}``, never a chat's text.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Collection

from aiohttp import web
from redis.asyncio import Redis

from bot.storage.keys import TICKET_CHANGES
from bot.web import keys

log = logging.getLogger(__name__)


class Hub:
    """The open pages of one web process, and the Redis subscription that feeds them."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._sockets: dict[web.WebSocketResponse, frozenset[str]] = {}
        self._watchers: set[web.WebSocketResponse] = set()
        self.ready = asyncio.Event()

    def add(self, socket: web.WebSocketResponse, chats: Collection[str]) -> None:
        """Send ``socket`` the messages of ``chats``."""
        self._sockets[socket] = frozenset(chats)

    def watch(self, socket: web.WebSocketResponse) -> None:
        """Send ``socket`` which tickets change, and nothing else."""
        self._watchers.add(socket)

    def discard(self, socket: web.WebSocketResponse) -> None:
        """Stop sending to ``socket``."""
        self._sockets.pop(socket, None)
        self._watchers.discard(socket)

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
        """Tell every ticket page that a ticket changed (its id only)."""
        ticket_id = ticket.decode() if isinstance(ticket, bytes) else ticket
        text = json.dumps({"type": "ticket", "id": ticket_id})
        for socket in list(self._watchers):
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
