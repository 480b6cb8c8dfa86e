"""Mask personal data: mobile and landline numbers, ID card numbers, bank cards, WeChat ids.

People write numbers in many ways: with spaces, dots or dashes between groups, in
full-width digits (１３８…), in Chinese numerals (一三八…), glued to a label (tel138…,
ID4403…, wx138…). Each pattern runs on a copy of the text where every such digit is an
ASCII digit, one character for one, so a match there masks the same span of the original.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

# One character for one: full-width digits and separators, Chinese numerals (幺 is "one" when
# reading out a number, 两 "two").
_DIGITS = str.maketrans(
    "０１２３４５６７８９〇零一幺二两三四五六七八九－．　ｘＸ",
    "01234567890011223456789-. xX",
)
# A number stands alone: not inside a run of ASCII letters and digits (hex ids, hashes,
# rq's worker names), while Chinese text may touch it (电话13812345678), and so may a label.
_START = (
    r"(?:(?<![0-9A-Za-z])|(?<=tel)|(?<=Tel)|(?<=TEL)|(?<=ID)|(?<=id)|(?<=Id)"
    r"|(?<=wx)|(?<=WX)|(?<=vx)|(?<=VX)|(?<=phone)|(?<=mobile))"
)
_END = r"(?![0-9A-Za-z])"
_SEP = r"[ .-]?"
# Longest first: an 18-digit ID number also contains an 11-digit run.
_ID_CARD = re.compile(
    _START + r"([1-9]\d{5})[ ]?(?:19|20)\d{2}(?:0[1-9]|1[0-2])\d{2}[ ]?\d{3}[\dXx]" + _END
)
_BANK_CARD = re.compile(r"(?<![0-9A-Za-z])(\d{4})(?:[ -]?\d{4}){2,3}(?:[ -]?\d{1,3})?" + _END)
_MOBILE = re.compile(
    _START + r"(?:\+?86" + _SEP + r")?(1[3-9]\d)" + _SEP + r"\d{4}" + _SEP + r"(\d{4})" + _END
)
_LANDLINE = re.compile(r"(?<![0-9A-Za-z])(0\d{2,3})[ -]?\d{7,8}" + _END)
_HK_PHONE = re.compile(r"(?<![0-9A-Za-z])(?:\+?852[ -]?)?([569]\d{3})[ -]?(\d{4})" + _END)
# WeChat ids: wxid_… as WeChat makes them, or a chosen id (6-20 characters, a letter first)
# right after a label (微信, wx, vx, WeChat).
_WXID = re.compile(r"(?<![0-9A-Za-z])(wxid_)[A-Za-z0-9_-]{4,32}" + _END)
_WECHAT = re.compile(
    r"((?:微信|薇信|威信|v信|V信|(?<![A-Za-z])(?:wx|WX|Wx|vx|VX|Vx|wechat|WeChat|weixin))"
    r"\s*(?:号|id|ID)?\s*[:：]?\s*)([A-Za-z][A-Za-z0-9_-]{5,19})" + _END
)
_WECHAT_HINTS = ("wx", "vx", "信", "wechat", "weixin")
_NUMERALS = frozenset("０１２３４５６７８９〇零一幺二两三四五六七八九")


# One change masks the same few texts for every card and notice it makes (an escalation: ~27
# times), and a sweep makes thousands: each text's patterns run once.
@lru_cache(maxsize=1024)
def mask(text: str) -> str:
    """Return ``text`` with phone, ID card and bank card numbers and WeChat ids masked."""
    lowered = text.lower()
    if not any(c.isdigit() or c in _NUMERALS for c in text) and not any(
        hint in lowered for hint in _WECHAT_HINTS
    ):
        return text
    pair = (text, text.translate(_DIGITS))
    pair = _sub(_ID_CARD, lambda m: m.group(1) + "*" * 8 + "****", pair)
    pair = _sub(_MOBILE, lambda m: f"{m.group(1)}****{m.group(2)}", pair)
    pair = _sub(_BANK_CARD, lambda m: f"{m.group(1)} **** ****", pair)
    pair = _sub(_LANDLINE, lambda m: f"{m.group(1)}-********", pair)
    pair = _sub(_HK_PHONE, lambda m: f"{m.group(1)[:1]}***{m.group(2)}", pair)
    pair = _sub(_WXID, lambda m: f"{m.group(1)}****", pair)
    pair = _sub(_WECHAT, lambda m: f"{m.group(1)}{m.group(2)[:2]}****", pair)
    return pair[0]


def _sub(
    pattern: re.Pattern[str], replace: Callable[[re.Match[str]], str], pair: tuple[str, str]
) -> tuple[str, str]:
    """Replace each match found in the normalised text, in both texts alike."""
    original, normal = pair
    out_original, out_normal, last = [], [], 0
    for match in pattern.finditer(normal):
        new = replace(match)
        out_original += [original[last : match.start()], new]
        out_normal += [normal[last : match.start()], new]
        last = match.end()
    if last == 0:
        return pair
    out_original.append(original[last:])
    out_normal.append(normal[last:])
    return "".join(out_original), "".join(out_normal)
