"""What the bot learns from: handlers' decisions as labelled examples, and classified messages.

- Examples await an administrator's review (``lianhu rules learn``): masked text, category,
  what produced it (source), when and who. One example per action: the marker of the action
  (its message key) is set with the example, so a retried action adds nothing.
- The classified log keeps the masked text and the verdict of messages the classifier
  decided, for ``lianhu rules replay``; capped by count and by age.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from redis.asyncio import Redis

from bot.storage import keys
from bot.storage.raw import text_of
from bot.storage.redis import dumps

MARKER_TTL = 30 * 24 * 3600  # an action retried later than this could add a second example
CLASSIFIED_MAX = 50_000  # messages kept for replay, newest first (~ a few MB masked)
CLASSIFIED_AGE = 30 * 24 * 3600  # and none older than this
CLASSIFIED_TRIM = 60.0  # seconds between a process's trims by age (the count: every add)

_ADD = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return false end
local id = tostring(redis.call('INCR', KEYS[2]))
local record = cjson.decode(ARGV[2])
record['id'] = id
redis.call('SET', ARGV[4] .. id, cjson.encode(record))
redis.call('ZADD', KEYS[3], ARGV[3], id)
return id
"""


class LearningStore:
    """Labelled examples awaiting review, and the log of classified messages."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._add = redis.register_script(_ADD)
        self._trimmed = float("-inf")  # time.monotonic() of this process's last trim by age

    async def add_example(
        self, source: str, message_key: str, text: str, category: str, who: str, now: float
    ) -> str | None:
        """Queue an example (``text`` already masked); return its id, None if already queued."""
        record = {"text": text, "category": category, "source": source, "at": now, "who": who}
        marker = keys.learned_from(source, message_key)
        found = await self._add(
            keys=[marker, keys.LEARNED_SEQ, keys.LEARNED],
            args=[MARKER_TTL, json.dumps(record, ensure_ascii=False), now, keys.learned("")],
        )
        return found.decode() if isinstance(found, bytes) else (str(found) if found else None)

    async def examples(self) -> list[dict[str, Any]]:
        """Return every example awaiting review, oldest first."""
        ids = [text_of(i) for i in await self.redis.zrange(keys.LEARNED, 0, -1)]
        raws = await self.redis.mget([keys.learned(i) for i in ids]) if ids else []
        return [json.loads(r) for r in raws if r]

    async def remove(self, ids: Iterable[str]) -> list[str]:
        """Drop examples from the queue; return the ids that were there."""
        gone = []
        for example_id in ids:
            if await self.redis.zrem(keys.LEARNED, example_id):
                gone.append(example_id)
            await self.redis.delete(keys.learned(example_id))
        return gone

    async def log(self, text: str, category: str, action: str, now: float) -> None:
        """Keep a classified message (``text`` already masked) for replay."""
        fields = {"text": text, "category": category, "action": action, "at": repr(now)}
        await self.redis.xadd(keys.CLASSIFIED, fields, maxlen=CLASSIFIED_MAX, approximate=True)  # type: ignore[arg-type]
        if time.monotonic() - self._trimmed >= CLASSIFIED_TRIM:  # a minute's more is no matter
            self._trimmed = time.monotonic()
            oldest = int((time.time() - CLASSIFIED_AGE) * 1000)  # stream ids: the server's ms
            await self.redis.xtrim(keys.CLASSIFIED, minid=str(oldest), approximate=True)

    async def classified(self, since: float) -> list[dict[str, str]]:
        """Return the classified messages kept since ``since``, oldest first."""
        out = []
        rows: Any = await self.redis.xrange(keys.CLASSIFIED)
        for _, fields in rows:
            row = {text_of(k): text_of(v) for k, v in fields.items()}
            if float(row["at"]) >= since:
                out.append(row)
        return out


def example_line(example: dict[str, Any]) -> str:
    """Return an accepted example as a line of an examples file (JSON lines)."""
    line = {"id": f"learned-{example['id']}", "text": example["text"]}
    return dumps({**line, "category": example["category"]})
