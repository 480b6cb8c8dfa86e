"""Signing in and out of the web console: the one-time link, the session, and the demo's door.

``GET /login/TOKEN`` only shows whose link it is and a button (a chat app that
fetches the link for a preview must not use it up); the button posts the token,
which is taken from Redis once and opens a session. ``POST /logout`` ends it.
In ``lianhu demo`` the simulator may sign in as anyone on the roster
(``POST /demo/signin``), as its chats already let anyone act as anyone.
"""

from __future__ import annotations

from aiohttp import web

from bot.core.org import Person, Role
from bot.storage.logins import SESSION_TTL, Grant
from bot.web.directory import sim_account
from bot.web.pages import LANG_COOKIE, Pages
from bot.web.session import (
    COOKIE,
    LOGINS,
    NO_STORE,
    PAGES_KEY,
    SECRET,
    TREE,
    check_csrf,
    require_viewer,
    set_cookie,
    sign,
)

DEMO = web.AppKey("demo", bool)
PUBLIC_URL = web.AppKey("public_url", str)  # LIANHU_WEB_URL, or "" when unset
TOKEN_LENGTH = 43  # secrets.token_urlsafe(32)


def add_routes(app: web.Application) -> None:
    """Register the sign-in routes."""
    app.router.add_get("/signin", signin_page, name="signin")
    app.router.add_get("/login/{token}", login_page)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    if app[DEMO]:
        app.router.add_post("/demo/signin", demo_signin)


def public(demo: bool) -> set[str]:
    """Return the path prefixes served without a session."""
    paths = {"/signin", "/login", "/static/", "/healthz"}
    return paths | ({"/sim", "/demo/signin"} if demo else set())


def _pages(request: web.Request) -> Pages:
    return request.app[PAGES_KEY]


async def signin_page(request: web.Request) -> web.Response:
    """Say how to sign in: ask the bot for a link (in the demo: or pick a person)."""
    return _pages(request).render(
        request, "signin.html", {"reason": "how", "demo": request.app[DEMO]}
    )


def _person(request: web.Request, grant: Grant) -> Person | None:
    return request.app[TREE]().people.get(grant.person) if grant.person else None


async def login_page(request: web.Request) -> web.Response:
    """Show whose sign-in link this is, with the button that uses it."""
    token = request.match_info["token"]
    grant = await request.app[LOGINS].peek(token) if len(token) == TOKEN_LENGTH else None
    if grant is None:
        return _spent(request)
    person = _person(request, grant)
    data = {"token": token, "who": person.name if person else "", "role": _role(person)}
    response = _pages(request).render(request, "login.html", data)
    response.headers.update(NO_STORE)
    return response


async def login(request: web.Request) -> web.StreamResponse:
    """Use a sign-in link up and open a session; a link used, expired or unknown is refused."""
    form = await request.post()
    token = form.get("token")
    valid = isinstance(token, str) and len(token) == TOKEN_LENGTH
    grant = await request.app[LOGINS].redeem(token) if valid and isinstance(token, str) else None
    if grant is None:
        return _spent(request)
    return await _open(request, grant)


async def demo_signin(request: web.Request) -> web.StreamResponse:
    """Sign in as a person of the roster (``lianhu demo`` only, from the simulator)."""
    form = await request.post()
    person = request.app[TREE]().people.get(str(form.get("as", "")))
    account = sim_account(person) if person else None
    if person is None or account is None:
        data = {"error": "unknown_person", "detail": str(form.get("as", ""))}
        return _pages(request).render(request, "error.html", data, status=404)
    grant = Grant(account, person.id, person.lang.value, 0.0)
    return await _open(request, grant)


def landing(person: Person | None) -> str:
    """Return the first page after signing in: the street's 驾驶舱, a handler's 我的待办, or
    a resident's own reports."""
    if person is None or person.role is Role.RESIDENT:
        return "/tickets"
    return "/dashboard" if person.role in (Role.STREET_STAFF, Role.ADMIN) else "/mine"


async def _open(request: web.Request, grant: Grant) -> web.StreamResponse:
    session_id = await request.app[LOGINS].open(grant)
    person = _person(request, grant)
    response = see_other(landing(person))
    secure = request.secure or request.app[PUBLIC_URL].startswith("https://")
    set_cookie(response, sign(request.app[SECRET], session_id), secure, SESSION_TTL)
    if LANG_COOKIE not in request.cookies:  # the person's language, unless they chose one here
        response.set_cookie(LANG_COOKIE, grant.lang, max_age=365 * 24 * 3600, samesite="Lax")
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    """End the session (the form carries its CSRF token) and forget the cookie."""
    found = await require_viewer(request)
    form = await request.post()
    check_csrf(request, found, form.get("csrf"))
    await request.app[LOGINS].end(found.session)
    from bot.web.app import PARTS  # the app module imports this one

    await request.app[PARTS].hub.end_session(found.session.digest)
    response = see_other("/signin")
    response.del_cookie(COOKIE, path="/")
    return response


def see_other(location: str) -> web.Response:
    """Return a 303 to ``location`` (a response, so that cookies can be set on it)."""
    return web.Response(status=303, headers={"Location": location})


def _spent(request: web.Request) -> web.Response:
    """Return the page for a link that is used, expired or not one of ours (410)."""
    response = _pages(request).render(request, "signin.html", {"reason": "spent"}, status=410)
    response.headers.update(NO_STORE)
    return response


def _role(person: Person | None) -> str:
    return person.role.value if person else "resident"
