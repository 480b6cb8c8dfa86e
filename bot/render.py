"""Turn replies into chat text: one jinja2 macro per template name, one file per language.

``templates/chat/<lang>.j2`` defines ``{% macro NAME(p) %}`` for every template
name the core uses, plus small helpers the filters call (``moment``, ``span``,
``state_name``, ``button``), so that every word a user reads lives in the
template files and none in this module.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2
from jinja2.runtime import Context, Macro

from bot.core.commands import Verb, button_data
from bot.core.models import Lang, Reply
from bot.ports import Rendered

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
# Telegram's limit for one message's text, counted in UTF-16 code units as Telegram does.
MAX_LENGTH = 4096
ELLIPSIS = "…"
RATINGS = (1, 2, 3, 4, 5)
# tzdata may be missing on minimal systems; China has kept UTC+8 without DST since 1991.
CHINA_STANDARD_TIME = dt.timezone(dt.timedelta(hours=8), "CST")

__all__ = ["MAX_LENGTH", "TEMPLATES", "Rendered", "Renderer", "UnknownTemplate", "local_zone"]


class UnknownTemplate(LookupError):
    """A reply names a template that the language's file does not define."""

    def __init__(self, name: str, lang: Lang) -> None:
        super().__init__(f"no template {name!r} for {lang.value} (templates/{_file(lang)})")
        self.name = name
        self.lang = lang


def local_zone() -> dt.tzinfo:
    """Return the Asia/Shanghai zone, or a fixed UTC+8 when tzdata is absent."""
    try:
        return ZoneInfo("Asia/Shanghai")
    except ZoneInfoNotFoundError:
        return CHINA_STANDARD_TIME


class Renderer:
    """Render replies and other messages from the macro files of a templates directory."""

    def __init__(self, templates: Path = TEMPLATES, tz: dt.tzinfo | None = None) -> None:
        self.tz = tz if tz is not None else local_zone()
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(templates),
            autoescape=False,  # plain chat text, sent without a parse mode
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
        )
        env.filters.update(
            when=self._when,
            duration=_duration,
            percent=_percent,
            category=_category,
            state=_state,
            place=_place,
        )
        # Load every language now: a broken template file fails at start-up, not mid-chat.
        self._modules = {lang: env.get_template(_file(lang)).module for lang in Lang}

    def __call__(self, reply: Reply) -> Rendered:
        """Render ``reply`` (so that a Renderer is a ``bot.ports.Render``)."""
        return self.render(reply)

    def render(self, reply: Reply) -> Rendered:
        """Return the text and buttons of ``reply`` in its language."""
        text = self.text(reply.template, reply.params, reply.lang)
        addressee = None
        if reply.force_reply is not None:
            addressee = (reply.force_reply, str(reply.params.get("name") or ""))
        return Rendered(text, self._buttons(reply), addressee)

    def text(self, template: str, params: Mapping[str, Any], lang: Lang) -> str:
        """Return the message ``template`` says with ``params``, stripped and cut to fit."""
        return fit(str(self._macro(template, lang)(dict(params))).strip())

    def macros(self, lang: Lang) -> frozenset[str]:
        """Return the names of the macros that the file of ``lang`` defines."""
        module = vars(self._modules[lang])
        return frozenset(name for name, value in module.items() if isinstance(value, Macro))

    def _macro(self, name: str, lang: Lang) -> Macro:
        macro = getattr(self._modules[lang], name, None)
        if not isinstance(macro, Macro):
            raise UnknownTemplate(name, lang)
        return macro

    def _buttons(self, reply: Reply) -> tuple[tuple[str, str], ...]:
        if not reply.buttons:
            return ()
        ticket = reply.ticket or str(reply.params.get("id") or "")
        label = self._macro("button", reply.lang)
        out: list[tuple[str, str]] = []
        for action in reply.buttons:
            if ":" in action:  # a question's choice (danger:p12:yes): its data is whole
                choice = self._macro("choice", reply.lang)
                out.append((str(choice(action, dict(reply.params))).strip(), action))
                continue
            if not ticket:
                raise ValueError(f"reply {reply.template!r} has buttons but no ticket")
            verb = Verb(action)
            if verb is Verb.RATE:
                out += [
                    (str(label(action, r)).strip(), button_data(verb, ticket, r)) for r in RATINGS
                ]
            else:
                out.append((str(label(action)).strip(), button_data(verb, ticket)))
        return tuple(out)

    @jinja2.pass_context
    def _when(self, context: Context, epoch: float | None) -> str:
        """Return an epoch time as local time, worded by the language's ``moment`` macro."""
        moment = dt.datetime.fromtimestamp(epoch, self.tz) if epoch is not None else None
        return _call(context, "moment", moment)


def fit(text: str, limit: int = MAX_LENGTH) -> str:
    """Return ``text``, or its head and an ellipsis when it is longer than ``limit``."""
    if len(text) <= limit // 2 or _units(text) <= limit:
        return text
    room, head = limit - _units(ELLIPSIS), []
    for char in text:
        room -= _units(char)
        if room < 0:
            break
        head.append(char)
    return "".join(head).rstrip() + ELLIPSIS


def _units(text: str) -> int:
    """Return the length of ``text`` in UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def _file(lang: Lang) -> str:
    return f"chat/{lang.value}.j2"


def _lang(context: Context) -> Lang:
    """Return the language of the file a macro comes from (``chat/en.j2`` -> en)."""
    return _lang_of_file(context.name or "")


@functools.cache
def _lang_of_file(name: str) -> Lang:
    return Lang(PurePosixPath(name).stem)


def _call(context: Context, name: str, *args: Any) -> str:
    """Call a helper macro of the file being rendered."""
    macro = context.resolve_or_missing(name)
    if not isinstance(macro, Macro):
        raise UnknownTemplate(name, _lang(context))
    return str(macro(*args)).strip()


@jinja2.pass_context
def _duration(context: Context, seconds: float | None) -> str:
    """Return a duration in days, hours and minutes, worded by the ``span`` macro."""
    if seconds is None:
        return _call(context, "span", None, None, None)
    minutes = round(seconds / 60)
    return _call(context, "span", minutes // 1440, minutes // 60 % 24, minutes % 60)


def _percent(rate: float | None) -> str:
    """Return a rate of 0..1 as a whole percentage; a dash when there is none."""
    return "—" if rate is None else f"{round(rate * 100)}%"


@jinja2.pass_context
def _category(context: Context, p: Mapping[str, Any]) -> str:
    """Return the category's name in the file's language, falling back to zh-Hans."""
    names = p.get("category_names") or {}
    return str(names.get(_lang(context)) or names.get(Lang.ZH_HANS) or p.get("category", ""))


@jinja2.pass_context
def _state(context: Context, state: str) -> str:
    """Return a ticket state's name from the file's ``state_name`` macro."""
    return _call(context, "state_name", state)


@jinja2.pass_context
def _place(context: Context, p: Mapping[str, Any], key: str = "node") -> str:
    """Return the name of a node of ``p`` (node, origin, from) in the file's language.

    Uses ``<key>_names`` ({lang: name}) when the params carry it, else ``<key>_name``.
    """
    names = p.get(f"{key}_names") or {}
    return str(names.get(_lang(context)) or p[f"{key}_name"])
