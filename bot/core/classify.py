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

from collections.abc import Set
from dataclasses import dataclass, field
from typing import NamedTuple

from bot.core.matcher import Hits, term_weight
from bot.core.models import Severity, Tier
from bot.core.rules import Rule, RuleSet
from bot.core.text import normalise

# The rule of a match a grid worker made by answering a danger flag: the resident was given
# the emergency numbers with the flag already.
BY_FLAG = "flag"


class Match(NamedTuple):
    """The category a message belongs to, and why (a tuple: built on every message, fast)."""

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


def classify(message: str, ruleset: RuleSet) -> Match | None:
    """Return the category of ``message``, or None when it is not a request."""
    text = normalise(message)
    matcher = ruleset.matcher
    if ruleset.regex_rules:
        fired = _fired(text, ruleset)
    else:  # the common case, inline: no regex to look at, scores from the term weights
        weights, priorities = matcher.weights, ruleset.priorities
        fired = [
            (index, priorities[index] + sum(map(weights.__getitem__, patterns)), patterns, ())
            for index, patterns in matcher.fire(text)
        ]
    if not fired:
        return None
    ranks = ruleset.severity_ranks
    if len(fired) == 1:
        index, score, patterns, extra = fired[0]
    else:
        index, score, patterns, extra = max(fired, key=lambda f: (f[1], ranks[f[0]], -f[0]))
    if ruleset.outcomes[index] is None:  # a rule of category none won: thanks, notices, adverts
        return None
    return _match(ruleset, index, score, extra + tuple(sorted(map(matcher.term, patterns))))


def fired_rules(text: str, ruleset: RuleSet) -> list[tuple[int, int]]:
    """Return (rule index, score) of every rule that fires on already normalised ``text``."""
    return [(index, score) for index, score, _, _ in _fired(text, ruleset)]


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
    match = _match(ruleset, -key[2], key[0], terms)
    if match is None:
        reason += "; its category is none, so no ticket"
    return Trace(message, text, tuple(c[1] for c in candidates), winner, match, reason)


def _fired(text: str, ruleset: RuleSet) -> list[tuple[int, int, Set[int], tuple[str, ...]]]:
    """Return (rule index, score, patterns, regex matches) of every rule that fires on ``text``."""
    rules, matcher, weights = ruleset.rules, ruleset.matcher, ruleset.matcher.weights
    out = []
    for index, patterns in matcher.fire(text, ruleset.regex_rules):
        rule = rules[index]
        extra: tuple[str, ...] = ()
        if ruleset.regex_rules and not patterns & matcher.keyword_set(index):
            extra = tuple(dict.fromkeys(_regex_found(rule, text)))  # fired through a regex
            if not extra:
                continue
        score = rule.priority + sum(map(weights.__getitem__, patterns))
        if extra:
            score += sum(term_weight(t) for t in extra)
        out.append((index, score, patterns, extra))
    return out


def _regex_found(rule: Rule, text: str) -> tuple[str, ...]:
    found = []
    for pattern in rule.regex:
        m = pattern.search(text)
        if m is not None:
            found.append(m.group(0))
    return tuple(found)


def _evidence(hits: Hits, regex_found: tuple[str, ...]) -> tuple[str, ...]:
    """Return the distinct terms found: regex matches, then terms in sorted order (as classify)."""
    terms = set(hits.keywords)
    for group in hits.groups.values():
        terms.update(group)
    return tuple(dict.fromkeys(regex_found)) + tuple(sorted(terms))


def _match(ruleset: RuleSet, index: int, score: int, terms: tuple[str, ...]) -> Match | None:
    """Return the Match of rule ``index`` winning, or None for a rule of category none."""
    outcome = ruleset.outcomes[index]
    if outcome is None:
        return None
    category, rule, severity, urgent, start_tier = outcome
    return Match(category, rule, score, severity, urgent, start_tier, terms)
