"""The Telegram bot assembled: ptb Application, durable inbox, sender, polling or webhook.

Receiving only stores updates (inbox); a consumer hands each stored update to
ptb's ``process_update``, whose one handler calls the use cases; the sender
drains the outbox. The three run side by side until ``stop``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from urllib.parse import urlsplit

import redis
from aiohttp import web
from redis.asyncio import Redis
from telegram import Update
from telegram.error import InvalidToken, TimedOut
from telegram.ext import Application, ApplicationBuilder, ContextTypes, TypeHandler

from bot.adapters.telegram import ALLOWED_UPDATES, PLATFORM, TelegramGateway
from bot.app import chat_parts, keep_current
from bot.core.deadlines import Policy
from bot.core.models import Lang
from bot.core.org import ancestors, person_of_account
from bot.inbox import Inbox, consumer_name
from bot.intake import mount_intake
from bot.settings import Settings
from bot.telegram.ratelimit import Limits, RateLimiter
from bot.telegram.router import Router, set_menus
from bot.telegram.sending import TelegramSender
from bot.telegram.webhook import serve, webhook_app

log = logging.getLogger(__name__)

POLL_TIMEOUT = 30  # seconds a getUpdates call waits for news


class MissingSetting(Exception):
    """A setting the Telegram bot cannot run without is unset."""


class TelegramBot:
    """Everything one ``lianhu run`` process does, built from the settings."""

    def __init__(
        self,
        settings: Settings,
        client: Redis,
        sync: redis.Redis,
        *,
        consumer: str | None = None,
        policy: Policy | None = None,
        claim_idle: float = 60.0,
        poll_timeout: int = POLL_TIMEOUT,
    ) -> None:
        if settings.telegram_token is None:
            raise MissingSetting("LIANHU_TELEGRAM_TOKEN")
        self.settings = settings
        self.redis = client
        self.poll_timeout = poll_timeout
        parts = chat_parts(settings, client, sync, policy)
        self.config, self.renderer, self.store = parts.config, parts.renderer, parts.store
        self.service, self.bindings = parts.service, parts.bindings
        root = settings.telegram_base_url.rstrip("/")
        self.application: Application = (  # type: ignore[type-arg]
            ApplicationBuilder()
            .token(settings.telegram_token.get_secret_value())
            .base_url(f"{root}/bot")
            .base_file_url(f"{root}/file/bot")
            .updater(None)  # updates come from our poller or webhook, through the inbox
            .build()
        )
        self.router = Router(self.service, self.config, self.bindings, self.renderer)
        self.application.add_handler(TypeHandler(Update, self.router.on_update))
        self.application.add_error_handler(self._on_error)
        self._failed: set[int] = set()
        gateway = TelegramGateway(
            self.application.bot,
            fallback=self._staff_chat,
            undelivered=lambda text: self.renderer.text(
                "undelivered_private", {"text": text}, Lang.ZH_HANS
            ),
            thread_of=self._thread_of,
            migrated=self.router.migrate,
        )
        limiter = RateLimiter(Limits().scaled(settings.telegram_limit_scale))
        name = consumer or consumer_name()
        # One consumer name for every sender: whoever holds the lease next reads what the
        # last holder had in hand as its own pending entries, at once.
        self.sender = TelegramSender(
            client, gateway, limiter, render=self.renderer, claim_idle=claim_idle,
            backlog_alert=settings.outbox_backlog_alert,
        )  # fmt: skip
        self.inbox = Inbox(client, PLATFORM, name, claim_idle=claim_idle)
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._poller: asyncio.Task[None] | None = None
        self._site: web.AppRunner | None = None

    # -- lifecycle -----------------------------------------------------------------------

    async def start(
        self, webhook: str | None = None, host: str = "127.0.0.1", port: int = 8080
    ) -> None:
        """Connect, publish the menus and start receiving, processing and sending."""
        await self.config.refresh(self.bindings, force=True)
        await self.application.initialize()  # getMe: a wrong token fails here
        await set_menus(self.application.bot, self.renderer)
        self._tasks = [
            asyncio.create_task(self.inbox.run(self._stop, self.process), name="inbox"),
            asyncio.create_task(self.sender.run(self._stop), name="sender"),
            asyncio.create_task(self._maintain(), name="config"),
        ]
        if webhook is None:
            await self.application.bot.delete_webhook()
            self._poller = asyncio.create_task(self.poll(), name="poller")
            log.info("telegram: long polling as @%s", self.application.bot.username)
            return
        secret = self.settings.webhook_secret
        if secret is None:
            raise MissingSetting("LIANHU_WEBHOOK_SECRET")
        path = urlsplit(webhook).path or "/"
        app = webhook_app(path, self.inbox, secret.get_secret_value())
        mount_intake(app, self.settings, self.config, lambda: self.service)
        self._site = await serve(app, host, port)
        await self.application.bot.set_webhook(
            webhook, secret_token=secret.get_secret_value(), allowed_updates=list(ALLOWED_UPDATES)
        )
        log.info("telegram: webhook %s served on %s:%d", webhook, host, port)

    async def stop(self) -> None:
        """Stop receiving, finish what is in hand, and close."""
        self._stop.set()
        if self._poller is not None:
            self._poller.cancel()  # a long poll in flight: its updates come again next time
            await asyncio.gather(self._poller, return_exceptions=True)
        if self._site is not None:
            await self._site.cleanup()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.application.shutdown()

    # -- receiving -----------------------------------------------------------------------

    async def poll(self) -> None:
        """Long-poll getUpdates; confirm an offset only after its updates are in the inbox."""
        offset: int | None = None
        failures = 0
        bot = self.application.bot
        while not self._stop.is_set():
            try:
                updates = await bot.get_updates(
                    offset=offset, timeout=self.poll_timeout, allowed_updates=list(ALLOWED_UPDATES)
                )
                for update in updates:
                    await self.inbox.put(update.update_id, update.to_json())
                if updates:
                    offset = updates[-1].update_id + 1  # the next call confirms them
                failures = 0
            except TimedOut:
                continue
            except InvalidToken:
                log.critical("telegram: the token was refused; check LIANHU_TELEGRAM_TOKEN")
                raise
            except Exception as exc:  # Conflict, NetworkError, Redis away: try again
                failures += 1
                wait = min(2.0**failures, 60.0)
                log.warning("telegram: polling failed (%s); again in %.0f s", exc, wait)
                await asyncio.sleep(wait)

    # -- processing ----------------------------------------------------------------------

    async def process(self, raw: str) -> None:
        """Handle one stored update through ptb; raise if its handler failed."""
        update = Update.de_json(json.loads(raw), self.application.bot)
        await self.application.process_update(update)
        if update.update_id in self._failed:
            self._failed.discard(update.update_id)
            raise RuntimeError(f"update {update.update_id} failed")

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        if isinstance(update, Update):
            self._failed.add(update.update_id)
            log.error("update %s failed", update.update_id, exc_info=context.error)

    async def _maintain(self) -> None:
        await keep_current(self.service, self.config, self.bindings, self._stop)

    # -- sending helpers -----------------------------------------------------------------

    async def _staff_chat(self, chat: str, ticket_id: str | None) -> str | None:
        """Return the Telegram staff chat nearest the ticket's node (or the person's scope)."""
        tree = self.config.context.tree
        node: str | None = None
        if ticket_id:
            ticket = await self.store.get(ticket_id)
            node = ticket.node if ticket else None
        if node is None:
            person = person_of_account(tree, chat)
            node = person.scope if person else None
        if node is None or node not in tree.nodes:
            return None
        for n in ancestors(tree, node):
            if n.staff_chat and n.staff_chat.startswith(f"{PLATFORM}:"):
                return n.staff_chat
        return None

    def _thread_of(self, chat: str) -> int | None:
        binding = self.config.bindings.get(chat)
        return binding.thread if binding else None
