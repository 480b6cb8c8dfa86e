"""WeCom: one function turns an intelligent robot's callback into an IncomingMessage.

What Lianhu takes from WeCom's 智能机器人 (API mode), deliberately:

- ``text``, ``mixed`` (its text items; image items as attachments) and a
  ``quote`` beside them, in groups (WeCom calls back only when the robot is
  @-mentioned there; the mention is cut from the text) and in single chats;
- ``image``, ``voice`` (WeCom's transcript is the text) and ``file`` in
  single chats, the only place WeCom sends them; their URLs are kept like
  Telegram's photo ids (encrypted, short-lived resources, never downloaded);
- ``template_card_event`` button presses, whose key is the same callback data
  as a Telegram button (``ack:42``, ``danger:p3:yes``), so 受理/办结/上报/确认/重开
  and the questions' answers mean the same (the grey button of a settled card,
  ``SETTLED_KEY``, means nothing);
- nothing else: ``stream`` refreshes (Lianhu never streams), enter-chat and
  feedback events, other robots' callbacks.

A quote carries no message id, only the quoted content; its id here is a
digest of that content, and the gateway files each card it sends under the
digest of its text, so quoting a card acts on its ticket as a Telegram reply
does (provided WeCom quotes the text as sent: documented, not verified).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from bot.core.models import Actor, IncomingMessage, Lang
from bot.core.org import OrgTree, person_of_account

PLATFORM = "wecom"
SINGLE, GROUP = "single", "group"
# The key of the one grey button a card keeps when nothing is left to press (WeCom requires
# a button on a button card): pressing it does nothing.
SETTLED_KEY = "lianhu-settled"
# WeCom separates a mention from the text with an ordinary or a four-per-em space (U+2005).
_SPACE = r"[\s\u2005]"
_LEADING_MENTION = re.compile(rf"^{_SPACE}*@\S+?(?:{_SPACE}+|$)")


def chat_key(raw: str) -> str:
    """Return Lianhu's id of a WeCom chat: a group's chatid, or a single chat's userid."""
    return f"{PLATFORM}:{raw}"


def raw_id(chat: str) -> str:
    """Return the WeCom id inside a Lianhu chat id."""
    platform, _, raw = chat.partition(":")
    if platform != PLATFORM or not raw:
        raise ValueError(f"not a WeCom chat: {chat!r}")
    return raw


def quote_id(content: str) -> str:
    """Return the id a quote of ``content`` carries (a digest: WeCom quotes give no id)."""
    text = " ".join(content.split())
    return "q" + hashlib.sha1(text.encode()).hexdigest()[:20]


def strip_mention(text: str, bot_name: str = "") -> str:
    """Return ``text`` without the @-mention of the robot (named, or else the leading one)."""
    if bot_name:
        stripped = re.sub(rf"@{re.escape(bot_name)}(?:{_SPACE}+|$)", "", text)
        if stripped != text:
            return stripped.strip()
    return _LEADING_MENTION.sub("", text, count=1).strip()


def chat_of(msg: Mapping[str, Any]) -> str | None:
    """Return the Lianhu chat a callback came from, or None when it names none."""
    sender = _userid(msg)
    if msg.get("chattype") == GROUP:
        chatid = msg.get("chatid")
        return chat_key(chatid) if isinstance(chatid, str) and chatid else None
    return chat_key(sender) if sender else None


def to_incoming(
    msg: Mapping[str, Any], received_at: float, tree: OrgTree, bot_name: str = ""
) -> IncomingMessage | None:
    """Return what a decrypted callback says to the core, or None for what Lianhu ignores."""
    userid = _userid(msg)
    msgid = msg.get("msgid")
    chat = chat_of(msg)
    if not userid or not isinstance(msgid, str) or not msgid or chat is None:
        return None
    private = msg.get("chattype") != GROUP
    sender = actor_of(userid, tree)
    kind = msg.get("msgtype")
    base: dict[str, Any] = {
        "chat": chat,
        "message_id": msgid,
        "sender": sender,
        "sent_at": _created(msg, received_at),
        "private": private,
    }
    if kind == "event":
        key = pressed_key(msg)
        return IncomingMessage(**base, callback=key) if key is not None else None
    text, attachments = "", tuple[str, ...]()
    if kind == "text":
        text = _content(msg.get("text"))
    elif kind == "mixed":
        text, attachments = _mixed(msg.get("mixed"))
    elif kind in ("image", "file") and private:
        url = _obj(msg.get(kind)).get("url")
        attachments = (url,) if isinstance(url, str) and url else ()
    elif kind == "voice" and private:
        text = _content(msg.get("voice"))
    else:
        return None  # stream refreshes, media from groups, unknown kinds
    if not private:
        text = strip_mention(text, bot_name)
    if not (text.strip() or attachments):
        return None
    quote = _quoted(msg.get("quote"))
    return IncomingMessage(
        **base,
        text=text,
        photos=tuple(attachments),
        reply_to=quote_id(quote) if quote else None,
    )


def pressed_key(msg: Mapping[str, Any]) -> str | None:
    """Return the key of the button a template_card_event pressed (None: not a live button)."""
    if msg.get("msgtype") != "event":
        return None
    event = _obj(msg.get("event"))
    if event.get("eventtype") != "template_card_event":
        return None
    key = _obj(event.get("template_card_event")).get("event_key")
    return key if isinstance(key, str) and key and key != SETTLED_KEY else None


def pressed_card(msg: Mapping[str, Any]) -> str | None:
    """Return the task_id of the card a template_card_event pressed, if it names one."""
    event = _obj(_obj(msg.get("event")).get("template_card_event"))
    task_id = event.get("task_id")
    return task_id if isinstance(task_id, str) and task_id else None


def actor_of(userid: str, tree: OrgTree) -> Actor:
    """Return the actor of a WeCom user: the roster person whose account is ``wecom:<userid>``."""
    account = chat_key(userid)
    person = person_of_account(tree, account)
    if person is not None:
        return Actor(account, person.name, person.id, person.lang)
    return Actor(account, userid, None, Lang.ZH_HANS)  # WeCom sends no name or language


def _userid(msg: Mapping[str, Any]) -> str | None:
    userid = _obj(msg.get("from")).get("userid")
    return userid if isinstance(userid, str) and userid else None


def _created(msg: Mapping[str, Any], received_at: float) -> float:
    created = msg.get("create_time")
    if isinstance(created, int | float) and not isinstance(created, bool) and created > 0:
        return float(created)
    return received_at


def _obj(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _content(value: Any) -> str:
    content = _obj(value).get("content")
    return content if isinstance(content, str) else ""


def _mixed(value: Any) -> tuple[str, tuple[str, ...]]:
    texts: list[str] = []
    urls: list[str] = []
    items = _obj(value).get("msg_item")
    for item in items if isinstance(items, list) else []:
        item = _obj(item)
        if item.get("msgtype") == "text":
            texts.append(_content(item.get("text")))
        elif item.get("msgtype") == "image":
            url = _obj(item.get("image")).get("url")
            if isinstance(url, str) and url:
                urls.append(url)
    return "\n".join(t for t in texts if t), tuple(urls)


def _quoted(value: Any) -> str:
    quote = _obj(value)
    if quote.get("msgtype") == "text":
        return _content(quote.get("text"))
    if quote.get("msgtype") == "mixed":
        return _mixed(quote.get("mixed"))[0]
    return ""
