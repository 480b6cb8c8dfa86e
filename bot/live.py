"""Rules and the organisation tree as they are on disk, reloaded without a restart.

A change takes effect only when the whole set is valid; otherwise the last
good set keeps running and the problems are returned for the administrators.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from pathlib import Path

from bot.core.deadlines import Policy
from bot.core.errors import InvalidConfig, Problem
from bot.core.org import OrgTree
from bot.core.rules import RuleSet
from bot.core.workflow import Context
from bot.sources import load_org, load_ruleset, watched_files


@dataclass(frozen=True)
class Reload:
    """What a reload found: a new set, or the problems that kept the old one."""

    changed: bool
    problems: tuple[Problem, ...] = ()
    fingerprint: str = ""


@dataclass(frozen=True)
class Loaded:
    """What ``read`` found, before it is swapped in."""

    result: Reload
    context: Context | None = None


class LiveConfig:
    """Hold the current Context; ``reload()`` swaps in a valid new one."""

    def __init__(self, rules_dir: Path, org_file: Path, policy: Policy) -> None:
        self.rules_dir = rules_dir
        self.org_file = org_file
        self.policy = policy
        self._fingerprint = self.fingerprint()
        self.context = Context(load_ruleset(rules_dir), load_org(org_file), policy)

    @property
    def ruleset(self) -> RuleSet:
        """Return the rules in force."""
        return self.context.ruleset

    @property
    def tree(self) -> OrgTree:
        """Return the organisation tree in force."""
        return self.context.tree

    def fingerprint(self) -> str:
        """Return a digest of the names, sizes and times of every watched file."""
        digest = hashlib.sha256()
        paths = (
            [*watched_files(self.rules_dir), self.org_file]
            if self.rules_dir.is_dir()
            else [self.org_file]
        )
        for path in paths:
            try:
                stat = path.stat()
            except OSError:
                digest.update(f"{path}:missing".encode())
                continue
            digest.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns}".encode())
        return digest.hexdigest()

    def read(self, force: bool = False) -> Loaded:
        """Read and build the files again if they changed (or ``force``); swap nothing.

        Touches nothing the event loop reads, so it may run in a worker thread.
        """
        fingerprint = self.fingerprint()
        if fingerprint == self._fingerprint and not force:
            return Loaded(Reload(False, fingerprint=fingerprint))
        self._fingerprint = fingerprint
        problems: list[Problem] = []
        try:
            ruleset = load_ruleset(self.rules_dir)
        except InvalidConfig as exc:
            problems += exc.problems
        try:
            tree = load_org(self.org_file)
        except InvalidConfig as exc:
            problems += exc.problems
        if problems:
            return Loaded(Reload(False, tuple(problems), fingerprint))
        return Loaded(Reload(True, (), fingerprint), Context(ruleset, tree, self.policy))

    def apply(self, loaded: Loaded) -> Reload:
        """Swap in what ``read`` built, if it is valid; return what happened."""
        if loaded.context is not None:
            self.context = loaded.context
        return loaded.result

    def reload(self, force: bool = False) -> Reload:
        """Load the files again if they changed (or ``force``); keep the old set on errors."""
        return self.apply(self.read(force))

    async def reload_off_loop(self, force: bool = False) -> Reload:
        """``reload`` with the reading and parsing in a thread: the event loop keeps serving."""
        return self.apply(await asyncio.to_thread(self.read, force))
