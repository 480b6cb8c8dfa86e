"""The one writer to WeCom: the outbox drained by the process that holds the sender lease.

Built on ``bot.sender.Sender`` (the same outbox, sent markers, card records and
dead letters as every platform), with what two ``lianhu run --platform wecom``
processes on one Redis need on top:

- a lease (``bot.telegram.lease.Lease``, under WeCom's own key) makes one
  process the sender; the other serves callbacks only. The lease is trusted
  until ``ttl - POST_TIMEOUT - 1`` seconds after the renewal Redis last
  confirmed, so that a post still under way when trust ends finishes before
  another process can take the lease; the gateway checks it right before each
  post (``WeComGateway.holding``). A sender that stops holding stops at once:
  what it read stays pending, and the next holder claims it.
- the group robot webhook limit is counted in Redis by the gateway, so both
  processes (and restarts) share each robot's 20 a minute.

Cards kept true (``bot.card_edits``): WeCom replaces a card only as the answer
to a press on that very card (``WeComGateway.edit``). Any other card of a
ticket that moved on — above all the text cards pushed through group robot
webhooks — gets a short follow-up in its group (``card_update``, with the
commands that still apply), queued in this outbox under a key made of the
ticket, the card and the version it reports, so that it is sent once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from redis.asyncio import Redis

from bot.core.models import Lang, Reply
from bot.ports import Render, Rendered
from bot.sender import BACKLOG_CHECK, Sender, SenderStats, wait
from bot.storage import keys
from bot.storage.redis import dumps, reply_payload
from bot.telegram.lease import Lease
from bot.wecom.gateway import POST_TIMEOUT, NotEditable, WeComGateway

log = logging.getLogger(__name__)

LEASE_TTL = 20.0  # a sender on another machine that stopped renewing is replaced after this
LEASE_RENEW = 3.0  # seconds between renewals while held
LEASE_POLL = 2.0  # seconds between tries while another process holds it
FOLLOW_UP = "card_update"


class WeComSender(Sender):
    """Drain the WeCom outbox while this process holds the sender lease."""

    def __init__(
        self,
        redis: Redis,
        gateway: WeComGateway,
        consumer: str = "wecom-sender",
        *,
        render: Render | None = None,
        retry_after: float = 5.0,
        lease_ttl: float = LEASE_TTL,
    ) -> None:
        super().__init__(redis, gateway, consumer, render=render, retry_after=retry_after)
        self.wecom = gateway
        self.lease = Lease(redis, keys.sender_lease(gateway.platform), lease_ttl)
        self.trust = lease_ttl - POST_TIMEOUT - 1.0
        assert self.trust > LEASE_RENEW, "the lease must outlast a post and a renewal"
        self._trusted_until = 0.0
        gateway.holding = self.holding

    def holding(self) -> bool:
        """Return whether this process is certainly the sender now."""
        return time.monotonic() < self._trusted_until

    async def run(self, stop: asyncio.Event, block_ms: int = 1000) -> None:
        """Send while holding the lease, until ``stop`` is set; then give the lease up."""
        keeper = asyncio.create_task(self._keep_lease(stop), name="wecom lease")
        last_check = 0.0
        loop = asyncio.get_running_loop()
        try:
            while not stop.is_set():
                if not self.holding():
                    await wait(stop, 0.1)
                    continue
                try:
                    if loop.time() - last_check > BACKLOG_CHECK:
                        last_check = loop.time()
                        await self.check_backlog()
                    await self.drain(block_ms=block_ms)
                except Exception:  # keep the one writer alive; the entry stays pending
                    log.exception("outbox %s: drain failed", self.stream)
                    await wait(stop, 1.0)
        finally:
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)
            with contextlib.suppress(Exception):
                await self._flush_marks()
            self._trusted_until = 0.0
            with contextlib.suppress(Exception):  # it expires on its own
                await self.lease.release()

    async def _keep_lease(self, stop: asyncio.Event) -> None:
        """Renew the lease while held, try for it while not; say when that changes."""
        held = False
        while not stop.is_set():
            asked = time.monotonic()
            try:
                now_held = await self.lease.hold()
            except Exception as exc:  # Redis away: trust runs out on its own
                log.warning("outbox %s: lease not renewed: %s", self.stream, exc)
                now_held = held and self.holding()
            else:
                self._trusted_until = asked + self.trust if now_held else 0.0
            if now_held != held:
                held = now_held
                log.info("outbox %s: this process %s the sender", self.stream,
                         "is now" if held else "is no longer")  # fmt: skip
            await wait(stop, LEASE_RENEW if held else LEASE_POLL)

    async def _handle(self, entries: list[Any]) -> SenderStats:
        """Send entries one by one while holding; the rest stay pending for the next holder."""
        stats = SenderStats()
        for entry in entries:
            if not self.holding():
                break
            done = await super()._handle([entry])
            stats = SenderStats(
                stats.sent + done.sent, stats.skipped + done.skipped,
                stats.failed + done.failed, stats.dropped + done.dropped,
            )  # fmt: skip
        return stats

    async def _edit(
        self, chat: str, message_id: str, message: Rendered, payload: dict[str, Any]
    ) -> None:
        """Replace the card if a press on it is held open; else follow it up in its group."""
        try:
            await self.wecom.edit(chat, message_id, message)
        except NotEditable:
            # A question's other copies keep what they showed (a press gets "answered"), and a
            # resident's notice its buttons (a press that no longer applies is refused).
            if self.wecom.pushable(chat) and payload.get("ticket") and payload.get("card"):
                await self._follow_up(chat, message_id, payload)

    async def _follow_up(self, chat: str, message_id: str, payload: dict[str, Any]) -> None:
        """Queue the short message that says what became of a card that cannot change."""
        ticket = str(payload["ticket"])
        reply = Reply(
            chat, FOLLOW_UP, payload["params"], Lang(payload["lang"]),
            ticket=ticket, buttons=tuple(payload.get("buttons") or ()),
        )  # fmt: skip
        key = f"wecom:card-update:{ticket}:{chat}:{message_id}:{payload['seq']}"
        await self.redis.xadd(self.stream, {"key": key, "payload": dumps(reply_payload(reply))})
