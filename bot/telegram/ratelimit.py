"""Telegram's sending limits as sliding windows: 30 a second overall, 20 a minute per group.

A window of (limit, period) grants a send when fewer than ``limit`` sends were
granted in the last ``period`` seconds, with a small margin so that jitter on
the way to Telegram cannot push two sends into one window (5% and 50 ms). A 429 answer pauses
every send for its ``retry_after``. The decisions take ``now``; only
``acquire`` sleeps.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

MARGIN = 0.05  # of each period: jitter between granting a send and Telegram receiving it
SLACK = 0.05  # seconds added to each period for the same reason, when periods are short


@dataclass(frozen=True)
class Limits:
    """Sends allowed per period: overall, per group chat and per private chat."""

    overall: tuple[int, float] = (30, 1.0)
    group: tuple[int, float] = (20, 60.0)
    private: tuple[int, float] = (1, 1.0)

    def scaled(self, factor: float) -> Limits:
        """Return the limits with every period multiplied by ``factor`` (tests compress time)."""
        return Limits(
            (self.overall[0], self.overall[1] * factor),
            (self.group[0], self.group[1] * factor),
            (self.private[0], self.private[1] * factor),
        )


class Window:
    """At most ``limit`` grants in any ``period`` seconds."""

    def __init__(self, limit: int, period: float) -> None:
        self.limit = limit
        self.period = period * (1 + MARGIN) + SLACK
        self.grants: deque[float] = deque()

    def wait(self, now: float) -> float:
        """Return how long to wait from ``now`` before the next grant (0 when free)."""
        while self.grants and self.grants[0] <= now - self.period:
            self.grants.popleft()
        if len(self.grants) < self.limit:
            return 0.0
        return self.grants[0] + self.period - now

    def take(self, now: float) -> None:
        """Record a grant at ``now``."""
        self.grants.append(now)

    def busy(self, now: float) -> bool:
        """Return whether a grant still counts against this window at ``now``."""
        return bool(self.grants) and self.grants[-1] > now - self.period


class RateLimiter:
    """Grant sends to chats within the overall and per-chat windows, and honour 429 pauses."""

    def __init__(
        self,
        limits: Limits | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.limits = limits or Limits()
        self.clock = clock
        self.sleep = sleep
        self.overall = Window(*self.limits.overall)
        self.chats: dict[int, Window] = {}
        self.paused_until = 0.0

    def _window(self, chat_id: int) -> Window:
        window = self.chats.get(chat_id)
        if window is None:
            limit, period = self.limits.private if chat_id > 0 else self.limits.group
            window = self.chats[chat_id] = Window(limit, period)
        return window

    def delay(self, chat_id: int, now: float) -> float:
        """Return how long a send to ``chat_id`` must wait from ``now``."""
        return max(
            self.paused_until - now, self.overall.wait(now), self._window(chat_id).wait(now), 0.0
        )

    def take(self, chat_id: int, now: float) -> None:
        """Record a send to ``chat_id`` at ``now``."""
        self.overall.take(now)
        self._window(chat_id).take(now)
        if len(self.chats) > 10_000:  # forget chats with no grant left in their window
            self.chats = {c: w for c, w in self.chats.items() if w.busy(now)}

    def pause(self, seconds: float) -> None:
        """Hold every send for ``seconds`` (Telegram answered 429 with retry_after)."""
        self.paused_until = max(self.paused_until, self.clock() + seconds)

    async def acquire(self, chat_id: int) -> None:
        """Wait until a send to ``chat_id`` is allowed, and record it."""
        while True:
            now = self.clock()
            wait = self.delay(chat_id, now)
            if wait <= 0:
                self.take(chat_id, now)
                return
            await self.sleep(wait)
