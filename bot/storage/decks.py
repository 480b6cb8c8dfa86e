"""A ticket's deck: the records of its delivered cards and its view, in one small hash.

The cards of a ticket (or of a question: ``bot.card_edits.subject``) are mostly rendered
from the same parameters: the same ticket at the same moment. So its deck
(``keys.deck``, one HASH for every platform) holds those once, and each card only what
sets it apart:

- ``b``: the *base*, the payload of the first card recorded (less its chat), packed
  (``deck_codec``); it never changes while the deck lives;
- ``"chat message_id"`` (the chat short: ``card_edits.card_field``, "T1000000123 2"): a
  card's record, a compact diff of its payload against the base (template, buttons, seq
  and the parameters that differ, e.g. a staff chat's unmasked text, a department's steps)
  and the digest of what it shows (``card_edits.digest``, its first 6 bytes); re-rendering
  it is base + diff, then ``viewed`` as now;
- ``n`` and ``v``: the ticket's newest view (``bot.core.cards.card_view``) and its seq,
  stored by a script that replaces it only with a newer one: both platforms' senders
  store the same views, in any order, and the seq never goes back.

What every deck of a node or category would repeat, its names in three languages, is
stored once for all (``bot.storage.card_names``) and filled back when read; the times a
card shows (to the minute) are kept in whole seconds. So a deck is what its ticket's
cards alone say: ~350 B once its cards are delivered (was ~650 B).

A record is written by a script too: against the base it was diffed with when that is the
deck's, against its own payload when the deck has none yet, and whole otherwise, so two
senders racing to record the first cards of a ticket still leave every record readable.
The deck expires ``CARD_TTL`` after its last write.

Pointers from a sent message to its ticket (replies and presses on it reach the ticket)
are fields of small hashes, 100 message ids a hash (``keys.card_pointers``); a message
id that is not a number keeps a key of its own (``keys.card``: a bucket by digest would
never stop being written to in a busy chat, so it would never expire).

Written before, and still read until it expires: bases packed whole (version 1), records
and views with their names (versions 2 and 3), fields naming the chat whole; a hash of
whole records per platform (``keys.ticket_cards``), a view per platform
(``keys.card_view``) and a pointer key per message. A record read from there is moved
into the deck when it is next written.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis

from bot.card_edits import CARD_FIELD_SEP, card_field, split_field, unpack
from bot.core.models import platform_of
from bot.storage import card_names, keys
from bot.storage.card_names import CardNames
from bot.storage.deck_codec import (
    diff,
    full_view,
    pack_base,
    pack_record,
    pack_view,
    settle,
    slim_view,
    undiff,
    unpack_base,
    unpack_record,
)
from bot.storage.raw import text_of

CARD_TTL = 90 * 24 * 3600  # replies to a card are understood for three months
BASE, VIEW, VIEW_SEQ = "b", "v", "n"
# Bases of recent decks a sender remembers, to diff new cards against (~5 KB each as Python
# objects): a card is sent and recorded moments after its deck was read, so a few hundred
# lanes at once need no more; one forgotten costs a record stored whole, never a wrong one.
BASES_KEPT = 1_000

# Lua: record a card in a deck; the body of ``_ADD`` and of the sender's marking script
# (bot.sender), which records a card with its sent marker in one call. deck, old, old_view:
# the deck, and the platform's hash of records and view written before decks; a: field,
# base, record against it, this card's own payload as a base, record against that, the
# whole record, TTL. Only the variants the writer expects need be there (``recording``): one
# missing that the deck needs returns AGAIN before anything is written. Else returns the seq
# of the deck's view (0: none), or -1 when a view written before decks is there: whether a
# card just sent may show less than the view (``Decks.add``).
ADD_CARD = """
local function add_card(deck, old, old_view, a)
  local base = redis.call('HGET', deck, 'b')
  local record = a[6]
  if not base then
    if a[4] == '' then return -2 end
    redis.call('HSET', deck, 'b', a[4])
    record = a[5]
  elseif base == a[2] then
    record = a[3]
  elseif record == '' then
    return -2
  end
  redis.call('HSET', deck, a[1], record)
  redis.call('HDEL', old, a[1])
  redis.call('EXPIRE', deck, a[7])
  if redis.call('EXISTS', old_view) == 1 then return -1 end
  return tonumber(redis.call('HGET', deck, 'n') or '0')
