"""The console's ticket pages: the list, one ticket and acting on it, 我的待办, exports, live.

Every handler reads the signed-in viewer (``bot.web.session``) and shows only the
tickets the viewer may see; a ticket outside that answers exactly as one that
does not exist, so that ids cannot be probed. Actions go through
``Service.act``: the chat's permission checks, commit, notices and card edits.
"""

from __future__ import annotations

import csv
import io
import re
import secrets
from collections.abc import Sequence
from typing import Any

from aiohttp import WSMsgType, web

from bot.core import listing
from bot.core.cards import department_buttons
from bot.core.commands import TEXT_REQUIRED, Command, Verb
from bot.core.listing import (
    SORTS,
    STATE_CHOICES,
    UNASSIGNED,
    BadFilter,
    Query,
    my_queue,
    parse_query,
    run,
)
from bot.core.models import Actor, Lang, Reply
from bot.core.org import HANDLER_ROLES, NodeKind, OrgTree, ancestors, may_act, next_up
from bot.core.privacy import mask
from bot.core.record import promises
from bot.core.ticket import Ticket
from bot.core.workflow import Context
from bot.render import Renderer
from bot.web.app import CONFIG, PAGES, PARTS
from bot.web.pages import pick_lang
from bot.web.session import Viewer, check_csrf, require_viewer
from bot.web.signin import see_other

LIST_LIMIT = 5000  # the newest tickets a list searches: a street's year, not an archive
WEB_VERBS = {v.value: v for v in (
    Verb.ACK, Verb.NOTE, Verb.ASSIGN, Verb.RESOLVE, Verb.DISMISS, Verb.ESCALATE,
    Verb.ARRIVE, Verb.ASSISTED,
)}  # fmt: skip
FORM_KEY = re.compile(r"[A-Za-z0-9_-]{8,64}")
MAX_TEXT = 2000
CSV_FIELDS = ("id", "category", "severity", "state", "overdue", "created", "ack_due",
              "resolve_due", "origin", "node", "assignee", "reporter", "reporters", "text",
              "resolution")  # fmt: skip
_RENDER = Renderer()


def add_routes(app: web.Application) -> None:
    """Register the console's routes."""
    app.router.add_get("/tickets", ticket_list, name="tickets")
    app.router.add_get("/tickets.csv", ticket_csv)
    app.router.add_get("/tickets/ws", tickets_socket)
    app.router.add_get("/tickets/{id}", ticket_page, name="ticket")
    app.router.add_get("/tickets/{id}/print", ticket_print)
    app.router.add_post("/tickets/{id}/act", ticket_act)
    app.router.add_get("/mine", mine)


def _names(ctx: Context, lang: Lang) -> dict[str, Any]:
    tree: OrgTree = ctx.tree
    return {
        "nodes": {n.id: n.display_name(lang) for n in tree.nodes.values()},
        "categories": {
            cid: c.names.get(lang) or c.names.get(Lang.ZH_HANS) or cid
            for cid, c in ctx.ruleset.categories.items()
        },
        "chats": dict(tree.chats),
    }


async def visible(request: web.Request, viewer: Viewer) -> list[Ticket]:
    """Return the newest tickets the viewer may see, newest first."""
    store = request.app[PARTS].service.store
    ids = await store.all_ids()
    tree = request.app[CONFIG].tree
    found = await store.get_many(ids[-LIST_LIMIT:])
    return [t for t in reversed(found) if viewer.may_see(tree, t)]


async def _seen(request: web.Request, viewer: Viewer) -> Ticket:
    """Return the ticket of the URL; 404 when it does not exist or the viewer may not see it."""
    ticket_id = request.match_info["id"]
    store = request.app[PARTS].service.store
    ticket = await store.get(ticket_id) if ticket_id.isdigit() else None
    if ticket is None or not viewer.may_see(request.app[CONFIG].tree, ticket):
        # An archived ticket is no longer in Redis: who may see it cannot be told, so
        # anyone signed in learns only that the number was archived.
        gone = ticket is None and await store.archived(ticket_id)
        error = "ticket_archived" if gone else "no_ticket"
        html = request.app[PAGES].html(request, "error.html", {"error": error, "detail": ticket_id})
        raise web.HTTPNotFound(text=html, content_type="text/html")
    return ticket


