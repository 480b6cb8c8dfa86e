"""How a deck (``bot.storage.decks``) stores a card's record, its base and its view.

A record is a card's payload as its difference from the deck's base (``diff``); a view is
stored less what it shares with the base (``slim_view``). Each is packed with a version
byte ahead: a base (4), a record (5, its digest in 6 bytes) and a view (6) are deflated with
a preset dictionary, less the names the shared hash holds (``bot.storage.card_names``), and
with the times a card shows in whole seconds (``settle``). What earlier versions wrote is
still read: a base packed whole (1, ``card_edits.pack``), records and views as JSON (2) or
deflated (3).
"""

from __future__ import annotations

import json
import math
from typing import Any

from bot.card_edits import deflate, inflate, unpack
from bot.storage import card_names
from bot.storage.codec import dumps

DIGEST_CHARS = 12  # 48 bits, stored as 6 bytes: a false "renders the same" skips one edit in 2**48
_DIFF = b"\x02"  # version 2: a record or a view, compact JSON (read, no longer written)
_DIFF_PACKED = b"\x03"  # version 3: the same, deflated with DECK_DICTIONARY (read only)
_BASE = b"\x04"  # version 4: a base less its names (card_names), deflated with BASE_DICTIONARY
_RECORD = b"\x05"  # version 5: a record's digest (6 bytes), the rest deflated (RECORD_DICTIONARY)
_VIEW_PACKED = b"\x06"  # version 6: a view less its names, deflated with RECORD_DICTIONARY
# The times a card shows, to the minute at most (``| when`` in templates/chat): whole seconds.
_TIMES = ("ack_due", "resolve_due", "close_due", "created_at")
_STEP_TIMES = ("arrived", "assisted")  # a department's steps (``department_steps``)
_MISSING = object()

