"""``lianhu privacy export | forget`` as an administrator runs them, against a real Redis."""

from __future__ import annotations

import json

from bot.core.personal import ERASED
from bot.storage import indexes
from tests.test_cli_invite import lianhu
from tests.test_personal_data import LAMP, LAMP_AGAIN, PHONE, raw_events, two_reporters
from tests.test_services import ORG, World
from tests.test_services import world as world  # the fixture, re-exported for these tests


async def test_export_by_person_id_and_by_account(world: World, redis_url: str) -> None:
    chen, huang, ticket_id = await two_reporters(world)
    org = ("--org", str(ORG))
    by_person = lianhu("privacy", "export", chen.id, *org, REDIS_URL=redis_url)
    assert by_person.returncode == 0, by_person.stderr
    assert LAMP in by_person.stdout  # UTF-8 as written, not \\u escapes
    document = json.loads(by_person.stdout)
    assert document["accounts"] == list(chen.accounts) and document["person"]["id"] == chen.id
    assert [t["id"] for t in document["tickets"]] == [ticket_id]
    assert document["tickets"][0]["texts"] == [LAMP]
    assert LAMP_AGAIN not in by_person.stdout and huang.name not in by_person.stdout

    by_account = lianhu("privacy", "export", huang.accounts[0], REDIS_URL=redis_url)
    assert by_account.returncode == 0, by_account.stderr
    document = json.loads(by_account.stdout)
    assert document["accounts"] == [huang.accounts[0]] and document["person"] is None
    assert document["tickets"][0]["texts"] == [LAMP_AGAIN]
    assert PHONE not in by_account.stdout and chen.name not in by_account.stdout


async def test_forget_previews_then_erases_once(world: World, redis_url: str) -> None:
    chen, _, ticket_id = await two_reporters(world)
    before = await raw_events(world, ticket_id)
    org = ("--org", str(ORG))

    preview = lianhu("privacy", "forget", chen.id, *org, REDIS_URL=redis_url)
    assert preview.returncode == 0, preview.stderr
    assert f"ticket {ticket_id}: 8 fields to erase" in preview.stdout
    assert "run again with --yes" in preview.stdout
    assert await raw_events(world, ticket_id) == before

    done = lianhu("privacy", "forget", chen.id, *org, "--yes", REDIS_URL=redis_url)
    assert done.returncode == 0, done.stderr
    assert f"ticket {ticket_id}: 8 fields erased" in done.stdout
    assert "redis: AOF rewritten" in done.stdout  # the test server keeps an AOF
    after = await raw_events(world, ticket_id)
    assert len(after) == len(before) + 1 and after[-1]["kind"] == "erased"
    assert after[-1]["actor"] == "system" and after[-1]["data"]["by"] == "cli"
    assert after[0]["data"]["text"] == ERASED and PHONE not in json.dumps(after)

    again = lianhu("privacy", "forget", chen.id, *org, "--yes", REDIS_URL=redis_url)
    assert again.returncode == 0 and "nothing stored about" in again.stdout
    assert await raw_events(world, ticket_id) == after


async def test_an_unknown_person_is_refused_and_nothing_changes(
    world: World, redis_url: str
) -> None:
    chen, _, ticket_id = await two_reporters(world)
    before = await raw_events(world, ticket_id)
    for command in (("export",), ("forget",), ("forget", "--yes")):
        refused = lianhu("privacy", *command, "p-nobody", "--org", str(ORG), REDIS_URL=redis_url)
        assert refused.returncode == 1 and not refused.stdout
        assert "'p-nobody' is no person id" in refused.stderr and "nothing was" in refused.stderr
    assert await raw_events(world, ticket_id) == before
    assert await indexes.reported(world.redis, chen.accounts[:1]) == ["1"]
