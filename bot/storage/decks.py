"""A ticket's deck: the records of its delivered cards and its view, in one small hash.

The cards of a ticket (or of a question: ``bot.card_edits.subject``) are mostly rendered
from the same parameters: the same ticket at the same moment. So its deck
(``keys.deck``, one HASH for every platform) holds those once, and each card only what
sets it apart:

- ``b``: the *base*, the payload of the first card recorded (less its chat), packed
  (``card_edits.pack``); it never changes while the deck lives;
- ``"chat message_id"``: a card's record, a compact diff of its payload against the base
  (template, buttons, seq and the parameters that differ, e.g. a staff chat's unmasked
  text, a department's steps) and the digest of what it shows (``card_edits.digest``, cut
  to ``DIGEST_CHARS``); re-rendering it is base + diff, then ``viewed`` as now;
- ``n`` and ``v``: the ticket's newest view (``bot.core.cards.card_view``) and its seq,
  stored by a script that replaces it only with a newer one: both platforms' senders
  store the same views, in any order, and the seq never goes back.

A record is written by a script too: against the base it was diffed with when that is the
deck's, against its own payload when the deck has none yet, and whole otherwise, so two
senders racing to record the first cards of a ticket still leave every record readable.
The deck expires ``CARD_TTL`` after its last write.

Pointers from a sent message to its ticket (replies and presses on it reach the ticket)
are fields of small hashes, 100 message ids a hash (``keys.card_pointers``); a message
id that is not a number keeps a key of its own (``keys.card``: a bucket by digest would
never stop being written to in a busy chat, so it would never expire).

Written before, and still read until it expires: a hash of whole records per platform
(``keys.ticket_cards``), a view per platform (``keys.card_view``) and a pointer key per
message. A record read from there is moved into the deck when it is next written.
"""

from __future__ import annotations

import json
import zlib
from collections import OrderedDict
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from bot.card_edits import CARD_FIELD_SEP, card_field, pack, unpack
from bot.storage import keys

CARD_TTL = 90 * 24 * 3600  # replies to a card are understood for three months
BASE, VIEW, VIEW_SEQ = "b", "v", "n"
DIGEST_CHARS = 12  # 48 bits: a false "renders the same" skips one edit in 2**48
# Bases of recent decks a sender remembers, to diff new cards against (~5 KB each as Python
# objects): a card is sent and recorded moments after its deck was read, so a few hundred
# lanes at once need no more; one forgotten costs a record stored whole, never a wrong one.
BASES_KEPT = 1_000
_DIFF = b"\x02"  # version 2: a record or a view, compact JSON
_DIFF_PACKED = b"\x03"  # version 3: the same, deflated with DECK_DICTIONARY
_MISSING = object()

# What records and views hold most often: a preset dictionary for deflating them (the most
# common last). Records packed with it need this very dictionary to be read: never change
# it; a better one needs a new version byte (tests/test_card_decks.py pins its digest).
_NAMES = '{"zh-Hans":"","zh-Hant":"","en":""}'
DECK_DICTIONARY = (
    '{"seq":2,"params":{"state":"acknowledged","assignee":"","reporters":1,"node":"V-",'
    f'"node_name":"","node_names":{_NAMES},"ack_due":1700000000.0,"resolve_due":1700000000.0,'
    '"escalations":0,"resolution":"","flagged":false,"department_steps":[],"related":[]},'
    '"buttons":["ack","resolve","escalate"],"live":["telegram:-100","sim:"],'
    '"reporter":["confirm","reopen","rate"],"co_reporter":["reopen"],'
    '"chat_buttons":{"telegram:-100":["arrive","assisted"]},"=":["state","assignee",'
    '"reporters","node","node_name","node_names","ack_due","resolve_due","escalations",'
    '"resolution","flagged","department_steps","related"]}'
    '{"d":"","o":{"template":"resolved","lang":"zh-Hans","reply_to":"","ticket":"",'
    '"prompt":"p","card":false,"force_reply":null,"answered":true},'
    '"q":{"state":"closed","text":"","redacted":true,"assignee":""}}'
    '{"d":"","o":{"template":"department_card","buttons":["arrive","assisted"],"seq":2},'
    '"q":{"state":"acknowledged"}}'
    '{"d":"","o":{"buttons":["resolve","escalate"],"seq":2},"q":{"state":"acknowledged"}}'
).encode()

