"""Normalisation: one canonical form for messages and keywords."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import opencc
import pytest

from bot.core import text
from bot.core.text import MAX_CHARS, normalise


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("著火了！！３棟２單元", "着火了!!3栋2单元"),  # full-width, Traditional, 著 folded
        ("樓下漏水，係咪水管爆咗", "楼下漏水,系咪水管爆咗"),  # Cantonese words stay
        ("電梯壞咗", "电梯坏咗"),
        ("乾淨", "干净"),
        ("據瞭解，鐵鍊斷咗", "据了解,铁链断咗"),  # phrase-level conversions (瞭 alone stays 瞭)
        ("回覆：冇嘢", "回复:冇嘢"),
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


def test_phrase_characters_match_the_installed_dictionary(tmp_path: Path) -> None:
    """The characters sent to OpenCC are exactly those its phrases convert differently."""
    clib = Path(opencc.__file__).parent / "clib"
    dump = tmp_path / "TSPhrases.txt"
    subprocess.run(
        [clib / "bin/opencc_dict", "-i", clib / "share/opencc/TSPhrases.ocd2", "-o", dump,
         "-f", "ocd2", "-t", "text"],
        check=True, capture_output=True,
    )  # fmt: skip
    by_char = str.maketrans(text._t2s_characters())
    sensitive = set()
    phrases = dump.read_text(encoding="utf-8").splitlines()
    assert len(phrases) > 100
    for line in phrases:
        traditional, simplified = line.split("\t")
        simplified = simplified.split(" ")[0]
        by_table = traditional.translate(by_char)
        sensitive.update(
            t for t, a, b in zip(traditional, by_table, simplified, strict=True) if a != b
        )
    ignored = set(text.PHRASE_CHARACTERS_IGNORED)
    assert ignored <= sensitive
    assert set(text.PHRASE_CHARACTERS) == sensitive - ignored


def test_table_and_converter_agree_on_the_corpora(examples: Path) -> None:
    """Outside the phrase characters, the table converts exactly as OpenCC does."""
    files = [examples / "regression.jsonl", examples / "dev.jsonl"]
    texts = [json.loads(line)["text"] for f in files for line in f.read_text().splitlines()]
    assert len(texts) > 1000
    for raw in texts:
        cleaned = raw.translate(text._TABLE)
        assert text._T2S.convert(cleaned) == cleaned.translate(text._TABLE_T2S) or any(
            c in text.PHRASE_CHARACTERS for c in cleaned
        ), raw
