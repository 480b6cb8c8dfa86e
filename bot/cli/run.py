"""``lianhu run``: the Telegram bot, by long polling or (``--webhook URL``) by webhook;
``lianhu run --platform wecom``: the WeCom intelligent robot's callback server."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import redis
import redis.asyncio
from pydantic import ValidationError
from telegram.error import InvalidToken

from bot.cli.common import report_settings
from bot.logs import setup_logging
from bot.redis_clients import async_client, sync_client
from bot.redis_server import redis_url_or_embedded
from bot.settings import Settings
from bot.telegram.runner import MissingSetting, TelegramBot

log = logging.getLogger(__name__)


def register(commands: Any) -> None:
    """Add ``run``."""
    parser = commands.add_parser(
        "run", help="run the Telegram bot (long polling, or a webhook with --webhook URL)"
    )
    parser.add_argument(
        "--webhook", metavar="URL", help="public HTTPS URL Telegram posts updates to"
    )
    parser.add_argument(
        "--listen",
        default="127.0.0.1",
        help="address the webhook server binds (loopback: the TLS proxy runs on this machine)",
    )
    parser.add_argument("--port", type=int, default=8080, help="port the webhook server binds")
    parser.add_argument(
        "--name", default=None, help="inbox consumer name, one per process (default host:pid:nonce)"
    )
    parser.add_argument(
        "--platform", choices=PLATFORMS, default="telegram",
        help="which chat platform this process serves (one process per platform)",
    )  # fmt: skip
    parser.add_argument("--path", default="/wecom", help="WeCom callback URL path")
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="how much the bot logs (the token and secrets are redacted at every level)",
    )
    parser.set_defaults(func=cmd_run)


PLATFORMS = ("telegram", "wecom")


def cmd_run(args: argparse.Namespace) -> int:
    """Run the bot until SIGTERM or Ctrl-C."""
    try:
        settings = Settings()
    except ValidationError as exc:
        return report_settings(exc, "lianhu run")
    if args.platform == "wecom":
        return run_wecom(settings, args)
    if settings.telegram_token is None:
        print("lianhu run: set LIANHU_TELEGRAM_TOKEN to the token from @BotFather", file=sys.stderr)
        return 2
    if args.webhook and settings.webhook_secret is None:
        print("lianhu run: --webhook needs LIANHU_WEBHOOK_SECRET", file=sys.stderr)
        return 2
    if args.webhook and not args.webhook.startswith("https://"):
        print("lianhu run: Telegram posts webhooks only to https:// URLs", file=sys.stderr)
        return 2
    return _run(settings, args, _serve)


Serve = Callable[[Settings, str, argparse.Namespace], Coroutine[Any, Any, int]]


def _run(settings: Settings, args: argparse.Namespace, serve: Serve) -> int:
    """Log with the secrets redacted, find or start Redis, and serve until stopped."""
    setup_logging(args.log_level, settings.secret_values())
    url, embedded = redis_url_or_embedded(settings.redis_url, settings.data_dir)
    try:
        return asyncio.run(serve(settings, url, args))
    finally:
        if embedded is not None:
            embedded.stop()


@contextlib.asynccontextmanager
async def _connected(
    url: str,
) -> AsyncIterator[tuple[redis.asyncio.Redis, redis.Redis, asyncio.Event]]:
    """Yield the async and sync Redis clients and an event SIGTERM and Ctrl-C set."""
    client = async_client(url, max_connections=64)
    sync = sync_client(url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        yield client, sync, stop
    finally:
        await client.aclose(close_connection_pool=True)
        sync.close()


async def _serve(settings: Settings, url: str, args: argparse.Namespace) -> int:
    async with _connected(url) as (client, sync, stop):
        bot = TelegramBot(settings, client, sync, consumer=args.name)
        try:
            await bot.start(args.webhook, args.listen, args.port)
        except (InvalidToken, MissingSetting) as exc:
            print(f"lianhu run: {exc}", file=sys.stderr)
            await bot.stop()
            return 2
        await stop.wait()
        log.info("stopping")
        await bot.stop()
        return 0


# -- WeCom ------------------------------------------------------------------------------------


def run_wecom(settings: Settings, args: argparse.Namespace) -> int:
    """Serve the WeCom callback URL until SIGTERM or Ctrl-C."""
    missing = [
        name
        for name, value in (
            ("LIANHU_WECOM_TOKEN", settings.wecom_token),
            ("LIANHU_WECOM_AES_KEY", settings.wecom_aes_key),
        )
        if value is None
    ]
    if missing:
        print(f"lianhu run: set {' and '.join(missing)}", file=sys.stderr)
        return 2
    return _run(settings, args, _serve_wecom)


async def _serve_wecom(settings: Settings, url: str, args: argparse.Namespace) -> int:
    from bot.wecom.runner import WeComBot
    from bot.wecom.webhooks import InvalidWebhooks

    async with _connected(url) as (client, sync, stop):
        try:
            bot = WeComBot(settings, client, sync, consumer=args.name)
        except InvalidWebhooks as exc:
            print(f"lianhu run: {exc}", file=sys.stderr)
            return 2
        await bot.start(args.listen, args.port, args.path)
        await stop.wait()
        log.info("stopping")
        await bot.stop()
        return 0
