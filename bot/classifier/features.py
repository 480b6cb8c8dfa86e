"""Text to features: character and word n-grams weighted by TF-IDF, with numpy alone.

Training and inference call the same functions, so a model sees at run time exactly
the features it was fitted on. Text is normalised first (NFKC, Traditional to
Simplified, case folding: bot/core/text.py), as the rules are.
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

# Bump when anything here changes what a text turns into: cached models are keyed by it.
FEATURE_VERSION = "1"

_jieba_lock = threading.Lock()
_jieba_ready = False


def char_grams(text: str) -> list[str]:
    """Return the character 1-3 grams of each space-separated word, padded with spaces."""
    out: list[str] = []
    for word in text.split():
        padded = f" {word} "
        size = len(padded)
        for n in (1, 2, 3):
            out.extend(padded[i : i + n] for i in range(size - n + 1))
    return out


def prepare_jieba() -> None:
    """Build jieba's dictionary now (~0.6 s) rather than on the first message."""
    global _jieba_ready
    with _jieba_lock:
        if not _jieba_ready:
            import logging

            import jieba

            jieba.setLogLevel(logging.WARNING)
            jieba.initialize()
            _jieba_ready = True


def word_grams(text: str) -> list[str]:
    """Return jieba's words and word bigrams."""
    import jieba

    prepare_jieba()
    words = [w for w in jieba.lcut(text) if w.strip()]
    return words + [f"{a} {b}" for a, b in itertools.pairwise(words)]


def build_vocabulary(docs: Iterable[Sequence[str]], min_df: int) -> tuple[list[str], np.ndarray]:
    """Return the sorted terms found in at least ``min_df`` documents, and their smooth idf."""
    df: Counter[str] = Counter()
    n = 0
    for tokens in docs:
        df.update(set(tokens))
        n += 1
    terms = sorted(t for t, c in df.items() if c >= min_df)
    counts = np.array([df[t] for t in terms], dtype=np.float64)
    return terms, np.log((1.0 + n) / (1.0 + counts)) + 1.0


def tfidf_rows(
    docs: Sequence[Sequence[str]], vocabulary: Mapping[str, int], idf: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return CSR (indptr, indices, values) of ``docs``: sublinear tf times idf, L2-normalised.

    One pass of numpy over every document at once (no per-row arrays); unknown terms are
    dropped, indices are sorted within each row, and an empty row stays empty.
    """
    get = vocabulary.get
    ids = [[i for i in map(get, tokens) if i is not None] for tokens in docs]
    lengths = np.fromiter(map(len, ids), np.int64, len(ids))
    flat = np.fromiter(itertools.chain.from_iterable(ids), np.int64, int(lengths.sum()))
    width = max(len(idf), 1)
    keys = np.repeat(np.arange(len(ids), dtype=np.int64), lengths) * width + flat
    unique, counts = np.unique(keys, return_counts=True)
    rows, indices = np.divmod(unique, width)
    values = (1.0 + np.log(counts)) * idf[indices]
    norms = np.sqrt(np.bincount(rows, values * values, minlength=len(ids)))
    values /= norms[rows]
    indptr = np.zeros(len(ids) + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=len(ids)), out=indptr[1:])
    return indptr, indices, values
