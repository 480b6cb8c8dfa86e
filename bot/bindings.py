"""Bindings and enrolments made in chat, stored in Redis and laid over the file's tree.

Every change bumps a version counter; a process holding an ``OverlaidConfig``
re-reads the hashes only when the version moved, so the bot and the rq workers
see a ``/bind``, a ``/join`` or a ``/revoke`` at their next refresh (the bot
refreshes before each update, a worker before each job). Every enrolment and
revocation is also appended to an audit stream that nothing rewrites.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from bot.core.deadlines import Policy
from bot.core.enrolment import (
    CODE_ALPHABET,
    CODE_LENGTH,
    AdminRefusal,
    Binding,
    Enrolment,
    Invite,
    overlay,
)
from bot.core.models import Lang
from bot.core.org import OrgTree, Role
from bot.core.workflow import Context, node_params
from bot.live import LiveConfig
from bot.storage import keys
from bot.storage.raw import text_of

INVITE_TTL = 7 * 24 * 3600
JOIN_ATTEMPTS = 5  # failed /join attempts an account has per window: codes cannot be guessed
JOIN_WINDOW = 3600

# Take the code and enrol its user in one step. Running it again for the same code and
# account (a redelivered /join) answers "ok" again instead of "no such code". Failed
# attempts are counted per account; past the limit every attempt is refused until the
# window ends. Times come from the Redis server, one clock for every process.
_JOIN = """
if tonumber(redis.call('GET', KEYS[5]) or '0') >= tonumber(ARGV[4]) then return 'locked' end
local invite = redis.call('GET', KEYS[1])
if not invite then
  local mine = redis.call('HGET', KEYS[2], ARGV[1])
  if mine and cjson.decode(mine).code == ARGV[3] then return 'again' end
  if redis.call('INCR', KEYS[5]) == 1 then redis.call('EXPIRE', KEYS[5], ARGV[5]) end
  return 'invalid'
end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local spec = cjson.decode(invite)
local e = cjson.decode(ARGV[2])
e.role = spec.role
e.scope = spec.scope
e.at = now
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[2], ARGV[1], cjson.encode(e))
redis.call('INCR', KEYS[3])
redis.call('XADD', KEYS[4], '*', 'action', 'enrol', 'account', ARGV[1], 'name', e.name,
  'role', spec.role, 'scope', spec.scope, 'by', spec.by or '', 'at', string.format('%.6f', now))
return invite
"""

# End an enrolment: delete it, record the revocation (it wins over any enrolment made
# before it) and append it to the audit stream, in one step.
_REVOKE = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return false end
local e = cjson.decode(raw)
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1],
  cjson.encode({at = now, by = ARGV[2], role = e.role, scope = e.scope}))
redis.call('INCR', KEYS[3])
redis.call('XADD', KEYS[4], '*', 'action', 'revoke', 'account', ARGV[1], 'name', e.name,
  'role', e.role, 'scope', e.scope, 'by', ARGV[2], 'at', string.format('%.6f', now))
return raw
"""


