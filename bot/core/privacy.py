"""Mask personal data: mainland mobile and landline numbers, ID card numbers, bank cards."""

from __future__ import annotations

import re

# Longest first: an 18-digit ID number also contains an 11-digit run.
_ID_CARD = re.compile(
    r"(?<![0-9A-Za-z])([1-9]\d{5})(?:19|20)\d{2}(?:0[1-9]|1[0-2])\d{2}\d{3}[\dXx](?![0-9A-Za-z])"
)
_BANK_CARD = re.compile(r"(?<!\d)(\d{4})(?:[ -]?\d{4}){2,3}(?:[ -]?\d{1,3})?(?!\d)")
_MOBILE = re.compile(r"(?<!\d)(?:\+?86[ -]?)?(1[3-9]\d)[ -]?\d{4}[ -]?(\d{4})(?!\d)")
_LANDLINE = re.compile(r"(?<!\d)(0\d{2,3})[ -]?\d{7,8}(?!\d)")
_HK_PHONE = re.compile(r"(?<!\d)(?:\+?852[ -]?)?([569]\d{3})[ -]?(\d{4})(?!\d)")


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
