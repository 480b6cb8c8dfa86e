"""A fitted classifier as plain numpy arrays: saved, loaded and run without scikit-learn.

Scores are a linear function of four blocks of features (character TF-IDF, word TF-IDF,
the e5 embedding times ``embed_weight``, and which feature rules fired times
``rule_weight``); each class's score goes through its sigmoid (Platt scaling fitted on
held-out folds) and the probabilities are normalised to sum to one, as scikit-learn's
CalibratedClassifierCV does. Files are read with ``allow_pickle=False``.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bot.classifier.arrays import read_arrays, write_arrays
from bot.classifier.features import FEATURE_VERSION, char_grams, tfidf, word_grams
from bot.core.triage import Thresholds

FORMAT = 1


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

    def scores(
        self,
        texts: Sequence[str],
        embeddings: np.ndarray | None = None,
        fired: Sequence[Sequence[str]] | None = None,
    ) -> np.ndarray:
        """Return (n, classes) decision values of normalised ``texts``."""
        n_char, n_word = len(self.char_terms), len(self.word_terms)
        out = np.tile(self.bias, (len(texts), 1))
        w = self.weights
        for row, text in enumerate(texts):
            index, values = tfidf(char_grams(text), self._char, self.char_idf)
            out[row] += values @ w[index]
            index, values = tfidf(word_grams(text), self._word, self.word_idf)
            out[row] += values @ w[n_char + index]
            if fired is not None and self.rule_weight:
                cols = [n_char + n_word + self._rule[r] for r in fired[row] if r in self._rule]
                if cols:
                    out[row] += self.rule_weight * w[cols].sum(axis=0)
        if self.uses_embedding:
            if embeddings is None:
                raise ValueError("this model needs the texts' embeddings")
            start = n_char + n_word + len(self.rule_ids)
            out += self.embed_weight * (embeddings @ w[start:])
        return out

    def probabilities(
        self,
        texts: Sequence[str],
        embeddings: np.ndarray | None = None,
        fired: Sequence[Sequence[str]] | None = None,
    ) -> np.ndarray:
        """Return (n, classes) calibrated probabilities summing to one per row."""
        return calibrate(self.scores(texts, embeddings, fired), self.calib_a, self.calib_b)

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
            thresholds=Thresholds(float(meta["danger"]), float(meta["ask"])),
            meta={k: v for k, v in meta.items() if k not in _OWN},
        )
    except ModelFileError:
        raise
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, EOFError) as exc:
        raise ModelFileError(f"{path}: {exc}") from None
    dim = 384 if model.embed_model else 0
    rows = len(model.char_terms) + len(model.word_terms) + len(model.rule_ids) + dim
    if weights.shape != (rows, len(classes)) or model.bias.shape != (len(classes),):
        raise ModelFileError(f"{path}: arrays of inconsistent shapes")
    return model


_OWN = {"format", "feature_version", "embed_model", "embed_weight", "rule_weight", "danger", "ask"}
