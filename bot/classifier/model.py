"""A fitted classifier as plain numpy arrays: saved, loaded and run without scikit-learn.

Scores are a linear function of four blocks of features (character TF-IDF, word TF-IDF,
which feature rules fired times ``rule_weight``, and the e5 embedding times
``embed_weight``); each class's score goes through its sigmoid (Platt scaling fitted on
held-out folds) and the probabilities are normalised to sum to one, as scikit-learn's
CalibratedClassifierCV does. Files are read with ``allow_pickle=False``.

A model with an embedding may also carry a second, TF-IDF-only linear model (``fast_*``,
over the same vocabularies) and a ``Gate``: ``predict`` runs the cheap model on every
text and computes the embedding (~16-30 ms a text) only for those it is not sure of.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse

from bot.classifier.arrays import read_arrays, write_arrays
from bot.classifier.features import FEATURE_VERSION, char_grams, tfidf_rows, word_grams
from bot.core.triage import EMERGENCY, Thresholds

FORMAT = 2


@dataclass(frozen=True)
class Gate:
    """When the TF-IDF-only model's probabilities stand without the embedding.

    A text is left to the cheap model when its top probability is at least ``confident``
    and its p(emergency) is under ``emergency``; every other text is embedded. The
    default (confident > 1) embeds every text. Chosen by cross-validation (training.py).
    """

    confident: float = 1.01
    emergency: float = 0.0


@dataclass(frozen=True)
class Prediction:
    """Calibrated probabilities per text, and which texts needed their embedding."""

    probabilities: np.ndarray  # (n, classes), rows sum to one
    embedded: np.ndarray  # (n,) bool


class ModelFileError(Exception):
    """A model file is missing, corrupt, or of another format."""


@dataclass(frozen=True)
class Model:
    """Everything a prediction needs; ``meta`` holds the cross-validated figures."""

    classes: tuple[str, ...]
    char_terms: tuple[str, ...]
    char_idf: np.ndarray
    word_terms: tuple[str, ...]
    word_idf: np.ndarray
    rule_ids: tuple[str, ...]  # the feature rules, one column each
    weights: np.ndarray  # (features, classes)
    bias: np.ndarray  # (classes,)
    calib_a: np.ndarray  # (classes,)
    calib_b: np.ndarray  # (classes,)
    embed_model: str  # "" for a TF-IDF-only model
    embed_weight: float
    rule_weight: float
    thresholds: Thresholds
    meta: Mapping[str, Any] = field(default_factory=dict)
    fast_weights: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # (tfidf, classes)
    fast_bias: np.ndarray = field(default_factory=lambda: np.zeros(0))
    fast_calib_a: np.ndarray = field(default_factory=lambda: np.zeros(0))
    fast_calib_b: np.ndarray = field(default_factory=lambda: np.zeros(0))
    gate: Gate = Gate()
    _char: dict[str, int] = field(default_factory=dict, repr=False, compare=False)
    _word: dict[str, int] = field(default_factory=dict, repr=False, compare=False)
    _rule: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._char.update((t, i) for i, t in enumerate(self.char_terms))
        self._word.update((t, i) for i, t in enumerate(self.word_terms))
        self._rule.update((t, i) for i, t in enumerate(self.rule_ids))

    @property
    def uses_embedding(self) -> bool:
        """Return whether predictions need the e5 vector of each text."""
        return bool(self.embed_model)

    @property
    def has_cascade(self) -> bool:
        """Return whether a TF-IDF-only model can answer before the embedding is computed."""
        return self.uses_embedding and self.fast_weights.shape[0] > 0

    @property
    def sparse_width(self) -> int:
        """Return the number of sparse features (TF-IDF terms and feature rules)."""
        return len(self.char_terms) + len(self.word_terms) + len(self.rule_ids)

    def features(
        self, texts: Sequence[str], fired: Sequence[Sequence[str]] | None = None
    ) -> sparse.csr_matrix:
        """Return the (n, sparse_width) TF-IDF and rule features of normalised ``texts``."""
        return self.features_of(
            [char_grams(t) for t in texts], [word_grams(t) for t in texts], fired
        )

    def features_of(
        self,
        char_docs: Sequence[Sequence[str]],
        word_docs: Sequence[Sequence[str]],
        fired: Sequence[Sequence[str]] | None,
    ) -> sparse.csr_matrix:
        """Return the sparse features of already tokenised texts (training reuses tokens)."""
        n, n_char, n_word = len(char_docs), len(self.char_terms), len(self.word_terms)
        blocks = [
            sparse.csr_matrix(tfidf_rows(char_docs, self._char, self.char_idf)[::-1],
                              shape=(n, n_char)),
            sparse.csr_matrix(tfidf_rows(word_docs, self._word, self.word_idf)[::-1],
                              shape=(n, n_word)),
        ]  # fmt: skip
        if self.rule_ids:
            rows, cols = [], []
            for row, ids in enumerate(fired if fired is not None and self.rule_weight else ()):
                found = sorted({self._rule[r] for r in ids if r in self._rule})
                rows += [row] * len(found)
                cols += found
            blocks.append(
                sparse.csr_matrix(
                    (np.full(len(rows), self.rule_weight), (rows, cols)),
                    shape=(n, len(self.rule_ids)),
                )
            )
        return sparse.hstack(blocks, format="csr")

    def scores(
        self,
        texts: Sequence[str],
        embeddings: np.ndarray | None = None,
        fired: Sequence[Sequence[str]] | None = None,
    ) -> np.ndarray:
        """Return (n, classes) decision values of normalised ``texts``."""
        return self._scores(self.features(texts, fired), embeddings)

    def _scores(self, matrix: sparse.csr_matrix, embeddings: np.ndarray | None) -> np.ndarray:
        width = self.sparse_width
        out: np.ndarray = np.asarray(matrix @ self.weights[:width]) + self.bias
        if self.uses_embedding:
            if embeddings is None:
                raise ValueError("this model needs the texts' embeddings")
            out += self.embed_weight * (embeddings @ self.weights[width:])
        return out

    def probabilities(
        self,
        texts: Sequence[str],
        embeddings: np.ndarray | None = None,
        fired: Sequence[Sequence[str]] | None = None,
    ) -> np.ndarray:
        """Return (n, classes) calibrated probabilities summing to one per row."""
        return calibrate(self.scores(texts, embeddings, fired), self.calib_a, self.calib_b)

    def fast_probabilities(self, matrix: sparse.csr_matrix) -> np.ndarray:
        """Return the TF-IDF-only model's probabilities of ``features`` rows."""
        scores = np.asarray(matrix @ self.fast_weights) + self.fast_bias
        return calibrate(scores, self.fast_calib_a, self.fast_calib_b)

    def predict(
        self,
        texts: Sequence[str],
        fired: Sequence[Sequence[str]] | None,
        embed: Callable[[Sequence[str]], np.ndarray],
    ) -> Prediction:
        """Return the probabilities of normalised ``texts``, embedding only where needed.

        With a cascade, the TF-IDF-only model answers every text the gate lets through;
        ``embed`` is called once, on the others (or not at all).
        """
        matrix = self.features(texts, fired)
        n = len(texts)
        if not self.uses_embedding:
            proba = calibrate(self._scores(matrix, None), self.calib_a, self.calib_b)
            return Prediction(proba, np.zeros(n, bool))
        if self.has_cascade:
            proba = self.fast_probabilities(matrix)
            embedded = ~self.accepts(proba)
        else:
            proba = np.zeros((n, len(self.classes)))
            embedded = np.ones(n, bool)
        rows = np.flatnonzero(embedded)
        if len(rows):
            vectors = embed([texts[int(i)] for i in rows])
            proba[rows] = calibrate(self._scores(matrix[rows], vectors), self.calib_a, self.calib_b)
        return Prediction(proba, embedded)

    def accepts(self, fast: np.ndarray) -> np.ndarray:
        """Return which rows of TF-IDF-only probabilities the gate lets stand."""
        emergency = (
            fast[:, self.classes.index(EMERGENCY)]
            if EMERGENCY in self.classes
            else np.zeros(len(fast))
        )
        accepted: np.ndarray = (fast.max(axis=1) >= self.gate.confident) & (
            emergency < self.gate.emergency
        )
        return accepted

    def arrays(self) -> dict[str, np.ndarray]:
        """Return the model as named arrays (what ``save`` writes)."""
        meta = {
            "format": FORMAT,
            "feature_version": FEATURE_VERSION,
            "embed_model": self.embed_model,
            "embed_weight": self.embed_weight,
            "rule_weight": self.rule_weight,
            "danger": self.thresholds.danger,
            "ask": self.thresholds.ask,
            "doubt": self.thresholds.doubt,
            "gate_confident": self.gate.confident,
            "gate_emergency": self.gate.emergency,
            **self.meta,
        }
        return {
            "classes": np.array(self.classes, dtype=str),
            "char_terms": np.array(self.char_terms or ("",), dtype=str)[: len(self.char_terms)],
            "char_idf": self.char_idf,
            "word_terms": np.array(self.word_terms or ("",), dtype=str)[: len(self.word_terms)],
            "word_idf": self.word_idf,
            "rule_ids": np.array(self.rule_ids or ("",), dtype=str)[: len(self.rule_ids)],
            "weights": self.weights,
            "bias": self.bias,
            "calib_a": self.calib_a,
            "calib_b": self.calib_b,
            "fast_weights": self.fast_weights,
            "fast_bias": self.fast_bias,
            "fast_calib_a": self.fast_calib_a,
            "fast_calib_b": self.fast_calib_b,
            "meta": np.array(json.dumps(meta, sort_keys=True, ensure_ascii=False)),
        }

    def save(self, path: Path) -> None:
        """Write the model to ``path`` (the same model gives the same bytes)."""
        write_arrays(path, self.arrays())


