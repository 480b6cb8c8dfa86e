"""Telegram's sending limits as sliding windows: 30 a second overall, 20 a minute per group.

Telegram counts a message when the request reaches it, which lies somewhere
between our sending it and our reading the answer. So a send counts against
its windows from the moment it starts, and, once answered, from the moment
the answer came back: a new send starts only when fewer than ``limit`` sends
are in flight or were answered within the last ``period``. However long the
network or our event loop takes, no ``limit + 1`` requests can then reach
Telegram within one period (the proof is in ``Window``). The periods carry a
margin of 5% besides, as Telegram's own limits are not exact.
A 429 answer pauses every send for its ``retry_after``. An urgent send
(an emergency) waiting only for the overall window goes before any other:
ordinary sends hold back while one waits. The decisions take ``now``; only
``acquire`` and ``sending`` sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

MARGIN = 0.05  # of each period: Telegram's limits are approximate
IN_FLIGHT_POLL = 0.005  # seconds between looks when only sends still in flight fill a window


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
    """At most ``limit`` sends reaching Telegram in any ``period`` seconds.

    Why it holds: take any ``limit + 1`` sends and the one of them that started
    last, at ``s``. Each of the others started earlier, so at ``s`` it was in
    flight or answered; for it not to count, its answer (and so its arrival)
    came by ``s - period``, at least ``period`` before the last one arrived.
    A send is granted only when fewer than ``limit`` count, so at least one of
    the others arrived ``period`` or more apart: never ``limit + 1`` in a period.
    """

    def __init__(self, limit: int, period: float) -> None:
        self.limit = limit
        self.period = period * (1 + MARGIN)
        self.answered: deque[float] = deque()  # answer times, in order
        self.in_flight = 0

    def wait(self, now: float) -> float:
        """Return how long to wait from ``now`` before the next send may start (0 when free)."""
        while self.answered and self.answered[0] <= now - self.period:
            self.answered.popleft()
        excess = len(self.answered) + self.in_flight - self.limit + 1
        if excess <= 0:
            return 0.0
        if excess > len(self.answered):  # sends in flight must be answered first
            return IN_FLIGHT_POLL
        return self.answered[excess - 1] + self.period - now

    def start(self) -> None:
        """Count a send that starts now."""
        self.in_flight += 1

    def finish(self, now: float) -> None:
        """Count a started send as answered at ``now`` (whether it succeeded or not)."""
        self.in_flight -= 1
        self.answered.append(now)

    def busy(self, now: float) -> bool:
        """Return whether a send still counts against this window at ``now``."""
        return self.in_flight > 0 or (bool(self.answered) and self.answered[-1] > now - self.period)


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
        self.urgent: Counter[int] = Counter()  # chats with urgent sends waiting

    def _window(self, chat_id: int) -> Window:
        window = self.chats.get(chat_id)
        if window is None:
            limit, period = self.limits.private if chat_id > 0 else self.limits.group
            window = self.chats[chat_id] = Window(limit, period)
        return window

    def delay(self, chat_id: int, now: float, urgent: bool = False) -> float:
        """Return how long a send to ``chat_id`` must wait from ``now``."""
        wait = max(
            self.paused_until - now, self.overall.wait(now), self._window(chat_id).wait(now), 0.0
        )
        if wait <= 0 and not urgent and self._urgent_ready(now):
            return IN_FLIGHT_POLL  # the overall window's next slot is an urgent send's
        return wait

    def _urgent_ready(self, now: float) -> bool:
        """Return whether an urgent send waits for nothing but the overall window."""
        return any(self._window(chat).wait(now) <= 0 for chat in self.urgent)

    def start(self, chat_id: int) -> None:
        """Count a send to ``chat_id`` that starts now."""
        self.overall.start()
        self._window(chat_id).start()

    def finish(self, chat_id: int, now: float) -> None:
        """Count the send to ``chat_id`` as answered at ``now``."""
        self.overall.finish(now)
        self._window(chat_id).finish(now)
        if len(self.chats) > 10_000:  # forget chats with nothing left in their window
            self.chats = {c: w for c, w in self.chats.items() if w.busy(now)}

    def pause(self, seconds: float) -> None:
        """Hold every send for ``seconds`` (Telegram answered 429 with retry_after)."""
        self.paused_until = max(self.paused_until, self.clock() + seconds)

    async def acquire(self, chat_id: int, urgent: bool = False) -> None:
        """Wait until a send to ``chat_id`` may start, and count it as started."""
        if urgent:
            self.urgent[chat_id] += 1
        try:
            while True:
                wait = self.delay(chat_id, self.clock(), urgent)
                if wait <= 0:
                    self.start(chat_id)
                    return
                await self.sleep(wait)
        finally:
            if urgent:
                self.urgent[chat_id] -= 1
                if self.urgent[chat_id] <= 0:
                    del self.urgent[chat_id]

    @contextlib.asynccontextmanager
    async def sending(self, chat_id: int, urgent: bool = False) -> AsyncIterator[None]:
        """Wait for a send to ``chat_id``; count it until the block ends (answered or failed)."""
        await self.acquire(chat_id, urgent)
        try:
            yield
        finally:
            self.finish(chat_id, self.clock())