class BindingStore:
    """Bindings, enrolments and invite codes on Redis."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._join = redis.register_script(_JOIN)
        self._revoke = redis.register_script(_REVOKE)

    async def version(self) -> int:
        """Return the version of the stored bindings and enrolments."""
        return int(await self.redis.get(keys.ORG_VERSION) or 0)

    async def load(
        self,
    ) -> tuple[int, dict[str, Binding], dict[str, Enrolment], dict[str, float]]:
        """Return the version, the bindings by chat, the enrolments by account and revocations."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.get(keys.ORG_VERSION)
        pipe.hgetall(keys.BINDINGS)
        pipe.hgetall(keys.ENROLMENTS)
        pipe.hgetall(keys.REVOCATIONS)
        version, raw_bindings, raw_enrolments, raw_revoked = await pipe.execute()
        bindings = {}
        for chat, raw in raw_bindings.items():
            data = json.loads(raw)
            bindings[text_of(chat)] = Binding(
                text_of(chat), data["node"], bool(data.get("staff")), data.get("thread")
            )
        enrolments = {}
        for account, raw in raw_enrolments.items():
            data = json.loads(raw)
            enrolments[text_of(account)] = Enrolment(
                text_of(account), data["name"], Role(data["role"]), data["scope"],
                Lang(data.get("lang", "zh-Hans")), data.get("code", ""), float(data.get("at", 0)),
            )  # fmt: skip
        revoked = {text_of(a): float(json.loads(raw)["at"]) for a, raw in raw_revoked.items()}
        return int(version or 0), bindings, enrolments, revoked

    async def bind(self, binding: Binding) -> None:
        """Store a binding (replacing an earlier one of the same chat)."""
        value = json.dumps({"node": binding.node, "staff": binding.staff, "thread": binding.thread})
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(keys.BINDINGS, binding.chat, value)
        pipe.incr(keys.ORG_VERSION)
        await pipe.execute()

    async def create_invite(self, invite: Invite, by: str) -> str:
        """Store a new one-time code for ``invite`` and return it."""
        while True:
            code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
            value = json.dumps({"role": invite.role.value, "scope": invite.scope, "by": by})
            if await self.redis.set(keys.invite(code), value, nx=True, ex=INVITE_TTL):
                return code

    async def burn_invite(self, code: str) -> None:
        """Delete a code that was shown where others could read it."""
        await self.redis.delete(keys.invite(code))

    async def join(self, code: str, account: str, name: str, lang: Lang) -> Invite | AdminRefusal:
        """Use a code for ``account``; return what it enrolled, or why not.

        ``join_invalid`` for an unknown, used or expired code (counted against the
        account), ``join_locked`` once it has failed JOIN_ATTEMPTS times in the window.
        """
        enrolment = {"name": name, "lang": lang.value, "code": code}
        result = await self._join(
            keys=[
                keys.invite(code), keys.ENROLMENTS, keys.ORG_VERSION, keys.ORG_AUDIT,
                keys.join_failures(account),
            ],
            args=[account, json.dumps(enrolment), code, JOIN_ATTEMPTS, JOIN_WINDOW],
        )  # fmt: skip
        text = text_of(result)
        if text == "invalid":
            return AdminRefusal("join_invalid", {})
        if text == "locked":
            return AdminRefusal("join_locked", {"minutes": str(JOIN_WINDOW // 60)})
        if text == "again":
            raw = await self.redis.hget(keys.ENROLMENTS, account)
            data = json.loads(raw or "{}")
        else:
            data = json.loads(text)
        return Invite(Role(data["role"]), data["scope"])

    async def revoke(self, account: str, by: str) -> Enrolment | None:
        """End the enrolment of ``account``; return it, or None when there was none."""
        raw = await self._revoke(
            keys=[keys.ENROLMENTS, keys.REVOCATIONS, keys.ORG_VERSION, keys.ORG_AUDIT],
            args=[account, by],
        )
        if raw is None:
            return None
        data = json.loads(text_of(raw))
        return Enrolment(
            account, data["name"], Role(data["role"]), data["scope"],
            Lang(data.get("lang", "zh-Hans")), data.get("code", ""), float(data.get("at", 0)),
        )  # fmt: skip

    async def audit(self, count: int = 1000) -> list[dict[str, str]]:
        """Return the last ``count`` enrolments and revocations, oldest first."""
        entries = await self.redis.xrevrange(keys.ORG_AUDIT, count=count) or []
        return [
            {"id": text_of(entry_id), **{text_of(k): text_of(v) for k, v in (fields or {}).items()}}
            for entry_id, fields in reversed(entries)
        ]


class OverlaidConfig(LiveConfig):
    """A LiveConfig whose context is the file's tree with the stored bindings laid over it."""

    def __init__(self, rules_dir: Path, org_file: Path, policy: Policy) -> None:
        self._version = -1
        self._bindings: Mapping[str, Binding] = {}
        self._enrolments: Mapping[str, Enrolment] = {}
        self._revoked: Mapping[str, float] = {}
        super().__init__(rules_dir, org_file, policy)

    @property
    def context(self) -> Context:
        """Return the rules, the overlaid tree and the policy in force."""
        return self._overlaid

    @context.setter
    def context(self, base: Context) -> None:
        self._base = base
        self._overlaid = self._apply(base)

    @property
    def file_context(self) -> Context:
        """Return the context as the files alone describe it."""
        return self._base

    @property
    def bindings(self) -> Mapping[str, Binding]:
        """Return the bindings laid over the file's tree."""
        return self._bindings

    @property
    def enrolments(self) -> Mapping[str, Enrolment]:
        """Return the enrolments stored in Redis (some may be void: see ``overlay``)."""
        return self._enrolments

    def _apply(self, base: Context) -> Context:
        tree = overlay(base.tree, self._bindings, self._enrolments, self._revoked)
        return dataclasses.replace(base, tree=tree)

    async def refresh(self, store: BindingStore, force: bool = False) -> bool:
        """Re-read the stored bindings when they changed; return whether they did."""
        if not force and await store.version() == self._version:
            return False
        self._version, self._bindings, self._enrolments, self._revoked = await store.load()
        self._overlaid = self._apply(self._base)
        return True


def invite_params(tree: OrgTree, invite: Invite, code: str) -> dict[str, Any]:
    """Return the parameters of the ``invite_code`` template for a new code."""
    days = INVITE_TTL // 86400
    node = tree.nodes[invite.scope]
    return {**node_params(node), "role": invite.role.value, "code": code, "days": days}
