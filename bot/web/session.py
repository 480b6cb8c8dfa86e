"""Who is signed in to the web console: the session cookie, the viewer, and the guard.

The cookie holds a random session id and its HMAC (so a cookie not made here is
turned away before Redis is asked); the session itself lives in Redis
(``bot.storage.logins``), so that signing out or revoking ends it at once. The
viewer's role and scope are read from the roster in force on every request, never
from the cookie: a person taken off the roster is signed out by that.

A page or API gets the viewer with ``await current_viewer(request)`` (the roster
Person, or None for a resident who is not on the roster) or ``await
require_viewer(request)`` (the whole Viewer: person, accounts, CSRF token). Both
answer a request without a session with the friendly sign-in page (401), which
the guard below also does for every route that is not public.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from bot.core.access import may_act_on, may_see
from bot.core.org import HANDLER_ROLES, OrgTree, Person
from bot.core.ticket import Ticket
from bot.storage.logins import Grant, Logins, Session
from bot.web.pages import VIEWER, Pages

COOKIE = "lianhu_session"
CSRF_FIELD = "csrf"
SECRET = web.AppKey("session_secret", bytes)
LOGINS = web.AppKey("logins", Logins)
Tree = Callable[[], OrgTree]
TREE: web.AppKey[Tree] = web.AppKey("tree")
PAGES_KEY = web.AppKey("session_pages", Pages)
_LOOKED_UP = web.RequestKey("viewer_looked_up", bool)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Viewer:
    """The signed-in person: who they are on the roster, and the accounts that are theirs."""

    person: Person | None  # None: a resident who is not on the roster
    account: str  # the account that asked for the sign-in link
    accounts: tuple[str, ...]  # every account of theirs (their reports count on each)
    session: Session

    @property
    def name(self) -> str:
        """Return the name to show at the top of the page."""
        return self.person.name if self.person else ""

    @property
    def role(self) -> str:
        """Return the role (a Role value; "resident" for someone not on the roster)."""
        return self.person.role.value if self.person else "resident"

    @property
    def staff(self) -> bool:
        """Return whether the viewer handles tickets (sees a scope, not only their own)."""
        return self.person is not None and self.person.role in HANDLER_ROLES

    @property
    def csrf(self) -> str:
        """Return the token every form of this session carries."""
        return self.session.csrf

    def may_see(self, tree: OrgTree, ticket: Ticket) -> bool:
        """Return whether the viewer may learn anything of the ticket."""
        return may_see(tree, self.person, self.accounts, ticket)

    def may_act(self, tree: OrgTree, ticket: Ticket) -> bool:
        """Return whether the page offers the viewer a handler's actions on the ticket."""
        return may_act_on(tree, self.person, ticket)


def sign(secret: bytes, session_id: str) -> str:
    """Return the cookie value of a session id: the id and its HMAC."""
    mac = hmac.new(secret, session_id.encode(), hashlib.sha256).digest()
    return f"{session_id}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"


def unsign(secret: bytes, value: str) -> str | None:
    """Return the session id of a cookie value made by ``sign``, or None."""
    session_id = value.rpartition(".")[0]
    if not session_id or not hmac.compare_digest(sign(secret, session_id), value):
        return None
    return session_id


def resolve(tree: OrgTree, session: Session) -> Viewer | None:
    """Return the viewer a session stands for in today's roster; None when it no longer holds."""
    grant: Grant = session.grant
    if grant.person is None:
        return Viewer(None, grant.account, (grant.account,), session)
    person = tree.people.get(grant.person)
    if person is None or grant.account not in person.accounts:  # revoked, or left the roster
        return None
    return Viewer(person, grant.account, tuple(person.accounts), session)


async def viewer(request: web.Request) -> Viewer | None:
    """Return the signed-in viewer of a request, or None (looked up once per request)."""
    if _LOOKED_UP in request:
        found = request.get(VIEWER)
        return found if isinstance(found, Viewer) else None
    request[_LOOKED_UP] = True
    raw = request.cookies.get(COOKIE)
    session_id = unsign(request.app[SECRET], raw) if raw else None
    if session_id is None:
        return None
    session = await request.app[LOGINS].session(session_id)
    if session is None:
        return None
    found = resolve(request.app[TREE](), session)
    if found is None:
        await request.app[LOGINS].end(session)
        return None
    request[VIEWER] = found
    return found


def login_needed(request: web.Request) -> web.HTTPUnauthorized:
    """Return the friendly sign-in page as a 401 to raise, in the reader's language."""
    html = request.app[PAGES_KEY].html(request, "signin.html", {"reason": "needed"})
    return web.HTTPUnauthorized(text=html, content_type="text/html", headers=NO_STORE)


def forbidden(request: web.Request, error: str, detail: str = "") -> web.HTTPForbidden:
    """Return the error page as a 403 to raise."""
    html = request.app[PAGES_KEY].html(request, "error.html", {"error": error, "detail": detail})
    return web.HTTPForbidden(text=html, content_type="text/html", headers=NO_STORE)


async def require_viewer(request: web.Request) -> Viewer:
    """Return the signed-in viewer; raise the sign-in page (401) when there is none."""
    found = await viewer(request)
    if found is None:
        raise login_needed(request)
    return found


async def current_viewer(request: web.Request) -> Person | None:
    """Return the signed-in viewer's roster Person (None: a resident not on the roster).

    Raises the friendly sign-in page (401, in the reader's language) when nobody is
    signed in. Scope: ``bot.core.access.may_see(tree, person, accounts, ticket)``, or
    ``(await require_viewer(request)).may_see(tree, ticket)``.
    """
    return (await require_viewer(request)).person


async def require_staff(request: web.Request) -> Person:
    """Return the signed-in staff member; 401 without a session, 403 for a resident."""
    found = await require_viewer(request)
    if found.person is None or not found.staff:
        raise forbidden(request, "staff_only")
    return found.person


def check_csrf(request: web.Request, found: Viewer, token: object) -> None:
    """Raise 403 unless ``token`` is the session's CSRF token."""
    if not isinstance(token, str) or not hmac.compare_digest(token, found.csrf):
        raise forbidden(request, "bad_csrf")


NO_STORE = {"Cache-Control": "no-store"}
HEADERS = {
    # A sign-in link must not leak to another site; same-origin keeps the Origin header of
    # our own forms, which no-referrer would make "null" (and the host guard refuse).
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",  # no page of the console inside another site's frame
    "X-Content-Type-Options": "nosniff",
}


def session_guard(public: Callable[[str], bool]) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Return the middleware that answers every non-public route without a session with 401."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            found = await viewer(request)
            if found is None and not public(request.path):
                raise login_needed(request)
            response = await handler(request)
        except web.HTTPException as exc:
            exc.headers.update(HEADERS)
            raise
        if not response.prepared:  # a WebSocket is already under way
            response.headers.update(HEADERS)
            if found is not None:
                response.headers.update(NO_STORE)
        return response

    return guard


def set_cookie(response: web.StreamResponse, value: str, secure: bool, max_age: int) -> None:
    """Set the session cookie: HttpOnly, SameSite=Lax, Secure when served over https."""
    response.set_cookie(
        COOKIE, value, max_age=max_age, httponly=True, samesite="Lax", secure=secure, path="/"
    )
