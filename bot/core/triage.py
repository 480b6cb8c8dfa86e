"""Decide what to do with a message from the model's probabilities and the rule rails.

Pure: the engine (bot/classifier/engine.py) computes the probabilities off the event loop
and calls ``triage``; everything here is plain data in, a Verdict out.

- A ``force`` rule that fires decides: its category, a ticket (an emergency force rule is
  a danger rail: the emergency path starts whatever the model says). When the model sees no
  danger at all in it (p(emergency) under ``thresholds.danger``, which out of fold every
  labelled emergency reaches: hyperbole such as 热到爆炸, a simile, a drill's notice), the
  emergency path starts as a danger flag instead: the emergency numbers at once and a grid
  worker's one-tap confirmation, no ticket until then.
- Else a ``never`` rule that fires vetoes: no ticket and no danger flag.
- Else the model decides: the most probable category; ``none`` is chatter (ignore); a top
  probability under ``thresholds.ask``, or p(none) at or over ``thresholds.doubt`` (maybe
  nothing to handle at all), asks the resident; otherwise a ticket. ``danger`` is
  set when p(emergency) reaches ``thresholds.danger``, far below the top: a grid worker
  confirms those.
- Without a model (``probabilities`` None) the rules decide alone, as they always did.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from bot.core.classify import Match, classify, fired_rules
from bot.core.models import NONE_CATEGORY, Severity, Tier
from bot.core.rules import RuleMode, RuleSet
from bot.core.text import normalise

EMERGENCY = "emergency"


class Action(StrEnum):
    """What the bot does with a message."""

    TICKET = "ticket"  # open (or join) a ticket
    ASK = "ask"  # unsure: ask the resident which problem this is (one tap)
    IGNORE = "ignore"  # chatter, thanks, notices: stay silent


class Source(StrEnum):
    """What decided the category."""

    MODEL = "model"
    RULE = "rule"  # a force or never rail
    RULES_ONLY = "rules-only"  # no model is loaded: the keyword rules alone


@dataclass(frozen=True)
class Thresholds:
    """Cut-offs chosen by leave-one-corpus-out cross-validation and stored with the model."""

    danger: float = 0.03  # p(emergency) at or above which a message is flagged as danger
    ask: float = 0.5  # a top probability below this asks instead of opening a ticket
    doubt: float = 1.0  # p(none) at or above this asks too, when a category is on top


@dataclass(frozen=True)
class Rails:
    """The administrator's rules that fired on a message, by mode."""

    force: tuple[str, ...] = ()
    never: tuple[str, ...] = ()
    features: tuple[str, ...] = ()
    force_match: Match | None = None


@dataclass(frozen=True)
class Verdict:
    """What a message is and what to do with it; the interface for asking and danger checks.

    ``category`` is the best guess (``none`` for chatter), ``tier`` its start tier,
    ``confidence`` the probability of that guess (1.0 for a rail), ``top`` the model's three
    most probable categories, ``rails`` the force/never rules that fired, and ``match`` what
    a ticket opens with (None unless the category is a real one).
    """

    category: str
    tier: Tier | None
    confidence: float
    action: Action
    danger: bool
    source: Source
    top: tuple[tuple[str, float], ...] = ()
    rails: tuple[str, ...] = ()
    match: Match | None = None


def rails(message: str, ruleset: RuleSet) -> Rails:
    """Return the rails that fire on ``message``."""
    text = normalise(message)
    force: list[tuple[int, int]] = []
    never, features = [], []
    for index, score in fired_rules(text, ruleset):
        rule = ruleset.rules[index]
        if rule.mode is RuleMode.FORCE:
            force.append((index, score))
        elif rule.mode is RuleMode.NEVER:
            never.append(rule.id)
        else:
            features.append(rule.id)
    force_match = None
    if force:
        ranks = ruleset.severity_ranks
        index, score = max(force, key=lambda f: (f[1], ranks[f[0]], -f[0]))
        outcome = ruleset.outcomes[index]
        assert outcome is not None  # a force rule never names none
        cat, rule_id, severity, urgent, start_tier = outcome
        force_match = Match(cat, rule_id, score, severity, urgent, start_tier, ())
    return Rails(
        tuple(ruleset.rules[i].id for i, _ in force), tuple(never), tuple(features), force_match
    )


def triage(
    message: str,
    ruleset: RuleSet,
    probabilities: Mapping[str, float] | None,
    thresholds: Thresholds = Thresholds(),
    fired: Rails | None = None,
) -> Verdict:
    """Return the Verdict on ``message``; ``probabilities`` None means rules only."""
    if probabilities is None:
        return _rules_only(classify(message, ruleset))
    fired = fired if fired is not None else rails(message, ruleset)
    top = tuple(sorted(probabilities.items(), key=lambda kv: (-kv[1], kv[0]))[:3])
    if fired.force_match is not None:
        match = fired.force_match
        # A model with no emergency class cannot see danger: the rail decides.
        unseen = probabilities.get(EMERGENCY, 1.0) < thresholds.danger
        if match.category == EMERGENCY and unseen:
            return Verdict(
                NONE_CATEGORY, None, top[0][1] if top else 1.0, Action.IGNORE, True, Source.MODEL,
                top, fired.force,
            )  # fmt: skip
        return Verdict(
            match.category, match.start_tier, 1.0, Action.TICKET,
            match.category == EMERGENCY or probabilities.get(EMERGENCY, 0.0) >= thresholds.danger,
            Source.RULE, top, fired.force, match,
        )  # fmt: skip
    if fired.never:
        return Verdict(
            NONE_CATEGORY, None, 1.0, Action.IGNORE, False, Source.RULE, top, fired.never
        )
    category, confidence = top[0] if top else (NONE_CATEGORY, 1.0)
    danger = probabilities.get(EMERGENCY, 0.0) >= thresholds.danger
    if category == NONE_CATEGORY or category not in ruleset.categories:
        return Verdict(NONE_CATEGORY, None, confidence, Action.IGNORE, danger, Source.MODEL, top)
    spec = ruleset.categories[category]
    match = Match(
        category, "model", round(confidence * 100), spec.severity,
        spec.severity is Severity.CRITICAL, spec.start_tier, (),
    )  # fmt: skip
    doubtful = probabilities.get(NONE_CATEGORY, 0.0) >= thresholds.doubt
    unsure = confidence < thresholds.ask or doubtful
    action = Action.ASK if unsure else Action.TICKET
    return Verdict(
        category, spec.start_tier, confidence, action, danger, Source.MODEL, top, (), match
    )


def _rules_only(match: Match | None) -> Verdict:
    if match is None:
        return Verdict(NONE_CATEGORY, None, 1.0, Action.IGNORE, False, Source.RULES_ONLY)
    return Verdict(
        match.category, match.start_tier, 1.0, Action.TICKET, match.category == EMERGENCY,
        Source.RULES_ONLY, (), (), match,
    )  # fmt: skip
