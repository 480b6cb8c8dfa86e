"""HTML pages from ``templates/web``: the jinja2 environment and the reader's language.

Every word of the pages lives in ``templates/web/lang/<lang>.j2``; this module
only chooses the language and passes plain data.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from bot.core.models import Lang
from bot.render import TEMPLATES, local_zone

LANG_COOKIE = "lang"
# The request's signed-in viewer (a bot.web.session.Viewer), when there is one.
VIEWER: web.RequestKey[Any] = web.RequestKey("viewer", object)
STATIC = TEMPLATES / "web" / "static"
PAGE_NAMES = (
    "sim.html", "tickets.html", "ticket.html", "error.html", "signin.html", "login.html",
    "mine.html", "print.html", "dashboard.html", "notices.html",
)  # fmt: skip


class Pages:
    """Render the web pages in one of the three languages."""

    def __init__(self, templates: Path = TEMPLATES, tz: dt.tzinfo | None = None) -> None:
        self.tz = tz if tz is not None else local_zone()
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(templates),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["local"] = self.local
        # Load every page now: a broken template fails at start-up, not on a click.
        for name in PAGE_NAMES:
            self.env.get_template(f"web/{name}")
        for lang in Lang:
            self.env.get_template(f"web/lang/{lang.value}.j2")

    def local(self, epoch: float | None) -> dt.datetime | None:
        """Return an epoch time as a datetime in the local zone."""
        return None if epoch is None else dt.datetime.fromtimestamp(epoch, self.tz)

    def stamp(self, epoch: float | None) -> str:
        """Return an epoch time as local "YYYY-MM-DD HH:MM" (for exports), or ""."""
        local = self.local(epoch)
        return local.strftime("%Y-%m-%d %H:%M") if local else ""

    def words(self, request: web.Request) -> Any:
        """Return the words of the reader's language (``templates/web/lang``)."""
        return self.words_in(pick_lang(request))

    def words_in(self, lang: Lang) -> Any:
        """Return the words of the pages in ``lang`` (the module of its language file)."""
        return self.env.get_template(f"web/lang/{lang.value}.j2").module

    def html(self, request: web.Request, name: str, data: Mapping[str, Any]) -> str:
        """Return the text of the page ``name`` in the reader's language."""
        lang = pick_lang(request)
        query = {k: v for k, v in request.query.items() if k != "lang"}
        words = self.words(request)
        return self.env.get_template(f"web/{name}").render(
            **{"me": request.get(VIEWER), **data},
            L=words,
            lang=lang.value,
            langs=[x.value for x in Lang],
            path=request.path,
            query=query,
        )

    def render(
        self, request: web.Request, name: str, data: Mapping[str, Any], status: int = 200
    ) -> web.Response:
        """Return the page ``name`` in the reader's language."""
        html = self.html(request, name, data)
        response = web.Response(text=html, content_type="text/html", status=status)
        lang = pick_lang(request)
        if request.query.get("lang") == lang.value:
            response.set_cookie(LANG_COOKIE, lang.value, max_age=365 * 24 * 3600, samesite="Lax")
        return response


def pick_lang(request: web.Request) -> Lang:
    """Return the language asked for (?lang=) or remembered (cookie); else Simplified Chinese.

    A browser that prefers Traditional Chinese gets it; every other gets the default, not
    English: the interface is Chinese first, and English is one click away.
    """
    for value in (request.query.get("lang"), request.cookies.get(LANG_COOKIE)):
        if value in {x.value for x in Lang}:
            return Lang(value)
    first = request.headers.get("Accept-Language", "").split(",")[0].split(";")[0].strip().lower()
    if first.startswith(("zh-hant", "zh-tw", "zh-hk", "zh-mo")):
        return Lang.ZH_HANT
    return Lang.ZH_HANS
