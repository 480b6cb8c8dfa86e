"""``lianhu org invite``: a one-time code from the shell, for the first administrator."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import redis
import redis.asyncio

from bot.bindings import BindingStore
from bot.core.enrolment import AdminRefusal, Invite
from bot.core.models import Lang
from bot.core.org import Role
from bot.redis_server import EmbeddedRedis
from bot.storage import keys
from tests.conftest import ROOT
from tests.fake_bot_api import wait_for
from tests.telegram_fixtures import ORG, Harness, next_sent

CODE = re.compile(r"/join ([A-Z0-9]+)")


def lianhu(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("LIANHU_", "REDIS_URL"))}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        env={**base, "LIANHU_ORG_FILE": str(ORG), **env},
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def invites(client: redis.Redis) -> list[bytes]:
    return list(client.scan_iter(keys.invite("*")))


async def test_a_code_from_the_shell_enrols_once(
    redis_url: str, redis_sync: redis.Redis, redis_async: redis.asyncio.Redis
) -> None:
    done = lianhu("org", "invite", "grid_worker", "grid:G-03", REDIS_URL=redis_url)
    assert done.returncode == 0, done.stderr
    match = CODE.search(done.stdout)
    assert match is not None and "南岸社区第一网格" in done.stdout and "网格员" in done.stdout
    code = match.group(1)
    stored = json.loads(redis_sync.get(keys.invite(code)) or "{}")
    assert stored == {"role": "grid_worker", "scope": "G-03", "by": "cli"}
    store = BindingStore(redis_async)
    joined = await store.join(code, "telegram:555001", "新网格员", Lang.ZH_HANS)
    assert joined == Invite(Role.GRID_WORKER, "G-03")
    again = await store.join(code, "telegram:555002", "别人", Lang.ZH_HANS)  # once only
    assert again == AdminRefusal("join_invalid", {})
    english = lianhu("org", "invite", "admin", "street:S-01", "--lang", "en", REDIS_URL=redis_url)
    assert english.returncode == 0 and "to the bot in a private chat" in english.stdout


def test_a_refused_invite_says_why_and_stores_nothing(
    redis_url: str, redis_sync: redis.Redis
) -> None:
    unknown = lianhu("org", "invite", "grid_worker", "grid:G-99", REDIS_URL=redis_url)
    assert unknown.returncode == 1 and "grid:G-99" in unknown.stderr and not unknown.stdout
    level = lianhu("org", "invite", "grid_worker", "village:V-01", REDIS_URL=redis_url)
    assert level.returncode == 1 and "网格员" in level.stderr
    role = lianhu("org", "invite", "boss", "grid:G-03", REDIS_URL=redis_url)
    assert role.returncode == 2 and "invalid choice: 'boss'" in role.stderr
    assert invites(redis_sync) == []


def test_without_redis_url_the_code_goes_to_the_bots_embedded_redis(tmp_path: Path) -> None:
    data = tmp_path / "data"
    # Nothing running: the command starts the embedded server, stores, and stops it again.
    first = lianhu("org", "invite", "admin", "street:S-01", LIANHU_DATA_DIR=str(data))
    assert first.returncode == 0, first.stderr
    server = EmbeddedRedis(data)
    assert not server.answers()
    url = server.start()  # as `lianhu run` would, later
    try:
        with redis.Redis.from_url(url) as client:
            assert len(invites(client)) == 1  # kept on disk
            # The bot running on it: the command uses that server and leaves it running.
            second = lianhu("org", "invite", "admin", "street:S-01", LIANHU_DATA_DIR=str(data))
            assert second.returncode == 0, second.stderr
            assert len(invites(client)) == 2 and client.ping()
    finally:
        server.stop()


async def test_the_first_administrator_joins_and_binds_a_group(
    harness: Harness, redis_url: str
) -> None:
    fake, newcomer, group = harness.fake, 880001, -1009999000077
    await harness.start()
    fake.push(fake.message(group, newcomer, "/bind grid:G-03", name="新管理员"))
    assert "管理员" in (await next_sent(fake, 0, group, "refused")).text  # not on the roster
    done = lianhu("org", "invite", "admin", "street:S-01", REDIS_URL=redis_url)
    code = CODE.search(done.stdout).group(1)  # type: ignore[union-attr]
    fake.push(fake.message(newcomer, newcomer, f"/join {code}", name="新管理员"))
    assert "管理员" in (await next_sent(fake, 0, newcomer, "joined")).text
    n = len(fake.sent_to(group))
    fake.push(fake.message(group, newcomer, "/bind grid:G-03", name="新管理员"))
    await wait_for(lambda: len(fake.sent_to(group)) > n, what="bound")
    assert "已绑定" in fake.sent_to(group)[-1].text
