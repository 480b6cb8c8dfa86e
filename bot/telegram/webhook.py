"""The webhook route: Telegram's secret token checked in constant time, the update stored, then 200.

Mount it on any aiohttp application (``add_webhook``); ptb's own webhook
server (tornado) is not used. A request without the right
``X-Telegram-Bot-Api-Secret-Token`` gets 403 and touches nothing; the header's
value is never logged.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from bot.inbox import Inbox

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MAX_BODY = 1024 * 1024  # an update is a few kilobytes; refuse anything absurd


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
            raw = await request.text()
            update = json.loads(raw)
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
    """Return an aiohttp application serving only the webhook."""
    app = web.Application(client_max_size=MAX_BODY)
    add_webhook(app, path, inbox, secret)
    return app
