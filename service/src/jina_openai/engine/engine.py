"""The engine as the API layer sees it: one admission per request, vectors out.

Lifecycle: `start()` (from the app's lifespan) launches the inference thread, which loads and
warms the model; until then `state` is "loading" and requests get 503. `stop()` refuses new
work, fails what is still queued, and joins the thread. A hung batch (watchdog) or batch after
batch failing turns the engine "failed" for good: /ready answers 503 and `on_failure` is told,
which in production ends the process so that gunicorn and systemd replace it.

Requests: `admit(body_bytes=...)` returns an `Admission` (engine/admission.py) before the body
is read, or refuses at once; it owns the rest (reserve -> prepare -> submit -> await-or-drop)
and gives back what the request held when it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import logging
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import psutil
import torch

from jina_openai.engine.admission import Admission, SubmittedJob
from jina_openai.engine.allocator import MallocTrimmer
from jina_openai.engine.embedding_cache import (
    CacheConfig,
    CacheLookup,
    EmbeddingCache,
    open_cache,
)
from jina_openai.engine.errors import (
    EngineError,
    EngineGaveUpError,
    EngineNotReadyError,
    InferenceFailedError,
)
from jina_openai.engine.inference_worker import InferenceWorker
from jina_openai.engine.input_preparation import InputPreparer, PreparedInputs
from jina_openai.engine.job import EmbeddingJob
from jina_openai.engine.memory_budget import (
    QUEUED_TOKEN_BYTES,
    REQUEST_BYTES_SHARE,
    derive_bounds,
    peak_mb,
    request_token_share,
)
from jina_openai.engine.observer import EngineObserver, NullObserver
from jina_openai.engine.scheduler import Batch, BatchScheduler, Reservation, SchedulerLimits
from jina_openai.engine.throughput import ThroughputEstimator
from jina_openai.engine.waiting_line import WaitingLine
from jina_openai.engine.warmup import run_warmup, warmup_shapes
from jina_openai.engine.watchdog import Watchdog
from jina_openai.models.base import Embedder

logger = logging.getLogger(__name__)

DEFAULT_BATCH_TOKENS = {"cpu": 4096, "cuda": 16384}
LOADING_RETRY_AFTER_S = 5
# A request that held this much memory (body, texts, their tokenization) hands it back to the
# system when it ends, rather than leaving RSS at its high-water mark.
TRIM_AFTER_REQUEST_BYTES = 1 << 20


class EngineState(enum.StrEnum):
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"
    STOPPED = "stopped"


@dataclass(frozen=True)
class EngineConfig:
    max_batch_tokens: int | None  # None: by device (DEFAULT_BATCH_TOKENS)
    max_batch_inputs: int
    max_queued_tokens: int | None  # None: derived from the memory budget (or the default)
    max_queued_requests: int
    truncate_inputs: bool
    tokenizer_threads: int
    torch_threads: int | None
    warmup: bool
    memory_budget_mb: int | None = None  # see engine/memory_budget.py
    malloc_trim_interval_s: float = 0.0  # see engine/allocator.py
    request_timeout_s: float = 0.0  # a request's deadline from its admission; 0: none
    batch_timeout_s: float = 0.0  # the watchdog's bound on one batch; 0: no watchdog
    max_consecutive_failed_batches: int = 0  # then the engine gives up; 0: never
    max_queue_wait_s: float = 0.0  # admission's waiting-time bound (engine/scheduler.py); 0: none
    cache: CacheConfig | None = None  # the embedding cache (engine/embedding_cache.py); None: off


RawInputs = list[str] | list[list[int]]
# Called from the inference thread once it is gone: (cause, whether it died loading the model).
EngineFailureHandler = Callable[[BaseException, bool], None]


class EmbeddingEngine:
    def __init__(
        self,
        config: EngineConfig,
        *,
        load: Callable[[], Embedder],
        observer: EngineObserver | None = None,
        on_failure: EngineFailureHandler | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._load = load
        self._observer: EngineObserver = observer or NullObserver()
        self._on_failure = on_failure
        self._clock = clock
        self._throughput = ThroughputEstimator()
        self._stopping = threading.Event()
        self.state = EngineState.LOADING
        self.failure: BaseException | None = None
        self.embedder: Embedder | None = None
        self.scheduler: BatchScheduler | None = None
        self.cache: EmbeddingCache | None = None
        self._preparer: InputPreparer | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._worker: InferenceWorker | None = None
        self._watchdog: Watchdog | None = None
        self._trimmer = MallocTrimmer(config.malloc_trim_interval_s)
        # Requests refused on waiting time wait here up to half the bound for room.
        self.waiting_line = WaitingLine(patience_s=config.max_queue_wait_s / 2)
        self._failure_lock = threading.Lock()
        self.loaded_at: float | None = None

    # --- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        self._pool = ThreadPoolExecutor(
            max_workers=self.config.tokenizer_threads, thread_name_prefix="jina-openai-tokenize"
        )
        self._worker = InferenceWorker(
            startup=self._startup,
            observer=self._observer,
            throughput=self._throughput,
            torch_threads=self.config.torch_threads,
            on_ready=self._ready,
            on_failure=self._failed,
            trimmer=self._trimmer,
            max_consecutive_failures=self.config.max_consecutive_failed_batches,
            clock=self._clock,
        )
        self._worker.start()
        if self.config.batch_timeout_s > 0:
            worker = self._worker
            self._watchdog = Watchdog(
                timeout_s=self.config.batch_timeout_s,
                busy_since=lambda: worker.busy_since,
                on_hung=self._hung,
                clock=self._clock,
            )
            self._watchdog.start()

    async def stop(self, timeout: float = 30.0) -> None:
        self._stopping.set()
        if self._watchdog is not None:
            self._watchdog.stop()
        if self.state in (EngineState.LOADING, EngineState.READY):
            self.state = EngineState.STOPPED
        if self.scheduler is not None:
            self._fail_queued(self.scheduler.close(), "the server is shutting down")
        if self._worker is not None and not await asyncio.to_thread(self._worker.join, timeout):
            logger.warning("inference thread still busy after %.0f s; leaving it behind", timeout)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        if self.cache is not None:
            await asyncio.to_thread(self.cache.close)

    def _startup(self) -> tuple[Embedder, BatchScheduler]:
        started = time.perf_counter()
        embedder = self._load()
        if self._stopping.is_set():
            raise EngineNotReadyError("stopped while loading", retry_after_s=None)
        self.cache = open_cache(
            self.config.cache,
            embedder=embedder,
            truncate_inputs=self.config.truncate_inputs,
            observer=self._observer,
        )
        limits = self._limits(embedder)
        self._preparer = InputPreparer(embedder, truncate=self.config.truncate_inputs)
        if self.config.warmup:
            tokens, seconds = run_warmup(
                embedder,
                warmup_shapes(
                    max_input_tokens=embedder.max_input_tokens,
                    max_batch_tokens=limits.max_batch_tokens,
                    max_batch_inputs=limits.max_batch_inputs,
                ),
            )
            self._throughput.observe(tokens, seconds)
        self.embedder = embedder
        self.scheduler = BatchScheduler(
            limits,
            self._throughput,
            clock=self._clock,
            wait_bound_at_submit_only=self.cache is not None,
        )
        if self._stopping.is_set():  # stop() ran during warmup, before there was a queue
            self.scheduler.close()
        self._observer.model_loaded(embedder)
        rate = self._throughput.tokens_per_s
        logger.info(
            "model %s ready on %s (%s) in %.1f s: dimension %d, max %d tokens/input, "
            "batch budget %d tokens, ~%.0f tokens/s; queue: up to %s s of work (%d tokens at "
            "that rate) within at most %d tokens (%.0f MiB of queued ids and bookkeeping)",
            embedder.model_id,
            embedder.device,
            embedder.dtype_choice.reason,
            time.perf_counter() - started,
            embedder.dimension,
            embedder.max_input_tokens,
            limits.max_batch_tokens,
            rate,
            f"{limits.max_queue_wait_s:g}" if limits.max_queue_wait_s > 0 else "unbounded",
            int(rate * limits.max_queue_wait_s),
            limits.max_queued_tokens,
            limits.max_queued_tokens * QUEUED_TOKEN_BYTES / (1 << 20),
        )
        return embedder, self.scheduler

    def _limits(self, embedder: Embedder) -> SchedulerLimits:
        # The memory tier of the cache fills up to its capacity: count it as resident now.
        memory = self.cache.memory if self.cache is not None else None
        cache_bytes = memory.capacity_bytes if memory is not None else 0
        resident_mb = (psutil.Process().memory_info().rss + cache_bytes) / (1 << 20)
        dtype_bytes = max(1, torch.finfo(embedder.dtype).bits // 8)
        bounds = derive_bounds(
            budget_mb=self.config.memory_budget_mb,
            resident_mb=resident_mb,
            hidden=embedder.dimension,
            dtype_bytes=dtype_bytes,
            on_gpu=embedder.device.type == "cuda",
            gpu_free_mb=_gpu_free_mb(embedder.device),
            max_input_tokens=embedder.max_input_tokens,
            default_batch_tokens=DEFAULT_BATCH_TOKENS.get(
                embedder.device.type, DEFAULT_BATCH_TOKENS["cpu"]
            ),
            max_batch_tokens=self.config.max_batch_tokens,
            max_queued_tokens=self.config.max_queued_tokens,
        )
        if self.config.memory_budget_mb is not None:
            bound = peak_mb(
                resident_mb=resident_mb,
                hidden=embedder.dimension,
                dtype_bytes=dtype_bytes,
                max_batch_tokens=bounds.max_batch_tokens,
                max_queued_tokens=bounds.max_queued_tokens,
                max_held_bytes=bounds.max_held_bytes,
            )
            log = logger.warning if bound > self.config.memory_budget_mb else logger.info
            log(
                "memory budget %d MiB, %.0f MiB resident after loading: batch budget %d tokens, "
                "queue budget %d tokens, request memory %.0f MiB, expected peak %.0f MiB",
                self.config.memory_budget_mb,
                resident_mb,
                bounds.max_batch_tokens,
                bounds.max_queued_tokens,
                bounds.max_held_bytes / (1 << 20),
                bound,
            )
        return SchedulerLimits(
            max_batch_tokens=bounds.max_batch_tokens,
            max_batch_inputs=self.config.max_batch_inputs,
            max_queued_tokens=bounds.max_queued_tokens,
            max_queued_requests=self.config.max_queued_requests,
            max_request_tokens=request_token_share(bounds.max_queued_tokens),
            max_held_bytes=bounds.max_held_bytes,
            max_request_bytes=int(REQUEST_BYTES_SHARE * bounds.max_held_bytes),
            max_queue_wait_s=self.config.max_queue_wait_s,
            max_line_wait_s=self.waiting_line.patience_s,
        )

    def _ready(self) -> None:
        self.loaded_at = time.time()
        if self._stopping.is_set():
            return
        self.state = EngineState.READY

    def _hung(self, seconds: float) -> None:
        """The watchdog's verdict (its thread): the running batch will not come back."""
        assert self._worker is not None
        self._failed(
            EngineGaveUpError(
                f"a batch has been running for {seconds:.0f} s, more than batch_timeout_s="
                f"{self.config.batch_timeout_s:g}: the inference thread is hung"
            ),
            self._worker.running,
        )

    def _failed(self, exc: BaseException, running: list[Batch]) -> None:
        """The inference thread is gone or hung: refuse new work, fail everything admitted,
        tell the owner (which may end the process). Once, from whichever thread sees it."""
        with self._failure_lock:
            if self._stopping.is_set() or self.state is EngineState.FAILED:
                return
            during_load = self.state is EngineState.LOADING
            self.failure = exc
            self.state = EngineState.FAILED
        logger.critical("the model could not be served: %s", exc, exc_info=exc)
        if self.scheduler is not None:
            self._fail_queued(self.scheduler.close(), f"the inference thread failed: {exc}")
        if running:
            error: EngineError
            if isinstance(exc, EngineGaveUpError):
                # A hung model: the requests are fine and the worker is being replaced (503).
                error = EngineNotReadyError(
                    f"the inference thread failed: {exc}", retry_after_s=LOADING_RETRY_AFTER_S
                )
            else:  # a crash of the service itself
                error = InferenceFailedError(f"the inference thread crashed: {exc}")
            for batch in running:
                for job, _ in batch.items:
                    job.finish(error)
        if self._on_failure is not None:
            self._on_failure(exc, during_load)

    @staticmethod
    def _fail_queued(jobs: list[EmbeddingJob], message: str) -> None:
        for job in jobs:
            job.finish(EngineNotReadyError(message, retry_after_s=None))

    # --- requests -------------------------------------------------------------------------------
    def ensure_ready(self) -> tuple[Embedder, BatchScheduler, InputPreparer]:
        if self.state is EngineState.READY:
            assert self.embedder is not None
            assert self.scheduler is not None
            assert self._preparer is not None
            return self.embedder, self.scheduler, self._preparer
        if self.state is EngineState.LOADING:
            raise EngineNotReadyError(
                "the model is still loading", retry_after_s=LOADING_RETRY_AFTER_S
            )
        if self.state is EngineState.FAILED:
            raise EngineNotReadyError(
                f"the model is not available: {self.failure}", retry_after_s=None
            )
        raise EngineNotReadyError(
            "the server is shutting down", retry_after_s=LOADING_RETRY_AFTER_S
        )

    def admit(self, *, body_bytes: int) -> Admission:
        """Before the request body is read: a request slot and `body_bytes` of request memory,
        or an EngineError at once (429 when the queue is full, 413 when one request may never
        hold that much, 503 while not ready). Use the result as a context manager."""
        _, scheduler, _ = self.ensure_ready()
        reservation = scheduler.reserve(body_bytes)
        deadline = (
            self._clock() + self.config.request_timeout_s
            if self.config.request_timeout_s > 0
            else None
        )
        return Admission(self, reservation, deadline=deadline, clock=self._clock)

    async def prepare(
        self,
        inputs: RawInputs,
        *,
        token_ids: bool,
        single: bool,
        cancelled: threading.Event | None = None,
    ) -> PreparedInputs:
        """Tokenize / check inputs in the tokenization pool (never on the event loop)."""
        _, _, preparer = self.ensure_ready()
        assert self._pool is not None
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        method = preparer.prepare_token_ids if token_ids else preparer.prepare_texts
        call = functools.partial(method, inputs, single=single, cancelled=cancelled)
        prepared = await loop.run_in_executor(self._pool, call)
        self._observer.tokenization_completed(time.perf_counter() - started)
        return prepared

    async def look_up(self, prepared: PreparedInputs) -> CacheLookup | None:
        """Which prepared inputs the cache holds (in the pool: the disk tier blocks)."""
        if self.cache is None:
            return None
        assert self._pool is not None
        cache = self.cache
        return await asyncio.get_running_loop().run_in_executor(self._pool, cache.look_up, prepared)

    def remember(self, lookup: CacheLookup, computed: np.ndarray) -> None:
        if self.cache is not None:
            self.cache.store_computed(lookup, computed)

    async def run_in_pool(self, call: Callable[[], bytes]) -> bytes:
        """Run CPU-heavy response encoding off the event loop."""
        assert self._pool is not None
        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    def submit(
        self,
        prepared: PreparedInputs,
        *,
        request_id: str,
        reservation: Reservation | None = None,
        client: str = "",
    ) -> SubmittedJob:
        embedder, scheduler, _ = self.ensure_ready()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[EmbeddingJob] = loop.create_future()

        def finished(job: EmbeddingJob) -> None:
            # RuntimeError: the loop is closed, nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, future, job)

        job = EmbeddingJob(
            request_id=request_id,
            inputs=prepared.ids,
            dimension=embedder.dimension,
            admitted_at=self._clock(),
            on_finished=finished,
            client=client,
        )
        scheduler.submit(job, reservation=reservation)
        return SubmittedJob(job, future, scheduler)

    def drop(self, submitted: SubmittedJob) -> int:
        dropped = submitted.cancel()
        if dropped:
            self._observer.inputs_dropped(dropped)
        return dropped

    def end(self, reservation: Reservation) -> None:
        """The request is over: give back what it held; memory after a large one."""
        if self.scheduler is not None:
            self.scheduler.release(reservation)
        if reservation.peak_bytes >= TRIM_AFTER_REQUEST_BYTES:
            self._trimmer.trim_now()

    def retry_after_s(self) -> int:
        """Seconds until one full batch has run, at the measured throughput."""
        limits = self.scheduler.limits if self.scheduler is not None else None
        tokens = limits.max_batch_tokens if limits is not None else 0
        return max(1, math.ceil(self._throughput.seconds_for(tokens)))

    @property
    def tokens_per_s(self) -> float:
        return self._throughput.tokens_per_s


def _settle(future: asyncio.Future[EmbeddingJob], job: EmbeddingJob) -> None:
    if future.done():
        return
    if job.error is not None:
        future.set_exception(job.error)
    else:
        future.set_result(job)


def _gpu_free_mb(device: torch.device) -> float | None:
    """Free memory of the model's GPU once the model is loaded (None on CPU)."""
    if device.type != "cuda":
        return None
    free_bytes, _ = torch.cuda.mem_get_info(device)
    return free_bytes / (1 << 20)