def _scope_nodes(tree: OrgTree, viewer: Viewer) -> list[str]:
    """Return the nodes the viewer's node filter offers: their scope's subtree."""
    person = viewer.person
    if person is None or person.role not in HANDLER_ROLES:
        return []
    return [n for n in tree.nodes if may_act(tree, person, n)]


async def _query(request: web.Request) -> tuple[Query, list[Ticket], Viewer] | web.Response:
    viewer = await require_viewer(request)
    ctx = request.app[CONFIG].context
    try:
        query = parse_query(request.query, ctx.tree, list(ctx.ruleset.categories))
    except BadFilter as exc:
        data = {"error": "bad_filter", "detail": exc.field}
        return request.app[PAGES].render(request, "error.html", data, status=400)
    return query, await visible(request, viewer), viewer


def _search_names(ctx: Context) -> Any:
    """Return, per ticket, the words a search also finds it by: its category and places."""

    def names(t: Ticket) -> str:
        category = ctx.ruleset.categories.get(t.category)
        words = list(category.names.values()) if category else []
        for node_id in (t.origin, t.node):
            node = ctx.tree.nodes.get(node_id)
            if node is not None:
                words += [node.name, *node.names.values()]
        return " ".join(words)

    return names


def _handler(ctx: Context, t: Ticket, lang: Lang) -> dict[str, Any]:
    node = ctx.tree.nodes.get(t.node)
    return {"node": node.display_name(lang) if node else t.node, "person": t.assignee_name}


async def ticket_list(request: web.Request) -> web.Response:
    """List the tickets the viewer may see: search, filters, order and pages from the URL."""
    found = await _query(request)
    if isinstance(found, web.Response):
        return found
    query, tickets, viewer = found
    ctx = request.app[CONFIG].context
    lang = pick_lang(request)
    now = request.app[PARTS].service.clock()
    everything, page = run(tickets, query, ctx.tree, now, _search_names(ctx), listing.PAGE_SIZE)
    rows = [
        {"t": t, "overdue": t.overdue(now), "text": mask(t.text), "handler": _handler(ctx, t, lang)}
        for t in page.tickets
    ]
    handlers = handlers_of(tickets)
    return request.app[PAGES].render(
        request,
        "tickets.html",
        {
            "rows": rows,
            "lq": query,
            "page": page,
            "names": _names(ctx, lang),
            "states": STATE_CHOICES,
            "sorts": SORTS,
            "severities": ("critical", "high", "normal", "low"),
            "scope_nodes": _scope_nodes(ctx.tree, viewer),
            "handlers": handlers,
            "unassigned": UNASSIGNED,
            "now": now,
            "total": len(everything),
        },
    )


async def ticket_csv(request: web.Request) -> web.StreamResponse:
    """Return the filtered list (every page) as CSV in UTF-8 with a BOM, for Excel."""
    found = await _query(request)
    if isinstance(found, web.Response):
        return found
    query, tickets, _ = found
    ctx = request.app[CONFIG].context
    lang = pick_lang(request)
    now = request.app[PARTS].service.clock()
    everything, _ = run(tickets, query, ctx.tree, now, _search_names(ctx))
    words = request.app[PAGES].words(request)
    names = _names(ctx, lang)
    pages = request.app[PAGES]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([words.csv[f] for f in CSV_FIELDS])
    for t in everything:
        late = t.overdue(now)
        row = [
            t.id, names["categories"].get(t.category, t.category), words.severities[t.severity],
            words.states[t.state.value], words.t[f"overdue_{late}"] if late else "",
            pages.stamp(t.created_at), pages.stamp(t.ack_due), pages.stamp(t.resolve_due),
            names["nodes"].get(t.origin, t.origin), names["nodes"].get(t.node, t.node),
            t.assignee_name or "", t.reporter.name, len(t.reporters), mask(t.text),
            mask(t.resolution),
        ]  # fmt: skip
        writer.writerow([_cell(v) for v in row])
    body = "\ufeff" + out.getvalue()
    return web.Response(
        body=body.encode("utf-8"),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": 'attachment; filename="tickets.csv"'},
    )


