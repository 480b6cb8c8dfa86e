"""The alert webhook: ``POST /hooks/alerts`` turns data-feed alerts into tickets.

The key is checked first, in constant time: ``Authorization: Bearer <secret>`` (what
Alertmanager's ``http_config.authorization`` sends) or ``X-Lianhu-Signature:
sha256=<hex HMAC-SHA256 of the body>``. Then the whole body is validated before anything
is written (bot.core.alerts): a bad request gets a 4xx naming the problem and changes
nothing. A firing alert opens a ticket at the node its route names, keyed by the alert's
fingerprint and start (a repeat notification finds the processed marker: no second
ticket); a resolved one resolves that ticket, with an event, once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from bot.core.alerts import Alert, AlertStatus, BadPayload, Route, parse_payload, route, ticket_text
from bot.core.classify import Match
from bot.core.models import Actor, IncomingMessage
from bot.core.workflow import Refusal, resolve_by_feed
from bot.storage import keys
from bot.storage.redis import CommitStatus

if TYPE_CHECKING:
    from bot.services import Service

log = logging.getLogger(__name__)

PATH = "/hooks/alerts"
SIGNATURE_HEADER = "X-Lianhu-Signature"
PLATFORM = "alert"  # the reporter's "chat" platform: nothing is ever sent there


@dataclass(frozen=True)
class AlertIntake:
    """The webhook's parts: its key, the routes, and the service (built when the app starts)."""

    secret: bytes
    routes: tuple[Route, ...]
    service: Callable[[], Service]

    def authentic(self, request: web.Request, body: bytes) -> bool:
        """Return whether the request carries the key (bearer) or signs the body with it."""
        bearer = request.headers.get("Authorization", "")
        if bearer.startswith("Bearer "):
            given = bearer[len("Bearer ") :].encode("utf-8", "surrogateescape")
            return hmac.compare_digest(given, self.secret)
        signature = request.headers.get(SIGNATURE_HEADER, "")
        if signature.startswith("sha256="):
            expected = hmac.new(self.secret, body, hashlib.sha256).hexdigest().encode()
            given = signature[len("sha256=") :].strip().lower().encode("utf-8", "surrogateescape")
            return hmac.compare_digest(given, expected)
        return False

    async def receive(self, request: web.Request) -> web.Response:
        """Take one webhook call."""
        body = await request.read()
        if not self.authentic(request, body):
            log.warning("alerts: refused a request without the right key from %s", request.remote)
            return _error(
                401, "missing or wrong key (Authorization: Bearer, or X-Lianhu-Signature)"
            )
        try:
            alerts = parse_payload(json.loads(body))
        except (ValueError, UnicodeDecodeError) as exc:
            message = str(exc) if isinstance(exc, BadPayload) else "the body is not JSON"
            return _error(400 if not isinstance(exc, BadPayload) else 422, message)
        if len({a.key for a in alerts}) != len(alerts):
            return _error(422, "alerts: the same alert twice in one request")
        service = self.service()
        outcome: dict[str, list[str]] = {
            "opened": [], "duplicate": [], "resolved": [], "unrouted": [], "ignored": []
        }  # fmt: skip
        for alert in alerts:
            status, ticket = await self._one(service, alert)
            outcome[status].append(f"{alert.fingerprint}:{ticket}" if ticket else alert.fingerprint)
        if outcome["unrouted"]:
            log.warning("alerts: no route for %s", ", ".join(outcome["unrouted"]))
        return web.json_response(outcome)

    async def _one(self, service: Service, alert: Alert) -> tuple[str, str | None]:
        if alert.status is AlertStatus.RESOLVED:
            return await resolve(service, alert)
        ctx = service.config.context
        target = route(alert, self.routes, ctx.tree)
        category = ctx.ruleset.categories.get(target.category) if target else None
        if target is None or category is None:
            return "unrouted", None
        message = alert_message(alert, service.clock())
        match = Match(target.category, "alert", 0, category.severity, False,
                      category.start_tier, ())  # fmt: skip
        handled = await service._open_or_join(
            ctx, message, match, ctx.tree.nodes[target.node], None
        )
        if handled.ticket:  # again after a crash between the two writes: the same value
            await service.store.redis.set(
                keys.alert_ticket(alert.source, alert.key), handled.ticket
            )
        return ("opened" if handled.status == "opened" else "duplicate"), handled.ticket


def alert_message(alert: Alert, now: float) -> IncomingMessage:
    """Return an alert as the message a ticket is opened from (the feed is its reporter)."""
    sender = Actor(f"{PLATFORM}:{alert.source}", alert.labels.get("alertname") or alert.source)
    return IncomingMessage(f"{PLATFORM}:{alert.source}", alert.key, sender, ticket_text(alert), now)


async def resolve(service: Service, alert: Alert) -> tuple[str, str | None]:
    """Resolve the ticket a resolved alert's incident opened, once."""
    raw = await service.store.redis.get(keys.alert_ticket(alert.source, alert.key))
    ticket_id = raw.decode() if isinstance(raw, bytes) else raw
    if ticket_id is None:
        return "ignored", None  # never opened here (unrouted, or before this file)
    message = alert_message(alert, service.clock())
    key = f"{message.key}#resolved"
    async with service._lock(ticket_id):
        for _ in range(30):
            if await service.store.was_processed(key) is not None:
                return "duplicate", ticket_id
            ticket = await service.store.get(ticket_id)
            if ticket is None:
                return "ignored", None
            ctx = service.config.context
            note = ticket_text(alert)
            decision = resolve_by_feed(
                ctx, ticket, message.sender, message.chat, note, service.clock()
            )
            if isinstance(decision, Refusal):  # resolved or closed by a handler meanwhile
                return "ignored", ticket_id
            status, _ = await service.store.commit(
                ticket, decision.ticket, decision.events, service._outbox(decision, message), key,
                jobs=service._jobs(ticket, decision.ticket),
            )  # fmt: skip
            if status is CommitStatus.OK:
                return "resolved", ticket_id
            if status is CommitStatus.DUPLICATE:
                return "duplicate", ticket_id
    raise RuntimeError(f"alert {alert.key}: gave up resolving ticket {ticket_id}")


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def add_alerts(app: web.Application, intake: AlertIntake) -> None:
    """Serve the alert webhook on ``app``."""
    app.router.add_post(PATH, intake.receive)


__all__: Sequence[str] = ("PATH", "AlertIntake", "add_alerts", "alert_message", "resolve")
