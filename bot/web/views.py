"""Routes of the web app: the simulator page and its JSON API, live updates, ticket views."""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from typing import Any

from aiohttp import WSMsgType, web

from bot.core.access import may_view
from bot.core.org import Person
from bot.web.app import PAGES, PARTS
from bot.web.directory import Room, by_activity, people, rooms, sim_account
from bot.web.live import Hub
from bot.web.pages import pick_lang
from bot.web.session import viewer
from bot.web.signin import DEMO
from bot.web.simulator import MAX_TEXT, SimError

# SimError reasons and the HTTP status each answers with.
STATUS = {
    "unknown_person": 404,
    "not_member": 403,
    "no_such_message": 404,
    "no_such_button": 400,
    "empty": 400,
    "too_long": 400,
    "bad_request": 400,
}
PAGE_SIZE = 100
MAX_REFS = 200  # ticket numbers looked up at once: a page asks for what it shows


def add_routes(app: web.Application) -> None:
    """Register every route of the web app (the simulator's only in the demo)."""
    from bot.web import console, dashboard, notice_board, signin

    app.router.add_get("/", index)
    app.router.add_get("/healthz", healthz)
    signin.add_routes(app)
    console.add_routes(app)
    dashboard.add_routes(app)
    notice_board.add_routes(app)
    if app[DEMO]:
        app.router.add_get("/sim", sim_page, name="sim")
        app.router.add_get("/sim/ws", sim_socket)
        app.router.add_get("/sim/api/messages", api_messages)
        app.router.add_post("/sim/api/send", api_send)
        app.router.add_post("/sim/api/press", api_press)
        app.router.add_post("/sim/api/read", api_read)
        app.router.add_get("/sim/api/refs", api_refs)


def refusal(request: web.Request, status: int, error: str, detail: str) -> web.Response:
    """Return the error page for a request refused before any handler ran."""
    data = {"error": error, "detail": detail}
    return request.app[PAGES].render(request, "error.html", data, status=status)


async def index(request: web.Request) -> web.Response:
    """Send the visitor to their tickets, else to the simulator (demo) or the sign-in page."""
    if await viewer(request) is not None:
        raise web.HTTPFound("/tickets")
    raise web.HTTPFound("/sim" if request.app[DEMO] else "/signin")


async def healthz(request: web.Request) -> web.Response:
    """Answer that the app is up and its Redis answers."""
    await request.app[PARTS].history.redis.ping()
    return web.Response(text="ok")


# -- the simulator -------------------------------------------------------------------------


def _me(request: web.Request, person_id: str | None) -> Person:
    simulator = request.app[PARTS].simulator
    if person_id is None:  # the first resident of the roster: a newcomer starts as a resident
        return people(simulator.tree)[0]
    try:
        return simulator.person(person_id)
    except SimError as exc:
        raise _error(exc) from None


async def sim_page(request: web.Request) -> web.Response:
    """Show the chat list and, when one is chosen, a chat, as the person chosen."""
    parts = request.app[PARTS]
    tree = parts.simulator.tree
    lang = pick_lang(request)
    try:
        me = _me(request, request.query.get("as"))
    except web.HTTPNotFound:  # a person not on the roster: the page, not the API's JSON
        data = {"error": "unknown_person", "detail": request.query.get("as", "")}
        return request.app[PAGES].render(request, "error.html", data, status=404)
    mine = rooms(tree, me)
    chat = request.query.get("chat")
    if chat is not None and chat not in {r.chat for r in mine}:
        chat = None  # after switching person: a chat the new person is not in
    unread = await parts.history.unread(me.id, [r.chat for r in mine])
    last = await parts.history.last([r.chat for r in mine])
    # Their own group first (the one they work in, or live in), then the most recent chats.
    own, recent = by_activity(tree, me, mine, {c: m.at for c, m in last.items()})

    def room(r: Room) -> dict[str, Any]:
        return {
            "chat": r.chat,
            "kind": r.kind,
            "name": r.node.display_name(lang) if r.node else None,
            "node": r.node.id if r.node else None,
            "unread": unread[r.chat],
            "last": last[r.chat].to_dict() if r.chat in last else None,
            "own": r is own,
        }

    listing = [("own", [room(own)])] if own is not None else []
    listing += [("recent", [room(r) for r in recent])] if recent else []
    roster = [
        (
            role.value,
            [
                {"id": p.id, "name": p.name, "scope": tree.nodes[p.scope].display_name(lang)}
                for p in group
            ],
        )
        for role, group in itertools.groupby(people(tree), key=lambda p: p.role)
    ]
    return request.app[PAGES].render(
        request,
        "sim.html",
        {
            "me": {
                "id": me.id,
                "name": me.name,
                "role": me.role.value,
                "account": sim_account(me),
                "scope": tree.nodes[me.scope].display_name(lang),
            },
            "roster": roster,
            "sections": listing,
            "chat": chat,
            "max_text": MAX_TEXT,
        },
    )


