"""The console's notice board: the notices in force in the viewer's scope, post one, end one.

Staff only (``require_staff``: 401 without a session, 403 for a resident). Posting and
ending go through the chat command's core and shell (bot.notices: ``form_draft`` beside
``parse_notice``, ``may_post`` and ``end`` for the scope), with the session's CSRF token and
a form key so that a form sent twice acts once. A notice outside the viewer's scope answers
as one that does not exist.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiohttp import web

from bot import notices
from bot.core.models import Actor, Lang, Reply
from bot.core.notices import NOT_FOR_NOTICES, Notice, NoticeProblem, form_draft, relevant
from bot.core.org import NodeKind, may_act
from bot.render import Renderer, local_zone
from bot.web.app import CONFIG, PAGES, PARTS
from bot.web.console import FORM_KEY, MAX_TEXT, _form_key
from bot.web.pages import pick_lang
from bot.web.session import Viewer, check_csrf, require_staff, require_viewer
from bot.web.signin import see_other

_RENDER = Renderer()


def add_routes(app: web.Application) -> None:
    """Register the notice board's routes."""
    app.router.add_get("/notices", board, name="notices")
    app.router.add_post("/notices", post)
    app.router.add_post("/notices/{id}/end", end)


async def _staff(request: web.Request) -> Viewer:
    await require_staff(request)
    return await require_viewer(request)


async def _in_force(request: web.Request, viewer: Viewer) -> list[Notice]:
    """Return the notices not over that cover the viewer's scope or a place in it."""
    service = request.app[PARTS].service
    now = service.clock()
    scope = viewer.person.scope if viewer.person else None
    return relevant(
        await notices.open_notices(service, now), service.config.context.tree, scope, now
    )


async def _data(request: web.Request, viewer: Viewer) -> dict[str, Any]:
    ctx = request.app[CONFIG].context
    tree, lang = ctx.tree, pick_lang(request)
    person = viewer.person
    places = [
        {"id": n.id, "name": n.display_name(lang), "kind": n.kind.value}
        for n in tree.nodes.values()
        if n.kind is not NodeKind.DEPARTMENT and person and may_act(tree, person, n.id)
    ]
    rows = [
        {
            "n": n,
            "category": _category(ctx, n.category, lang),
            "places": [tree.nodes[x].display_name(lang) if x in tree.nodes else x for x in n.nodes],
            "may_end": person is not None and all(may_act(tree, person, x) for x in n.nodes),
        }
        for n in await _in_force(request, viewer)
    ]
    categories = [
        (cid, _category(ctx, cid, lang))
        for cid in ctx.ruleset.categories
        if cid not in NOT_FOR_NOTICES
    ]
    return {
        "rows": rows,
        "places": places,
        "categories": categories,
        "form_key": _form_key(),
        "form": {"category": "", "places": [], "window": "", "text": ""},
        "done": request.query.get("done", "")
        if request.query.get("done") in ("posted", "ended")
        else "",
        "refusal": None,
    }


def _category(ctx: Any, cid: str, lang: Lang) -> str:
    category = ctx.ruleset.categories.get(cid)
    return category.name(lang) if category else cid


async def board(request: web.Request) -> web.Response:
    """Show the notices in force in the viewer's scope and the form to post one."""
    viewer = await _staff(request)
    return request.app[PAGES].render(request, "notices.html", await _data(request, viewer))


async def post(request: web.Request) -> web.StreamResponse:
    """Post a notice from the form: category, places, window and text."""
    viewer = await _staff(request)
    form = await request.post()
    check_csrf(request, viewer, form.get("csrf"))
    key = str(form.get("key", ""))
    category = str(form.get("category", ""))
    places = [str(p) for p in form.getall("places", [])]
    window = str(form.get("window", ""))[:200]
    text = str(form.get("text", "")).strip()[:MAX_TEXT]
    fields = {"category": category, "places": places, "window": window, "text": text}
    if not FORM_KEY.fullmatch(key):
        return await _refused(request, viewer, "bad_request", {}, 400, fields)
    ctx = request.app[CONFIG].context
    service = request.app[PARTS].service
    draft = form_draft(
        category, places, window, text, ctx.ruleset, ctx.tree, service.clock(), local_zone()
    )
    if isinstance(draft, NoticeProblem):
        params = {"problem": draft.problem, **draft.params}
        return await _refused(request, viewer, "notice_refused", params, 400, fields)
    handled = await notices.console_post(service, _actor(viewer), key, draft)
    if handled.status == "refused":
        return await _answer_refusal(request, viewer, handled, fields)
    return see_other("/notices?done=posted")


async def end(request: web.Request) -> web.StreamResponse:
    """End a notice before its window closes."""
    viewer = await _staff(request)
    form = await request.post()
    check_csrf(request, viewer, form.get("csrf"))
    notice_id = request.match_info["id"]
    if notice_id not in {n.id for n in await _in_force(request, viewer)}:
        html = request.app[PAGES].html(
            request, "error.html", {"error": "no_notice", "detail": notice_id}
        )
        raise web.HTTPNotFound(text=html, content_type="text/html")
    key = str(form.get("key", ""))
    if not FORM_KEY.fullmatch(key):
        return await _refused(request, viewer, "bad_request", {}, 400)
    service = request.app[PARTS].service
    handled = await notices.console_end(service, _actor(viewer), key, notice_id)
    if handled.status == "refused":
        return await _answer_refusal(request, viewer, handled)
    return see_other("/notices?done=ended")


def _actor(viewer: Viewer) -> Actor:
    langs = {x.value: x for x in Lang}
    lang = langs.get(viewer.session.grant.lang, Lang.ZH_HANS)
    return Actor(viewer.account, viewer.name, viewer.person.id if viewer.person else None, lang)


async def _answer_refusal(
    request: web.Request, viewer: Viewer, handled: Any, fields: dict[str, Any] | None = None
) -> web.Response:
    answer = handled.answer
    reason, params = (answer.template, dict(answer.params)) if answer else ("bad_request", {})
    status = 403 if reason == "not_handler" or params.get("problem") == "scope" else 409
    return await _refused(request, viewer, reason, params, status, fields)


async def _refused(
    request: web.Request,
    viewer: Viewer,
    reason: str,
    params: dict[str, Any],
    status: int,
    fields: dict[str, Any] | None = None,
) -> web.Response:
    """Show the board with why the form was refused (the chat's words), the form kept."""
    try:
        said = _RENDER(Reply(viewer.account, reason, params, pick_lang(request))).text
    except Exception:  # a reason with no chat template: the page's own words say it
        said = ""
    data = await _data(request, viewer)
    data["refusal"] = {"reason": reason, "problem": params.get("problem", ""), "text": said}
    if fields is not None:
        data["form"] = fields
    return request.app[PAGES].render(request, "notices.html", data, status=status)


__all__: Sequence[str] = ("add_routes",)
