"""Fit the classifier from a rule set's examples, and cross-validate it corpus by corpus.

scikit-learn runs here only: the fitted LinearSVC and its sigmoid calibration are
exported to plain arrays (bot/classifier/model.py). Everything is deterministic: fixed
seeds, fixed folds, sorted vocabularies, so the same inputs give the same arrays.

Thresholds are chosen on out-of-fold probabilities from leave-one-corpus-out
cross-validation (each examples file is one corpus), on the model's own decisions (the
rails are left out: the rules were written while reading these same corpora, so they
would flatter every fold):

- danger: 0.9 x the lowest p(emergency) of the labelled emergencies the model does not put
  in emergency itself, so that out of fold the flag catches every one (DANGER_RECALL = 1: no
  emergency may go unanswered). The hardest one sets it; with 3,619 examples it costs about
  12 flags per 100 messages on ones given no emergency ticket, 8.5 when the lowest 1% may go
  (measured by `lianhu rules test`, 2026-12-05);
- ask and doubt: among the pairs whose worst held-out corpus keeps false tickets (none
  messages given a ticket) at or under FALSE_TICKET_LIMIT, the one with the fewest wrong
  tickets + ASK_COST x questions asked;
- the cascade's gate (a TF-IDF-only model first, the embedding only when it is unsure):
  the gate that embeds the fewest texts while the cascade's figures stay within
  CASCADE_SLACK of the full model's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.calibration import CalibratedClassifierCV
from sklearn.model_selection import StratifiedKFold
from sklearn.svm import LinearSVC

from bot.classifier.embedding import DIM
from bot.classifier.features import build_vocabulary, char_grams, word_grams
from bot.classifier.model import Gate, Model
from bot.core.models import NONE_CATEGORY
from bot.core.rules import RuleMode, RuleSet
from bot.core.text import normalise
from bot.core.triage import EMERGENCY, Action, Rails, Thresholds, rails, triage

SEED = 0
ASK_COST = 0.3  # a question costs the resident a tap: about a third of a wrong ticket
ASK_GRID = tuple(round(0.25 + 0.05 * i, 2) for i in range(10))  # 0.25 .. 0.70
# p(none) at or over this asks even when a category is on top; 1.0 switches it off
DOUBT_GRID = (*(round(0.15 + 0.05 * i, 2) for i in range(8)), 1.0)  # 0.15 .. 0.50, off
# The issue allows 3% false tickets; choosing at 2.5% on the worst fold leaves a margin
# for writers none of the corpora has.
FALSE_TICKET_LIMIT = 0.025
DANGER_RECALL = 1.0  # of the emergencies out of fold, the share the model's flag must catch
GATE_CONFIDENT = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))  # 0.50 .. 0.95
GATE_EMERGENCY = (0.005, 0.01, 0.02, 0.03, 0.05, 0.1)
# How much worse than the full model the cascade may be: macro-F1, asks and flags per 100.
CASCADE_SLACK = {"macro_f1": 0.005, "asks_per_100": 1.0, "flags_per_100": 1.0}


def policy() -> str:
    """Return how thresholds and the gate are chosen, as text: part of the model's cache key,
    so a new choice retrains instead of reusing a model chosen the old way."""
    chosen = (ASK_COST, ASK_GRID, DOUBT_GRID, FALSE_TICKET_LIMIT, DANGER_RECALL)
    return repr((*chosen, GATE_CONFIDENT, GATE_EMERGENCY, sorted(CASCADE_SLACK.items())))


class TrainingError(Exception):
    """The examples cannot make a model (too few classes or examples)."""


@dataclass(frozen=True)
class Params:
    """What a model is made of."""

    embed_weight: float = 2.0
    rule_weight: float = 0.0
    c: float = 0.5
    min_df: int = 2
    calibration_folds: int = 3


@dataclass(frozen=True)
class Data:
    """The examples of a rule set turned into what fitting needs."""

    texts: tuple[str, ...]  # normalised
    labels: tuple[str, ...]
    corpora: tuple[str, ...]
    measured: tuple[bool, ...]  # False: a training-only corpus, never held out
    raw: tuple[str, ...]
    fired: tuple[tuple[str, ...], ...]  # feature rules that fire on each
    embeddings: np.ndarray | None


def prepare(ruleset: RuleSet, embeddings: np.ndarray | None) -> Data:
    """Return the training data of ``ruleset``'s examples (``embeddings`` row per example)."""
    examples = ruleset.examples
    return Data(
        texts=tuple(normalise(e.text) for e in examples),
        labels=tuple(e.category for e in examples),
        corpora=tuple(e.corpus for e in examples),
        measured=tuple(e.measured for e in examples),
        raw=tuple(e.text for e in examples),
        fired=tuple(rails(e.text, ruleset).features for e in examples),
        embeddings=embeddings,
    )


