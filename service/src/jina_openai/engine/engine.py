"""The engine as the API layer sees it: prepare inputs, submit them, await vectors.

Lifecycle: `start()` (from the app's lifespan) launches the inference thread, which loads and
warms the model; until then `state` is "loading" and requests get 503. `stop()` refuses new
work, fails what is still queued, and joins the thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import psutil
import torch

from jina_openai.engine.allocator import MallocTrimmer
from jina_openai.engine.errors import EngineError, EngineNotReadyError, InferenceFailedError
from jina_openai.engine.inference_worker import InferenceWorker
from jina_openai.engine.input_preparation import InputPreparer, PreparedInputs
from jina_openai.engine.job import EmbeddingJob
from jina_openai.engine.memory_budget import derive_bounds, peak_mb
from jina_openai.engine.observer import EngineObserver, NullObserver
from jina_openai.engine.scheduler import Batch, BatchScheduler, SchedulerLimits
from jina_openai.engine.throughput import ThroughputEstimator
from jina_openai.engine.warmup import run_warmup, warmup_shapes
from jina_openai.models.base import Embedder

logger = logging.getLogger(__name__)

DEFAULT_BATCH_TOKENS = {"cpu": 4096, "cuda": 16384}
LOADING_RETRY_AFTER_S = 5


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


RawInputs = list[str] | list[list[int]]
# Called from the inference thread once it is gone: (cause, whether it died loading the model).
EngineFailureHandler = Callable[[BaseException, bool], None]


class SubmittedJob:
    """A job in the queue and the future its vectors arrive on."""

    def __init__(
        self, job: EmbeddingJob, future: asyncio.Future[EmbeddingJob], scheduler: BatchScheduler
    ) -> None:
        self.job = job
        self.future = future
        self._scheduler = scheduler

    async def result(self) -> EmbeddingJob:
        return await asyncio.shield(self.future)

    def cancel(self) -> int:
        """Drop the inputs not yet in a batch (the client went away); returns how many."""
        self.future.cancel()
        return self._scheduler.cancel(self.job)


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
        self._preparer: InputPreparer | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._worker: InferenceWorker | None = None
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
            trimmer=MallocTrimmer(self.config.malloc_trim_interval_s),
            clock=self._clock,
        )
        self._worker.start()

    async def stop(self, timeout: float = 30.0) -> None:
        self._stopping.set()
        if self.state in (EngineState.LOADING, EngineState.READY):
            self.state = EngineState.STOPPED
        if self.scheduler is not None:
            self._fail_queued(self.scheduler.close(), "the server is shutting down")
        if self._worker is not None and not await asyncio.to_thread(self._worker.join, timeout):
            logger.warning("inference thread still busy after %.0f s; leaving it behind", timeout)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def _startup(self) -> tuple[Embedder, BatchScheduler]:
        started = time.perf_counter()
        embedder = self._load()
        if self._stopping.is_set():
            raise EngineNotReadyError("stopped while loading", retry_after_s=None)
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
        self.scheduler = BatchScheduler(limits, self._throughput, clock=self._clock)
        if self._stopping.is_set():  # stop() ran during warmup, before there was a queue
            self.scheduler.close()
        self._observer.model_loaded(embedder)
        logger.info(
            "model %s ready on %s (%s) in %.1f s: dimension %d, max %d tokens/input, "
            "batch budget %d tokens, queue budget %d tokens, ~%.0f tokens/s",
            embedder.model_id,
            embedder.device,
            embedder.dtype,
            time.perf_counter() - started,
            embedder.dimension,
            embedder.max_input_tokens,
            limits.max_batch_tokens,
            limits.max_queued_tokens,
            self._throughput.tokens_per_s,
        )
        return embedder, self.scheduler

    def _limits(self, embedder: Embedder) -> SchedulerLimits:
        resident_mb = psutil.Process().memory_info().rss / (1 << 20)
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
            )
            log = logger.warning if bound > self.config.memory_budget_mb else logger.info
            log(
                "memory budget %d MiB, %.0f MiB resident after loading: batch budget %d tokens, "
                "queue budget %d tokens, expected peak %.0f MiB",
                self.config.memory_budget_mb,
                resident_mb,
                bounds.max_batch_tokens,
                bounds.max_queued_tokens,
                bound,
            )
        return SchedulerLimits(
            max_batch_tokens=bounds.max_batch_tokens,
            max_batch_inputs=self.config.max_batch_inputs,
            max_queued_tokens=bounds.max_queued_tokens,
            max_queued_requests=self.config.max_queued_requests,
        )

    def _ready(self) -> None:
        self.loaded_at = time.time()
        if self._stopping.is_set():
            return
        self.state = EngineState.READY

    def _failed(self, exc: BaseException, running: Batch | None) -> None:
        """The inference thread is gone: refuse new work, fail everything admitted, tell the
        owner (which may end the process)."""
        if self._stopping.is_set():
            return
        during_load = self.state is EngineState.LOADING
        self.failure = exc
        self.state = EngineState.FAILED
        logger.critical("the model could not be served: %s", exc, exc_info=exc)
        if self.scheduler is not None:
            self._fail_queued(self.scheduler.close(), f"the inference thread failed: {exc}")
        if running is not None:
            error = InferenceFailedError(f"the inference thread crashed: {exc}")
            for job, _ in running.items:
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

    async def prepare(self, inputs: RawInputs, *, token_ids: bool, single: bool) -> PreparedInputs:
        """Tokenize / check inputs in the tokenization pool (never on the event loop)."""
        _, _, preparer = self.ensure_ready()
        assert self._pool is not None
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        if token_ids:
            call = _bind(preparer.prepare_token_ids, inputs, single)
        else:
            call = _bind(preparer.prepare_texts, inputs, single)
        prepared = await loop.run_in_executor(self._pool, call)
        self._observer.tokenization_completed(time.perf_counter() - started)
        return prepared

    async def run_in_pool(self, call: Callable[[], bytes]) -> bytes:
        """Run CPU-heavy response encoding off the event loop."""
        assert self._pool is not None
        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    def check_capacity(self) -> None:
        """Before the request body is even read: raise QueueFullError when the queue is full
        already, so that a crowd is answered 429 in milliseconds (and EngineNotReadyError while
        the model is not ready)."""
        _, scheduler, _ = self.ensure_ready()
        scheduler.check_capacity()

    def reserve(self, inputs: RawInputs, *, token_ids: bool) -> int:
        """Before tokenizing: hold the request's estimated tokens of the queue, or raise
        QueueFullError at once. Pass the result to `submit`, or to `release` on failure."""
        _, scheduler, preparer = self.ensure_ready()
        return scheduler.reserve(preparer.estimate_tokens(inputs, token_ids=token_ids))

    def release(self, reserved: int) -> None:
        if self.scheduler is not None:
            self.scheduler.release(reserved)

    def submit(
        self, prepared: PreparedInputs, *, request_id: str, reserved: int | None = None
    ) -> SubmittedJob:
        try:
            embedder, scheduler, _ = self.ensure_ready()
        except EngineError:
            if reserved is not None:
                self.release(reserved)
            raise
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
        )
        scheduler.submit(job, reserved=reserved)
        return SubmittedJob(job, future, scheduler)

    def drop(self, submitted: SubmittedJob) -> int:
        dropped = submitted.cancel()
        if dropped:
            self._observer.inputs_dropped(dropped)
        return dropped

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


def _bind(
    method: Callable[..., PreparedInputs], inputs: RawInputs, single: bool
) -> Callable[[], PreparedInputs]:
    def call() -> PreparedInputs:
        return method(inputs, single=single)

    return call


def _gpu_free_mb(device: torch.device) -> float | None:
    """Free memory of the model's GPU once the model is loaded (None on CPU)."""
    if device.type != "cuda":
        return None
    free_bytes, _ = torch.cuda.mem_get_info(device)
    return free_bytes / (1 << 20)
