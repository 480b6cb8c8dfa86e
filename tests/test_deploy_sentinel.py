"""deploy/docker-compose.sentinel.yml checked without a Docker engine.

The file is read as Compose reads it (the base file, then the override; ``${VAR}`` from the
env file). Every Lianhu service runs a real ``lianhu`` command with options the CLI accepts
and sets only variables the settings read; the Redis nodes and the sentinels name one master
and one pair of password variables. Then the configurations the nodes and sentinels write
are run as they are by local redis-server processes (service names and ports mapped to
loopback addresses): the replica syncs, the sentinels agree on the master, a client on the URL the
bot gets writes, and after the master is killed the sentinels promote the replica and the
same client goes on.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from bot.cli import build_parser
from bot.redis_clients import parse_sentinel, sync_client
from tests import compose_local
from tests.conftest import ROOT
from tests.test_deploy import subcommands, variables
from tests.test_sentinel import free_port

DEPLOY = ROOT / "deploy"
LIANHU = ("bot", "web", "worker")
NODES = ("redis", "redis-replica")
SENTINELS = ("sentinel-1", "sentinel-2", "sentinel-3")
ENV = {
    "LIANHU_REDIS_PASSWORD": "m4ster-pw", "LIANHU_SENTINEL_PASSWORD": "s3ntinel-pw",
    "LIANHU_WEBHOOK_URL": "https://bot.example.org/telegram",
}  # fmt: skip


def merged(env: dict[str, str] = ENV, used: set[str] | None = None) -> dict[str, Any]:
    """Return the merged services (and the named volumes under "<volumes>")."""
    found = compose_local.merged(env)
    if used is not None:
        used |= found.used
    return found.services | {"<volumes>": found.volumes}


def config_of(service: dict[str, Any]) -> tuple[str, str]:
    """Return the configuration a node or sentinel writes, and the line that starts it."""
    assert service["entrypoint"] == ["sh", "-c"]
    script = service["command"][0]
    found = re.search(r"\[ -f (\S+) \] \|\| cat > \1 <<'END'\n(.*?)\nEND\n(.*)", script, re.S)
    assert found is not None, script
    return found[2], found[3].strip()


def directives(conf: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in conf.splitlines():
        words = line.split()
        key = " ".join(words[:2]) if words[0] == "sentinel" else words[0]
        out.setdefault(key, []).append(" ".join(words[1 if words[0] != "sentinel" else 2 :]))
    return out


def test_lianhu_services_run_real_commands_with_real_settings_on_the_sentinels() -> None:
    used: set[str] = set()
    services = merged(used=used)
    assert {*LIANHU, *NODES, *SENTINELS, "proxy"} <= set(services)
    parser = build_parser()
    for name in LIANHU:
        service = services[name]
        command = service["command"]
        assert command[0] in subcommands()
        parser.parse_args(command)  # an unknown option exits (SystemExit fails the test)
        assert set(service["environment"]) <= variables(), name
        url = parse_sentinel(service["environment"]["REDIS_URL"])
        assert url is not None, name
        assert url.sentinels == tuple((s, 26379) for s in SENTINELS)
        assert url.service == "lianhu" and url.db == 0
        assert url.password == ENV["LIANHU_REDIS_PASSWORD"]
        assert url.sentinel_password == ENV["LIANHU_SENTINEL_PASSWORD"]
        assert set(SENTINELS) <= set(service["depends_on"])
        assert "redis" in service["networks"]
    # Passwords come from the env file only, under these two names.
    assert used == {*ENV}
    env = {
        line.split("=", 1)[0]
        for line in (DEPLOY / "lianhu.env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert {"LIANHU_REDIS_PASSWORD", "LIANHU_SENTINEL_PASSWORD"} <= env


def test_nodes_and_sentinels_name_one_master_and_one_password() -> None:
    services = merged()
    master, sentinel_password = ENV["LIANHU_REDIS_PASSWORD"], ENV["LIANHU_SENTINEL_PASSWORD"]
    for name in NODES:
        service = services[name]
        conf, start = config_of(service)
        found = directives(conf)
        assert found["requirepass"] == [master] and found["masterauth"] == [master], name
        assert found["appendonly"] == ["yes"], name
        assert found["replica-announce-ip"] == [name], name  # the name the others resolve
        assert start == "exec docker-entrypoint.sh redis-server /data/redis.conf"
        assert service["networks"] == ["redis"] and "ports" not in service
        volume = next(v for v in service["volumes"] if v.endswith(":/data"))
        assert volume.split(":")[0] in services["<volumes>"]
    assert "replicaof" not in directives(config_of(services["redis"])[0])
    assert directives(config_of(services["redis-replica"])[0])["replicaof"] == ["redis 6379"]
    confs = set()
    for name in SENTINELS:
        service = services[name]
        conf, start = config_of(service)
        confs.add(conf)
        found = directives(conf)
        assert found["sentinel monitor"] == ["lianhu redis 6379 2"]  # 2 of 3 agree
        assert found["sentinel auth-pass"] == [f"lianhu {master}"]
        assert found["requirepass"] == [sentinel_password]
        assert found["sentinel sentinel-pass"] == [sentinel_password]
        assert found["port"] == ["26379"]
        assert start == "exec redis-server /data/sentinel.conf --sentinel"
        assert service["networks"] == ["redis"] and "ports" not in service
        assert set(service["depends_on"]) == set(NODES)
        assert [v.split(":")[0] for v in service["volumes"]] == [name]  # a file of its own
    assert len(confs) == 1
    assert "redis-data:/data" in services["redis"]["volumes"]  # the base file's AOF


class Local:
    """The compose file's Redis nodes and sentinels as local processes on loopback ports."""

    def __init__(self, folder: Path, services: dict[str, Any]) -> None:
        self.folder = folder
        self.binary = shutil.which("redis-server") or "redis-server"
        self.ports = {name: free_port() for name in (*NODES, *SENTINELS)}
        self.services = services
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def local(self, conf: str, name: str) -> str:
        """Point a configuration at loopback: each service name at its own port."""
        data = self.folder / name
        data.mkdir()
        for node in NODES:
            conf = re.sub(rf"\b{node} 6379\b", f"127.0.0.1 {self.ports[node]}", conf)
        conf = re.sub(r"^replica-announce-ip \S+$", "replica-announce-ip 127.0.0.1", conf,
                      flags=re.M)  # fmt: skip
        conf = conf.replace("port 26379", f"port {self.ports[name]}")
        conf = re.sub(r"^dir \S+$", "", conf, flags=re.M)
        extra = f"port {self.ports[name]}\nappendfsync no\n" if name in NODES else ""
        path = data / ("sentinel.conf" if name in SENTINELS else "redis.conf")
        path.write_text(f"{conf}\n{extra}dir {data}\nbind 127.0.0.1\n")
        return str(path)

    def start(self) -> None:
        for name in (*NODES, *SENTINELS):
            conf, _ = config_of(self.services[name])
            args = [self.binary, self.local(conf, name)]
            if name in SENTINELS:
                args.append("--sentinel")
            self.procs[name] = subprocess.Popen(
                args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            if name == "redis-replica":
                until(lambda: self.role("redis-replica") == "up", "the replica in sync")

    def client(self, name: str) -> redis.Redis:
        password = ENV["LIANHU_SENTINEL_PASSWORD" if name in SENTINELS else "LIANHU_REDIS_PASSWORD"]
        return redis.Redis(port=self.ports[name], password=password, socket_timeout=2,
                           decode_responses=True)  # fmt: skip

    def role(self, name: str) -> str | None:
        try:
            return str(self.client(name).info("replication").get("master_link_status"))
        except redis.RedisError:
            return None

    def masters(self) -> set[int | None]:
        out: set[int | None] = set()
        for name in SENTINELS:
            try:
                found = self.client(name).sentinel_get_master_addr_by_name("lianhu")
                out.add(int(found[1]) if found else None)
            except redis.RedisError:
                out.add(None)
        return out

    def replicas_known(self) -> bool:
        try:
            return all(
                any(not r["is_sdown"] for r in self.client(s).sentinel_slaves("lianhu"))
                and len(self.client(s).sentinel_sentinels("lianhu")) == 2
                for s in SENTINELS
            )
        except redis.RedisError:
            return False

    def url(self, compose_url: str) -> str:
        for name in SENTINELS:
            compose_url = compose_url.replace(f"{name}:26379", f"localhost:{self.ports[name]}")
        return compose_url

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            proc.wait(10)


def until(check: Callable[[], bool], what: str, seconds: float = 60.0) -> None:
    end = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture
def local(tmp_path: Path) -> Iterator[Local]:
    found = Local(tmp_path, merged())
    try:
        found.start()
        yield found
    finally:
        found.stop()


def test_the_compose_configurations_fail_over_as_local_processes(local: Local) -> None:
    """Real redis-server processes on the files the services write (down-after 5 s)."""
    until(lambda: local.masters() == {local.ports["redis"]}, "three sentinels on the master")
    until(local.replicas_known, "each sentinel knowing the replica and the two others")
    client = sync_client(local.url(local.services["worker"]["environment"]["REDIS_URL"]))
    try:
        client.set("before", "1")
        assert client.execute_command("WAIT", 1, 5000) == 1
        os.kill(local.procs["redis"].pid, signal.SIGKILL)
        until(lambda: local.masters() == {local.ports["redis-replica"]}, "the replica promoted")

        def writes() -> bool:
            try:
                return bool(client.set("after", "1"))
            except (redis.ConnectionError, redis.ReadOnlyError):
                return False

        until(writes, "a write through the same client", 30)
        assert client.get("before") == b"1"
        # A sentinel rewrote its own file: a restarted sentinel knows the new master.
        conf = (local.folder / "sentinel-1" / "sentinel.conf").read_text()
        assert f"sentinel monitor lianhu 127.0.0.1 {local.ports['redis-replica']} 2" in conf
    finally:
        client.close()
