"""Cards kept true: what the sender records of a sent card, and how a card meets its view.

When a sender delivers a card it records it in its ticket's deck (``bot.storage.decks``,
with the sent marker, in one transaction): the chat, the message id, the payload it was
rendered from (as its difference from what the ticket's cards share) and the version of
the ticket it shows. A change of the ticket queues one edit entry per platform carrying
the new view (``bot.core.cards``); the sender stores that view (once per ticket, only a
newer one replacing it) and edits every recorded card that shows an older
version. A card whose send is still pending is not recorded yet: when it is sent,
the newest stored view is folded into it, and after it is recorded it is
checked against the view once more, so that a view stored meanwhile is not
missed. The messages that ask a question are cards of that question, kept true by
the same path under its id (``subject``). A reporter's notice that offers 确认/重开,
the rating or a co-reporter's own 重开 is recorded too: it keeps its text (less the
question, once nothing is left to press), and loses the buttons that no longer apply
(``reporter`` and ``co_reporter`` in the view). An
edit whose text and buttons come out the same as what the card shows is not sent at all.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from typing import Any

from bot.ports import Rendered

CARD_FIELD_SEP = " "
# A reporter's notice offering one of these is kept true.
REPORTER_TRACKED = frozenset({"confirm", "rate", "reopen"})


def subject(payload: dict[str, Any]) -> str | None:
    """Return whose cards a card payload is among: its ticket's, else its question's (``p12``).

    A question's messages are kept true the same way (``bot.core.question_cards``), in the
    same hash and view keys under the question's id, which no ticket id can be.
    """
    if not payload.get("card"):
        tracked = payload.get("ticket") and REPORTER_TRACKED & set(payload.get("buttons") or ())
        return str(payload["ticket"]) if tracked else None
    owner = payload.get("ticket") or payload.get("prompt")
    return str(owner) if owner else None


# What most card records share (their keys, templates, buttons): a preset dictionary for
# their compression, which halves what is left of a record after zlib alone. Records packed
# with it need this very dictionary to be read: never change it; a better one needs a new
# version byte (tests/test_codec.py pins its digest).
_NAMES = {"zh-Hans": "", "zh-Hant": "", "en": ""}
_SKELETON = {
    "payload": {
        "chat": "telegram:-100", "template": "department_card",
        "params": {
            "id": "", "category": "", "category_names": _NAMES, "severity": "normal",
            "urgent": False, "state": "open", "text": "", "reporter": "", "reporters": 1,
            "origin": "H-", "origin_name": "", "origin_names": _NAMES, "node": "V-",
            "node_name": "", "node_names": _NAMES, "ack_due": 17, "resolve_due": 17,
            "close_due": None, "created_at": 17, "escalations": 0, "assignee": None,
            "resolution": "", "rating": None, "photos": 0, "has_location": False, "related": [],
            "department_steps": [], "redacted": False,
        },
        "lang": "zh-Hans", "reply_to": None, "ticket": "", "buttons": ["arrive", "assisted"],
        "card": True, "force_reply": None, "seq": 1,
    },
    "message_id": "", "digest": "",
}  # fmt: skip
_TAIL = (
    '{"payload":{"chat":"telegram:-100","template":"card","buttons":["ack","resolve","escalate"]'
)
DICTIONARY = (json.dumps(_SKELETON, separators=(",", ":")) + _TAIL).encode()
_PACKED = b"\x01"  # version 1: raw deflate with DICTIONARY (zlib streams begin 0x78, JSON "{")


def pack(record: dict[str, Any]) -> bytes:
    """Return a card's record as stored: compact JSON, deflated with ``DICTIONARY``.

    A card record held the whole payload it was rendered from (the ticket's text, names
    in three languages): ~1,080 B of JSON, ~340 B packed. A deck (``bot.storage.decks``)
    packs its base, the payload its cards share, this way.
    """
    text = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
    return _PACKED + deflate(text.encode(), DICTIONARY)


def deflate(text: bytes, dictionary: bytes) -> bytes:
    """Return ``text`` raw-deflated (no zlib header) with a preset ``dictionary``."""
    packer = zlib.compressobj(9, zlib.DEFLATED, -15, zdict=dictionary)
    return packer.compress(text) + packer.flush()


def inflate(packed: bytes, dictionary: bytes) -> bytes:
    """Return what ``deflate`` packed with the same ``dictionary``."""
    unpacker = zlib.decompressobj(-15, zdict=dictionary)
    return unpacker.decompress(packed) + unpacker.flush()


def unpack(raw: bytes | str) -> dict[str, Any]:
    """Return a card's record as stored: packed (``pack``), zlib'd, or plain JSON (before)."""
    if isinstance(raw, str) or raw[:1] == b"{":
        loaded: dict[str, Any] = json.loads(raw)
        return loaded
    text = inflate(raw[1:], DICTIONARY) if raw[:1] == _PACKED else zlib.decompress(raw)
    found: dict[str, Any] = json.loads(text)
    return found


# A card's field names its chat short (``short_chat``): a Telegram supergroup's -100 and each
# platform's name in one letter; a sim chat bare. Read back by ``long_chat``.
_SHORT = (("telegram:-100", "T"), ("telegram:", "t"), ("wecom:", "W"), ("sim:", ""))


def card_field(chat: str, message_id: str) -> str:
    """Return the field of a card in its ticket's deck: "T1000000123 2" (``split_field``)."""
    return f"{short_chat(chat)}{CARD_FIELD_SEP}{message_id}"


