"""Open311 GeoReport v2 on the web app, under ``/open311/v2/``.

``GET services.json`` lists the categories; ``POST requests.json`` opens a ticket through
the ordinary path (the classifier decides when no ``service_code`` is given); ``GET
requests.json`` and ``GET requests/{id}.json`` read back the client's own requests. Every
call needs the client's ``api_key`` (compared in constant time with every client's key).
Errors are the spec's list ``[{"code": 400, "description": "..."}]`` with that HTTP status,
and a refused request writes nothing. A POST with an ``Idempotency-Key`` header is taken
once: the same key again answers with the same request id.
"""

from __future__ import annotations

import hmac
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from bot.core.classify import Match
from bot.core.models import Actor, IncomingMessage
from bot.core.open311 import (
    Client,
    Open311Error,
    read_query,
    read_request,
    request_view,
    selected,
    services,
)
from bot.render import local_zone

if TYPE_CHECKING:
    from bot.services import Service

log = logging.getLogger(__name__)

ROOT = "/open311/v2"
PLATFORM = "open311"  # the reporter's "chat" platform: nothing is ever sent there
MAX_LISTED = 1000  # the spec's cap on one answer
IDEMPOTENCY = "Idempotency-Key"


@dataclass(frozen=True)
class Open311:
    """The API's parts: its clients and the service (built when the app starts)."""

    clients: tuple[Client, ...]
    service: Callable[[], Service]

    def client(self, key: str | None) -> Client:
        """Return the client whose key this is; raise Open311Error (403) when none."""
        given = (key or "").encode("utf-8", "surrogateescape")
        found = None
        for client in self.clients:  # every key compared, whichever matches
            if hmac.compare_digest(given, client.key.encode()):
                found = client
        if found is None:
            raise Open311Error(403, "api_key is missing or not valid")
        return found

    async def list_services(self, request: web.Request) -> web.Response:
        """GET services.json."""
        return await _answer(self._services, request)

    async def post_request(self, request: web.Request) -> web.Response:
        """POST requests.json."""
        return await _answer(self._post, request)

    async def get_requests(self, request: web.Request) -> web.Response:
        """GET requests.json."""
        return await _answer(self._list, request)

    async def get_request(self, request: web.Request) -> web.Response:
        """GET requests/{id}.json."""
        return await _answer(self._one, request)

    async def _services(self, request: web.Request) -> Any:
        self.client(request.query.get("api_key"))
        return services(self.service().config.ruleset)

    async def _post(self, request: web.Request) -> Any:
        form = await _form(request)
        client = self.client(form.get("api_key"))
        service = self.service()
        ctx = service.config.context
        new = read_request(form, ctx.ruleset, ctx.tree, client)
        idempotency = request.headers.get(IDEMPOTENCY, "").strip()
        if idempotency and not (0 < len(idempotency) <= 128 and idempotency.isprintable()):
            raise Open311Error(400, f"{IDEMPOTENCY}: 1 to 128 printable characters")
        account = f"{PLATFORM}:{client.name}"
        message = IncomingMessage(
            account, idempotency or uuid.uuid4().hex, Actor(account, new.name),
            new.description, service.clock(), location=new.location,
        )  # fmt: skip
        if (done := await service.store.was_processed(message.key)) is not None:
            return [_created(done)]  # the same Idempotency-Key: the same request
        if new.service_code is not None:  # the client chose: no classification
            category = ctx.ruleset.categories[new.service_code]
            match = Match(category.id, "open311", 0, category.severity, False,
                          category.start_tier, ())  # fmt: skip
            if not new.description:
                message = IncomingMessage(
                    message.chat, message.message_id, message.sender, category.name(),
                    message.sent_at, location=message.location,
                )  # fmt: skip
        else:
            verdict = await service.classify(new.description)
            if verdict.match is None:
                raise Open311Error(
                    400, "description: not recognised as a problem to handle; give service_code"
                )
            match = verdict.match
        handled = await service.ticket_for(ctx, message, match, ctx.tree.nodes[new.node])
        if handled.ticket is None:
            raise RuntimeError(f"open311: no ticket for {message.key}: {handled.status}")
        log.info("open311: %s %s ticket %s", client.name, handled.status, handled.ticket)
        return [_created(handled.ticket)]

    async def _list(self, request: web.Request) -> Any:
        client = self.client(request.query.get("api_key"))
        query = read_query(request.query)
        service = self.service()
        ids = await service.store.reported(f"{PLATFORM}:{client.name}", MAX_LISTED)
        tickets = [t for t in await service.store.get_many(ids) if selected(t, query)]
        return [self._view(service, t, client) for t in tickets]

    async def _one(self, request: web.Request) -> Any:
        client = self.client(request.query.get("api_key"))
        wanted = request.match_info["id"]
        service = self.service()
        ticket = await service.store.get(wanted) if wanted.isdigit() else None
        if ticket is None or not ticket.reported_by(f"{PLATFORM}:{client.name}"):
            # The same answer for a number that does not exist: ids cannot be probed.
            raise Open311Error(404, f"service_request_id {wanted!r} not found")
        return [self._view(service, ticket, client)]

    @staticmethod
    def _view(service: Service, ticket: Any, client: Client) -> dict[str, Any]:
        ctx = service.config.context
        account = f"{PLATFORM}:{client.name}"
        return request_view(ticket, account, ctx.ruleset, ctx.tree, local_zone())


def _created(ticket_id: str) -> dict[str, Any]:
    return {"service_request_id": ticket_id, "service_notice": None, "account_id": None}


async def _form(request: web.Request) -> Mapping[str, str]:
    """Return the POSTed fields (form-encoded as the spec says, or a JSON object)."""
    if request.content_type == "application/json":
        try:
            data = await request.json()
        except ValueError:
            raise Open311Error(400, "the body is not JSON") from None
        if not isinstance(data, dict):
            raise Open311Error(400, "the body must be an object of fields")
        return {str(k): "" if v is None else str(v) for k, v in data.items()}
    fields = await request.post()
    return {k: v for k, v in fields.items() if isinstance(v, str)}


async def _answer(handler: Callable[[web.Request], Any], request: web.Request) -> web.Response:
    try:
        body = await handler(request)
    except Open311Error as error:
        return web.json_response(error.body(), status=error.code)
    return web.json_response(body)


def add_open311(app: web.Application, api: Open311) -> None:
    """Serve the GeoReport v2 endpoints on ``app``."""
    app.router.add_get(f"{ROOT}/services.json", api.list_services)
    app.router.add_post(f"{ROOT}/requests.json", api.post_request)
    app.router.add_get(f"{ROOT}/requests.json", api.get_requests)
    app.router.add_get(ROOT + "/requests/{id}.json", api.get_request)


__all__: Sequence[str] = ("ROOT", "Open311", "add_open311")
