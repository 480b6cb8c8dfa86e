"""Small builders shared by the Redis-backed tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio

from bot.core.models import Actor, IncomingMessage, Lang
from bot.core.org import Role
from bot.live import LiveConfig
from bot.ports import Rendered, Sent
from bot.sender import Sender


class NoJobs:
    """The scheduler port for tests that check no deadline jobs."""

    def job(self, *args: object) -> None:
        return None


def resident_message(config: LiveConfig, message_id: str, text: str) -> IncomingMessage:
    """Return ``text`` as the first resident of the roster writes it in their group."""
    resident = next(p for p in config.tree.people.values() if p.role is Role.RESIDENT)
    return IncomingMessage(
        config.tree.nodes[resident.scope].chats[0], message_id,
        Actor(resident.accounts[0], resident.name, resident.id, Lang(resident.lang)), text, time.time(),
    )  # fmt: skip


@dataclass
class Gateway:
    """The chat platform's edge: records what was delivered, and fails when told to."""

    platform: str = "telegram"
    delivered: list[tuple[str, str]] = field(default_factory=list)
    messages: list[tuple[str, Rendered, str | None]] = field(default_factory=list)
    failures: int = 0

    async def send(self, chat: str, message: Rendered, reply_to: str | None) -> Sent:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("platform unavailable")
        self.delivered.append((chat, message.text))
        self.messages.append((chat, message, reply_to))
        return Sent(str(len(self.delivered)))


async def sent(redis: redis.asyncio.Redis[Any], platform: str = "telegram") -> Gateway:
    """Drain a platform's outbox through the real Sender; return what reached the platform."""
    gateway = Gateway(platform)
    await Sender(redis, gateway).drain(count=1000)
    return gateway


ROOT = Path(__file__).resolve().parent.parent


def run_worker(redis_url: str, scale: float) -> subprocess.CompletedProcess[str]:
    """Run `lianhu worker --burst` (rq worker and scheduler, then the sweeper) on the sample street."""
    env = {
        **os.environ, "REDIS_URL": redis_url, "LIANHU_RULES_DIR": str(ROOT / "routing_rules"),
        "LIANHU_ORG_FILE": str(ROOT / "org" / "sample_street.yaml"),
        "LIANHU_DEADLINE_SCALE": str(scale), "LIANHU_DEADLINE_FLOOR": "0",
    }  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "bot", "worker", "--burst"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


async def signed_in(client: Any, person_id: str, lang: str = "zh-Hans") -> dict[str, str]:
    """Sign a roster person in to the web console by a real one-time link; return the Cookie header.

    The link is issued as ``/web`` in a private chat issues it; the client's own cookie jar is
    left empty, so that one client can be several people at once.
    """
    from bot.storage.logins import Grant
    from bot.web.app import CONFIG
    from bot.web.directory import sim_account
    from bot.web.session import COOKIE, LOGINS

    app = client.app
    person = app[CONFIG].tree.people[person_id]
    token = await app[LOGINS].issue(Grant(sim_account(person) or "", person.id, lang, 0.0))
    response = await client.post("/login", data={"token": token}, allow_redirects=False)
    assert response.status == 303, await response.text()
    value = response.cookies[COOKIE].value
    client.session.cookie_jar.clear()
    return {"Cookie": f"{COOKIE}={value}"}


def stored_ticket(client: Any, ticket_id: str) -> tuple[Any, list[Any]]:
    """Return (ticket or None, events) as stored, read with a synchronous redis client."""
    from bot.storage import keys
    from bot.storage.redis import fold

    raw = client.hgetall(keys.ticket(ticket_id))
    return fold(ticket_id, {k.decode(): v for k, v in raw.items()})


def printed_address(process: subprocess.Popen[str], prefix: str, timeout: float) -> str:
    """Read ``process``'s stdout until the line starting with ``prefix``; return the address
    that follows it (without a trailing slash)."""
    assert process.stdout is not None
    lines = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith(prefix):
            return line.removeprefix(prefix).split()[0].rstrip("/")
    raise AssertionError(f"no address printed: {lines}")


def stored_ids(client: Any) -> list[str]:
    """Return every ticket id in Redis, oldest first, read with a synchronous redis client:
    the index of every ticket, in its buckets and as written before (bot.storage.indexes)."""
    from bot.storage import keys
    from bot.storage.indexes import id_order

    names = [keys.TICKETS]
    names += [keys.tickets_in(int(b)) for b in client.zrange(keys.TICKET_BUCKETS, 0, -1)]
    found: dict[str, float] = {}
    for name in names:
        found.update({m.decode(): s for m, s in client.zrange(name, 0, -1, withscores=True)})
    return sorted(found, key=lambda i: (found[i], id_order(i)))


async def owed(redis: Any) -> list[tuple[str, float]]:
    """Return every deadline in the sweeper's index ("id:stage:kind", due), earliest first."""
    from bot.storage import indexes

    return await indexes.due(redis, float("inf"), 1_000_000)