def feature_rules(ruleset: RuleSet) -> tuple[str, ...]:
    """Return the ids of the rules that are model features."""
    return tuple(r.id for r in ruleset.rules if r.mode is RuleMode.FEATURE)


def fit(
    data: Data, rows: Sequence[int], rule_ids: Sequence[str], params: Params, embed_model: str
) -> Model:
    """Fit a model on the examples at ``rows``."""
    texts = [data.texts[i] for i in rows]
    labels = np.array([data.labels[i] for i in rows])
    classes, counts = np.unique(labels, return_counts=True)
    if len(classes) < 3:
        raise TrainingError("the examples need at least three categories (none counts)")
    folds = min(params.calibration_folds, int(counts.min()))
    if folds < 2:
        small = ", ".join(str(c) for c, n in zip(classes, counts, strict=True) if n < 2)
        raise TrainingError(f"every category needs two examples or more ({small})")
    char_docs = [char_grams(t) for t in texts]
    word_docs = [word_grams(t) for t in texts]
    char_terms, char_idf = build_vocabulary(char_docs, params.min_df)
    word_terms, word_idf = build_vocabulary(word_docs, params.min_df)
    use_embed = data.embeddings is not None and params.embed_weight > 0
    model = Model(
        classes=tuple(str(c) for c in classes),
        char_terms=tuple(char_terms), char_idf=char_idf,
        word_terms=tuple(word_terms), word_idf=word_idf,
        rule_ids=tuple(rule_ids),
        weights=np.zeros((0, len(classes))), bias=np.zeros(len(classes)),
        calib_a=np.zeros(len(classes)), calib_b=np.zeros(len(classes)),
        embed_model=embed_model if use_embed else "",
        embed_weight=params.embed_weight if use_embed else 0.0,
        rule_weight=params.rule_weight,
        thresholds=Thresholds(),
    )  # fmt: skip
    matrix = design(model, texts, char_docs, word_docs, [data.fired[i] for i in rows],
                    data.embeddings[list(rows)] if use_embed and data.embeddings is not None
                    else None)  # fmt: skip
    svc = LinearSVC(C=params.c, random_state=SEED, max_iter=5000)
    calibrated = CalibratedClassifierCV(
        svc,
        method="sigmoid",
        cv=StratifiedKFold(folds, shuffle=True, random_state=SEED),
        ensemble=False,
    )
    calibrated.fit(matrix, labels)
    inner = calibrated.calibrated_classifiers_[0]
    estimator: Any = inner.estimator
    return Model(
        **{
            **model.__dict__,
            "weights": np.ascontiguousarray(estimator.coef_.T, dtype=np.float64),
            "bias": np.asarray(estimator.intercept_, dtype=np.float64),
            "calib_a": np.array([c.a_ for c in inner.calibrators], dtype=np.float64),
            "calib_b": np.array([c.b_ for c in inner.calibrators], dtype=np.float64),
            "_char": {}, "_word": {}, "_rule": {},
        }
    )  # fmt: skip


def design(
    model: Model,
    texts: Sequence[str],
    char_docs: Sequence[Sequence[str]],
    word_docs: Sequence[Sequence[str]],
    fired: Sequence[Sequence[str]],
    embeddings: np.ndarray | None,
) -> sparse.csr_matrix:
    """Return the training matrix, built with the same functions as Model.predict."""
    tfidf_part = model.features_of(char_docs, word_docs, fired)
    if embeddings is None:
        return tfidf_part
    dense = sparse.csr_matrix(model.embed_weight * embeddings)
    return sparse.hstack([tfidf_part, dense], format="csr")