end
"""
ADD_ARGS = 7  # the arguments of add_card's ``a``
AGAIN = -2  # add_card lacked the variant the deck needs: call again with every one
# A script ending in add_card, run with the deck's keys and add_card's arguments (``record``).
Run = Callable[[list[str], list[bytes | str | int]], Awaitable[Any]]

# KEYS: deck, the platform's old hash of records, its old view. ARGV: add_card's ``a``.
_ADD = ADD_CARD + "return add_card(KEYS[1], KEYS[2], KEYS[3], ARGV)"

# KEYS: deck, the platform's old view key. ARGV: the fields of the deck to read. Returns
# them and the old view: one command where a pipeline of two cost the sender twice as much.
_READ = """
local found = redis.call('HMGET', KEYS[1], unpack(ARGV))
found[#found + 1] = redis.call('GET', KEYS[2])
return found
"""

# KEYS: deck, the platform's old view key. ARGV: seq, the view less what it shares with
# the base below, TTL, that base (or ""), the whole view.
_VIEW = """
local seq = redis.call('HGET', KEYS[1], 'n')
if seq and tonumber(seq) >= tonumber(ARGV[1]) then return 0 end
local view = ARGV[5]
if ARGV[4] ~= '' and redis.call('HGET', KEYS[1], 'b') == ARGV[4] then view = ARGV[2] end
redis.call('HSET', KEYS[1], 'n', ARGV[1], 'v', view)
redis.call('DEL', KEYS[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""


def is_card(field: str) -> bool:
    """Return whether a field of a deck is a card's record (not its base or view)."""
    return CARD_FIELD_SEP in field


def newest(*views: dict[str, Any] | None) -> dict[str, Any] | None:
    """Return the view with the highest seq, None when there is none."""
    found = [v for v in views if v is not None]
    return max(found, key=lambda v: int(v["seq"])) if found else None


class Decks:
    """The decks of one platform's sender: its cards' records, the views, the pointers."""

    def __init__(self, redis: Redis, platform: str, names: CardNames | None = None) -> None:
        self.redis = redis
        self.platform = platform
        self.names = names or CardNames(redis)
        self._add = redis.register_script(_ADD)
        self._view = redis.register_script(_VIEW)
        self._read = redis.register_script(_READ)
        # owner -> its deck's base as read last, packed and not
        self._bases: OrderedDict[str, tuple[bytes, dict[str, Any]]] = OrderedDict()

    async def _known(self, owner: str, base: bytes | None) -> dict[str, Any] | None:
        """Remember a deck's base as read; return it unpacked (shared: never change it)."""
        if base is None:
            return None
        known = self._bases.get(owner)
        if known is None or known[0] != base:
            found = unpack_base(base)
            known = (base, {**found, "params": await self._filled(found.get("params"))})
        self._bases[owner] = known
        self._bases.move_to_end(owner)
        while len(self._bases) > BASES_KEPT:
            self._bases.popitem(last=False)
        return known[1]

    async def _filled(self, params: Any) -> Any:
        """Return stored parameters with the names they left in the shared hash back."""
        if not isinstance(params, dict):
            return params
        wanted = card_names.needed(params)
        if not wanted:
            return params
        await self.names.ensure(wanted)
        return card_names.fill(params, self.names.name)

    async def _view_of(
        self, packed: bytes | None, base: dict[str, Any] | None, old: bytes | None
    ) -> dict[str, Any] | None:
        """Return the newer of a deck's view and a platform's view written before (JSON)."""
        mine = None
        if packed:
            stored = unpack_record(packed)
            mine = full_view({**stored, "params": await self._filled(stored["params"])}, base)
        return newest(mine, json.loads(old) if old else None)

    async def view(self, owner: str) -> dict[str, Any] | None:
        """Return the newest view of ``owner``'s cards (remembering the deck's base)."""
        names = [keys.deck(owner), keys.card_view(self.platform, owner)]
        base, packed, old = await self._read(keys=names, args=[BASE, VIEW])
        return await self._view_of(packed, await self._known(owner, base), old)

    async def store_view(self, owner: str, view: dict[str, Any]) -> bool:
        """Store ``view`` if it is newer than the one stored; return whether it was."""
        current = await self.view(owner)
        if current is not None and int(view["seq"]) <= int(current["seq"]):
            return False
        view = settle(view)
        await self.names.learn(view["params"])
        known = self.names.known
        base, slim = self._bases.get(owner), b""
        if base is not None:
            slim = pack_view(slim_view(view, base[1]), known)
        packed = base[0] if base else b""
        args: list[bytes | int] = [int(view["seq"]), slim, CARD_TTL, packed, pack_view(view, known)]
        names = [keys.deck(owner), keys.card_view(self.platform, owner)]
        return bool(await self._view(keys=names, args=args))

    async def fields(self, owner: str) -> list[str]:
        """Return the fields of this platform's recorded cards of ``owner``, in order."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hkeys(keys.deck(owner))
        pipe.hkeys(keys.ticket_cards(self.platform, owner))
        new, old = await pipe.execute()
        mine = {text_of(f) for f in [*new, *old]}
        return sorted(
            f for f in mine if is_card(f) and platform_of(split_field(f)[0]) == self.platform
        )

    async def card(
        self, owner: str, field: str
    ) -> tuple[dict[str, Any], str, dict[str, Any] | None] | None:
        """Return a recorded card's payload, its digest and the view now; None if unknown."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hmget(keys.deck(owner), [BASE, field, VIEW])
        pipe.hget(keys.ticket_cards(self.platform, owner), field)
        pipe.get(keys.card_view(self.platform, owner))
        (base, raw, packed), before, old_view = await pipe.execute()
        under = await self._known(owner, base)
        view = await self._view_of(packed, under, old_view)
        if raw is not None:
            record = unpack_record(raw)
            if not record.get("f") and under is None:
                return None  # cannot be: the base goes only with its deck
            if "q" in record:
                record["q"] = await self._filled(record["q"])
            payload = undiff(record, under, split_field(field)[0])
            return payload, str(record["d"]), view
        if before is not None:  # recorded before decks: the whole record
            whole = unpack(before)
            return whole["payload"], str(whole["digest"]), view
        return None

    async def learn(self, payload: dict[str, Any]) -> None:
        """Store the names of a card about to be recorded that the shared hash lacks."""
        await self.names.learn(payload.get("params") or {})

    async def add(
        self, owner: str, chat: str, message_id: str, payload: dict[str, Any], fingerprint: str
    ) -> int:
        """Record a card sent as ``message_id`` in ``chat`` (its names learnt first).

        Returns the seq of the view stored then (0: none; -1: a view written before decks), so
        that the sender checks the card against the view only when one may be newer than what
        it shows (``viewed``). A view stored later is followed by its edit entry, which reads
        this record. The sender records its cards with their sent markers in one script of its
        own, with ``ADD_CARD``, through ``record``.
        """
        return await self.replace(owner, card_field(chat, message_id), payload, fingerprint)

    async def replace(
        self, owner: str, field: str, payload: dict[str, Any], fingerprint: str
    ) -> int:
        """Store what a recorded card shows now (moving a record written before into the deck);
        return ``add_card``'s answer."""
        return int(await self.record(owner, field, payload, fingerprint, self._run_add))

    async def _run_add(self, names: list[str], args: list[bytes | str | int]) -> Any:
        return await self._add(keys=names, args=args)

    async def record(
        self, owner: str, field: str, payload: dict[str, Any], fingerprint: str, run: Run
    ) -> Any:
        """Learn a card's names, then ``run`` a script ending in ``add_card`` with the keys and
        arguments recording it: the record the deck is expected to take, then, when it answers
        AGAIN, every one. Return the script's answer."""
        await self.learn(payload)
        found: Any = AGAIN
        for every in (False, True):
            names, args = self.recording(owner, field, payload, fingerprint, every)
            found = await run(names, args)
            if found != AGAIN:
                break
        return found

    def recording(
        self, owner: str, field: str, payload: dict[str, Any], fingerprint: str, every: bool = False
    ) -> tuple[list[str], list[bytes | str | int]]:
        """Return the keys and arguments of ``add_card`` (``ADD_CARD``) recording a card's
        payload. Its names are left in the shared hash when ``learn`` stored them first (else
        kept in the deck).

        Packing a record is most of the work: only the one the deck is expected to take is
        packed (against the base this sender read, or the card's own payload as the first
        base), unless ``every``: what ``add_card`` asks for when the deck was not as expected.
        """
        payload, known = settle(payload), self.names.known
        own = {k: v for k, v in payload.items() if k != "chat"}
        base = self._bases.get(owner)
        args: list[bytes | str | int] = [field, b"", b"", b"", b"", b"", CARD_TTL]
        if base is not None:
            args[1:3] = [base[0], pack_record(diff(payload, base[1], fingerprint), known)]
        if base is None or every:
            args[3:5] = [pack_base(own, known), pack_record(diff(payload, own, fingerprint), known)]
        if every:
            args[5] = pack_record(diff(payload, None, fingerprint), known)
        names = [keys.deck(owner), keys.ticket_cards(self.platform, owner)]
        return [*names, keys.card_view(self.platform, owner)], args


def pointer(chat: str, message_id: str) -> tuple[str, bool]:
    """Return where the pointer from a sent message to its ticket goes: a field
    ``message_id`` of a shared HASH (True), or a key of its own (False)."""
    bucket = keys.card_pointers(chat, message_id)
    return (bucket, True) if bucket is not None else (keys.card(chat, message_id), False)


async def pointed(redis: Redis, chat: str, message_id: str) -> str | None:
    """Return the ticket a sent message points to (a pointer written before, too), or None."""
    bucket = keys.card_pointers(chat, message_id)
    pipe = redis.pipeline(transaction=False)
    if bucket is not None:
        pipe.hget(bucket, message_id)
    pipe.get(keys.card(chat, message_id))
    found = [text_of(v) for v in await pipe.execute() if v is not None]
    return found[0] if found else None
