"""Decide what a resident's message is about, and explain the decision.

A rule fires when one of its keywords (or regexes) is found, every all-of
group has a term in the text, and none of its veto words is present. A
keyword right after a negation (不是停水) does not count. Among the rules
that fire, the highest score wins:

    score = priority + evidence,  evidence = sum of the weights of the distinct
    terms found (a term weighs its length in characters, an English word 2,
    at most 6 a term)

ties go to the more severe category, then to the rule that comes first.
A winning rule of category ``none`` (thanks, notices, adverts) means the
message is not a request, and classify returns None.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from bot.core.matcher import Hits
from bot.core.models import NONE_CATEGORY, Severity, Tier
from bot.core.rules import Rule, RuleSet
from bot.core.text import normalise

MAX_TERM_WEIGHT = 6


@dataclass(frozen=True)
class Match:
    """The category a message belongs to, and why."""

    category: str
    rule: str
    score: int
    severity: Severity
    urgent: bool
    start_tier: Tier
    matched: tuple[str, ...]


@dataclass(frozen=True)
class Candidate:
    """One rule that saw something in the message, and what became of it."""

    rule: str
    category: str
    priority: int
    keywords: tuple[str, ...]
    groups: tuple[tuple[str, ...], ...]
    missing_groups: tuple[int, ...]
    regex: tuple[str, ...]
    vetoes: tuple[str, ...]
    negated: tuple[str, ...]
    score: int
    fired: bool
    verdict: str


@dataclass(frozen=True)
class Trace:
    """Everything classify did with one message."""

    text: str
    normalised: str
    candidates: tuple[Candidate, ...]
    winner: Candidate | None
    match: Match | None
    reason: str = field(default="")


@functools.lru_cache(maxsize=65536)
def term_weight(term: str) -> int:
    """Return how much one found term counts towards a rule's evidence."""
    weight = 2 * len(term.split()) if term.isascii() else len(term)
    return min(weight, MAX_TERM_WEIGHT)


def classify(message: str, ruleset: RuleSet) -> Match | None:
    """Return the category of ``message``, or None when it is not a request."""
    text = normalise(message)
    best: tuple[int, int, int] | None = None
    best_index = -1
    best_terms: tuple[str, ...] = ()
    for index, score, terms in _fired(text, ruleset):
        key = (score, ruleset.severity_ranks[index], -index)
        if best is None or key > best:
            best, best_index, best_terms = key, index, terms
    if best is None or ruleset.rules[best_index].category == NONE_CATEGORY:
        return None
    return _match(ruleset, ruleset.rules[best_index], best[0], best_terms)


def explain(message: str, ruleset: RuleSet) -> Trace:
    """Return the full trace of classifying ``message``: every candidate and the verdict."""
    text = normalise(message)
    hits_by_rule = ruleset.matcher.scan(text)
    candidates: list[tuple[tuple[int, int, int], Candidate, Rule, tuple[str, ...]]] = []
    for index, rule in enumerate(ruleset.rules):
        hits = hits_by_rule.get(index, Hits())
        # As in classify: a regex is only looked at when no keyword was found.
        regex_found = _regex_found(rule, text) if rule.regex and not hits.keywords else ()
        if not (hits.keywords or hits.groups or hits.vetoes or hits.negated or regex_found):
            continue
        missing = tuple(g for g in range(len(rule.all_of)) if g not in hits.groups)
        triggered = bool(hits.keywords or regex_found)
        fired = triggered and not missing and not hits.vetoes
        terms = _evidence(hits, regex_found)
        score = rule.priority + sum(term_weight(t) for t in terms)
        if hits.vetoes:
            verdict = f"vetoed by {', '.join(dict.fromkeys(hits.vetoes))}"
        elif not triggered:
            verdict = "no keyword" + (" (negated)" if hits.negated else "")
        elif missing:
            verdict = f"all_of group {', '.join(str(g + 1) for g in missing)} not found"
        else:
            verdict = f"fired, score {score}"
        candidate = Candidate(
            rule=rule.id, category=rule.category, priority=rule.priority,
            keywords=tuple(dict.fromkeys(hits.keywords)),
            groups=tuple(tuple(dict.fromkeys(hits.groups[g])) for g in sorted(hits.groups)),
            missing_groups=missing, regex=regex_found,
            vetoes=tuple(dict.fromkeys(hits.vetoes)), negated=tuple(dict.fromkeys(hits.negated)),
            score=score if fired else 0, fired=fired, verdict=verdict,
        )  # fmt: skip
        key = (score, ruleset.severity_ranks[index], -index)
        candidates.append((key, candidate, rule, terms))
    winners = [c for c in candidates if c[1].fired]
    if not winners:
        reason = "no rule fired" if candidates else "no rule saw anything"
        return Trace(message, text, tuple(c[1] for c in candidates), None, None, reason)
    key, winner, rule, terms = max(winners, key=lambda c: c[0])
    others = sorted((c for c in winners if c[1] is not winner), key=lambda c: c[0], reverse=True)
    reason = f"{rule.id} has the highest score ({key[0]})"
    if others:
        runner = others[0]
        reason += f"; next is {runner[2].id} ({runner[0][0]})"
        if runner[0][0] == key[0]:
            reason += ": tie broken by severity, then rule order"
    match = None
    if rule.category == NONE_CATEGORY:
        reason += "; its category is none, so no ticket"
    else:
        match = _match(ruleset, rule, key[0], terms)
    return Trace(message, text, tuple(c[1] for c in candidates), winner, match, reason)


def _fired(text: str, ruleset: RuleSet) -> list[tuple[int, int, tuple[str, ...]]]:
    """Return (rule index, score, distinct terms) of every rule that fires on ``text``."""
    rules, matcher = ruleset.rules, ruleset.matcher
    keywords, groups, vetoed = matcher.evidence(text, ruleset.regex_rules)
    out = []
    for index in keywords.keys() | ruleset.regex_rules if ruleset.regex_rules else keywords:
        rule = rules[index]
        found_groups = groups.get(index)
        if index in vetoed or (rule.all_of and len(found_groups or ()) < len(rule.all_of)):
            continue
        patterns = keywords.get(index)
        if patterns is None:  # a regex rule without a keyword: its regexes must match
            found = _regex_found(rule, text)
            if not found:
                continue
            distinct: dict[int, None] = {}
            extra = tuple(dict.fromkeys(found))
        else:
            distinct = dict.fromkeys(patterns)  # in the order found, as explain() lists them
            extra = ()
        if found_groups:
            for group in found_groups.values():
                distinct.update(dict.fromkeys(group))
        terms = extra + tuple(matcher.term(p) for p in distinct)
        score = rule.priority + sum(term_weight(t) for t in terms)
        out.append((index, score, terms))
    return out


def _regex_found(rule: Rule, text: str) -> tuple[str, ...]:
    found = []
    for pattern in rule.regex:
        m = pattern.search(text)
        if m is not None:
            found.append(m.group(0))
    return tuple(found)


def _evidence(hits: Hits, regex_found: tuple[str, ...]) -> tuple[str, ...]:
    terms = [*hits.keywords, *regex_found]
    for group in hits.groups.values():
        terms.extend(group)
    return tuple(dict.fromkeys(terms))


def _match(ruleset: RuleSet, rule: Rule, score: int, terms: tuple[str, ...]) -> Match:
    category = ruleset.categories[rule.category]
    return Match(
        category=rule.category,
        rule=rule.id,
        score=score,
        severity=category.severity,
        urgent=rule.urgent or category.severity is Severity.CRITICAL,
        start_tier=category.start_tier,
        matched=terms,
    )
