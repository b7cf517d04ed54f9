"""Prometheus metrics of one app instance, in its own CollectorRegistry (no global state).

`ServiceMetrics` is also the engine's observer (see engine/observer.py). Under gunicorn each
worker has its own registry; /metrics shows the worker that answered (one worker per device).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from jina_openai.engine.embedding_cache import EmbeddingCache, MemoryTier
from jina_openai.engine.embedding_store import EmbeddingStore
from jina_openai.engine.scheduler import BatchScheduler
from jina_openai.models.base import Embedder
from jina_openai.models.device import dtype_name

PREFIX = "jina_openai"
LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
)
SIZE_BUCKETS = tuple(float(2**power) for power in range(0, 12))
TOKEN_BUCKETS = tuple(float(2**power) for power in range(4, 19))
METRICS_CONTENT_TYPE = CONTENT_TYPE_LATEST


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.requests = Counter(
            f"{PREFIX}_requests",
            "HTTP requests by route and status.",
            ["route", "status"],
            registry=registry,
        )
        self.request_seconds = Histogram(
            f"{PREFIX}_request_duration_seconds",
            "HTTP request latency by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.embedding_request_seconds = Histogram(
            f"{PREFIX}_embedding_request_duration_seconds",
            "Latency of answered /v1/embeddings requests by shape: search (one input), "
            "index (more).",
            ["shape"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        for shape in ("search", "index"):  # exported from the start, at 0
            self.embedding_request_seconds.labels(shape=shape)
        self.ready = Gauge(
            f"{PREFIX}_ready",
            "1 while the model is loaded and warmed (/ready answers 200), else 0.",
            registry=registry,
        )
        self.rejected = Counter(
            f"{PREFIX}_rejected_requests",
            "Requests refused, by reason (error code).",
            ["reason"],
            registry=registry,
        )
        self.queue_wait_seconds = Histogram(
            f"{PREFIX}_queue_wait_seconds",
            "Time an input waited before its batch started.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.tokenization_seconds = Histogram(
            f"{PREFIX}_tokenization_seconds",
            "Tokenization time per request.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.inference_seconds = Histogram(
            f"{PREFIX}_inference_seconds",
            "Forward pass time per batch.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.batch_inputs = Histogram(
            f"{PREFIX}_batch_inputs",
            "Inputs per batch.",
            buckets=SIZE_BUCKETS,
            registry=registry,
        )
        self.batch_tokens = Histogram(
            f"{PREFIX}_batch_tokens",
            "Real tokens per batch.",
            buckets=TOKEN_BUCKETS,
            registry=registry,
        )
        self.batch_padded_tokens = Histogram(
            f"{PREFIX}_batch_padded_tokens",
            "Padded tokens (longest x inputs) per batch.",
            buckets=TOKEN_BUCKETS,
            registry=registry,
        )
        self.embedded_inputs = Counter(
            f"{PREFIX}_embedded_inputs", "Inputs embedded.", registry=registry
        )
        self.embedded_tokens = Counter(
            f"{PREFIX}_embedded_tokens", "Real tokens embedded.", registry=registry
        )
        self.dropped_inputs = Counter(
            f"{PREFIX}_dropped_inputs",
            "Inputs dropped before inference because their client disconnected.",
            registry=registry,
        )
        self.failed_batches = Counter(
            f"{PREFIX}_failed_batches", "Batches whose forward pass failed.", registry=registry
        )
        self.queue_inputs = Gauge(
            f"{PREFIX}_queue_inputs", "Inputs waiting for a batch.", registry=registry
        )
        self.queue_tokens = Gauge(
            f"{PREFIX}_queue_tokens", "Tokens waiting for a batch.", registry=registry
        )
        self.queue_requests = Gauge(
            f"{PREFIX}_queue_requests",
            "Requests with inputs waiting for a batch.",
            registry=registry,
        )
        self.admitted_tokens = Gauge(
            f"{PREFIX}_admitted_tokens",
            "Tokens admitted, not yet embedded (queued + running); at most max_queued_tokens.",
            registry=registry,
        )
        self.held_request_bytes = Gauge(
            f"{PREFIX}_held_request_bytes",
            "Request memory (bodies, texts, vectors, responses) held by requests in flight.",
            registry=registry,
        )
        self.reserved_tokens = Gauge(
            f"{PREFIX}_reserved_tokens",
            "Estimated tokens of admitted requests not yet tokenized.",
            registry=registry,
        )
        self.cache_hits = Counter(
            f"{PREFIX}_cache_hits",
            "Inputs answered from the embedding cache, by tier (memory, disk).",
            ["tier"],
            registry=registry,
        )
        self.cache_misses = Counter(
            f"{PREFIX}_cache_misses",
            "Inputs the embedding cache did not hold (embedded, then stored).",
            registry=registry,
        )
        self.cache_evictions = Counter(
            f"{PREFIX}_cache_evictions",
            "Vectors evicted from the embedding cache to stay within its size, by tier.",
            ["tier"],
            registry=registry,
        )
        self.cache_bytes = Gauge(
            f"{PREFIX}_cache_bytes",
            "Bytes the embedding cache holds, by tier (disk: pages in use in its file).",
            ["tier"],
            registry=registry,
        )
        self.cache_entries = Gauge(
            f"{PREFIX}_cache_entries",
            "Vectors the embedding cache holds, by tier.",
            ["tier"],
            registry=registry,
        )
        for tier in ("memory", "disk"):  # exported from the start, at 0
            self.cache_hits.labels(tier=tier)
            self.cache_evictions.labels(tier=tier)
        self.model_info = Info(f"{PREFIX}_model", "The served model.", registry=registry)
        self.dtype_check_inputs_per_cpu_s = Gauge(
            f"{PREFIX}_dtype_check_inputs_per_cpu_second",
            "Startup self-check of dtype auto on CPU: check inputs per CPU second, per dtype.",
            ["dtype"],
            registry=registry,
        )
        self.dtype_check_min_cosine = Gauge(
            f"{PREFIX}_dtype_check_min_cosine",
            "Startup self-check of dtype auto on CPU: least cosine of bfloat16 to float32.",
            registry=registry,
        )
        ProcessCollector(registry=registry)  # process_resident_memory_bytes, CPU, fds

    def track_queue(self, scheduler: Callable[[], BatchScheduler | None]) -> None:
        def reading(attribute: str) -> Callable[[], float]:
            def read() -> float:
                current = scheduler()
                return float(getattr(current, attribute)) if current is not None else 0.0

            return read

        self.queue_inputs.set_function(reading("queued_inputs"))
        self.queue_tokens.set_function(reading("queued_tokens"))
        self.queue_requests.set_function(reading("queued_requests"))
        self.admitted_tokens.set_function(reading("admitted_tokens"))
        self.held_request_bytes.set_function(reading("held_bytes"))
        self.reserved_tokens.set_function(reading("reserved_tokens"))

    def track_readiness(self, ready: Callable[[], bool]) -> None:
        self.ready.set_function(lambda: 1.0 if ready() else 0.0)

    def track_cache(self, cache: Callable[[], EmbeddingCache | None]) -> None:
        def memory(read: Callable[[MemoryTier], float]) -> Callable[[], float]:
            def value() -> float:
                current = cache()
                return read(current.memory) if current and current.memory is not None else 0.0

            return value

        def disk(read: Callable[[EmbeddingStore], float]) -> Callable[[], float]:
            def value() -> float:
                current = cache()
                return read(current.store) if current and current.store is not None else 0.0

            return value

        self.cache_bytes.labels(tier="memory").set_function(memory(lambda tier: tier.bytes))
        self.cache_entries.labels(tier="memory").set_function(memory(len))
        self.cache_bytes.labels(tier="disk").set_function(disk(lambda store: store.used_bytes()))
        self.cache_entries.labels(tier="disk").set_function(disk(lambda store: store.entries()))

    def render(self) -> bytes:
        return generate_latest(self.registry)

    # --- HTTP -----------------------------------------------------------------------------------
    def request_finished(self, *, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route=route, status=str(status)).inc()
        self.request_seconds.labels(route=route).observe(seconds)

    def embedding_request_answered(self, *, inputs: int, seconds: float) -> None:
        shape = "search" if inputs == 1 else "index"
        self.embedding_request_seconds.labels(shape=shape).observe(seconds)

    def request_rejected(self, reason: str) -> None:
        self.rejected.labels(reason=reason).inc()

    # --- EngineObserver -------------------------------------------------------------------------
    def batch_completed(
        self,
        *,
        inputs: int,
        tokens: int,
        padded_tokens: int,
        seconds: float,
        queue_waits: Sequence[float],
    ) -> None:
        self.inference_seconds.observe(seconds)
        self.batch_inputs.observe(inputs)
        self.batch_tokens.observe(tokens)
        self.batch_padded_tokens.observe(padded_tokens)
        self.embedded_inputs.inc(inputs)
        self.embedded_tokens.inc(tokens)
        for wait in queue_waits:
            self.queue_wait_seconds.observe(max(0.0, wait))

    def batch_failed(self) -> None:
        self.failed_batches.inc()

    def inputs_dropped(self, count: int) -> None:
        self.dropped_inputs.inc(count)

    def tokenization_completed(self, seconds: float) -> None:
        self.tokenization_seconds.observe(seconds)

    def cache_looked_up(self, *, memory_hits: int, disk_hits: int, misses: int) -> None:
        if memory_hits:
            self.cache_hits.labels(tier="memory").inc(memory_hits)
        if disk_hits:
            self.cache_hits.labels(tier="disk").inc(disk_hits)
        if misses:
            self.cache_misses.inc(misses)

    def cache_evicted(self, tier: str, count: int) -> None:
        self.cache_evictions.labels(tier=tier).inc(count)

    def model_loaded(self, embedder: Embedder) -> None:
        if embedder.device.type == "cuda":
            self._track_gpu_memory(embedder.device)
        self.model_info.info(
            {
                "model_id": embedder.model_id,
                "architecture": embedder.architecture,
                "dimension": str(embedder.dimension),
                "max_input_tokens": str(embedder.max_input_tokens),
                "device": str(embedder.device),
                "dtype": dtype_name(embedder.dtype),
                "dtype_configured": embedder.dtype_choice.configured,
                "dtype_reason": embedder.dtype_choice.reason,
            }
        )
        choice = embedder.dtype_choice
        if (
            choice.float32_inputs_per_cpu_s is not None
            and choice.bfloat16_inputs_per_cpu_s is not None
        ):
            self.dtype_check_inputs_per_cpu_s.labels(dtype="float32").set(
                choice.float32_inputs_per_cpu_s
            )
            self.dtype_check_inputs_per_cpu_s.labels(dtype="bfloat16").set(
                choice.bfloat16_inputs_per_cpu_s
            )
        if choice.min_cosine is not None:
            self.dtype_check_min_cosine.set(choice.min_cosine)

    def _track_gpu_memory(self, device: torch.device) -> None:
        """GPU memory of this process on `device`: what tensors hold, what the caching
        allocator keeps reserved, and the peaks of both. systemd's MemoryMax does not see it."""
        readings = {
            "allocated": torch.cuda.memory_allocated,
            "reserved": torch.cuda.memory_reserved,
            "max_allocated": torch.cuda.max_memory_allocated,
            "max_reserved": torch.cuda.max_memory_reserved,
        }
        gauge = Gauge(
            f"{PREFIX}_gpu_memory_bytes",
            "CUDA memory of this process by kind (allocated, reserved, and their peaks).",
            ["device", "kind"],
            registry=self.registry,
        )
        for kind, read in readings.items():
            gauge.labels(device=str(device), kind=kind).set_function(
                lambda read=read: float(read(device))
            )
