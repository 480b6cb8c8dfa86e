"""Normalise text so that messages and keywords meet in one canonical form.

The same function runs over every keyword when rules load and over every
message before matching, so whatever it folds is folded on both sides: the
form it yields is for matching, never for display.
"""

from __future__ import annotations

import re
import unicodedata

import opencc

_T2S = opencc.OpenCC("t2s")

# Characters that Traditional-to-Simplified leaves alone, or that residents
# write in more than one way. 著火 stays 著火 after t2s (著 is also Simplified),
# so a keyword 着火 would miss it; Cantonese has common variant spellings.
_FOLD = {
    "著": "着",
    "噉": "咁",
    "俾": "畀",
    "祇": "只",
    "綫": "线",
    "㗎": "嘎",
    "喇": "啦",
    "囉": "啰",
}

# Control and format characters carry no meaning for matching (zero-width
# spaces, bidi marks, BOMs); tabs and line breaks are whitespace.
_CONTROL = [
    *range(0x00, 0x09),
    *range(0x0B, 0x20),
    *range(0x7F, 0xA0),
    0xAD,
    *range(0x200B, 0x2010),
    *range(0x202A, 0x202F),
    *range(0x2060, 0x2065),
    0xFEFF,
    *range(0xD800, 0xE000),  # lone surrogates cannot be encoded for the converter
]


def _table() -> list[int | str | None]:
    """Return one translate table for the Basic Multilingual Plane.

    Full-width ASCII (，！？ＡＢ１２) maps to half-width here, so that the common
    case passes the NFKC check and skips the much slower general NFKC pass.
    A list indexed by code point translates about twice as fast as a dict;
    characters past the BMP raise IndexError, which ``str.translate`` treats
    as "leave unchanged".
    """
    table: list[int | str | None] = list(range(0x10000))
    for code in range(0xFF01, 0xFF5F):
        table[code] = code - 0xFEE0
    table[0x3000] = " "
    for code in _CONTROL:
        table[code] = None
    table[0x09] = table[0x0A] = " "
    for source, target in _FOLD.items():
        table[ord(source)] = target
    return table


_TABLE = _table()

# A space between two CJK characters is noise ("停 水"); between Latin words it
# is not. The pattern starts with the literal space so the engine can skip ahead.
_CJK_GAP_RE = re.compile(r" (?<=[\u3400-\u9fff\uf900-\ufaff] )(?=[\u3400-\u9fff\uf900-\ufaff])")

MAX_CHARS = 4096
"""Messages are cut to this length before matching: Telegram's own limit for a text."""


def _traditional_chars() -> re.Pattern[str]:
    """Return a class of every CJK character that t2s changes on its own.

    Text with none of them is already Simplified, and skips the converter.
    """
    ranges = [(0x3400, 0x4DC0), (0x4E00, 0xA000), (0xF900, 0xFB00)]
    chars = [chr(i) for start, stop in ranges for i in range(start, stop)]
    converted = _T2S.convert("\n".join(chars)).split("\n")
    changed = [a for a, b in zip(chars, converted, strict=True) if a != b]
    return re.compile("[" + "".join(changed) + "]")


_TRADITIONAL_RE = _traditional_chars()


def normalise(text: str) -> str:
    """Return ``text`` as NFKC, half-width, case-folded, Simplified, single-spaced."""
    if len(text) > MAX_CHARS:
        text = text[:MAX_CHARS]
    text = text.translate(_TABLE)
    if not unicodedata.is_normalized("NFKC", text):
        text = unicodedata.normalize("NFKC", text)
    text = " ".join(text.casefold().split())
    if not text.isascii():
        if _TRADITIONAL_RE.search(text):
            text = _T2S.convert(text)
        if " " in text:
            text = _CJK_GAP_RE.sub("", text)
    return text