@dataclass(frozen=True)
class OutOfFold:
    """Leave-one-corpus-out probabilities of every example, by the full and the fast model."""

    classes: tuple[str, ...]
    full: np.ndarray
    fast: np.ndarray | None  # the TF-IDF-only model's, when the full one has an embedding


def out_of_fold(data: Data, rule_ids: Sequence[str], params: Params, embed_model: str) -> OutOfFold:
    """Return leave-one-corpus-out probabilities of every example.

    With a single corpus, five stratified folds stand in for the corpora.
    """
    labels = np.array(data.labels)
    classes = tuple(str(c) for c in np.unique(labels))
    full = np.zeros((len(labels), len(classes)))
    cascade = data.embeddings is not None and params.embed_weight > 0
    fast = np.zeros_like(full) if cascade else None
    for train_rows, test_rows in splits(data):
        model = fit(data, train_rows, rule_ids, params, embed_model)
        texts = [data.texts[i] for i in test_rows]
        fired = [data.fired[i] for i in test_rows]
        emb = data.embeddings[test_rows] if model.uses_embedding and data.embeddings is not None \
            else None  # fmt: skip
        columns = [classes.index(c) for c in model.classes]
        full[np.ix_(test_rows, columns)] = model.probabilities(texts, emb, fired)
        if fast is not None:
            tfidf_only = fit(data, train_rows, rule_ids, fast_params(params), "")
            fast[np.ix_(test_rows, columns)] = tfidf_only.probabilities(texts, None, fired)
    return OutOfFold(classes, full, fast)


def splits(data: Data) -> list[tuple[list[int], list[int]]]:
    """Return (train rows, held-out rows): one per corpus, or five stratified folds."""
    labels = np.array(data.labels)
    # Training-only corpora (edge cases written to cover the rails) are always trained on.
    corpora = sorted({c for c, m in zip(data.corpora, data.measured, strict=True) if m})
    if len(corpora) > 1:
        return [
            ([i for i, c in enumerate(data.corpora) if c != held],
             [i for i, c in enumerate(data.corpora) if c == held])
            for held in corpora
        ]  # fmt: skip
    folds = max(2, min(5, int(np.unique(labels, return_counts=True)[1].min())))
    kfold = StratifiedKFold(folds, shuffle=True, random_state=SEED)
    return [(list(a), list(b)) for a, b in kfold.split(np.zeros(len(labels)), labels)]


def fast_params(params: Params) -> Params:
    """Return the parameters of the cascade's TF-IDF-only model."""
    return Params(**{**vars(params), "embed_weight": 0.0})


@dataclass(frozen=True)
class Outcome:
    """The model's own decisions (no rails) on out-of-fold probabilities, as arrays."""

    top: np.ndarray  # class index
    ticket: np.ndarray  # bool
    asked: np.ndarray  # bool
    flagged: np.ndarray  # bool: danger on a message not put in emergency


def outcome(proba: np.ndarray, classes: Sequence[str], thr: Thresholds) -> Outcome:
    """Return what triage would decide from ``proba`` alone (no rail firing)."""
    top = proba.argmax(axis=1)
    real = top != _index(classes, NONE_CATEGORY)
    doubtful = _column(proba, classes, NONE_CATEGORY) >= thr.doubt
    unsure = (proba.max(axis=1) < thr.ask) | doubtful
    p_em = _column(proba, classes, EMERGENCY)
    return Outcome(
        top, real & ~unsure, real & unsure,
        (p_em >= thr.danger) & (top != _index(classes, EMERGENCY)),
    )  # fmt: skip


def _index(classes: Sequence[str], name: str) -> int:
    return list(classes).index(name) if name in classes else -1


def _column(proba: np.ndarray, classes: Sequence[str], name: str) -> np.ndarray:
    index = _index(classes, name)
    return proba[:, index] if index >= 0 else np.zeros(len(proba))


