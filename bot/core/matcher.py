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


NEGATION_FILLERS = frozenset("说话讲很太真再")
"""Characters that may stand between a negation and the term it cancels (不是说停水, 不是很吵).

Any other character breaks the link: in 没发工资 the negation belongs to the
verb 发, and the wages are the complaint, not denied.
"""
NEGATION_REACH = 2


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
        # English terms match whole words only: "ok" must not fire inside "karaoke".
        self._bounded = [(_word_char(t[0]), _word_char(t[-1])) for t in self._patterns]
        self._english = frozenset(i for i, (a, b) in enumerate(self._bounded) if a or b)
        self._roles = [tuple(entries) for entries in roles]
        # The same entries split by role, for the lean path of classify().
        self._keyword_rules = [tuple(r for r, role, _ in e if role is Role.KEYWORD) for e in roles]
        self._group_rules = [tuple((r, g) for r, role, g in e if role is Role.GROUP) for e in roles]
        self._veto_rules = [tuple(r for r, role, _ in e if role is Role.VETO) for e in roles]
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

    def term(self, pattern: int) -> str:
        """Return the term of a pattern index."""
        return self._patterns[pattern]

    def evidence(
        self, text: str, also: frozenset[int] = frozenset()
    ) -> tuple[dict[int, list[int]], dict[int, dict[int, list[int]]], set[int]]:
        """Return what classify needs, for rules with a keyword hit and the rules in ``also``.

        (keyword patterns per rule, all-of patterns per rule and group, vetoed rules),
        patterns as indexes (see ``term``). Rules that saw only all-of terms cannot
        fire and are never tracked.
        """
        keywords: dict[int, list[int]] = {}
        groups: dict[int, dict[int, list[int]]] = {}
        vetoed: set[int] = set()
        if self._automaton is None or not text:
            return keywords, groups, vetoed
        found = self._automaton.find_matches_as_indexes(text, overlapping=True)
        if not found:
            return keywords, groups, vetoed
        negations = self._negation_ends(found)
        english, keyword_rules = self._english, self._keyword_rules
        valid = []
        for p, start, end in found:
            if p in english and not self._whole_word(text, p, start, end):
                continue
            if negations and _negated_at(text, start, negations):
                continue
            valid.append(p)
            for r in keyword_rules[p]:
                if r in keywords:
                    keywords[r].append(p)
                else:
                    keywords[r] = [p]
        tracked = keywords.keys() | also
        if not tracked:
            return keywords, groups, vetoed
        for p in valid:
            for r, g in self._group_rules[p]:
                if r in tracked:
                    groups.setdefault(r, {}).setdefault(g, []).append(p)
            for r in self._veto_rules[p]:
                if r in tracked:
                    vetoed.add(r)
        return keywords, groups, vetoed

    def scan(self, text: str) -> dict[int, Hits]:
        """Return the hits of every rule that has any, keyed by rule index."""
        if self._automaton is None or not text:
            return {}
        found = self._automaton.find_matches_as_indexes(text, overlapping=True)
        if not found:
            return {}
        negations = self._negation_ends(found)
        hits: dict[int, Hits] = {}
        patterns, roles = self._patterns, self._roles
        for p, start, end in found:
            entries = roles[p]
            if not entries:
                continue
            if p in self._english and not self._whole_word(text, p, start, end):
                continue
            term = patterns[p]
            negated = bool(negations) and _negated_at(text, start, negations)
            for r, role, group in entries:
                rule_hits = hits.get(r)
                if rule_hits is None:
                    rule_hits = hits[r] = Hits()
                if negated:  # a denied veto word vetoes nothing either (不是噪音的问题)
                    rule_hits.negated.append(term)
                elif role is Role.VETO:
                    rule_hits.vetoes.append(term)
                elif role is Role.KEYWORD:
                    rule_hits.keywords.append(term)
                else:
                    rule_hits.groups.setdefault(group, []).append(term)
        return hits

    def _whole_word(self, text: str, p: int, start: int, end: int) -> bool:
        """Return whether an English term stands as a word (an ending such as -s is allowed)."""
        left, right = self._bounded[p]
        if left and start > 0 and _word_char(text[start - 1]):
            return False
        return not (
            right and end < len(text) and _word_char(text[end]) and not _inflected(text, end)
        )

    def _negation_ends(self, found: list[tuple[int, int, int]]) -> dict[int, int]:
        """Return where each valid negation ends, mapped to where it starts."""
        return {e: s for s, e in self._negation_spans(found)}

    def _negation_spans(self, found: list[tuple[int, int, int]]) -> list[tuple[int, int]]:
        """Return the spans of negations not inside an exception (是不是, 有冇: questions)."""
        spans = [(s, e) for p, s, e in found if p in self._negations]
        if not spans or not self._exceptions:
            return spans
        covers = [(s, e) for p, s, e in found if p in self._exceptions]
        return [(s, e) for s, e in spans if not any(cs <= s and e <= ce for cs, ce in covers)]


def _negated_at(text: str, start: int, ends: dict[int, int]) -> bool:
    """Return whether a negation ends right before ``start``, or only fillers lie between."""
    for e in range(start, start - NEGATION_REACH - 1, -1):
        s = ends.get(e)
        if s is not None and s < start and NEGATION_FILLERS.issuperset(text[e:start]):
            return True
    return False


_SUFFIXES = frozenset({"s", "es", "ed", "d", "ing", "er", "ers", "ly"})


def _inflected(text: str, end: int) -> bool:
    """Return whether the word goes on past ``end`` by an English ending only (lights, flooded)."""
    stop = end
    while stop < len(text) and _word_char(text[stop]):
        stop += 1
    return text[end:stop] in _SUFFIXES


def _word_char(char: str) -> bool:
    """Return whether ``char`` is an ASCII letter or digit (part of an English word)."""
    return char.isascii() and char.isalnum()