async def api_messages(request: web.Request) -> web.Response:
    """Return the latest messages of a chat (older ones with ?before=) and mark them read."""
    parts = request.app[PARTS]
    me = _me(request, request.query.get("as"))
    chat = request.query.get("chat", "")
    try:
        parts.simulator.check_chat(me, chat)
        before = request.query.get("before")
        if before is not None and not before.isdigit():
            raise SimError("bad_request", "before")
    except SimError as exc:
        raise _error(exc) from None
    found = await parts.history.recent(chat, PAGE_SIZE, int(before) if before else None)
    if before is None:
        await parts.history.mark_read(me.id, chat, found[-1].id if found else 0)
    return web.json_response({"messages": [m.to_dict() for m in found]}, dumps=_dumps)


async def api_refs(request: web.Request) -> web.Response:
    """Return which of the ticket numbers written in chats (#N) the person may open."""
    parts = request.app[PARTS]
    me = _me(request, request.query.get("as"))
    wanted = [i for i in request.query.get("ids", "").split(",") if i.isdigit()][:MAX_REFS]
    tree = parts.simulator.tree
    account = sim_account(me) or ""
    found = await parts.service.store.get_many(list(dict.fromkeys(wanted)))
    visible = [t.id for t in found if may_view(tree, me, account, t)]
    return web.json_response({"visible": visible})


async def api_send(request: web.Request) -> web.Response:
    """Post a message as a person; the bot's answer arrives by the live socket."""
    body = await _json(request)
    simulator = request.app[PARTS].simulator
    try:
        said = await simulator.say(
            _field(body, "as"), _field(body, "chat"), _field(body, "text"), _optional(body)
        )
    except SimError as exc:
        raise _error(exc) from None
    handled = said.handled
    return web.json_response(
        {"message": said.message.to_dict(), "status": handled.status, "ticket": handled.ticket},
        dumps=_dumps,
    )


async def api_press(request: web.Request) -> web.Response:
    """Press a button of a card as a person."""
    body = await _json(request)
    simulator = request.app[PARTS].simulator
    try:
        handled = await simulator.press(
            _field(body, "as"),
            _field(body, "chat"),
            _field(body, "message_id"),
            _field(body, "data"),
        )
    except SimError as exc:
        raise _error(exc) from None
    answer: dict[str, Any] = {
        "status": handled.status, "ticket": handled.ticket, "detail": handled.detail
    }  # fmt: skip
    if handled.answer is not None:  # a refusal: shown to the presser alone, as a toast
        answer["notice"] = simulator.render(handled.answer).text
    return web.json_response(answer, dumps=_dumps)


async def api_read(request: web.Request) -> web.Response:
    """Record that a person has seen a chat up to a message."""
    body = await _json(request)
    parts = request.app[PARTS]
    me = _me(request, _field(body, "as"))
    try:
        parts.simulator.check_chat(me, _field(body, "chat"))
        upto = body.get("upto")
        if not isinstance(upto, int) or isinstance(upto, bool) or upto < 0:
            raise SimError("bad_request", "upto")
    except SimError as exc:
        raise _error(exc) from None
    await parts.history.mark_read(me.id, body["chat"], upto)
    return web.json_response({"ok": True})


async def sim_socket(request: web.Request) -> web.WebSocketResponse:
    """Send the page every new message of the chats its person (``?as=``) is in."""
    parts = request.app[PARTS]
    chats = [r.chat for r in rooms(parts.simulator.tree, _me(request, request.query.get("as")))]
    socket = web.WebSocketResponse(heartbeat=30.0)
    await socket.prepare(request)
    parts.hub.add(socket, chats)
    return await _hold(socket, parts.hub)


async def _hold(socket: web.WebSocketResponse, hub: Hub) -> web.WebSocketResponse:
    try:
        async for message in socket:  # the page sends nothing that matters; wait for close
            if message.type is WSMsgType.ERROR:
                break
    finally:
        hub.discard(socket)
    return socket


async def _json(request: web.Request) -> dict[str, Any]:
    # Only JSON bodies: a form posted by another site cannot reach the API without a preflight.
    if request.content_type != "application/json":
        raise web.HTTPUnsupportedMediaType(text="send application/json")
    try:
        body = await request.json()
    except ValueError:
        raise _error(SimError("bad_request", "body is not JSON")) from None
    if not isinstance(body, dict):
        raise _error(SimError("bad_request", "body is not an object"))
    return body


def _field(body: Mapping[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str):
        raise _error(SimError("bad_request", f"{name} must be a string"))
    return value


def _optional(body: Mapping[str, Any]) -> str | None:
    value = body.get("reply_to")
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise _error(SimError("bad_request", "reply_to must be a message id"))
    return value


def _error(exc: SimError) -> web.HTTPException:
    status = STATUS.get(exc.reason, 400)
    body = json.dumps({"error": exc.reason, "detail": str(exc)}, ensure_ascii=False)
    kinds: dict[int, type[web.HTTPException]] = {
        400: web.HTTPBadRequest,
        403: web.HTTPForbidden,
        404: web.HTTPNotFound,
    }
    return kinds[status](text=body, content_type="application/json")


def _dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False)