def choose_thresholds(
    labels: Sequence[str], corpora: Sequence[str], proba: np.ndarray, classes: Sequence[str]
) -> Thresholds:
    """Return the danger, ask and doubt thresholds the out-of-fold probabilities support.

    Each is chosen so that it holds in every held-out corpus, not on the average (see the
    module's docstring).
    """
    gold = np.array(labels)
    top = proba.argmax(axis=1)
    p_em = _column(proba, classes, EMERGENCY)
    missed = (gold == EMERGENCY) & (top != _index(classes, EMERGENCY))
    danger = _danger(p_em[missed], int((gold == EMERGENCY).sum()))
    folds = [np.array(corpora) == c for c in sorted(set(corpora))]
    none = gold == NONE_CATEGORY
    best: tuple[tuple[float, ...], Thresholds] | None = None
    for ask in ASK_GRID:
        for doubt in DOUBT_GRID:
            thr = Thresholds(round(danger, 4), ask, doubt)
            done = outcome(proba, classes, thr)
            worst = max(_rate(done.ticket, none & fold) for fold in folds)
            wrong = int((done.ticket & (np.array(classes)[top] != gold)).sum())
            cost = wrong + ASK_COST * int(done.asked.sum())
            # feasible pairs first; among them (or, if none is, by worst fold) the cheapest
            key = (0.0, cost) if worst <= FALSE_TICKET_LIMIT else (1.0, worst, cost)
            if best is None or key < best[0]:
                best = (key, thr)
    assert best is not None
    return best[1]


def _danger(missed: np.ndarray, emergencies: int, recall: float = DANGER_RECALL) -> float:
    """Return the danger threshold: it may leave out the ``(1 - recall)`` share of
    ``emergencies`` whose missed p(emergency) is lowest, and must catch every other one."""
    if not len(missed):
        return 0.5
    spared = int((1 - recall) * emergencies + 1e-9)
    ranked = np.sort(missed)
    needed = ranked[min(spared, len(ranked) - 1)]
    return float(np.clip(0.9 * needed, 0.005, 0.5))


def _rate(hits: np.ndarray, among: np.ndarray) -> float:
    count = int(among.sum())
    return float((hits & among).sum()) / count if count else 0.0


def summary(
    labels: Sequence[str],
    corpora: Sequence[str],
    proba: np.ndarray,
    classes: Sequence[str],
    thr: Thresholds,
) -> dict[str, float]:
    """Return what the gate choice compares: macro-F1, worst-fold false tickets, asks and
    flags per 100, emergencies neither put in emergency nor flagged (model alone)."""
    gold = np.array(labels)
    done = outcome(proba, classes, thr)
    guess = np.array(classes)[done.top]
    cats = sorted({c for c in labels if c != NONE_CATEGORY})
    f1 = [2 * float(((gold == c) & (guess == c)).sum())
          / float((gold == c).sum() + (guess == c).sum()) for c in cats]  # fmt: skip
    none = gold == NONE_CATEGORY
    folds = [np.array(corpora) == c for c in sorted(set(corpora))]
    em = gold == EMERGENCY
    return {
        "macro_f1": sum(f1) / len(f1) if f1 else 0.0,
        "worst_false_tickets": max(_rate(done.ticket, none & fold) for fold in folds),
        "asks_per_100": 100 * float(done.asked.mean()),
        "flags_per_100": 100 * float(done.flagged.mean()),
        "missed_emergencies": int((em & (guess != EMERGENCY) & ~done.flagged).sum()),
    }


