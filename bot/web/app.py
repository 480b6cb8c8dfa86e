"""The composition root of the web app: the simulator, the ticket views and their parts.

``init_app`` builds an aiohttp Application whose cleanup context opens the Redis
clients, the Service (the same one the Telegram adapter uses), the simulator's
outbox Sender, the live-update subscriber and a watcher that reloads changed
rule and org files; closing the app stops each of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import redis
import redis.asyncio
from aiohttp import web

from bot.bindings import BindingStore, OverlaidConfig
from bot.classifier.engine import engine_for
from bot.intake import mount_intake
from bot.live import LiveConfig
from bot.ports import Clock, Scheduler
from bot.redis_clients import async_client, sync_client
from bot.scheduling import RqScheduler
from bot.sender import Sender
from bot.services import Service
from bot.settings import Settings
from bot.storage.logins import Logins
from bot.storage.redis import RedisStore
from bot.web.history import ChatHistory
from bot.web.hosts import allowed_hosts, host_guard
from bot.web.live import Hub
from bot.web.pages import STATIC, Pages
from bot.web.session import LOGINS, PAGES_KEY, SECRET, TREE, session_guard
from bot.web.signin import DEMO, PUBLIC_URL, public
from bot.web.simulator import SimGateway, Simulator

log = logging.getLogger(__name__)

CONFIG_EVERY = 5.0  # seconds between looks at the rule and org files
START_TIMEOUT = 10.0
# The sender's blocking read wakes at once for new entries; this bounds only how long a
# stop waits for it.
SENDER_BLOCK_MS = 250


@dataclass(frozen=True)
class Parts:
    """What the handlers (and tests) reach: built when the app starts."""

    service: Service
    simulator: Simulator
    history: ChatHistory
    hub: Hub


PARTS = web.AppKey("parts", Parts)
PAGES = web.AppKey("pages", Pages)
CONFIG = web.AppKey("config", LiveConfig)


def init_app(
    settings: Settings,
    redis_url: str,
    *,
    clock: Clock = time.time,
    scheduler: Scheduler | None = None,
    sender: bool = True,
    listen: str | None = "127.0.0.1",
    demo: bool = False,
) -> web.Application:
    """Return the web app on the Redis at ``redis_url``.

    ``scheduler`` defaults to rq on the same Redis; ``sender`` runs the simulator's
    outbox Sender in this process (the demo does; another process may instead).
    ``listen`` is the address the app is served on: a name it answers to. ``demo``
    serves the simulator, where anyone may act as anyone, and lets it sign in to the
    console as anyone; without it the console is the only thing served.
    """
    from bot.web import views  # the routes import the app keys above

    prefixes = public(demo)

    def is_public(path: str) -> bool:
        return path == "/" or any(
            path == p or path.startswith(p.rstrip("/") + "/") for p in prefixes
        )

    guard = host_guard(allowed_hosts(listen, settings.allowed_hosts), views.refusal)
    app = web.Application(client_max_size=64 * 1024, middlewares=[guard, session_guard(is_public)])
    app[PAGES] = app[PAGES_KEY] = Pages()
    app[DEMO] = demo
    app[PUBLIC_URL] = settings.web_url or ""
    config = OverlaidConfig(settings.rules_dir, settings.org_file, settings.policy())
    app[CONFIG] = config
    app[TREE] = lambda: config.tree
    app.cleanup_ctx.append(_parts(settings, redis_url, clock, scheduler, sender))
    app.on_shutdown.append(_close_pages)
    views.add_routes(app)
    # the intake routes check their own credentials (HMAC, Open311 api_key), not a session
    prefixes.update(mount_intake(app, settings, app[CONFIG], lambda: app[PARTS].service))
    app.router.add_static("/static/", STATIC, name="static")
    return app


def _parts(
    settings: Settings,
    redis_url: str,
    clock: Clock,
    scheduler: Scheduler | None,
    run_sender: bool,
) -> Callable[[web.Application], contextlib.AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def context(app: web.Application) -> AsyncIterator[None]:
        client = async_client(redis_url, max_connections=50)
        sync: redis.Redis | None = None
        jobs = scheduler
        if jobs is None:
            sync = sync_client(redis_url)
            jobs = RqScheduler(sync, settings.queue)
        service = Service(
            RedisStore(client), app[CONFIG], jobs, clock, engine_for(settings, app[CONFIG].ruleset)
        )
        service.web_url = settings.web_url
        history = ChatHistory(client, clock)
        config = app[CONFIG]
        hub = Hub(client, service.store.get, lambda: config.tree)
        app[PARTS] = Parts(service, Simulator(service, history, clock), history, hub)
        logins = Logins(client)
        app[LOGINS] = logins
        secret = settings.web_secret
        app[SECRET] = secret.get_secret_value().encode() if secret else await logins.secret()
        stop = asyncio.Event()
        tasks = [asyncio.create_task(hub.run(), name="hub")]
        if run_sender:
            gateway = SimGateway(history)
            drain = Sender(client, gateway).run(stop, block_ms=SENDER_BLOCK_MS)
            tasks.append(asyncio.create_task(drain, name="sender"))
        bindings = BindingStore(client)
        if isinstance(config, OverlaidConfig):
            await config.refresh(bindings, force=True)
        watch = _watch_config(service, config, bindings, stop)
        tasks.append(asyncio.create_task(watch, name="config"))
        try:
            await asyncio.wait_for(hub.ready.wait(), START_TIMEOUT)
            yield
        finally:
            stop.set()
            tasks[0].cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await client.aclose(close_connection_pool=True)
            if sync is not None:
                sync.close()

    return context


async def _watch_config(
    service: Service, config: LiveConfig, bindings: BindingStore, stop: asyncio.Event
) -> None:
    """Reload changed rule and org files, and the roster's enrolments, until ``stop`` is set."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), CONFIG_EVERY)
        if stop.is_set():
            return
        try:
            await service.check_config()
            if isinstance(config, OverlaidConfig):
                await config.refresh(bindings)
        except Exception:  # keep watching: the next look may find the files fixed
            log.exception("checking the rule and org files failed")


async def _close_pages(app: web.Application) -> None:
    if PARTS in app:
        await app[PARTS].hub.close_all()