def calibrate(scores: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Return per-class sigmoids of ``scores``, normalised to sum to one per row."""
    p = 1.0 / (1.0 + np.exp(np.clip(a * scores + b, -500, 500)))
    total = p.sum(axis=1, keepdims=True)
    uniform = np.full_like(p, 1.0 / p.shape[1])
    out: np.ndarray = np.where(total > 0, p / np.where(total > 0, total, 1.0), uniform)
    return out


def load(path: Path) -> Model:
    """Read a model file; raise ModelFileError when it is missing, corrupt or foreign."""
    try:
        arrays = read_arrays(path)
        meta = json.loads(str(arrays["meta"].reshape(-1)[0]))
        if meta.get("format") != FORMAT or meta.get("feature_version") != FEATURE_VERSION:
            raise ModelFileError(f"{path}: a model of another format or feature version")
        classes = tuple(str(c) for c in arrays["classes"])
        weights = arrays["weights"]
        model = Model(
            classes=classes,
            char_terms=tuple(str(t) for t in arrays["char_terms"]),
            char_idf=arrays["char_idf"],
            word_terms=tuple(str(t) for t in arrays["word_terms"]),
            word_idf=arrays["word_idf"],
            rule_ids=tuple(str(t) for t in arrays["rule_ids"]),
            weights=weights,
            bias=arrays["bias"],
            calib_a=arrays["calib_a"],
            calib_b=arrays["calib_b"],
            embed_model=str(meta["embed_model"]),
            embed_weight=float(meta["embed_weight"]),
            rule_weight=float(meta["rule_weight"]),
            thresholds=Thresholds(float(meta["danger"]), float(meta["ask"]), float(meta["doubt"])),
            meta={k: v for k, v in meta.items() if k not in _OWN},
            fast_weights=arrays["fast_weights"],
            fast_bias=arrays["fast_bias"],
            fast_calib_a=arrays["fast_calib_a"],
            fast_calib_b=arrays["fast_calib_b"],
            gate=Gate(float(meta["gate_confident"]), float(meta["gate_emergency"])),
        )
    except ModelFileError:
        raise
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, EOFError) as exc:
        raise ModelFileError(f"{path}: {exc}") from None
    dim = 384 if model.embed_model else 0
    rows = len(model.char_terms) + len(model.word_terms) + len(model.rule_ids) + dim
    fast = model.fast_weights.shape
    if (
        weights.shape != (rows, len(classes))
        or model.bias.shape != (len(classes),)
        or (fast[0] and fast != (model.sparse_width, len(classes)))
    ):
        raise ModelFileError(f"{path}: arrays of inconsistent shapes")
    return model


_OWN = {
    "format", "feature_version", "embed_model", "embed_weight", "rule_weight", "danger", "ask",
    "doubt", "gate_confident", "gate_emergency",
}  # fmt: skip
