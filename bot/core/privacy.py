"""Mask personal data: mainland mobile and landline numbers, ID card numbers, bank cards."""

from __future__ import annotations

import re

# Longest first: an 18-digit ID number also contains an 11-digit run.
_ID_CARD = re.compile(
    r"(?<![0-9A-Za-z])([1-9]\d{5})(?:19|20)\d{2}(?:0[1-9]|1[0-2])\d{2}\d{3}[\dXx](?![0-9A-Za-z])"
)
# A number stands alone: not inside a run of ASCII letters and digits (hex ids, hashes,
# rq's worker names), while Chinese text may touch it (电话13812345678).
_BANK_CARD = re.compile(
    r"(?<![0-9A-Za-z])(\d{4})(?:[ -]?\d{4}){2,3}(?:[ -]?\d{1,3})?(?![0-9A-Za-z])"
)
_MOBILE = re.compile(
    r"(?<![0-9A-Za-z])(?:\+?86[ -]?)?(1[3-9]\d)[ -]?\d{4}[ -]?(\d{4})(?![0-9A-Za-z])"
)
_LANDLINE = re.compile(r"(?<![0-9A-Za-z])(0\d{2,3})[ -]?\d{7,8}(?![0-9A-Za-z])")
_HK_PHONE = re.compile(r"(?<![0-9A-Za-z])(?:\+?852[ -]?)?([569]\d{3})[ -]?(\d{4})(?![0-9A-Za-z])")


def mask(text: str) -> str:
    """Return ``text`` with phone, ID card and bank card numbers masked."""
    if not any(c.isdigit() for c in text):
        return text
    text = _ID_CARD.sub(lambda m: m.group(1) + "*" * 8 + "****", text)
    text = _MOBILE.sub(lambda m: f"{m.group(1)}****{m.group(2)}", text)
    text = _BANK_CARD.sub(lambda m: f"{m.group(1)} **** ****", text)
    text = _LANDLINE.sub(lambda m: f"{m.group(1)}-********", text)
    text = _HK_PHONE.sub(lambda m: f"{m.group(1)[:1]}***{m.group(2)}", text)
    return text
