"""Hostile rule and org files: alias bombs, huge files and unknown tags are refused, located."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio

from bot.core.deadlines import Policy
from bot.core.errors import InvalidOrg, InvalidRules
from bot.core.org import Role
from bot.core.yamldoc import MAX_VALUES, parse
from bot.live import LiveConfig
from bot.services import Service
from bot.sources import MAX_ORG_BYTES, MAX_RULE_FILE_BYTES, MAX_RULES_BYTES, load_org, load_ruleset
from bot.storage.redis import RedisStore
from tests.conftest import ROOT, RULES_DIR
from tests.helpers import NoJobs, sent

# Nine levels of ten: a billion values from 470 bytes, as filed.
BOMB = "\n".join(
    ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    + [
        f"{n}: &{n} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]"
        for p, n in zip("abcdefgh", "bcdefghi", strict=True)
    ]
)


def test_an_alias_bomb_is_refused_at_the_alias_without_expanding_it() -> None:
    doc, problems = parse("bomb.yaml", BOMB)
    assert doc is None
    assert len(problems) == 1
    problem = problems[0]
    assert problem.source == "bomb.yaml" and problem.line > 1
    assert f"more than {MAX_VALUES:,} values" in problem.message


def test_a_smaller_bomb_past_the_cap_is_refused_too() -> None:
    # Six levels of ten is a million values: past the cap, though no single alias is big.
    text = "\n".join(BOMB.splitlines()[:6])
    doc, problems = parse("bomb.yaml", text)
    assert doc is None and problems and "values" in problems[0].message


def test_aliases_within_the_cap_still_work() -> None:
    doc, problems = parse("ok.yaml", "words: &w [停水, 没水]\nagain: *w\n")
    assert problems == [] and doc is not None
    assert doc.data == {"words": ["停水", "没水"], "again": ["停水", "没水"]}


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("rules: !!python/object:os.system {a: 1}\n", "1:8"),
        ("rules:\n  - id: !!python/object/apply:os.system [ls]\n", "2:9"),
        ("rules:\n  - id: !!python/name:os.system ''\n", "2:9"),
        ("rules: !custom x\n", "1:8"),
        ("rules: !!set {a, b}\n", "1:8"),
    ],
)
def test_an_unknown_tag_is_a_located_error(text: str, where: str) -> None:
    doc, problems = parse("tags.yaml", text)
    assert doc is None
    assert len(problems) == 1
    assert str(problems[0]).startswith(f"tags.yaml:{where}:")
    assert "tag" in problems[0].message


def test_the_default_rules_are_far_below_every_cap() -> None:
    files = sorted(RULES_DIR.glob("*.yaml"))
    assert max(p.stat().st_size for p in files) * 10 < MAX_RULE_FILE_BYTES
    assert sum(p.stat().st_size for p in files) * 10 < MAX_RULES_BYTES


def test_a_rule_file_over_the_size_cap_is_refused_unread(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(RULES_DIR, rules)
    big = rules / "big.yaml"
    big.write_text("# padding\n" * (MAX_RULE_FILE_BYTES // 10 + 1), encoding="utf-8")
    with pytest.raises(InvalidRules) as caught:
        load_ruleset(rules)
    (problem,) = caught.value.problems
    assert str(problem).startswith(f"{big}:1:1: -: ")
    assert "larger than" in problem.message


def test_the_rules_folder_has_a_total_size_cap(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(RULES_DIR, rules)
    chunk = "# padding\n" * (MAX_RULE_FILE_BYTES // 20)  # half the per-file cap each
    for i in range(MAX_RULES_BYTES // len(chunk) + 1):
        (rules / f"pad{i:03}.yaml").write_text(chunk, encoding="utf-8")
    with pytest.raises(InvalidRules) as caught:
        load_ruleset(rules)
    assert any("all rule files together" in p.message for p in caught.value.problems)


def test_an_org_file_over_its_cap_is_refused(tmp_path: Path) -> None:
    org = tmp_path / "org.yaml"
    org.write_text("# padding\n" * (MAX_ORG_BYTES // 10 + 1), encoding="utf-8")
    with pytest.raises(InvalidOrg) as caught:
        load_org(org)
    assert "larger than" in caught.value.problems[0].message


class WatchedConfig(LiveConfig):
    """A LiveConfig that notes the threads its files were read and parsed in."""

    def __init__(self, *args: Any) -> None:
        self.parsed_in: list[int] = []
        super().__init__(*args)
        self.parsed_in.clear()  # the first load, at start, may block

    def read(self, force: bool = False) -> Any:
        self.parsed_in.append(threading.get_ident())
        return super().read(force)


async def test_a_running_bot_keeps_its_rules_stays_responsive_and_tells_admins_once(
    tmp_path: Path, redis_async: redis.asyncio.Redis
) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(RULES_DIR, rules)
    org = tmp_path / "org.yaml"
    shutil.copy(ROOT / "org" / "sample_street.yaml", org)
    config = WatchedConfig(rules, org, Policy())
    service = Service(RedisStore(redis_async), config, NoJobs())
    good = config.ruleset
    (rules / "bomb.yaml").write_text(BOMB, encoding="utf-8")
    (rules / "tag.yaml").write_text("rules: !!python/object:os.system {}\n", encoding="utf-8")
    result = await service.check_config()
    assert config.parsed_in and threading.get_ident() not in config.parsed_in  # off the loop
    assert config.ruleset is good and not result.changed
    lines = [str(p) for p in result.problems]
    assert any(line.startswith(f"{rules}/bomb.yaml:") and "values" in line for line in lines)
    assert any(line.startswith(f"{rules}/tag.yaml:1:8:") for line in lines)
    admin = next(p for p in config.tree.people.values() if p.role is Role.ADMIN)
    assert (await service.check_config()).problems == ()  # the same broken files: said once
    notices = (await sent(redis_async)).delivered
    assert [chat for chat, _ in notices] == [admin.accounts[0]]
    assert "tag.yaml:1:8" in notices[0][1]
