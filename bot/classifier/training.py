"""Fit the classifier from a rule set's examples, and cross-validate it corpus by corpus.

scikit-learn runs here only: the fitted LinearSVC and its sigmoid calibration are
exported to plain arrays (bot/classifier/model.py). Everything is deterministic: fixed
seeds, fixed folds, sorted vocabularies, so the same inputs give the same arrays.

Thresholds are chosen on out-of-fold probabilities from leave-one-corpus-out
cross-validation (each examples file is one corpus): the danger threshold is just under
the lowest p(emergency) of any labelled emergency (so none would have been missed), the
ask threshold minimises wrong tickets + ASK_COST x questions asked.
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
from bot.classifier.features import build_vocabulary, char_grams, tfidf, word_grams
from bot.classifier.model import Model
from bot.core.models import NONE_CATEGORY
from bot.core.rules import RuleMode, RuleSet
from bot.core.text import normalise
from bot.core.triage import EMERGENCY, Action, Thresholds, rails, triage

SEED = 0
ASK_COST = 0.3  # a question costs the resident a tap: about a third of a wrong ticket
ASK_GRID = tuple(round(0.25 + 0.05 * i, 2) for i in range(10))  # 0.25 .. 0.70


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
    """Return the training matrix, built with the same functions as Model.scores."""
    n_char, n_word, n_rule = len(model.char_terms), len(model.word_terms), len(model.rule_ids)
    rules = {r: i for i, r in enumerate(model.rule_ids)}
    rows, cols, vals = [], [], []
    for row in range(len(texts)):
        index, values = tfidf(char_docs[row], model._char, model.char_idf)
        rows.append(np.full(len(index), row))
        cols.append(index)
        vals.append(values)
        index, values = tfidf(word_docs[row], model._word, model.word_idf)
        rows.append(np.full(len(index), row))
        cols.append(n_char + index)
        vals.append(values)
        if model.rule_weight:
            index = np.array(sorted({rules[r] for r in fired[row] if r in rules}), np.int64)
            rows.append(np.full(len(index), row))
            cols.append(n_char + n_word + index)
            vals.append(np.full(len(index), model.rule_weight))
    width = n_char + n_word + n_rule
    tfidf_part = sparse.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(len(texts), width),
    )
    if embeddings is None:
        return tfidf_part
    dense = sparse.csr_matrix(model.embed_weight * embeddings)
    return sparse.hstack([tfidf_part, dense], format="csr")


def out_of_fold(
    data: Data, rule_ids: Sequence[str], params: Params, embed_model: str
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Return leave-one-corpus-out probabilities of every example, and their classes.

    With a single corpus, five stratified folds stand in for the corpora.
    """
    labels = np.array(data.labels)
    classes = tuple(str(c) for c in np.unique(labels))
    corpora = sorted(set(data.corpora))
    if len(corpora) > 1:
        splits = [
            ([i for i, c in enumerate(data.corpora) if c != held],
             [i for i, c in enumerate(data.corpora) if c == held])
            for held in corpora
        ]  # fmt: skip
    else:
        folds = max(2, min(5, int(np.unique(labels, return_counts=True)[1].min())))
        kfold = StratifiedKFold(folds, shuffle=True, random_state=SEED)
        splits = [(list(a), list(b)) for a, b in kfold.split(np.zeros(len(labels)), labels)]
    oof = np.zeros((len(labels), len(classes)))
    for train_rows, test_rows in splits:
        model = fit(data, train_rows, rule_ids, params, embed_model)
        emb = data.embeddings[test_rows] if model.uses_embedding and data.embeddings is not None \
            else None  # fmt: skip
        proba = model.probabilities(
            [data.texts[i] for i in test_rows], emb, [data.fired[i] for i in test_rows]
        )
        for j, cls in enumerate(model.classes):
            oof[test_rows, classes.index(cls)] = proba[:, j]
    return oof, classes


