"""Redis through Sentinel: the URL, and a real failover under the ticket service.

The test starts a master, a replica and a sentinel (all real redis-server processes on
local TCP ports), opens tickets through a Service whose clients come from the Sentinel URL,
kills the master with SIGKILL, and goes on reporting: the sentinel promotes the replica,
the same clients find it, and every ticket written before the kill (and replicated: the
test waits for the replica, as asynchronous replication can otherwise lose the last
writes) and after it is there, with no id used twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import redis.exceptions
from pydantic import ValidationError

from bot.core.deadlines import Policy
from bot.core.org import Role
from bot.live import LiveConfig
from bot.redis_clients import RedisURLError, async_client, parse_sentinel, sync_client
from bot.scheduling import RqScheduler
from bot.services import Service
from bot.settings import Settings
from bot.storage.redis import RedisStore
from tests.conftest import RULES_DIR
from tests.test_services import ORG, Clock, Schedules, World

SERVICE = "lianhu"


def test_a_sentinel_url_names_the_sentinels_the_service_the_database_and_the_passwords() -> None:
    found = parse_sentinel(
        "rediss+sentinel://:s%40cret@10.0.0.1:26379,[::1]:26380/lianhu/2"
        "?sentinel_password=other&ssl_ca_certs=/etc/ca.pem"
    )
    assert found is not None
    assert found.sentinels == (("10.0.0.1", 26379), ("::1", 26380))
    assert (found.service, found.db, found.password) == ("lianhu", 2, "s@cret")
    assert found.master_kwargs() == {
        "db": 2, "password": "s@cret", "ssl": True, "ssl_ca_certs": "/etc/ca.pem"
    }  # fmt: skip
    assert found.sentinel_kwargs() == {"password": "other"}
    assert parse_sentinel("redis://localhost:6379/0") is None
    assert parse_sentinel("unix:///tmp/redis.sock") is None


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("redis+sentinel://host/lianhu", "HOST:PORT"),
        ("redis+sentinel://h:26379", "/SERVICE"),
        ("redis+sentinel://h:26379/a/b/c", "/SERVICE"),
        ("redis+sentinel://h:26379/lianhu/x", "not a number"),
        ("redis+sentinel://h:26379/lianhu?timeout=3", "unknown Sentinel URL options: timeout"),
    ],
)
def test_a_bad_sentinel_url_is_refused_with_the_reason(url: str, why: str) -> None:
    with pytest.raises(RedisURLError, match=why):
        parse_sentinel(url)
    with pytest.raises(RedisURLError):
        sync_client(url)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Servers:
    """A master, a replica and one sentinel (quorum 1), each a redis-server on 127.0.0.1."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.binary = shutil.which("redis-server") or "redis-server"
        self.ports = {"master": free_port(), "replica": free_port(), "sentinel": free_port()}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self) -> None:
        master = self.ports["master"]
        common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        for name, extra in (("master", []), ("replica", ["--replicaof", "127.0.0.1", str(master)])):
            folder = self.folder / name
            folder.mkdir()
            self.procs[name] = subprocess.Popen(
                [self.binary, "--port", str(self.ports[name]), "--dir", str(folder), *common,
                 *extra],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        conf = self.folder / "sentinel.conf"
        conf.write_text(
            f"port {self.ports['sentinel']}\nbind 127.0.0.1\ndir {self.folder}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {master} 1\n"
            f"sentinel down-after-milliseconds {SERVICE} 400\n"
            f"sentinel failover-timeout {SERVICE} 2000\n"
        )
        self.procs["sentinel"] = subprocess.Popen(
            [self.binary, str(conf), "--sentinel"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        for name in ("master", "replica", "sentinel"):
            self._until(lambda n=name: self._pings(self.ports[n]), f"{name} up")
        self._until(
            lambda: self.client("replica").info("replication").get("master_link_status") == "up",
            "the replica in sync",
        )
        self._until(lambda: self.master_port() == master, "the sentinel watching the master")
        # A sentinel learns of replicas from the master's INFO (every 10 s): killing the
        # master before it knows the replica would leave nothing to promote.
        self._until(self.replica_known, "the sentinel knowing the replica")

    def replica_known(self) -> bool:
        try:
            found = self.client("sentinel").sentinel_slaves(SERVICE)
        except redis.exceptions.RedisError:
            return False
        return any(int(r["port"]) == self.ports["replica"] and not r["is_odown"]
                   and not r["is_sdown"] for r in found)  # fmt: skip

    def client(self, name: str) -> redis.Redis:
        return redis.Redis(port=self.ports[name], socket_timeout=2, decode_responses=True)

    def _pings(self, port: int) -> bool:
        try:
            return bool(redis.Redis(port=port, socket_timeout=0.5).ping())
        except redis.exceptions.ConnectionError:
            return False

    def master_port(self) -> int | None:
        try:
            found = self.client("sentinel").sentinel_get_master_addr_by_name(SERVICE)
        except redis.exceptions.RedisError:
            return None
        return int(found[1]) if found else None

    def _until(self, check: object, what: str, seconds: float = 30.0) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if check():  # type: ignore[operator]
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.ports['sentinel']}/{SERVICE}/0"

    def kill(self, name: str) -> None:
        proc = self.procs[name]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    found = Servers(tmp_path)
    try:
        found.start()
        yield found
    finally:
        found.stop()


REPORTS = [
    "村口的路灯坏了半个月，晚上黑漆漆的", "楼下KTV每晚唱到凌晨三点，吵得睡不着",
    "垃圾三天没人收，臭死了", "电梯又坏了，老人上不了楼",
]  # fmt: skip


async def test_tickets_survive_a_sentinel_failover_and_reporting_goes_on(
    servers: Servers,
) -> None:
    client, sync = async_client(servers.url), sync_client(servers.url)
    config = LiveConfig(RULES_DIR, ORG, Policy(scale=1.0, join_window=0.0))
    store = RedisStore(client)
    clock, schedules = Clock(), Schedules(RqScheduler(sync))
    world = World(Service(store, config, schedules, clock), store, client, clock, schedules,
                  config.tree)  # fmt: skip
    resident = world.person(Role.RESIDENT, "H-01")
    try:
        before = []
        for i in range(8):
            handled = await world.service.handle_message(world.message(resident, REPORTS[i % 4]))
            assert handled.ticket is not None
            before.append(handled.ticket)
        # Asynchronous replication: only what the replica has acknowledged survives a kill.
        assert await client.execute_command("WAIT", 1, 5000) == 1
        servers.kill("master")

        after: list[str] = []
        end = time.monotonic() + 60
        message = world.message(resident, REPORTS[0])
        while len(after) < 8:
            assert time.monotonic() < end, "no new master within 60 s"
            try:
                handled = await world.service.handle_message(message)
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
                    redis.exceptions.ReadOnlyError):  # fmt: skip
                await asyncio.sleep(0.2)  # as the inbox does: the update stays and is retried
                continue
            assert handled.ticket is not None
            after.append(handled.ticket)
            message = world.message(resident, REPORTS[len(after) % 4])

        assert servers.master_port() == servers.ports["replica"]
        assert len(set(before + after)) == 16  # no id given twice
        for ticket_id in before + after:
            assert await store.get(ticket_id) is not None, ticket_id
        assert set(await store.all_ids()) == set(before + after)
        assert sync.ping()  # the blocking client (rq's) found the new master too
    finally:
        await client.aclose()
        sync.close()


def test_settings_refuse_a_bad_sentinel_url_at_start() -> None:
    with pytest.raises(ValidationError, match="HOST:PORT"):
        Settings(REDIS_URL="redis+sentinel://sentinel-a/lianhu")
    assert Settings(REDIS_URL="redis+sentinel://a:26379,b:26379/lianhu").redis_url


def test_both_passwords_of_a_sentinel_url_are_redacted_from_logs() -> None:
    settings = Settings(REDIS_URL="redis+sentinel://:m4ster@a:26379/lianhu?sentinel_password=s3nt")
    assert {"m4ster", "s3nt"} <= set(settings.secret_values())


async def test_a_sentinel_client_waits_for_a_free_connection_past_its_cap(
    servers: Servers,
) -> None:
    """Found in the long scaled chaos run: a receiver on a Sentinel URL logged "Too many
    connections" (redis-py's pool raises past 100 connections) and held its sending. The
    Sentinel client now waits for a free connection, as the plain URL's does."""
    client = async_client(servers.url, max_connections=8)
    try:
        await client.delete("q")
        # 150 at once, each holding a connection for 0.2 s: past any pool's cap
        found = await asyncio.gather(*(client.blpop(["q"], 0.2) for _ in range(150)))
        assert found == [None] * 150
        assert len(client.connection_pool._in_use_connections) == 0  # type: ignore[attr-defined]
        assert client.connection_pool.max_connections == 8
    finally:
        await client.aclose()
