"""One Aho-Corasick automaton over every term of every rule.

A single pass over the normalised text finds every keyword, all-of term,
veto word and negation at once, overlapping matches included (a veto
不是停水 must be seen beside the keyword 停水 inside it).
"""

from __future__ import annotations

from collections.abc import Sequence, Set
from dataclasses import dataclass, field
from enum import IntEnum
from operator import itemgetter
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


MAX_TERM_WEIGHT = 6
_PATTERN = itemgetter(0)  # the pattern index of an (index, start, end) match


def term_weight(term: str) -> int:
    """Return how much one found term counts towards a rule's evidence."""
    weight = 2 * len(term.split()) if term.isascii() else len(term)
    return min(weight, MAX_TERM_WEIGHT)


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
        self.weights = tuple(term_weight(t) for t in self._patterns)
        # Per rule, as sets of pattern indexes, for fire(): set operations run in C.
        count = len(rules)
        kw_sets: list[set[int]] = [set() for _ in range(count)]
        group_sets: list[list[set[int]]] = [[set() for _ in r.all_of] for r in rules]
        veto_sets: list[set[int]] = [set() for _ in range(count)]
        for p, entries in enumerate(roles):
            for r, role, g in entries:
                (kw_sets[r] if role is Role.KEYWORD else veto_sets[r] if role is Role.VETO
                 else group_sets[r][g]).add(p)  # fmt: skip
        self._kw_sets = [frozenset(x) for x in kw_sets]
        self._group_sets = [tuple(frozenset(g) for g in groups) for groups in group_sets]
        self._veto_sets = [frozenset(x) for x in veto_sets]
        self._kw_rule_sets = [
            frozenset(r for r, role, _ in e if role is Role.KEYWORD) for e in roles
        ]

        self._roles = [tuple(entries) for entries in roles]
        self._negations = frozenset(negation_ids)
        self._exceptions = frozenset(exception_ids)
        # Patterns that make a hit depend on its place: negations and English terms.
        # Without them a message needs no hit-by-hit pass.
        self._special = self._english | self._negations
        self._automaton = (
            ahocorasick_rs.AhoCorasick(self._patterns, matchkind=ahocorasick_rs.MatchKind.Standard)
            if self._patterns
            else None
        )

    @property
    def size(self) -> int:
        """Return the number of distinct terms in the automaton."""
        return len(self._patterns)

    def fire(self, text: str, also: frozenset[int] = frozenset()) -> list[tuple[int, Set[int]]]:
        """Return (rule index, matched pattern indexes) of every rule that fires on ``text``.

        ``also`` are rules to consider without a keyword hit (rules with regexes);
        for them the caller checks the regexes.
        """
        found = (
            self._automaton.find_matches_as_indexes(text, overlapping=True)
            if self._automaton is not None and text
            else []
        )
        if not found and not also:
            return []
        present = set(map(_PATTERN, found))
        if not present.isdisjoint(self._special):
            present = self._valid(text, found, present)
        candidates = set(also).union(*map(self._kw_rule_sets.__getitem__, present))
        out: list[tuple[int, Set[int]]] = []
        veto_sets, group_sets, kw_sets = self._veto_sets, self._group_sets, self._kw_sets
        for r in candidates:
            if not veto_sets[r].isdisjoint(present):
                continue
            matched = kw_sets[r] & present
            for g in group_sets[r]:
                found_in_group = g & present
                if not found_in_group:
                    break
                matched |= found_in_group
            else:
                out.append((r, matched))
        return out

    def _valid(self, text: str, found: list[tuple[int, int, int]], present: set[int]) -> set[int]:
        """Return the patterns found that stand as words and are not negated."""
        negated = self._negated_starts(text, found)
        if present.isdisjoint(self._english):
            return {p for p, start, _ in found if start not in negated} if negated else present
        english, whole_word = self._english, self._whole_word
        return {
            p
            for p, start, end in found
            if start not in negated and (p not in english or whole_word(text, p, start, end))
        }

    def term(self, pattern: int) -> str:
        """Return the term of a pattern index."""
        return self._patterns[pattern]

    def keyword_set(self, rule: int) -> frozenset[int]:
        """Return the keyword patterns of a rule."""
        return self._kw_sets[rule]

    def scan(self, text: str) -> dict[int, Hits]:
        """Return the hits of every rule that has any, keyed by rule index."""
        if self._automaton is None or not text:
            return {}
        found = self._automaton.find_matches_as_indexes(text, overlapping=True)
        if not found:
            return {}
        negated_starts = self._negated_starts(text, found)
        hits: dict[int, Hits] = {}
        patterns, roles = self._patterns, self._roles
        for p, start, end in found:
            entries = roles[p]
            if not entries:
                continue
            if p in self._english and not self._whole_word(text, p, start, end):
                continue
            term = patterns[p]
            negated = start in negated_starts
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

    def _negated_starts(self, text: str, found: list[tuple[int, int, int]]) -> set[int]:
        """Return where a hit would be negated: right after a negation, or after fillers only.

        A negation inside an exception (是不是, 有冇: questions) negates nothing.
        """
        negations = self._negations
        spans = [(s, e) for p, s, e in found if p in negations]
        if not spans:
            return set()
        if self._exceptions:
            covers = [(s, e) for p, s, e in found if p in self._exceptions]
            spans = [(s, e) for s, e in spans if not any(cs <= s and e <= ce for cs, ce in covers)]
        starts = set()
        for _, end in spans:
            starts.add(end)
            for k in range(end, min(end + NEGATION_REACH, len(text))):
                if text[k] not in NEGATION_FILLERS:
                    break
                starts.add(k + 1)
        return starts


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