def _cell(value: object) -> str:
    """Return a CSV cell that a spreadsheet shows as text, never runs as a formula."""
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _assignees(ctx: Context, t: Ticket, lang: Lang) -> list[dict[str, str]]:
    """Return whom the assign form offers: handlers who may act at the ticket's node, and the
    departments of its street."""
    tree = ctx.tree
    people = [
        {"value": p.id, "name": p.name, "kind": p.role.value}
        for p in tree.people.values()
        if p.role in HANDLER_ROLES and may_act(tree, p, t.node) and p.id != t.assignee
    ]
    street = ancestors(tree, t.origin)[-1].id if t.origin in tree.nodes else None
    departments = [
        {"value": n.id, "name": n.display_name(lang), "kind": "department"}
        for n in tree.nodes.values()
        if n.kind is NodeKind.DEPARTMENT and n.parent == street and n.id != t.node
    ]
    return people + departments


def _steps(tree: OrgTree, viewer: Viewer, ticket: Ticket) -> tuple[str, ...]:
    """Return the steps (到场, 协办完成) a department's liaison may still take on the ticket."""
    person = viewer.person
    node = tree.nodes.get(person.scope) if person is not None else None
    if node is None or node.kind is not NodeKind.DEPARTMENT or node.id not in ticket.departments:
        return ()
    return department_buttons(ticket, node.id)


async def _page_data(request: web.Request, viewer: Viewer, ticket: Ticket) -> dict[str, Any]:
    parts = request.app[PARTS]
    ctx = request.app[CONFIG].context
    lang = pick_lang(request)
    events = await parts.service.store.history(ticket.id)
    now = parts.service.clock()
    handler = viewer.may_act(ctx.tree, ticket)
    return {
        "t": ticket,
        "text": mask(ticket.text),
        "resolution": mask(ticket.resolution),
        "events": [_event_view(e.to_dict()) for e in events],
        "names": _names(ctx, lang),
        "overdue": ticket.overdue(now),
        "now": now,
        "handler": _handler(ctx, ticket, lang),
        "may_act": handler,
        "may_note": not ticket.state.final,
        "may_escalate": handler and next_up(ctx.tree, ticket.node) is not None,
        "steps": _steps(ctx.tree, viewer, ticket),
        "assignees": _assignees(ctx, ticket, lang) if handler else [],
        "promises": promises(events, now),
        "form_key": _form_key(),
        "done": request.query.get("done", "") if request.query.get("done") in WEB_VERBS else "",
        "refusal": None,
    }


def _form_key() -> str:
    """Return the name of one form as sent: sending it twice acts once."""
    return secrets.token_urlsafe(12)


async def ticket_page(request: web.Request) -> web.Response:
    """Show one ticket: where it is, who handles it, its deadlines, history and actions."""
    viewer = await require_viewer(request)
    ticket = await _seen(request, viewer)
    data = await _page_data(request, viewer, ticket)
    return request.app[PAGES].render(request, "ticket.html", data)


async def ticket_print(request: web.Request) -> web.Response:
    """Show the printable 办结单: the ticket, its timeline and whether each deadline was met."""
    viewer = await require_viewer(request)
    ticket = await _seen(request, viewer)
    data = await _page_data(request, viewer, ticket)
    return request.app[PAGES].render(request, "print.html", data)


