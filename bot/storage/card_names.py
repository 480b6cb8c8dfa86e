"""The names cards share, stored once: a node's and a category's names, out of every deck.

A card's parameters name its ticket's node, origin and category in three languages
(``workflow.ticket_params``), the same for every ticket there: about half of what a deck's
base held. A deck (``bot.storage.decks``) stores them once for all, in ``keys.CARD_NAMES``
(``n:<node>``: ``[name, {lang: name}]``; ``c:<category>``: ``{lang: name}``), and its
parameters say which they left there (``~``: ``["node", "origin", "category"]``).

A field of that hash is written once (HSETNX) and never changed: a deck that left a name
there reads back that very name. A node or category renamed later keeps its new names in
its decks (they differ from the hash's), so nothing is read back other than it was written.
Each process keeps the hash it read for ``NAMES_TTL``, and reads it again for a name it
lacks.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from redis.asyncio import Redis

from bot.core.models import Lang
from bot.storage import keys
from bot.storage.codec import dumps
from bot.storage.raw import text_of

log = logging.getLogger(__name__)

NAMES_TTL = 60.0  # seconds a process trusts the names it read (a field lost is read again)
LEFT = "~"  # the parameter listing the names a dict left in the shared hash
# The keys whose names are left: an id and its names (``<id>_name``, ``<id>_names``).
_NODES = ("node", "origin")
_CATEGORY = "category"


def _node_field(params: dict[str, Any], key: str) -> tuple[str, Any] | None:
    """Return the hash field and value of a node's names in ``params``; None if not whole."""
    node, name, names = params.get(key), params.get(f"{key}_name"), params.get(f"{key}_names")
    if not isinstance(node, str) or not isinstance(name, str) or not isinstance(names, dict):
        return None
    return f"n:{node}", [name, names]


def _category_field(params: dict[str, Any]) -> tuple[str, Any] | None:
    category, names = params.get(_CATEGORY), params.get(f"{_CATEGORY}_names")
    if not isinstance(category, str) or not isinstance(names, dict):
        return None
    return f"c:{category}", names


def _parts(params: dict[str, Any]) -> Iterator[tuple[str, tuple[str, Any] | None]]:
    """Yield each key whose names ``params`` may leave out, with its field and value."""
    for key in _NODES:
        yield key, _node_field(params, key)
    yield _CATEGORY, _category_field(params)


def _steps(params: dict[str, Any]) -> list[Any] | None:
    steps = params.get("department_steps")
    return steps if isinstance(steps, list) and steps else None


def wanted(params: dict[str, Any]) -> dict[str, Any]:
    """Return the names ``params`` holds, as fields of the shared hash and their values."""
    found = dict(part for _, part in _parts(params) if part is not None)
    for step in _steps(params) or ():
        if isinstance(step, dict):
            found.update(wanted(step))
    return found


def strip(params: dict[str, Any], known: dict[str, Any]) -> dict[str, Any]:
    """Return ``params`` less the names the shared hash holds alike (``known``), marked."""
    out = dict(params)
    left = []
    for key, part in _parts(params):
        if part is not None and part[0] in known and known[part[0]] == part[1]:
            left.append(key)
            for name in (f"{key}_name", f"{key}_names"):
                out.pop(name, None)
    if left:
        out[LEFT] = left
    steps = _steps(params)
    if steps is not None:
        out["department_steps"] = [strip(s, known) if isinstance(s, dict) else s for s in steps]
    return out


def needed(params: dict[str, Any]) -> set[str]:
    """Return the fields of the shared hash that ``params`` (stripped) needs back."""
    found = {_field_of(params, key) for key in params.get(LEFT, ())}
    for step in _steps(params) or ():
        if isinstance(step, dict):
            found |= needed(step)
    return found


def fill(params: dict[str, Any], known: Callable[[str, str], Any]) -> dict[str, Any]:
    """Return stripped ``params`` with their names back (``known(field, id)`` gives them)."""
    out = dict(params)
    for key in out.pop(LEFT, ()):
        value = known(_field_of(params, key), str(params[key]))
        if key == _CATEGORY:
            out[f"{key}_names"] = value
        else:
            out[f"{key}_name"], out[f"{key}_names"] = value
    steps = _steps(params)
    if steps is not None:
        out["department_steps"] = [fill(s, known) if isinstance(s, dict) else s for s in steps]
    return out


def _field_of(params: dict[str, Any], key: str) -> str:
    return f"{'c' if key == _CATEGORY else 'n'}:{params[key]}"


class CardNames:
    """One process's copy of the shared names (``keys.CARD_NAMES``), read again each minute."""

    def __init__(self, redis: Redis, clock: Callable[[], float] = time.monotonic) -> None:
        self.redis = redis
        self.clock = clock
        self.known: dict[str, Any] = {}  # field -> its value, decoded
        self._read_at = float("-inf")

    async def learn(self, params: dict[str, Any]) -> None:
        """Store the names ``params`` holds that the hash lacks (so later decks leave them)."""
        found = wanted(params)
        if self._fresh() and found.keys() <= self.known.keys():
            return
        missing = {f: v for f, v in found.items() if f not in self.known}
        if missing:
            pipe = self.redis.pipeline(transaction=False)
            for name, value in missing.items():
                pipe.hsetnx(keys.CARD_NAMES, name, dumps(value))
            await pipe.execute()
        await self.read()

    async def ensure(self, fields: set[str]) -> None:
        """Read the hash again when it is stale or lacks one of ``fields``."""
        if fields and not (self._fresh() and fields <= self.known.keys()):
            await self.read()

    def name(self, field: str, ident: str) -> Any:
        """Return the names of a field; lost (the hash deleted): the id, so a card still reads."""
        found = self.known.get(field)
        if found is not None:
            return found
        log.warning("card names: %s is not in %s; shown as its id", field, keys.CARD_NAMES)
        names = {lang.value: ident for lang in Lang}
        return names if field.startswith("c:") else [ident, names]

    def _fresh(self) -> bool:
        return self.clock() - self._read_at < NAMES_TTL

    async def read(self) -> dict[str, Any]:
        """Read the shared names again; return them (field -> value)."""
        found = await self.redis.hgetall(keys.CARD_NAMES)
        self.known = {text_of(k): json.loads(v) for k, v in found.items()}
        self._read_at = self.clock()
        return self.known