# KEYS: deck, the platform's old hash of records. ARGV: field, base, record against it,
# this card's own payload as a base, record against that, the whole record, TTL.
_ADD = """
local base = redis.call('HGET', KEYS[1], 'b')
local record = ARGV[6]
if not base then
  redis.call('HSET', KEYS[1], 'b', ARGV[4])
  record = ARGV[5]
elseif base == ARGV[2] then
  record = ARGV[3]
end
redis.call('HSET', KEYS[1], ARGV[1], record)
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[7])
return 1
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


def diff(payload: dict[str, Any], base: dict[str, Any] | None, fingerprint: str) -> dict[str, Any]:
    """Return a card's record: what its payload (less its chat) adds to ``base`` (None: all)."""
    rest = {k: v for k, v in payload.items() if k not in ("chat", "params")}
    params = payload.get("params") or {}
    record: dict[str, Any] = {"d": fingerprint[:DIGEST_CHARS]}
    if base is None:
        record.update(f=1, o=rest, q=params)
        return record
    above = {k: v for k, v in base.items() if k != "params"}
    under = base.get("params") or {}
    changed = {k: v for k, v in rest.items() if above.get(k, _MISSING) != v}
    gone = [k for k in above if k not in rest]
    params_changed = {k: v for k, v in params.items() if under.get(k, _MISSING) != v}
    params_gone = [k for k in under if k not in params]
    for name, part in (("o", changed), ("y", gone), ("q", params_changed), ("x", params_gone)):
        if part:
            record[name] = part
    return record


def undiff(record: dict[str, Any], base: dict[str, Any] | None, chat: str) -> dict[str, Any]:
    """Return the payload a record (``diff``) was made from, in ``chat``."""
    start = {} if record.get("f") or base is None else base
    params = {**(start.get("params") or {}), **record.get("q", {})}
    for name in record.get("x", ()):
        params.pop(name, None)
    payload = {k: v for k, v in start.items() if k != "params"} | record.get("o", {})
    for name in record.get("y", ()):
        payload.pop(name, None)
    return {"chat": chat, **payload, "params": params}


def pack_record(record: dict[str, Any]) -> bytes:
    """Return a record as stored: compact JSON, deflated when that is shorter."""
    text = json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15, zdict=DECK_DICTIONARY)
    packed = deflate.compress(text) + deflate.flush()
    return _DIFF_PACKED + packed if len(packed) < len(text) else _DIFF + text


def unpack_record(raw: bytes) -> dict[str, Any]:
    """Return a record as ``pack_record`` stored it."""
    if raw[:1] == _DIFF_PACKED:
        inflate = zlib.decompressobj(-15, zdict=DECK_DICTIONARY)
        text = inflate.decompress(raw[1:]) + inflate.flush()
    elif raw[:1] == _DIFF:
        text = raw[1:]
    else:
        raise ValueError(f"not a card record of a deck: version {raw[:1]!r}")
    found: dict[str, Any] = json.loads(text)
    return found


