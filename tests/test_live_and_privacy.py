"""Live rules on a running service, and personal data in what is logged and sent."""

from __future__ import annotations

import io
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio

from bot.core.classify import classify
from bot.core.deadlines import Policy
from bot.core.org import Role
from bot.live import LiveConfig
from bot.logs import MaskingFilter
from bot.services import Service
from bot.storage import keys
from bot.storage.redis import RedisStore
from tests.conftest import ROOT, RULES_DIR
from tests.helpers import NoJobs, resident_message, sent


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    rules = tmp_path / "rules"
    shutil.copytree(RULES_DIR, rules)
    org = tmp_path / "org.yaml"
    shutil.copy(ROOT / "org" / "sample_street.yaml", org)
    return rules, org


@pytest.fixture
def live(
    files: tuple[Path, Path], redis_async: redis.asyncio.Redis
) -> tuple[Path, LiveConfig, Service]:
    """Return the rules folder (a copy), its live config and a service on the real Redis."""
    rules, org = files
    config = LiveConfig(rules, org, Policy())
    return rules, config, Service(RedisStore(redis_async), config, NoJobs())


async def test_an_invalid_change_keeps_the_last_good_rules_and_tells_the_admins(
    live: tuple[Path, LiveConfig, Service], redis_async: redis.asyncio.Redis
) -> None:
    rules, config, service = live
    good = config.ruleset
    (rules / "broken.yaml").write_text(
        "rules:\n  - id: broken\n    category: noise\n    keywords: []\n"
    )
    result = await service.check_config()
    assert result.problems and not result.changed
    assert config.ruleset is good  # the last good set keeps running
    assert str(result.problems[0]).startswith(f"{rules}/broken.yaml:4:5: rules[0].keywords:")
    admin = next(p for p in config.tree.people.values() if p.role is Role.ADMIN)
    notices = (await sent(redis_async)).delivered
    assert [chat for chat, _ in notices] == [admin.accounts[0]]
    assert "broken.yaml:4:5" in notices[0][1]
    assert (await service.check_config()).problems == ()  # unchanged files: nothing new to say
    assert await redis_async.xlen(keys.outbox("telegram")) == 0  # the one notice was delivered
    # A reported message is still classified by the last good rules.
    handled = await service.handle_message(
        resident_message(config, "1", "楼下KTV每晚唱到凌晨三点，吵得睡不着")
    )
    assert handled.status == "opened"


async def test_a_valid_change_takes_effect_and_tickets_keep_their_deadlines(
    live: tuple[Path, LiveConfig, Service], redis_async: redis.asyncio.Redis
) -> None:
    rules, config, service = live
    opened = await service.handle_message(
        resident_message(config, "1", "楼下KTV每晚唱到凌晨三点，吵得睡不着")
    )
    before = await service.store.get(opened.ticket or "")
    assert before is not None
    text = (rules / "categories.yaml").read_text(encoding="utf-8")
    (rules / "categories.yaml").write_text(
        text.replace(
            "  low:\n    ack: 2d\n    resolve: 7d", "  low:\n    ack: 1h\n    resolve: 2h"
        ),
        encoding="utf-8",
    )
    (rules / "extra.yaml").write_text(
        "rules:\n  - id: noise-drums\n    category: noise\n    keywords: [敲锣打鼓]\n",
        encoding="utf-8",
    )
    result = await service.check_config()
    assert result.changed and not result.problems
    assert config.ruleset.deadline("noise", before.tier) == (3600, 7200)  # type: ignore[arg-type]
    after = await service.store.get(before.id)
    assert after == before  # the ticket keeps the deadlines of when it entered its tier
    match = classify("隔壁天天敲锣打鼓", config.ruleset)
    assert match is not None and match.rule == "noise-drums"
    # The same resident reporting the same noise again is reminded of the open ticket, once.
    again = resident_message(config, "2", "楼下KTV还在唱，敲锣打鼓到凌晨三点")
    assert (await service.handle_message(again)).status == "joined"
    assert (await service.handle_message(again)).status == "duplicate"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(MaskingFilter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


PHONE, ID_CARD = "13812345678", "44030119900101123X"


async def test_phone_and_id_numbers_never_reach_logs_or_public_cards(
    live: tuple[Path, LiveConfig, Service], redis_async: redis.asyncio.Redis, captured: io.StringIO
) -> None:
    _, config, service = live
    text = f"村口的路灯坏了半个月，联系我{PHONE}，身份证{ID_CARD}"
    opened = await service.handle_message(resident_message(config, "1", text))
    assert opened.status == "opened"
    logged = captured.getvalue()
    assert "138****5678" in logged  # the message was logged, masked
    delivered = (await sent(redis_async)).delivered
    assert delivered, "nothing was sent"
    public = {c for n in config.tree.nodes.values() for c in n.chats}
    assert any(chat in public for chat, _ in delivered)
    for blob in [logged, *(text for chat, text in delivered if chat in public)]:
        assert PHONE not in blob and ID_CARD not in blob
    stored = await service.store.get(opened.ticket or "")
    assert stored is not None and stored.text == text  # the record itself keeps what was said
