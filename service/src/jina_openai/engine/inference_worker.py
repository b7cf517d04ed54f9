"""The one thread that owns the model: it loads it, warms it up, then runs batch after batch.

The event loop never touches torch. Each batch's tensors live inside `Embedder.embed` (under
`torch.inference_mode()`); what leaves the thread is one float32 numpy row per input, copied
into its request's output array. A batch that fails (or runs out of memory even when split
down to single inputs) fails only the requests it holds; the thread carries on, unless
`max_consecutive_failures` batches in a row fail: then the model itself is broken and the
thread gives up (EngineGaveUpError), so that its owner replaces the process. `busy_since` tells
the engine's watchdog since when the running batch has been running.

The query lane: between the layers of every batch it runs, the thread asks the scheduler for a
batch of waiting small requests (`next_query_batch`) and runs it to the end before going on, so
a search sent while an indexing batch runs waits for one layer of it (1/6 of a batch for
MiniLM, 1/12 for JinaBERT), not for the whole batch. The work is the same, only reordered.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import numpy as np
import torch

from jina_openai.engine.allocator import MallocTrimmer
from jina_openai.engine.errors import EngineGaveUpError, InferenceFailedError
from jina_openai.engine.job import EmbeddingJob
from jina_openai.engine.observer import EngineObserver
from jina_openai.engine.scheduler import Batch, BatchScheduler
from jina_openai.engine.throughput import ThroughputEstimator
from jina_openai.models.base import Embedder

logger = logging.getLogger(__name__)

Startup = Callable[[], tuple[Embedder, BatchScheduler]]


class InferenceWorker:
    def __init__(
        self,
        *,
        startup: Startup,
        observer: EngineObserver,
        throughput: ThroughputEstimator,
        torch_threads: int | None,
        on_ready: Callable[[], None],
        on_failure: Callable[[BaseException, list[Batch]], None],
        trimmer: MallocTrimmer | None = None,
        max_consecutive_failures: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._startup = startup
        self._max_consecutive_failures = max_consecutive_failures  # 0: never give up
        self._consecutive_failures = 0
        # The batches in the model with their start times: a batch, and a query-lane batch
        # while one runs between its layers.
        self._running: list[tuple[Batch, float]] = []
        self._trimmer = trimmer or MallocTrimmer(0)
        self._observer = observer
        self._throughput = throughput
        self._torch_threads = torch_threads
        self._on_ready = on_ready
        self._on_failure = on_failure
        self._clock = clock
        self._thread = threading.Thread(target=self._run, name="jina-openai-inference", daemon=True)

    @property
    def busy_since(self) -> float | None:
        """Start of the running batch (the outer one); None while idle. Read by the watchdog."""
        running = self._running
        return running[0][1] if running else None

    @property
    def running(self) -> list[Batch]:
        return [batch for batch, _ in self._running]

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end; True when it has."""
        if self._thread.ident is not None:
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        if self._torch_threads:
            torch.set_num_threads(self._torch_threads)
        try:
            embedder, scheduler = self._startup()
        except BaseException as exc:
            self._on_failure(exc, [])
            return
        self._on_ready()
        batch: Batch | None = None
        try:
            while True:
                batch = scheduler.next_batch(timeout=self._trimmer.idle_timeout())
                if batch is None:
                    if scheduler.closed:
                        break
                    self._trimmer.idle()  # no work for one trim interval
                    continue
                self._process(embedder, scheduler, batch)
                batch = None  # hold no request while waiting for the next batch
                self._trimmer.batch_done()
        except BaseException as exc:  # a bug or a broken model: stop serving, loudly
            if not isinstance(exc, EngineGaveUpError):
                logger.exception("inference thread crashed")
            self._on_failure(exc, self.running or ([batch] if batch is not None else []))

    def _process(
        self, embedder: Embedder, scheduler: BatchScheduler, batch: Batch, *, lane: bool = False
    ) -> None:
        """Run one batch and deliver its vectors. A batch from the queue (not `lane`) gives the
        query lane a turn between its layers (`_serve_query`)."""
        live: list[tuple[EmbeddingJob, int]] = []
        ids: list[list[int]] = []
        for job, index in batch.items:
            inputs = job.inputs
            if job.cancelled or job.finished or index >= len(inputs):
                continue
            live.append((job, index))
            ids.append(inputs[index].tolist())
        if len(live) < len(batch.items):
            self._observer.inputs_dropped(len(batch.items) - len(live))
        if not live:
            scheduler.finish_batch(batch)
            return
        started = self._clock()
        self._running.append((batch, started))
        between_layers = None if lane else (lambda: self._serve_query(embedder, scheduler))
        try:
            vectors = self._embed(embedder, ids, between_layers)
            if vectors.shape != (len(ids), embedder.dimension):
                raise RuntimeError(
                    f"the model returned shape {vectors.shape} for {len(ids)} inputs"
                )
        except Exception as exc:
            scheduler.finish_batch(batch)
            logger.exception("batch %d of %d inputs failed", batch.batch_id, len(ids))
            self._observer.batch_failed()
            error = InferenceFailedError(f"inference failed: {type(exc).__name__}: {exc}")
            for job, _ in live:
                scheduler.cancel(job)
                job.finish(error)
            self._consecutive_failures += 1
            if 0 < self._max_consecutive_failures <= self._consecutive_failures:
                raise EngineGaveUpError(
                    f"{self._consecutive_failures} batches in a row failed, the last with "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            return
        finally:
            self._running.pop()  # empty: the watchdog sees the thread idle
        self._consecutive_failures = 0
        duration = self._clock() - started
        scheduler.finish_batch(batch)
        self._throughput.observe(sum(len(row) for row in ids), duration)
        self._observer.batch_completed(
            inputs=len(ids),
            tokens=sum(len(row) for row in ids),
            padded_tokens=max(len(row) for row in ids) * len(ids),
            seconds=duration,
            queue_waits=[started - job.admitted_at for job, _ in live],
        )
        finite = np.isfinite(vectors).all(axis=1)
        for row, (job, index) in enumerate(live):
            if not finite[row]:
                scheduler.cancel(job)
                job.finish(InferenceFailedError("the model produced a non-finite vector"))
                continue
            job.deliver(
                index, vectors[row], batch_id=batch.batch_id, started_at=started, duration=duration
            )

    def _serve_query(self, embedder: Embedder, scheduler: BatchScheduler) -> None:
        """The query lane, between two layers of a running batch: one batch of waiting small
        requests (searches), run to the end. The running batch resumes after it; the query
        waited for one layer of it instead of all (its activations stay live meanwhile, and
        a query batch adds little to them)."""
        batch = scheduler.next_query_batch()
        if batch is not None:
            self._process(embedder, scheduler, batch, lane=True)

    def _embed(
        self,
        embedder: Embedder,
        ids: list[list[int]],
        between_layers: Callable[[], None] | None = None,
    ) -> np.ndarray:
        """Embed; on out-of-memory, split the batch in halves (down to single inputs)."""
        try:
            with torch.inference_mode():
                return embedder.embed(ids, between_layers)
        except (torch.OutOfMemoryError, MemoryError):
            if len(ids) == 1:
                raise
            # Only here, after an out-of-memory error, is the allocator's cache handed back: the
            # halves may need differently shaped blocks. Never per request or per batch: the
            # caching allocator reuses freed blocks for the next batch of similar shapes, and
            # emptying it would force a cudaFree/cudaMalloc round trip (a device sync) on every
            # batch without lowering the peak, which the token budget already bounds.
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            logger.warning("out of memory on a batch of %d inputs; splitting it", len(ids))
            middle = len(ids) // 2
            return np.concatenate(
                [
                    self._embed(embedder, ids[:middle], between_layers),
                    self._embed(embedder, ids[middle:], between_layers),
                ]
            )