async def ticket_act(request: web.Request) -> web.StreamResponse:
    """Act on a ticket from its page (a form with the session's CSRF token)."""
    viewer = await require_viewer(request)
    form = await request.post()
    check_csrf(request, viewer, form.get("csrf"))
    ticket = await _seen(request, viewer)
    verb = WEB_VERBS.get(str(form.get("verb", "")))
    key = str(form.get("key", ""))
    text = str(form.get("text", "")).strip()[:MAX_TEXT]
    target = str(form.get("target", "")).strip()
    if verb is None or not FORM_KEY.fullmatch(key):
        return await _refused(request, viewer, ticket, "bad_request", {}, 400)
    if verb in TEXT_REQUIRED and not text:
        return await _refused(request, viewer, ticket, "needs_text", {"verb": verb.value}, 400)
    if verb is Verb.ASSIGN and not target:
        return await _refused(request, viewer, ticket, "needs_target", {"verb": verb.value}, 400)
    command = Command(verb, ticket.id, text, target=target or None)
    handled = await request.app[PARTS].service.act(command, _actor(viewer, ticket), key)
    if handled.status == "refused":
        answer = handled.answer
        reason, params = (answer.template, dict(answer.params)) if answer else ("bad_request", {})
        return await _refused(request, viewer, ticket, reason, params, 409)
    return see_other(f"/tickets/{ticket.id}?done={verb.value}")


def _actor(viewer: Viewer, ticket: Ticket) -> Actor:
    person = viewer.person
    langs = {x.value: x for x in Lang}
    lang = langs.get(viewer.session.grant.lang, Lang.ZH_HANS)
    if person is not None:
        return Actor(viewer.account, person.name, person.id, lang)
    name = next((r.name for r in ticket.reporters if r.account == viewer.account), "")
    return Actor(viewer.account, name, None, lang)


async def _refused(
    request: web.Request,
    viewer: Viewer,
    ticket: Ticket,
    reason: str,
    params: dict[str, Any],
    status: int,
) -> web.Response:
    """Show the ticket page with why the action was refused (the chat's words for it)."""
    lang = pick_lang(request)
    try:
        said = _RENDER(Reply(viewer.account, reason, params, lang)).text
    except Exception:  # a reason with no chat template: the page's own words say it
        said = ""
    current = await request.app[PARTS].service.store.get(ticket.id) or ticket
    data = await _page_data(request, viewer, current)
    data["refusal"] = {"reason": reason, "text": said}
    data["done"] = ""
    return request.app[PAGES].render(request, "ticket.html", data, status=status)


async def mine(request: web.Request) -> web.Response:
    """Show 我的待办: the open tickets the viewer handles or reported, overdue first."""
    viewer = await require_viewer(request)
    ctx = request.app[CONFIG].context
    lang = pick_lang(request)
    now = request.app[PARTS].service.clock()
    person = viewer.person
    tickets = await visible(request, viewer)
    if person is not None and person.role in HANDLER_ROLES:
        wanted = [
            t for t in tickets
            if t.assignee == person.id or viewer.may_act(ctx.tree, t)
            or _steps(ctx.tree, viewer, t)
        ]  # fmt: skip
    else:
        wanted = tickets
    rows = [
        {"t": t, "overdue": t.overdue(now), "text": mask(t.text), "handler": _handler(ctx, t, lang)}
        for t in my_queue(wanted, now)
    ]
    return request.app[PAGES].render(
        request, "mine.html", {"rows": rows, "names": _names(ctx, lang), "now": now}
    )


async def tickets_socket(request: web.Request) -> web.WebSocketResponse:
    """Tell a console page which of the tickets its viewer may see change, never chat text."""
    viewer = await require_viewer(request)
    parts = request.app[PARTS]
    socket = web.WebSocketResponse(heartbeat=30.0)
    await socket.prepare(request)
    parts.hub.watch(socket, viewer, viewer.session.digest)
    try:
        async for message in socket:  # the page sends nothing that matters; wait for close
            if message.type is WSMsgType.ERROR:
                break
    finally:
        parts.hub.discard(socket)
    return socket


def _event_view(raw: dict[str, Any]) -> dict[str, Any]:
    """Return an event for the timeline, with personal data masked in what people wrote."""
    data = dict(raw["data"])
    for key in ("text", "note", "reason"):
        if isinstance(data.get(key), str):
            data[key] = mask(data[key])
    return {**raw, "data": data}


def handlers_of(tickets: Sequence[Ticket]) -> list[tuple[str, str]]:
    """Return the people tickets are assigned to, as (id, name)."""
    return sorted({(t.assignee, t.assignee_name or t.assignee) for t in tickets if t.assignee})
