"""Normalisation: one canonical form for messages and keywords."""

from __future__ import annotations

import pytest

from bot.core.text import MAX_CHARS, normalise


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("著火了！！３棟２單元", "着火了!!3栋2单元"),  # full-width, Traditional, 著 folded
        ("樓下漏水，係咪水管爆咗", "楼下漏水,系咪水管爆咗"),  # Cantonese words stay
        ("電梯壞咗", "电梯坏咗"),
        ("乾淨", "干净"),  # a phrase-level conversion
        ("Power's been OUT", "power's been out"),
        ("ＨＥＬＰ！", "help!"),
        ("停 水 了", "停水了"),  # a space between CJK characters is noise
        ("no  water\tat all", "no water at all"),
        ("a\u200bb\x00c\u202ed", "abcd"),  # control and format characters
        ("①②", "12"),  # the general NFKC pass still runs where needed
        ("A\u3000B", "a b"),
        ("🔥🔥", "🔥🔥"),
        ("", ""),
        ("   ", ""),
    ],
)
def test_normalise(raw: str, expected: str) -> None:
    assert normalise(raw) == expected


def test_normalise_is_idempotent() -> None:
    for raw in ["著火了！！３棟２單元", "Power's been OUT", "樓下漏水，係咪水管爆咗", "停 水 了"]:
        once = normalise(raw)
        assert normalise(once) == once


def test_traditional_and_simplified_meet() -> None:
    pairs = [
        ("煤氣洩漏", "煤气泄漏"),
        ("觸電", "触电"),
        ("電線着火", "电线著火"),
        ("噪音擾民", "噪音扰民"),
    ]
    for traditional, simplified in pairs:
        assert normalise(traditional) == normalise(simplified)


def test_long_text_is_cut() -> None:
    assert len(normalise("水" * (MAX_CHARS * 25))) == MAX_CHARS