def slim_view(view: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """Return a view less the parameters it shares with ``base`` (named in ``=``)."""
    under = base.get("params") or {}
    same = [k for k, v in view["params"].items() if under.get(k, _MISSING) == v]
    params = {k: v for k, v in view["params"].items() if k not in same}
    return {**view, "params": params, "=": same}


def full_view(stored: dict[str, Any], base: dict[str, Any] | None) -> dict[str, Any] | None:
    """Return the view ``slim_view`` stored (None when its base is not there)."""
    same = stored.pop("=", None)
    if same is None:
        return stored
    if base is None:
        return None  # cannot be: the base goes only with its deck
    under = base.get("params") or {}
    return {**stored, "params": {**{k: under[k] for k in same}, **stored["params"]}}


def split_field(field: str) -> tuple[str, str]:
    """Return the chat and message id of a card's field (``card_edits.card_field``)."""
    chat, _, message_id = field.rpartition(CARD_FIELD_SEP)
    return chat, message_id


def is_card(field: str) -> bool:
    """Return whether a field of a deck is a card's record (not its base or view)."""
    return CARD_FIELD_SEP in field


def newest(*views: dict[str, Any] | None) -> dict[str, Any] | None:
    """Return the view with the highest seq, None when there is none."""
    found = [v for v in views if v is not None]
    return max(found, key=lambda v: int(v["seq"])) if found else None


class Decks:
    """The decks of one platform's sender: its cards' records, the views, the pointers."""

    def __init__(self, redis: Redis, platform: str) -> None:
        self.redis = redis
        self.platform = platform
        self._add = redis.register_script(_ADD)
        self._view = redis.register_script(_VIEW)
        # owner -> its deck's base as read last, packed and not
        self._bases: OrderedDict[str, tuple[bytes, dict[str, Any]]] = OrderedDict()

    def _known(self, owner: str, base: bytes | None) -> dict[str, Any] | None:
        """Remember a deck's base as read; return it unpacked (shared: never change it)."""
        if base is None:
            return None
        known = self._bases.get(owner)
        if known is None or known[0] != base:
            known = (base, unpack(base))
        self._bases[owner] = known
        self._bases.move_to_end(owner)
        while len(self._bases) > BASES_KEPT:
            self._bases.popitem(last=False)
        return known[1]

    async def view(self, owner: str) -> dict[str, Any] | None:
        """Return the newest view of ``owner``'s cards (remembering the deck's base)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hmget(keys.deck(owner), [BASE, VIEW])
        pipe.get(keys.card_view(self.platform, owner))
        (base, packed), old = await pipe.execute()
        return _newest_of(packed, self._known(owner, base), old)

    async def store_view(self, owner: str, view: dict[str, Any]) -> bool:
        """Store ``view`` if it is newer than the one stored; return whether it was."""
        current = await self.view(owner)
        if current is not None and int(view["seq"]) <= int(current["seq"]):
            return False
        base, slim = self._bases.get(owner), b""
        if base is not None:
            slim = pack_record(slim_view(view, base[1]))
        packed = base[0] if base else b""
        args: list[bytes | int] = [int(view["seq"]), slim, CARD_TTL, packed, pack_record(view)]
        names = [keys.deck(owner), keys.card_view(self.platform, owner)]
        return bool(await self._view(keys=names, args=args))

    async def fields(self, owner: str) -> list[str]:
        """Return the fields of this platform's recorded cards of ``owner``, in order."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hkeys(keys.deck(owner))
        pipe.hkeys(keys.ticket_cards(self.platform, owner))
        new, old = await pipe.execute()
        mine = {_text(f) for f in [*new, *old]}
        return sorted(f for f in mine if is_card(f) and f.startswith(f"{self.platform}:"))

    async def card(
        self, owner: str, field: str
    ) -> tuple[dict[str, Any], str, dict[str, Any] | None] | None:
        """Return a recorded card's payload, its digest and the view now; None if unknown."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hmget(keys.deck(owner), [BASE, field, VIEW])
        pipe.hget(keys.ticket_cards(self.platform, owner), field)
        pipe.get(keys.card_view(self.platform, owner))
        (base, raw, packed), before, old_view = await pipe.execute()
        under = self._known(owner, base)
        view = _newest_of(packed, under, old_view)
        if raw is not None:
            record = unpack_record(raw)
            if not record.get("f") and under is None:
                return None  # cannot be: the base goes only with its deck
            payload = undiff(record, under, split_field(field)[0])
            return payload, str(record["d"]), view
        if before is not None:  # recorded before decks: the whole record
            whole = unpack(before)
            return whole["payload"], str(whole["digest"]), view
        return None

    def add(
        self,
        pipe: Pipeline,
        owner: str,
        chat: str,
        message_id: str,
        payload: dict[str, Any],
        fingerprint: str,
    ) -> None:
        """Queue, in ``pipe``, the record of a card sent as ``message_id`` in ``chat``."""
        names, args = self._record(owner, card_field(chat, message_id), payload, fingerprint)
        # EVAL, not EVALSHA: a pipeline holding a script asks SCRIPT EXISTS first, one more
        # round trip per card sent; Redis caches the compiled script by its body anyway.
        pipe.eval(_ADD, len(names), *names, *args)

    async def replace(
        self, owner: str, field: str, payload: dict[str, Any], fingerprint: str
    ) -> None:
        """Store what a recorded card shows now (moving a record written before into the deck)."""
        names, args = self._record(owner, field, payload, fingerprint)
        await self._add(keys=names, args=args)

    def _record(
        self, owner: str, field: str, payload: dict[str, Any], fingerprint: str
    ) -> tuple[list[str], list[bytes | str | int]]:
        """Return the keys and arguments of ``_ADD`` recording a card's payload."""
        own = {k: v for k, v in payload.items() if k != "chat"}
        own_base = pack(own)
        base, under = self._bases.get(owner, (own_base, own))
        against = diff(payload, under, fingerprint)
        args: list[bytes | str | int] = [
            field, base, pack_record(against), own_base,
            pack_record(diff(payload, own, fingerprint)),
            pack_record(diff(payload, None, fingerprint)), CARD_TTL,
        ]  # fmt: skip
        return [keys.deck(owner), keys.ticket_cards(self.platform, owner)], args


def point(pipe: Pipeline, chat: str, message_id: str, ticket: str) -> None:
    """Queue, in ``pipe``, the pointer from a sent message to its ticket."""
    bucket = keys.card_pointers(chat, message_id)
    if bucket is None:
        pipe.set(keys.card(chat, message_id), ticket, ex=CARD_TTL)
        return
    pipe.hset(bucket, message_id, ticket)
    pipe.expire(bucket, CARD_TTL)


async def pointed(redis: Redis, chat: str, message_id: str) -> str | None:
    """Return the ticket a sent message points to (a pointer written before, too), or None."""
    bucket = keys.card_pointers(chat, message_id)
    pipe = redis.pipeline(transaction=False)
    if bucket is not None:
        pipe.hget(bucket, message_id)
    pipe.get(keys.card(chat, message_id))
    found = [_text(v) for v in await pipe.execute() if v is not None]
    return found[0] if found else None


def _newest_of(
    packed: bytes | None, base: dict[str, Any] | None, old: bytes | None
) -> dict[str, Any] | None:
    """Return the newer of a deck's view (packed) and a platform's view written before (JSON)."""
    mine = full_view(unpack_record(packed), base) if packed else None
    return newest(mine, json.loads(old) if old else None)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
