"""Masking finds phone, ID and WeChat numbers however they are written, and nothing else."""

from __future__ import annotations

import pytest

from bot.core.privacy import mask


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("tel13800138000", "tel138****8000"),
        ("TEL:13800138000", "TEL:138****8000"),
        ("Tel 138-0013-8000", "Tel 138****8000"),
        ("wx13800138000 加我", "wx138****8000 加我"),
        ("VX13800138000", "VX138****8000"),
        ("phone13800138000", "phone138****8000"),
        ("138.0013.8000", "138****8000"),
        ("138 0013 8000", "138****8000"),
        ("+86 138.0013.8000", "138****8000"),
        ("打１３８００１３８０００找我", "打138****8000找我"),
        ("１３８－００１３－８０００", "138****8000"),
        ("电话一三八零零一三八零零零", "电话138****8000"),
        ("幺三八 零零幺三 八零零零", "138****8000"),
        ("一三八〇〇一三八〇〇〇", "138****8000"),
        ("ID440301199003071234", "ID440301************"),
        ("id:44030119900307123x", "id:440301************"),
        ("身份证 440301 19900307 123X", "身份证 440301************"),
        ("身份证４４０３０１１９９００３０７１２３Ｘ", "身份证440301************"),
        ("微信 zhang_san88 加我", "微信 zh**** 加我"),
        ("微信号：LiLei_2024", "微信号：Li****"),
        ("wx: wang-wu-1990", "wx: wa****"),
        ("WeChat ID LiLei2024", "WeChat ID Li****"),
        ("wxid_abcd1234ef 找我", "wxid_**** 找我"),
    ],
)
def test_every_form_is_masked(raw: str, expected: str) -> None:
    assert mask(raw) == expected


@pytest.mark.parametrize(
    "text",
    [
        "工单 #42 已受理", "查询 1024", "/ack 20261204", "16:40:42 停电", "2026-12-04 08:30",
        "2026.12.04", "¥1380.00", "1380元一个月", "价格 13800 元", "5栋2单元301室",
        "3号楼1单元1302", "G-03 网格", "一二三四五", "三三两两的人", "第一百三十八号",
        "微信群里说的", "加个微信吧", "wx 好友", "wxid", "version 1.38.0013", "发了 12 条微信",
        "job deadline-12-1-ack-1794906770", "Worker 90f3c7e13812345678abdb9468b7e6f7 started",
        "rq:job:13800138000abc",
    ],
)  # fmt: skip
def test_ordinary_numbers_and_words_are_kept(text: str) -> None:
    assert mask(text) == text