# Preset dictionaries for deflating what decks hold (the most common last). What was packed
# with one needs that very dictionary to be read: never change one; a better one needs a new
# version byte (tests/test_card_decks.py pins their digests).
_NAMES = '{"zh-Hans":"","zh-Hant":"","en":""}'
DECK_DICTIONARY = (  # version 3
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
BASE_DICTIONARY = (  # version 4: a base, its names left in the shared hash
    b'{"template":"question","params":{"question":"","choices":[],"answerable":true},'
    b'"prompt":"p","lang":"en","buttons":[],"card":true}'
    b'{"template":"resolved","params":{"answered":false,"by":"","resolution":"","rating":null}'
    b',"buttons":["confirm","reopen","rate"],"card":false,"lang":"zh-Hant"}'
    b'{"template":"department_card","params":{"department":"D-","to_press":["arrive","assisted"],'
    b'"severity":"normal","urgent":true,"state":"escalated","escalations":1,"stage":2,'
    b'"flagged":true,"department_steps":[{"node":"D-","arrived":17,"~":["node"]}],'
    b'"related":["1"],"redacted":true,"category":"utilities","category":"sanitation",'
    b'"category":"public_order","category":"facilities","category":"safety_hazard",'
    b'"category":"traffic","category":"pollution","category":"neighbours","category":"noise",'
    b'"state":"reopened","state":"acknowledged","severity":"critical","severity":"high",'
    b'"severity":"low","origin":"H-0","node":"V-0","node":"S-0","node":"G-0"}'
    b'{"template":"card","params":{"id":"1","category":"","severity":"normal","urgent":false,'
    b'"state":"open","text":"","reporter":"","reporters":1,"origin":"H-0","node":"G-0",'
    b'"ack_due":17,"resolve_due":17,"close_due":null,"created_at":17,"escalations":0,'
    b'"stage":1,"flagged":false,"assignee":null,"assignee_id":null,"resolution":"",'
    b'"rating":null,"photos":0,"has_location":false,"related":[],"department_steps":[],'
    b'"redacted":false,"~":["node","origin","category"]},"lang":"zh-Hans","reply_to":null,'
    b'"ticket":"1","buttons":["ack","resolve","escalate"],"card":true,"force_reply":null,'
    b'"seq":1}'
)
RECORD_DICTIONARY = (  # versions 5 (a record less its digest) and 6 (a view)
    b'{"f":1,"o":{"template":"resolved","lang":"zh-Hans","reply_to":null,"ticket":"",'
    b'"buttons":["confirm","reopen","rate"],"card":false,"force_reply":null,"prompt":"p",'
    b'"answered":true,"seq":4},"q":{"id":"","text":"","redacted":true,"assignee":"",'
    b'"assignee_id":"","resolution":"","escalations":1,"flagged":true,"reporters":2,'
    b'"ack_due":17,"resolve_due":17,"node":"V-0","~":["node"]}}'
    b'{"o":{"buttons":["resolve"],"seq":3},"q":{"state":"escalated","node":"S-0","~":["node"]}}'
    b'{"o":{"buttons":[],"seq":4},"q":{"state":"resolved","resolution":""}}'
    b'{"seq":2,"stage":1,"renewed":["telegram:-100","sim:"],"params":{"state":"acknowledged",'
    b'"assignee":"","assignee_id":""},"buttons":["resolve","escalate"],'
    b'"live":["telegram:-100","sim:","telegram:-100","telegram:"],"reporter":[],'
    b'"co_reporter":[],"chat_buttons":{"telegram:-100":["arrive","assisted"],'
    b'"sim:D-":["arrive","assisted"]},"=":["assignee","assignee_id","reporters","node",'
    b'"node_name","node_names","ack_due","resolve_due","escalations","resolution","flagged",'
    b'"department_steps","related"]}'
    b'{"o":{"template":"department_card","buttons":["arrive","assisted"],"seq":2},'
    b'"q":{"state":"acknowledged","department":"D-","to_press":["arrive","assisted"]}}'
    b'{"o":{"template":"department_card","buttons":["arrive","assisted"]},'
    b'"q":{"department":"D-","to_press":["arrive","assisted"]}}'
    b'{"o":{"buttons":["resolve","escalate"],"seq":2},"q":{"state":"acknowledged"}}'
)


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


def settle(payload: dict[str, Any]) -> dict[str, Any]:
    """Return a payload (or a view) with the times it shows in whole seconds (``_TIMES``)."""
    params = payload.get("params")
    if not isinstance(params, dict):
        return payload
    out = {k: _second(v) if k in _TIMES else v for k, v in params.items()}
    steps = params.get("department_steps")
    if isinstance(steps, list) and steps:
        out["department_steps"] = [
            {k: _second(v) if k in _STEP_TIMES else v for k, v in step.items()}
            if isinstance(step, dict)
            else step
            for step in steps
        ]
    return {**payload, "params": out}


def _second(value: Any) -> Any:
    """Return a time to the second (floored: the minute it shows stays that minute)."""
    return math.floor(value) if isinstance(value, float) and math.isfinite(value) else value


def pack_base(base: dict[str, Any], known: dict[str, Any]) -> bytes:
    """Return a deck's base as stored: less the names ``known`` holds, deflated."""
    return _BASE + deflate(_dumps(_stripped(base, "params", known)), BASE_DICTIONARY)


def unpack_base(raw: bytes) -> dict[str, Any]:
    """Return a base as stored (its names still left out: ``card_names.fill``); or before."""
    if raw[:1] == _BASE:
        found: dict[str, Any] = json.loads(inflate(raw[1:], BASE_DICTIONARY))
        return found
    return unpack(raw)  # version 1: packed whole, names and all (``card_edits.pack``)


def pack_record(record: dict[str, Any], known: dict[str, Any]) -> bytes:
    """Return a record as stored: its digest in bytes, the rest less its names, deflated."""
    rest = _stripped({k: v for k, v in record.items() if k != "d"}, "q", known)
    digest = bytes.fromhex(str(record["d"]))
    if len(digest) != DIGEST_CHARS // 2:
        raise ValueError(f"a card's digest of {len(digest)} bytes, not {DIGEST_CHARS // 2}")
    return _RECORD + digest + (deflate(_dumps(rest), RECORD_DICTIONARY) if rest else b"")


def pack_view(view: dict[str, Any], known: dict[str, Any]) -> bytes:
    """Return a view as stored: less its names, deflated."""
    return _VIEW_PACKED + deflate(_dumps(_stripped(view, "params", known)), RECORD_DICTIONARY)


def unpack_record(raw: bytes) -> dict[str, Any]:
    """Return a record or a view as stored (its names still left out); or as stored before."""
    version = raw[:1]
    if version == _RECORD:
        size = DIGEST_CHARS // 2
        rest = raw[1 + size :]
        found: dict[str, Any] = json.loads(inflate(rest, RECORD_DICTIONARY)) if rest else {}
        return {"d": raw[1 : 1 + size].hex(), **found}
    if version == _VIEW_PACKED:
        text = inflate(raw[1:], RECORD_DICTIONARY)
    elif version == _DIFF_PACKED:
        text = inflate(raw[1:], DECK_DICTIONARY)
    elif version == _DIFF:
        text = raw[1:]
    else:
        raise ValueError(f"not a card record of a deck: version {version!r}")
    found = json.loads(text)
    return found


def _stripped(whole: dict[str, Any], part: str, known: dict[str, Any]) -> dict[str, Any]:
    """Return ``whole`` with its ``part`` (its parameters) less the names ``known`` holds."""
    if not isinstance(whole.get(part), dict):
        return whole
    return {**whole, part: card_names.strip(whole[part], known)}


def _dumps(value: dict[str, Any]) -> bytes:
    return dumps(value).encode()


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
