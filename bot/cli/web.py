"""``lianhu web``: the web console (sign-in, tickets, 我的待办, 驾驶舱) without the simulator.

A process of its own beside ``lianhu run`` and ``lianhu worker``: it reads and acts
on the same Redis, but sends nothing to the chats itself (the chat process's
sender does, as for an action taken in a chat). It is served on loopback behind
the TLS proxy; the host of ``LIANHU_WEB_URL`` is a name it answers to.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from bot.cli.common import report_settings, serve_until_stopped
from bot.logs import setup_logging
from bot.redis_server import RedisServerError, redis_for_command
from bot.settings import Settings

log = logging.getLogger(__name__)


def register(commands: Any) -> None:
    """Add ``web``."""
    parser = commands.add_parser(
        "web", help="serve the web console (sign-in from the bot, tickets, dashboard)"
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (loopback: the TLS proxy runs on this machine)",
    )
    parser.add_argument("--port", type=int, default=8081, help="port (0: any free port)")
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="how much the console logs (secrets are redacted at every level)",
    )
    parser.set_defaults(func=cmd_web)


def console_settings(settings: Settings) -> Settings:
    """Return the settings with the public address's host among the names the app answers to.

    Behind the proxy every request carries the public host name (``Host``, and ``Origin`` on
    forms); the console must answer to it without repeating it in ``LIANHU_ALLOWED_HOSTS``.
    """
    host = urlsplit(settings.web_url).hostname if settings.web_url else None
    if not host or host in settings.allowed_hosts:
        return settings
    return settings.model_copy(update={"allowed_hosts": (*settings.allowed_hosts, host)})


def cmd_web(args: argparse.Namespace) -> int:
    """Serve the console until SIGTERM or Ctrl-C."""
    try:
        settings = console_settings(Settings())
    except ValidationError as exc:
        return report_settings(exc, "lianhu web")
    setup_logging(args.log_level, settings.secret_values())
    if not settings.web_url:
        log.warning(
            "LIANHU_WEB_URL is not set: /web in a chat cannot send a sign-in link to this console"
        )
    try:
        with redis_for_command(settings.redis_url, settings.data_dir) as url:
            return asyncio.run(_serve(settings, url, args.host, args.port))
    except RedisServerError as exc:
        print(f"lianhu web: {exc}", file=sys.stderr)
        return 1


async def _serve(settings: Settings, url: str, host: str, port: int) -> int:
    from bot.web.app import init_app

    # No simulator, and no sender: the chat process sends what acting from here queues.
    app = init_app(settings, url, listen=host, sender=False, demo=False)

    def started(address: str) -> None:
        print(
            f"Lianhu web console: {address}/  "
            f"(public address: {settings.web_url or 'unset'}; Ctrl-C to stop)",
            flush=True,
        )

    code = await serve_until_stopped(app, host, port, "lianhu web", started)
    if code == 0:
        log.info("stopping")
    return code
