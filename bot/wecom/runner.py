"""The WeCom bot assembled: callback server, durable inbox, use cases and the outbox sender.

Receiving only stores callbacks (``bot.wecom.callback``); the inbox consumer
hands each to ``process``, which translates it (``bot.wecom.adapter``) and
calls the use cases or the admin commands; the sender drains the ``wecom``
outbox through ``WeComGateway`` while this process holds the WeCom sender lease
(``bot.wecom.sending``: several processes receive, one sends). It shares Redis, the org tree
and the rule files with the Telegram process of the same street: each platform has its own
inbox and outbox streams, and tickets are the same tickets.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping

import aiohttp
import redis
from aiohttp import web
from pydantic import SecretStr
from redis.asyncio import Redis

from bot.app import chat_parts, keep_current
from bot.chat_admin import ChatAdmin
from bot.core.deadlines import Policy
from bot.core.enrolment import parse_admin
from bot.core.models import Reply
from bot.inbox import Inbox, consumer_name
from bot.intake import mount_intake
from bot.services import Handled
from bot.settings import Settings
from bot.wecom.adapter import PLATFORM, to_incoming
from bot.wecom.callback import CallbackReceiver
from bot.wecom.crypto import WeComCipher
from bot.wecom.gateway import WeComGateway, WeComRendered
from bot.wecom.passive import Passive
from bot.wecom.sending import WeComSender
from bot.wecom.webhooks import load_webhooks, unmatched

log = logging.getLogger(__name__)

DEFAULT_BOT_NAME = "联户"


class MissingSetting(Exception):
    """A setting the WeCom bot cannot run without is unset."""


class WeComBot:
    """Everything one ``lianhu run --platform wecom`` process does, built from the settings."""

    def __init__(
        self,
        settings: Settings,
        client: Redis,
        sync: redis.Redis,
        *,
        consumer: str | None = None,
        policy: Policy | None = None,
        claim_idle: float = 60.0,
        passive_wait: float = 2.0,
        retry_after: float = 5.0,
        rate_window: float = 60.0,
    ) -> None:
        if settings.wecom_token is None:
            raise MissingSetting("LIANHU_WECOM_TOKEN")
        if settings.wecom_aes_key is None:
            raise MissingSetting("LIANHU_WECOM_AES_KEY")
        self.settings = settings
        self.redis = client
        parts = chat_parts(settings, client, sync, policy)
        self.config, self.renderer, self.store = parts.config, parts.renderer, parts.store
        self.service, self.bindings = parts.service, parts.bindings
        self.admin = ChatAdmin(self.service, self.config, self.bindings)
        self.webhooks: Mapping[str, SecretStr] = (
            load_webhooks(settings.wecom_webhooks) if settings.wecom_webhooks else {}
        )
        self.cipher = WeComCipher.of(
            settings.wecom_token.get_secret_value(), settings.wecom_aes_key.get_secret_value()
        )
        self.passive = Passive(client)
        self.session: aiohttp.ClientSession | None = None
        self.passive_wait = passive_wait
        self.retry_after = retry_after
        self.rate_window = rate_window
        self.name = consumer or consumer_name()
        self.inbox = Inbox(client, PLATFORM, self.name, claim_idle=claim_idle)
        self._gateway: WeComGateway | None = None
        self.sender: WeComSender | None = None
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._site: web.AppRunner | None = None

    @property
    def gateway(self) -> WeComGateway:
        """Return the gateway (built by ``start``, which opens its HTTP session)."""
        assert self._gateway is not None, "start() first"
        return self._gateway

    def render(self, reply: Reply) -> WeComRendered:
        """Render a reply, with the @-mention commands that stand for its buttons."""
        rendered = self.renderer.render(reply)
        settled = self.renderer.text("wecom_settled", {}, reply.lang) if reply.card else ""
        if not reply.buttons:
            return WeComRendered(rendered.text, rendered.buttons, settled=settled)
        ticket = reply.ticket or str(reply.params.get("id") or "")
        name = self.settings.wecom_bot_name or DEFAULT_BOT_NAME
        params = {
            "bot": name,
            "id": ticket,
            "actions": list(reply.buttons),
            "choice_names": reply.params.get("choice_names") or {},
        }
        hint = self.renderer.text("wecom_actions", params, reply.lang)
        return WeComRendered(rendered.text, rendered.buttons, hint=hint, settled=settled)

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self, host: str = "0.0.0.0", port: int = 8080, path: str = "/wecom") -> None:
        """Open the callback URL and start processing and sending."""
        await self.config.refresh(self.bindings, force=True)
        for problem in unmatched(self.webhooks, self.config.context.tree):
            log.warning("wecom: %s", problem)
        self.session = aiohttp.ClientSession()
        self._gateway = WeComGateway(
            self.redis, self.session, self.settings.wecom_base_url, lambda: self.webhooks,
            self.passive, per_minute=self.settings.wecom_per_minute, window=self.rate_window,
        )  # fmt: skip
        self.sender = WeComSender(
            self.redis, self._gateway, f"{PLATFORM}-sender", render=self.render,
            retry_after=self.retry_after,
        )  # fmt: skip
        receiver = CallbackReceiver(
            self.cipher, self.redis, self.inbox, self._gateway, self.passive,
            bot_id=self.settings.wecom_bot_id, window=self.settings.wecom_replay_window,
            wait=self.passive_wait,
        )  # fmt: skip
        app = receiver.app(path)
        # Alerts and Open311 on the same server, as the Telegram webhook server serves them.
        served = mount_intake(app, self.settings, self.config, lambda: self.service)
        self._site = web.AppRunner(app)
        await self._site.setup()
        await web.TCPSite(self._site, host, port).start()
        self._tasks = [
            asyncio.create_task(self.inbox.run(self._stop, self._process), name="inbox"),
            asyncio.create_task(self.sender.run(self._stop), name="sender"),
            asyncio.create_task(self._maintain(), name="config"),
        ]
        log.info("wecom: callback URL served on %s:%d%s", host, port, path)
        for intake in served:
            log.info("wecom: %s served on %s:%d", intake, host, port)

    async def stop(self) -> None:
        """Stop receiving, finish what is in hand, and close."""
        self._stop.set()
        if self._site is not None:
            await self._site.cleanup()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.session is not None:
            await self.session.close()

    # -- processing ----------------------------------------------------------------------

    async def process(self, raw: str) -> Handled | None:
        """Handle one stored callback; raise to leave it in the inbox for another try."""
        record = json.loads(raw)
        await self.config.refresh(self.bindings)
        name = self.settings.wecom_bot_name
        incoming = to_incoming(record["msg"], record["at"], self.config.context.tree, name)
        if incoming is None:
            return None
        admin = parse_admin(incoming.text) if incoming.callback is None else None
        if admin is not None:
            await self.admin.handle(incoming, admin)
            return None
        handled = await self.service.handle_message(incoming)
        # A refused press: WeCom has no answer for one person (a question is in the chat).
        if handled.answer is not None and handled.status == "refused":
            await self.service.say_publicly(incoming, handled.answer)
        return handled

    async def _process(self, raw: str) -> None:
        await self.process(raw)

    async def _maintain(self) -> None:
        await keep_current(self.service, self.config, self.bindings, self._stop)
