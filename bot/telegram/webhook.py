"""The webhook route: Telegram's secret token checked in constant time, the update stored, then 200.

Mount it on any aiohttp application (``add_webhook``); ptb's own webhook
server (tornado) is not used. A request without the right
``X-Telegram-Bot-Api-Secret-Token`` gets 403 and touches nothing; the header's
value is never logged.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from bot.inbox import Inbox

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MAX_BODY = 1024 * 1024  # an update is a few kilobytes; refuse anything absurd
# Idle and slow clients must not hold file descriptors: aiohttp keeps an idle connection
# (one that sent nothing yet, or half a request line) for an hour by default. Telegram
# reconnects when it has news; it opens at most 100 connections (setWebhook max_connections).
IDLE_TIMEOUT = 30.0  # seconds a connection may sit without a whole request
BODY_TIMEOUT = 30.0  # seconds to send an update's body once its headers came
MAX_CONNECTIONS = 200  # more open at once are closed as soon as they connect


def webhook_handler(
    inbox: Inbox, secret: str
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Return the handler that stores one update per request."""
    expected = secret.encode()

    async def receive(request: web.Request) -> web.StreamResponse:
        given = request.headers.get(SECRET_HEADER, "").encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(given, expected):
            log.warning(
                "webhook: refused a request without the right secret from %s", request.remote
            )
            return web.Response(status=403)
        try:
            async with asyncio.timeout(BODY_TIMEOUT):
                raw = await request.text()
            update = json.loads(raw)
        except TimeoutError:
            return web.Response(status=408)
        except (ValueError, UnicodeDecodeError):
            return web.Response(status=400, text="not JSON")
        update_id = update.get("update_id") if isinstance(update, dict) else None
        if not isinstance(update_id, int) or isinstance(update_id, bool):
            return web.Response(status=400, text="no update_id")
        await inbox.put(update_id, raw)  # raises while Redis is away: 500, Telegram retries
        return web.Response(status=200)

    return receive


def add_webhook(app: web.Application, path: str, inbox: Inbox, secret: str) -> None:
    """Serve the webhook at ``path`` of ``app``."""
    app.router.add_post(path, webhook_handler(inbox, secret))


def webhook_app(path: str, inbox: Inbox, secret: str) -> web.Application:
    """Return an aiohttp application serving the webhook and ``/healthz`` (for a balancer)."""
    app = web.Application(client_max_size=MAX_BODY)
    add_webhook(app, path, inbox, secret)

    async def healthz(request: web.Request) -> web.Response:
        await inbox.redis.ping()  # raises while Redis is away: 500, the balancer looks elsewhere
        return web.Response(text="ok")

    if path != "/healthz":
        app.router.add_get("/healthz", healthz)
    return app


class _Closed(asyncio.Protocol):
    """A connection past the cap: closed as soon as it is made."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


class CappedSite(web.TCPSite):
    """A TCP site that closes connections past ``max_connections`` at once."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, max_connections: int) -> None:
        super().__init__(runner, host, port)
        self.max_connections = max_connections

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with its runner
        server = self._runner.server
        assert server is not None

        def protocol() -> asyncio.BaseProtocol:
            if len(server.connections) >= self.max_connections:
                log.warning(
                    "webhook: %d connections open; closing a new one", len(server.connections)
                )
                return _Closed()
            return server()

        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(protocol, self._host, self._port)


async def serve(
    app: web.Application,
    host: str,
    port: int,
    *,
    idle_timeout: float = IDLE_TIMEOUT,
    max_connections: int = MAX_CONNECTIONS,
) -> web.AppRunner:
    """Serve ``app`` on ``host:port``, dropping idle clients and capping connections."""
    runner = web.AppRunner(app, keepalive_timeout=idle_timeout)
    await runner.setup()
    await CappedSite(runner, host, port, max_connections).start()
    return runner
