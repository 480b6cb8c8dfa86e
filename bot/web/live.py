"""Live updates: every message stored in a simulator chat goes to the open pages by WebSocket.

``ChatHistory.append`` publishes each message on one Redis channel, so the pages
learn of it whichever process stored it (the Sender, a request handler, the seed).
One subscriber per web process fans the messages out to its sockets, each of
which receives only the chats its person is in.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Collection

from aiohttp import web
from redis.asyncio import Redis

from bot.web import keys

log = logging.getLogger(__name__)


class Hub:
    """The open pages of one web process, and the Redis subscription that feeds them."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._sockets: dict[web.WebSocketResponse, frozenset[str] | None] = {}
        self.ready = asyncio.Event()

    def add(self, socket: web.WebSocketResponse, chats: Collection[str] | None) -> None:
        """Send ``socket`` the messages of ``chats`` (None: of every chat)."""
        self._sockets[socket] = None if chats is None else frozenset(chats)

    def discard(self, socket: web.WebSocketResponse) -> None:
        """Stop sending to ``socket``."""
        self._sockets.pop(socket, None)

    async def run(self) -> None:
        """Forward published messages until cancelled."""
        pubsub = self.redis.pubsub()
        try:
            await pubsub.subscribe(keys.LIVE)
            self.ready.set()
            while True:
                item = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if item is not None:
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
            if socket.closed:
                self.discard(socket)
            elif chats is None or chat in chats:
                try:
                    await socket.send_str(text)
                except (ConnectionError, RuntimeError):  # the page went away meanwhile
                    self.discard(socket)

    async def close_all(self) -> None:
        """Close every socket (at shutdown, so that no page holds the server open)."""
        for socket in list(self._sockets):
            await socket.close(code=1001)
        self._sockets.clear()
