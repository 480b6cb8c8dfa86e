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


def _table(t2s: dict[int, str] | None = None) -> list[int | str | None]:
    """Return one translate table for the Basic Multilingual Plane.

    Full-width ASCII (，！？ＡＢ１２) maps to half-width here, so that the common
    case passes the NFKC check and skips the much slower general NFKC pass.
    With ``t2s``, Traditional characters map to Simplified in the same pass.
    A list indexed by code point translates about twice as fast as a dict;
    characters past the BMP raise IndexError, which ``str.translate`` treats
    as "leave unchanged".
    """
    table: list[int | str | None] = list(range(0x10000))
    for code, simplified in (t2s or {}).items():
        table[code] = simplified
    for code in range(0xFF01, 0xFF5F):
        table[code] = code - 0xFEE0
    table[0x3000] = " "
    for code in _CONTROL:
        table[code] = None
    table[0x09] = table[0x0A] = " "
    for source, target in _FOLD.items():
        table[ord(source)] = target
    return table


def _t2s_characters() -> dict[int, str]:
    """Return what OpenCC's t2s makes of every CJK character on its own, where it changes it."""
    ranges = [(0x3400, 0x4DC0), (0x4E00, 0xA000), (0xF900, 0xFB00)]
    chars = [chr(i) for start, stop in ranges for i in range(start, stop)]
    converted = _T2S.convert("\n".join(chars)).split("\n")
    return {ord(a): b for a, b in zip(chars, converted, strict=True) if a != b}


_TABLE = _table()
_TABLE_T2S = _table(_t2s_characters())

PHRASE_CHARACTERS = "乾俱剋劄吒噁彷徵扞於昇氾沈濛甦畫瞭祕脩蒐薹藉衹袷覆計谿逕釐鉅鍊鍾陞麼"
"""Characters whose t2s conversion depends on the phrase they stand in (瞭解 → 了解, 憑藉 → 凭借).

Every other character converts the same alone as in any phrase of OpenCC's TSPhrases
dictionary, so a character table (one ``str.translate``) does the work of the
converter, which is about ten times slower. Text with one of these goes through
OpenCC itself. Left out on purpose, as everyday Simplified or Cantonese characters
whose phrase forms (毛坏 → 毛坯, 英哩 → 英里, 么麽 → 幺麽) never matter for matching:
PHRASE_CHARACTERS_IGNORED. tests/test_text.py re-derives both from the installed dictionary.
"""
PHRASE_CHARACTERS_IGNORED = "么坏哩麽"
_PHRASE_RE = re.compile(f"[{PHRASE_CHARACTERS}]")

# A space between two CJK characters is noise ("停 水"); between Latin words it
# is not. The pattern starts with the literal space so the engine can skip ahead.
_CJK_GAP_RE = re.compile(r" (?<=[\u3400-\u9fff\uf900-\ufaff] )(?=[\u3400-\u9fff\uf900-\ufaff])")

MAX_CHARS = 4096
"""Messages are cut to this length before matching: Telegram's own limit for a text."""


def normalise(text: str) -> str:
    """Return ``text`` as NFKC, half-width, case-folded, Simplified, single-spaced."""
    if len(text) > MAX_CHARS:
        text = text[:MAX_CHARS]
    if _PHRASE_RE.search(text) is None:
        text = text.translate(_TABLE_T2S)  # the common case: Traditional to Simplified by table
    else:
        text = _T2S.convert(text.translate(_TABLE))
    if not unicodedata.is_normalized("NFKC", text):
        text = unicodedata.normalize("NFKC", text)
    text = " ".join(text.casefold().split())
    if " " in text and not text.isascii():
        text = _CJK_GAP_RE.sub("", text)
    return text
