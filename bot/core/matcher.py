"""One Aho-Corasick automaton over every term of every rule.

A single pass over the normalised text finds every keyword, all-of term,
veto word and negation at once, overlapping matches included (a veto
不是停水 must be seen beside the keyword 停水 inside it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Protocol

import ahocorasick_rs


class Role(IntEnum):
    """What a term is to a rule."""

    KEYWORD = 0
    GROUP = 1
    VETO = 2


NEGATION_REACH = 2
"""Characters allowed between a negation and the keyword it cancels (不是說停水)."""


class RuleTerms(Protocol):
    """The parts of a rule the matcher reads."""

    @property
    def keywords(self) -> tuple[str, ...]: ...

    @property
    def all_of(self) -> tuple[tuple[str, ...], ...]: ...

    @property
    def veto(self) -> tuple[str, ...]: ...


@dataclass
class Hits:
    """What one rule found in one text."""

    keywords: list[str] = field(default_factory=list)
    groups: dict[int, list[str]] = field(default_factory=dict)
    vetoes: list[str] = field(default_factory=list)
    negated: list[str] = field(default_factory=list)


class Matcher:
    """Find, for every rule at once, which of its terms occur in a text."""

    def __init__(
        self,
        rules: Sequence[RuleTerms],
        negations: Sequence[str] = (),
        negation_exceptions: Sequence[str] = (),
    ) -> None:
        index: dict[str, int] = {}
        # pattern index -> [(rule index, role, all-of group)]
        roles: list[list[tuple[int, Role, int]]] = []
        negation_ids: set[int] = set()
        exception_ids: set[int] = set()

        def pattern(term: str) -> int:
            if term not in index:
                index[term] = len(roles)
                roles.append([])
            return index[term]

        for r, rule in enumerate(rules):
            for term in rule.keywords:
                roles[pattern(term)].append((r, Role.KEYWORD, -1))
            for g, group in enumerate(rule.all_of):
                for term in group:
                    roles[pattern(term)].append((r, Role.GROUP, g))
            for term in rule.veto:
                roles[pattern(term)].append((r, Role.VETO, -1))
        for term in negations:
            negation_ids.add(pattern(term))
        for term in negation_exceptions:
            exception_ids.add(pattern(term))
        self._patterns = list(index)
        self._roles = [tuple(entries) for entries in roles]
        self._negations = frozenset(negation_ids)
        self._exceptions = frozenset(exception_ids)
        self._automaton = (
            ahocorasick_rs.AhoCorasick(self._patterns, matchkind=ahocorasick_rs.MatchKind.Standard)
            if self._patterns
            else None
        )

    @property
    def size(self) -> int:
        """Return the number of distinct terms in the automaton."""
        return len(self._patterns)

    def scan(self, text: str) -> dict[int, Hits]:
        """Return the hits of every rule that has any, keyed by rule index."""
        if self._automaton is None or not text:
            return {}
        found = self._automaton.find_matches_as_indexes(text, overlapping=True)
        if not found:
            return {}
        negation_spans = self._negation_spans(found)
        hits: dict[int, Hits] = {}
        patterns, roles = self._patterns, self._roles
        for p, start, _end in found:
            entries = roles[p]
            if not entries:
                continue
            term = patterns[p]
            negated = bool(negation_spans) and _negated(text, start, negation_spans)
            for r, role, group in entries:
                rule_hits = hits.get(r)
                if rule_hits is None:
                    rule_hits = hits[r] = Hits()
                if role is Role.VETO:
                    rule_hits.vetoes.append(term)
                elif negated:
                    rule_hits.negated.append(term)
                elif role is Role.KEYWORD:
                    rule_hits.keywords.append(term)
                else:
                    rule_hits.groups.setdefault(group, []).append(term)
        return hits

    def _negation_spans(self, found: list[tuple[int, int, int]]) -> list[tuple[int, int]]:
        """Return the spans of negations not inside an exception (是不是, 有冇: questions)."""
        spans = [(s, e) for p, s, e in found if p in self._negations]
        if not spans or not self._exceptions:
            return spans
        covers = [(s, e) for p, s, e in found if p in self._exceptions]
        return [(s, e) for s, e in spans if not any(cs <= s and e <= ce for cs, ce in covers)]


_BREAKS = frozenset(",.!?;:~()[]<>\"'/、。“”‘’…—【】《》 ")


def _negated(text: str, start: int, spans: list[tuple[int, int]]) -> bool:
    """Return whether a negation ends just before ``start``, in the same clause."""
    return any(
        s < start and start - NEGATION_REACH <= e <= start and _BREAKS.isdisjoint(text[e:start])
        for s, e in spans
    )