def choose_gate(
    labels: Sequence[str], corpora: Sequence[str], oof: OutOfFold
) -> tuple[Gate, Thresholds, np.ndarray]:
    """Return the cascade's gate, the thresholds for its probabilities, and which examples
    it embedded; the default Gate (embed everything) when no gate keeps up."""
    assert oof.fast is not None
    classes = oof.classes
    thr = choose_thresholds(labels, corpora, oof.full, classes)
    base = summary(labels, corpora, oof.full, classes, thr)
    best: tuple[tuple[float, float], Gate, Thresholds, np.ndarray] | None = None
    for confident in GATE_CONFIDENT:
        for emergency in GATE_EMERGENCY:
            gate = Gate(confident, emergency)
            embedded = ~accepted(oof.fast, classes, gate)
            proba = np.where(embedded[:, None], oof.full, oof.fast)
            gate_thr = choose_thresholds(labels, corpora, proba, classes)
            got = summary(labels, corpora, proba, classes, gate_thr)
            if not keeps_up(got, base):
                continue
            key = (float(embedded.mean()), -got["macro_f1"])
            if best is None or key < best[0]:
                best = (key, gate, gate_thr, embedded)
    if best is None:
        return Gate(), thr, np.ones(len(labels), bool)
    return best[1], best[2], best[3]


def accepted(fast: np.ndarray, classes: Sequence[str], gate: Gate) -> np.ndarray:
    """Return which rows the gate leaves to the TF-IDF-only model (as Model.accepts)."""
    result: np.ndarray = (fast.max(axis=1) >= gate.confident) & (
        _column(fast, classes, EMERGENCY) < gate.emergency
    )
    return result


def keeps_up(got: dict[str, float], base: dict[str, float]) -> bool:
    """Return whether the cascade's figures are within CASCADE_SLACK of the full model's."""
    return (
        got["macro_f1"] >= base["macro_f1"] - CASCADE_SLACK["macro_f1"]
        and got["asks_per_100"] <= base["asks_per_100"] + CASCADE_SLACK["asks_per_100"]
        and got["flags_per_100"] <= base["flags_per_100"] + CASCADE_SLACK["flags_per_100"]
        and got["worst_false_tickets"] <= max(FALSE_TICKET_LIMIT, base["worst_false_tickets"])
        and got["missed_emergencies"] <= base["missed_emergencies"]
    )


def decisions(
    ruleset: RuleSet,
    data: Data,
    proba: np.ndarray,
    classes: Sequence[str],
    thr: Thresholds,
    with_rails: bool = True,
) -> list[Any]:
    """Return the Verdict on every example from its (out-of-fold) probabilities; without
    rails, the model's own decision."""
    none = Rails()
    return [
        triage(text, ruleset, dict(zip(classes, map(float, row), strict=True)), thr,
               None if with_rails else none)
        for text, row in zip(data.raw, proba, strict=True)
    ]  # fmt: skip


def cv_figures(
    data: Data, verdicts: Sequence[Any], embedded: np.ndarray | None = None
) -> dict[str, Any]:
    """Return per-corpus and overall figures of cross-validated verdicts."""
    out: dict[str, Any] = {}
    measured = sorted({c for c, m in zip(data.corpora, data.measured, strict=True) if m})
    for corpus in [*measured, "all"]:
        rows = [
            i for i, (c, m) in enumerate(zip(data.corpora, data.measured, strict=True))
            if m and corpus in ("all", c)
        ]  # fmt: skip
        out[corpus] = figures([data.labels[i] for i in rows], [verdicts[i] for i in rows])
        if embedded is not None:
            out[corpus]["embedded"] = round(float(embedded[rows].mean()), 4)
    return out


def figures(labels: Sequence[str], verdicts: Sequence[Any]) -> dict[str, float]:
    """Return macro-F1 (categories in the corpus, none excluded), emergency recall with and
    without the danger flag, false tickets on none, the ask rate, flags per 100 (every
    danger flag) and extra flags per 100 (danger on a message given no emergency ticket:
    what a grid worker is asked to confirm)."""
    cats = sorted({c for c in labels if c != NONE_CATEGORY})
    f1s = []
    for cat in cats:
        tp = sum(1 for g, v in zip(labels, verdicts, strict=True) if g == cat and v.category == cat)
        pred = sum(1 for v in verdicts if v.category == cat)
        gold = sum(1 for g in labels if g == cat)
        f1s.append(2 * tp / (pred + gold) if pred + gold else 0.0)
    em = [v for g, v in zip(labels, verdicts, strict=True) if g == EMERGENCY]
    none = [v for g, v in zip(labels, verdicts, strict=True) if g == NONE_CATEGORY]
    n = len(labels)
    extra = sum(v.danger and not _emergency_ticket(v) for v in verdicts)
    return {
        "messages": n,
        "macro_f1": round(sum(f1s) / len(f1s), 4) if f1s else 0.0,
        "emergency_recall": round(sum(_emergency_ticket(v) for v in em) / len(em), 4)
        if em else 1.0,
        "emergency_recall_with_danger": round(
            sum(_emergency_ticket(v) or v.danger for v in em) / len(em), 4
        ) if em else 1.0,
        "false_ticket_rate": round(
            sum(v.action is Action.TICKET for v in none) / len(none), 4
        ) if none else 0.0,
        "ask_rate": round(sum(v.action is Action.ASK for v in verdicts) / n, 4) if n else 0.0,
        "flags_per_100": round(100 * sum(v.danger for v in verdicts) / n, 2) if n else 0.0,
        "extra_flags_per_100": round(100 * extra / n, 2) if n else 0.0,
    }  # fmt: skip