def choose_thresholds(
    ruleset: RuleSet, data: Data, oof: np.ndarray, classes: Sequence[str]
) -> Thresholds:
    """Return the danger and ask thresholds that the out-of-fold probabilities support."""
    labels = np.array(data.labels)
    if EMERGENCY in classes:
        p_em = oof[:, list(classes).index(EMERGENCY)]
        gold = p_em[labels == EMERGENCY]
        danger = float(np.clip(0.9 * gold.min(), 0.005, 0.5)) if len(gold) else 0.5
        # Never flag more than a fifth of all messages: past that nobody reads the flags.
        danger = max(danger, float(np.quantile(p_em, 0.8)))
    else:
        danger = 0.5
    best: tuple[float, float] | None = None
    for ask in ASK_GRID:
        verdicts = decisions(ruleset, data, oof, classes, Thresholds(danger, ask))
        wrong = sum(
            v.action is Action.TICKET and v.category != gold
            for v, gold in zip(verdicts, data.labels, strict=True)
        )
        asks = sum(v.action is Action.ASK for v in verdicts)
        cost = wrong + ASK_COST * asks
        if best is None or cost < best[0]:
            best = (cost, ask)
    assert best is not None
    return Thresholds(round(danger, 4), best[1])


def decisions(
    ruleset: RuleSet, data: Data, proba: np.ndarray, classes: Sequence[str], thr: Thresholds
) -> list[Any]:
    """Return the Verdict on every example, from its (out-of-fold) probabilities."""
    return [
        triage(text, ruleset, dict(zip(classes, map(float, row), strict=True)), thr)
        for text, row in zip(data.raw, proba, strict=True)
    ]


def cv_figures(ruleset: RuleSet, data: Data, verdicts: Sequence[Any]) -> dict[str, Any]:
    """Return per-corpus and overall figures of cross-validated verdicts."""
    out: dict[str, Any] = {}
    for corpus in [*sorted(set(data.corpora)), "all"]:
        rows = [i for i, c in enumerate(data.corpora) if corpus in ("all", c)]
        out[corpus] = figures([data.labels[i] for i in rows], [verdicts[i] for i in rows])
    return out


def figures(labels: Sequence[str], verdicts: Sequence[Any]) -> dict[str, float]:
    """Return macro-F1 (categories in the corpus, none excluded), emergency recall with and
    without the danger flag, false tickets on none, the ask rate and flags per 100."""
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
    return {
        "messages": n,
        "macro_f1": round(sum(f1s) / len(f1s), 4) if f1s else 0.0,
        "emergency_recall": round(sum(v.category == EMERGENCY for v in em) / len(em), 4)
        if em else 1.0,
        "emergency_recall_with_danger": round(
            sum(v.category == EMERGENCY or v.danger for v in em) / len(em), 4
        ) if em else 1.0,
        "false_ticket_rate": round(
            sum(v.action is Action.TICKET for v in none) / len(none), 4
        ) if none else 0.0,
        "ask_rate": round(sum(v.action is Action.ASK for v in verdicts) / n, 4) if n else 0.0,
        "flags_per_100": round(100 * sum(v.danger for v in verdicts) / n, 2) if n else 0.0,
    }  # fmt: skip


def train(
    ruleset: RuleSet,
    embeddings: np.ndarray | None,
    embed_model: str = "",
    params: Params = Params(),
    cross_validate: bool = True,
) -> Model:
    """Fit the model on every example; with ``cross_validate``, choose thresholds by LOCO-CV."""
    if not ruleset.examples:
        raise TrainingError("the rules name no examples")
    if embeddings is not None and embeddings.shape != (len(ruleset.examples), DIM):
        raise ValueError("one embedding per example is needed")
    data = prepare(ruleset, embeddings)
    rule_ids = feature_rules(ruleset) if params.rule_weight else ()
    model = fit(data, range(len(data.texts)), rule_ids, params, embed_model)
    if not cross_validate:
        return model
    oof, classes = out_of_fold(data, rule_ids, params, embed_model)
    thresholds = choose_thresholds(ruleset, data, oof, classes)
    cv = cv_figures(ruleset, data, decisions(ruleset, data, oof, classes, thresholds))
    meta = {"digest": ruleset.digest, "cv": cv, "params": vars(params)}
    return Model(**{**model.__dict__, "thresholds": thresholds, "meta": meta,
                    "_char": {}, "_word": {}, "_rule": {}})  # fmt: skip
