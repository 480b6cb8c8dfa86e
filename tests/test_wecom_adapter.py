"""Translation of WeCom intelligent-robot callbacks (the documented JSON shapes) into IncomingMessage."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.core.org import OrgTree
from bot.sources import load_org
from bot.wecom.adapter import quote_id, strip_mention, to_incoming
from tests.fake_wecom import FakeWeCom
from tests.wecom_fixtures import CADRE, H01, RESIDENT, wecom_org


@pytest.fixture
def tree(tmp_path: Path) -> OrgTree:
    return load_org(wecom_org(tmp_path))


def test_a_group_text_loses_the_mention_and_names_the_roster_person(tree: OrgTree) -> None:
    msg = FakeWeCom().message(RESIDENT, "@联户\u2005楼道灯坏了", chatid=H01)
    m = to_incoming(msg, 100.0, tree, "联户")
    assert m is not None
    assert (m.chat, m.text, m.private) == (f"wecom:{H01}", "楼道灯坏了", False)
    assert (m.sender.account, m.sender.person) == (f"wecom:{RESIDENT}", "p-chen-zhiqiang")
    assert m.sent_at == 100.0 and m.message_id == msg["msgid"]
    unnamed = to_incoming(msg, 100.0, tree)  # no name configured: the leading mention goes
    assert unnamed is not None and unnamed.text == "楼道灯坏了"


def test_a_single_chat_is_the_users_own_chat(tree: OrgTree) -> None:
    m = to_incoming(FakeWeCom().message("stranger", "/join ABCD2345"), 1.0, tree)
    assert m is not None and (m.chat, m.private, m.sender.person) == ("wecom:stranger", True, None)
    assert m.text == "/join ABCD2345"


def test_mixed_and_quote(tree: OrgTree) -> None:
    msg = FakeWeCom().message(CADRE, "", chatid=H01)
    msg.update(
        msgtype="mixed",
        mixed={"msg_item": [
            {"msgtype": "text", "text": {"content": "@联户 备注 1 已联系电工"}},
            {"msgtype": "image", "image": {"url": "https://example.invalid/img"}},
        ]},
        quote={"msgtype": "text", "text": {"content": "工单 #1  路灯"}},
    )  # fmt: skip
    m = to_incoming(msg, 1.0, tree, "联户")
    assert m is not None
    assert m.text == "备注 1 已联系电工" and m.photos == ("https://example.invalid/img",)
    assert m.reply_to == quote_id("工单 #1 路灯")


@pytest.mark.parametrize(
    ("kind", "body", "text", "photos"),
    [
        ("image", {"url": "https://x.invalid/i"}, "", ("https://x.invalid/i",)),
        ("file", {"url": "https://x.invalid/f"}, "", ("https://x.invalid/f",)),
        ("voice", {"content": "楼下水管爆了"}, "楼下水管爆了", ()),
    ],
)
def test_media_count_in_single_chats_only(
    tree: OrgTree, kind: str, body: dict[str, str], text: str, photos: tuple[str, ...]
) -> None:
    fake = FakeWeCom()
    single = fake.message(RESIDENT, "")
    single.pop("text")
    single.update(msgtype=kind, **{kind: body})
    m = to_incoming(single, 1.0, tree)
    assert m is not None and (m.text, m.photos) == (text, photos)
    group = dict(single, chattype="group", chatid=H01)
    assert to_incoming(group, 1.0, tree) is None


def test_a_button_press_is_the_telegram_callback(tree: OrgTree) -> None:
    m = to_incoming(FakeWeCom().button(CADRE, "ack:42"), 1.0, tree)
    assert m is not None and (m.callback, m.private, m.sender.person) == (
        "ack:42",
        True,
        "p-yang-zixuan",
    )


def test_what_lianhu_ignores(tree: OrgTree) -> None:
    fake = FakeWeCom()
    stream = fake.message(RESIDENT, "")
    stream.update(msgtype="stream", stream={"id": "s"})
    enter = fake.message(RESIDENT, "")
    enter.update(msgtype="event", event={"eventtype": "enter_chat"})
    nobody = fake.message(RESIDENT, "hi")
    nobody["from"] = {}
    mention_only = fake.message(RESIDENT, "@联户", chatid=H01)
    for msg in (stream, enter, nobody, mention_only):
        assert to_incoming(msg, 1.0, tree, "联户") is None


def test_strip_mention_keeps_other_mentions() -> None:
    assert strip_mention("@张三 @联户 路灯坏了", "联户") == "@张三 路灯坏了"
    assert strip_mention("受理 1 @联户", "联户") == "受理 1"