def _emergency_ticket(verdict: Any) -> bool:
    return bool(verdict.category == EMERGENCY and verdict.action is Action.TICKET)


def train(
    ruleset: RuleSet,
    embeddings: np.ndarray | None,
    embed_model: str = "",
    params: Params = Params(),
    cross_validate: bool = True,
) -> Model:
    """Fit the model (and, with an embedding, the cascade's TF-IDF-only model) on every
    example; with ``cross_validate``, choose thresholds and the gate by LOCO-CV."""
    if not ruleset.examples:
        raise TrainingError("the rules name no examples")
    if embeddings is not None and embeddings.shape != (len(ruleset.examples), DIM):
        raise ValueError("one embedding per example is needed")
    data = prepare(ruleset, embeddings)
    rule_ids = feature_rules(ruleset) if params.rule_weight else ()
    everything = range(len(data.texts))
    model = fit(data, everything, rule_ids, params, embed_model)
    if model.uses_embedding:
        fast = fit(data, everything, rule_ids, fast_params(params), "")
        assert fast.char_terms == model.char_terms and fast.word_terms == model.word_terms
        model = replace(model, fast_weights=fast.weights, fast_bias=fast.bias,
                        fast_calib_a=fast.calib_a, fast_calib_b=fast.calib_b)  # fmt: skip
    if not cross_validate:
        return model
    oof = out_of_fold(data, rule_ids, params, embed_model)
    # Thresholds and the gate are chosen on the held-out corpora only: a training-only one
    # has no out-of-fold probabilities.
    kept = np.array(data.measured)
    classes = oof.classes
    labels = tuple(np.array(data.labels)[kept])
    corpora = tuple(np.array(data.corpora)[kept])
    held = OutOfFold(classes, oof.full[kept], None if oof.fast is None else oof.fast[kept])
    meta: dict[str, Any] = {"digest": ruleset.digest, "params": vars(params)}
    if oof.fast is not None:
        gate, thresholds, embedded_held = choose_gate(labels, corpora, held)
        embedded = np.zeros(len(data.texts), dtype=bool)
        embedded[kept] = embedded_held
        proba = np.where(embedded[:, None], oof.full, oof.fast)
        alone = choose_thresholds(labels, corpora, held.full, classes)
        meta["cv_without_cascade"] = cv_figures(
            data, decisions(ruleset, data, oof.full, classes, alone)
        )
        meta["thresholds_without_cascade"] = vars(alone)
    else:
        gate, embedded, proba = Gate(), None, oof.full
        thresholds = choose_thresholds(labels, corpora, held.full, classes)
    meta["cv"] = cv_figures(data, decisions(ruleset, data, proba, classes, thresholds), embedded)
    meta["cv_model_alone"] = cv_figures(
        data, decisions(ruleset, data, proba, classes, thresholds, with_rails=False), embedded
    )
    return replace(model, thresholds=thresholds, gate=gate, meta=meta)


def replace(model: Model, **changes: Any) -> Model:
    """Return ``model`` with ``changes`` (its term indexes rebuilt)."""
    return Model(**{**model.__dict__, **changes, "_char": {}, "_word": {}, "_rule": {}})
