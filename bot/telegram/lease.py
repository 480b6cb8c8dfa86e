"""A lease in Redis that makes one process, and one only, the writer of a platform.

Each holder is one ``Lease`` object with its own owner value:
``<machine>/<pid>/<process start>/<nonce>``. ``machine`` names the kernel boot
and the pid namespace, so two holders compare their pids only when the pids
mean the same thing. The value is renewed while held and expires ``ttl``
seconds after its holder stops renewing.

A process that crashed leaves its lease behind. Waiting out the ``ttl`` would
always be safe; but when the owner recorded in the value ran on this machine
and is gone (no such pid, or the pid now belongs to a process that started
later), the lease is taken over at once, compare-and-set on the exact value
read. Two holders in one process, two processes under one name on one host,
or a process on another machine are never mistaken for a dead owner.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from redis.asyncio import Redis

# Renew our value, take a free lease, or replace the one value found dead (ARGV[3]).
_TAKE = """
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if current == false or (ARGV[3] ~= '' and current == ARGV[3]) then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class Owner:
    """Who holds a lease: where, which process, and which holder within it."""

    machine: str
    pid: int
    started: str
    nonce: str

    def value(self) -> str:
        return f"{self.machine}/{self.pid}/{self.started}/{self.nonce}"

    @classmethod
    def parse(cls, value: str) -> Owner | None:
        """Return the owner a lease value names, or None for a value of another shape."""
        parts = value.split("/")
        if len(parts) != 4 or not parts[1].isdigit():
            return None
        return cls(parts[0], int(parts[1]), parts[2], parts[3])


def machine() -> str:
    """Return what makes pids comparable: the kernel boot and the pid namespace ('' if unknown)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return ""
    return f"{boot}:{namespace}"


def started(pid: int) -> str | None:
    """Return when process ``pid`` started (clock ticks since boot), or None if there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    return stat[stat.rindex(")") + 2 :].split()[19]


def gone(owner: Owner, here: str) -> bool:
    """Return whether ``owner`` is certainly not running (it ran on this machine and ended)."""
    if not here or owner.machine != here:
        return False  # another machine or container: only the ttl can tell
    return started(owner.pid) != owner.started


class Lease:
    """One holder's claim on ``key``; ``hold()`` takes or renews it."""

    def __init__(self, redis: Redis, key: str, ttl: float) -> None:
        self.redis = redis
        self.key = key
        self.ttl_ms = int(ttl * 1000)
        self.here = machine()
        pid = os.getpid()
        self.owner = Owner(self.here, pid, started(pid) or "", uuid.uuid4().hex)
        self.value = self.owner.value()
        self._take = redis.register_script(_TAKE)
        self._release = redis.register_script(_RELEASE)

    async def hold(self) -> bool:
        """Renew the lease, take it if free or left by a process that is gone; return if held."""
        if await self._take(keys=[self.key], args=[self.value, self.ttl_ms, ""]):
            return True
        raw = await self.redis.get(self.key)
        if raw is None:  # expired in between
            return bool(await self._take(keys=[self.key], args=[self.value, self.ttl_ms, ""]))
        current = raw.decode() if isinstance(raw, bytes) else str(raw)
        owner = Owner.parse(current)
        if owner is None or not gone(owner, self.here):
            return False
        return bool(await self._take(keys=[self.key], args=[self.value, self.ttl_ms, current]))

    async def holder(self) -> str | None:
        """Return the value of whoever holds the lease now."""
        raw = await self.redis.get(self.key)
        return raw.decode() if isinstance(raw, bytes) else raw

    async def release(self) -> None:
        """Give the lease up if it is still ours."""
        await self._release(keys=[self.key], args=[self.value])