def split_field(field: str) -> tuple[str, str]:
    """Return the chat and message id of a card's field, short (``card_field``) or long."""
    chat, _, message_id = field.rpartition(CARD_FIELD_SEP)
    return long_chat(chat), message_id


def short_chat(chat: str) -> str:
    """Return a chat as a card's field names it; the chat itself where that would mislead.

    ``telegram:-1001000000123`` -> ``T1000000123``, ``sim:SG-03`` -> ``SG-03``; a chat whose
    short form would read back as another (``sim:T12``: ``T12`` is a supergroup) keeps its
    ``platform:`` and so reads back as itself.
    """
    for long, short in _SHORT:
        if chat.startswith(long):
            found = short + chat[len(long) :]
            return found if long_chat(found) == chat else chat
    return chat


def long_chat(chat: str) -> str:
    """Return the chat a card's field names (``short_chat``), whichever form it is in."""
    if ":" in chat:
        return chat  # a long form: written before, or kept where a short one would mislead
    for long, short in _SHORT:
        if chat.startswith(short) and (short or chat[:1] not in "TtW"):
            return long + chat[len(short) :]
    return chat


def viewed(payload: dict[str, Any], view: dict[str, Any] | None) -> dict[str, Any]:
    """Return a card's payload brought to ``view`` when that is newer than what it shows."""
    if view is None or int(view["seq"]) <= int(payload.get("seq") or 0):
        return payload
    if not payload.get("card"):  # a reporter's notice: its text, the buttons still live
        shown = list(payload.get("buttons") or ())
        # The first reporter's notice offers 确认 or the rating; a co-reporter's, 重开 alone.
        live = view.get("co_reporter" if shown == ["reopen"] else "reporter")
        if live is None:  # a view stored before reporters' notices were kept true
            return payload
        kept = [b for b in shown if b in live]
        params = payload["params"]
        if shown and not kept:  # what it asked is answered: its words stop asking
            params = {**params, "answered": True}
        return {**payload, "params": params, "buttons": kept, "seq": int(view["seq"])}
    chat = payload["chat"]
    own = (view.get("chat_buttons") or {}).get(chat)  # a department's card: its own steps
    buttons = own if own is not None else view["buttons"] if chat in view["live"] else []
    # A handler's card of an older stage, where the stage sent a new card: that one is live.
    stale = own is None and not payload.get("prompt") and _superseded(payload, view)
    if stale:
        buttons = []
    # A department's card words the steps it still offers (``to_press``), never the pressed;
    # a question's card whether its reader may still answer (a climbed flag's grid card may).
    words: dict[str, Any] = {"to_press": list(own)} if own is not None else {}
    if payload.get("prompt"):
        words["answerable"] = bool(buttons)
    if stale:
        words["superseded"] = True
    return {
        **payload,
        "params": {**payload["params"], **view["params"], **words},
        "buttons": list(buttons),
        "seq": int(view["seq"]),
    }


def _superseded(payload: dict[str, Any], view: dict[str, Any]) -> bool:
    """Return whether a newer card of the ticket went to this card's chat (``bot.core.cards``)."""
    shown = payload["params"].get("stage")
    if shown is None or "stage" not in view:  # recorded or viewed before cards named a stage
        return False
    return payload["chat"] in view.get("renewed", ()) and int(shown) < int(view["stage"])


def digest(message: Rendered) -> str:
    """Return a short fingerprint of a rendered card: an edit to the same is skipped."""
    raw = repr((message.text, message.buttons)).encode()
    return hashlib.blake2b(raw, digest_size=12).hexdigest()
