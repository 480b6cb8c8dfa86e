"""Which Host and Origin the web app answers to: the guard against DNS rebinding and other sites.

The simulator has no login, so whoever can make a browser talk to it acts as anyone. Two
checks keep that to people who open it by a name the operator chose:

- every request's ``Host`` must be an allowed name (else 421): a page on an attacker's
  domain that re-points its DNS at this server (DNS rebinding) sends its own name;
- a WebSocket upgrade or a state-changing request (POST, ...) that carries an ``Origin``
  must come from an allowed name (else 403): a page on another site may open a socket or
  post a form to any address, but its browser always says where the page came from.

Allowed: the loopback names, the address the server listens on (unless it is a wildcard),
and ``LIANHU_ALLOWED_HOSTS``. Requests without ``Origin`` (curl, scripts) pass the origin
check: only browsers carry other sites' pages, and they send it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import urlsplit

from aiohttp import web

log = logging.getLogger(__name__)

LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARDS = frozenset({"", "0.0.0.0", "::"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Refuse = Callable[[web.Request, int, str, str], web.StreamResponse]


def allowed_hosts(listen: str | None, extra: Iterable[str] = ()) -> frozenset[str]:
    """Return the host names the app answers to when it listens on ``listen``."""
    names = set(LOOPBACK) | {normalise(h) for h in extra if h.strip()}
    if listen is not None and normalise(listen) not in WILDCARDS:
        names.add(normalise(listen))
    return frozenset(names)


def normalise(host: str) -> str:
    """Return a host name without brackets, trailing dot or case: ``[::1]`` -> ``::1``."""
    return host.strip().strip("[]").rstrip(".").lower()


def host_name(header: str) -> str | None:
    """Return the name of a ``Host`` header (``example.org:8080`` -> ``example.org``)."""
    try:
        parts = urlsplit(f"//{header}")
        name = parts.hostname
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        return None
    return normalise(name) if name else None


def origin_name(header: str) -> str | None:
    """Return the host name of an ``Origin`` header; None for ``null`` or nonsense."""
    try:
        parts = urlsplit(header)
        name = parts.hostname
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not name:
        return None
    return normalise(name)


def host_guard(
    allowed: frozenset[str], refuse: Refuse
) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Return the middleware that refuses a foreign Host (421) or Origin (403)."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        host = request.headers.get("Host", "")
        if host_name(host) not in allowed:
            log.warning("web: refused a request for host %r (not in LIANHU_ALLOWED_HOSTS)", host)
            return refuse(request, 421, "bad_host", host)
        upgrade = request.headers.get("Upgrade", "").lower() == "websocket"
        origin = request.headers.get("Origin")
        changes = upgrade or request.method not in SAFE_METHODS
        if changes and origin is not None and origin_name(origin) not in allowed:
            log.warning("web: refused a %s from the page of %r", request.method, origin)
            return refuse(request, 403, "bad_origin", origin)
        return await handler(request)

    return guard
