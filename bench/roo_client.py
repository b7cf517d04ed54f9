"""Roo Code's indexing client, layer by layer, in Python: what `make roo-load` runs per workspace.

Read from Roo-Code's src/services/code-index/ at cb83656 (../shared/reference/roo-code-client.md,
"Retries and what failure costs"); each layer keeps Roo's constants and order of operations:

- HTTP: the official `openai` SDK (`NodeRetryOpenAI`) with `maxRetries` 2 and Roo's real
  patience per request, 300 s (the headers timeout of Node's fetch, under the Node SDK's own
  10 minutes): a request not answered by then is abandoned (the service logs 499) and retried
  by the SDK. The Python SDK's retry rules differ from the Node SDK's in two details, so the
  subclass puts the Node ones back: `Retry-After` is honoured when 0 <= it < 60 s (else the
  default backoff, 0.5 s doubling, at most 8 s, minus up to 25 % jitter), and a large
  `Retry-After` never stops a retry.
- `RooEmbedder` (embedders/openai-compatible.ts): texts split into requests of at most
  `MAX_BATCH_TOKENS` estimated tokens (characters / 4), items above `MAX_ITEM_TOKENS` skipped;
  each request gets `MAX_RETRIES` attempts; before each attempt it waits out the global rate
  limit; on 429 it updates the global rate limit and waits max(500 ms x 2^attempt, the global
  delay); any other error is thrown at once.
- `GlobalRateLimit`: static in Roo's embedder class, so shared by every batch of one extension
  host (one VS Code window): a 429 within 60 s of the previous one counts as consecutive, the
  pause is min(5 s x 2^(n-1), 300 s); the first attempt after a pause has run out resets it.
- `index_workspace` (processors/scanner.ts): batches of `BATCH_SEGMENT_THRESHOLD` blocks, at
  most `BATCH_PROCESSING_CONCURRENCY` in flight and `MAX_PENDING_BATCHES` queued; each batch is
  embedded then upserted, with `MAX_BATCH_RETRIES` attempts and waits of
  `INITIAL_RETRY_DELAY_MS` x 2^(attempt-1) between them.
- `would_drop` (orchestrator.ts): the whole index is dropped when nothing was indexed, or when a
  batch failed and more than 10 % of the blocks are missing.

Time comes from a `Clock`, so every layer runs under a fake clock and a fake transport in the
unit tests; `RealClock` is the event loop's.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import math
import random
import struct
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx2
import openai

# constants/index.ts
BATCH_SEGMENT_THRESHOLD = 60
BATCH_PROCESSING_CONCURRENCY = 10
MAX_PENDING_BATCHES = 20
MAX_BATCH_RETRIES = 3
INITIAL_RETRY_DELAY_MS = 500
MAX_BATCH_TOKENS = 100_000
MAX_ITEM_TOKENS = 8191
# embedders/openai-compatible.ts
MAX_RETRIES = 3
INITIAL_DELAY_MS = 500
RATE_LIMIT_BASE_DELAY_MS = 5000
RATE_LIMIT_MAX_DELAY_MS = 300_000
RATE_LIMIT_WINDOW_MS = 60_000
# openai Node SDK under it, and Node's fetch
SDK_MAX_RETRIES = 2
SDK_INITIAL_RETRY_DELAY_S = 0.5
SDK_MAX_RETRY_DELAY_S = 8.0
SDK_MAX_RETRY_AFTER_S = 60.0
PATIENCE_S = 300.0  # undici's headersTimeout: Roo's real per-request timeout
CONNECT_TIMEOUT_S = 10.0  # undici's connect timeout
# orchestrator.ts
MAX_MISSING_FRACTION = 0.1


class Clock(Protocol):
    def now(self) -> float:
        """Seconds, monotonic."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class RealClock:
    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


@dataclass
class ClientStats:
    """What one Roo client (a workspace's indexer, or the search stream) saw, per layer."""

    http_requests: int = 0
    http_statuses: dict[str, int] = field(default_factory=dict)  # "200", "429", ...
    abandoned: int = 0  # no response headers within PATIENCE_S: the service logs 499
    transport_errors: int = 0  # connection refused / reset, connect timeouts
    sdk_retries: int = 0
    sdk_wait_s: float = 0.0
    embedder_429_retries: int = 0  # Roo's embedder waited and tried again after a 429
    embedder_wait_s: float = 0.0
    global_waits: int = 0  # attempts held back by the global rate limit
    global_wait_s: float = 0.0
    embedder_errors: int = 0  # createEmbeddings threw (after the layers above)
    scanner_retries: int = 0
    scanner_wait_s: float = 0.0
    waits: list[tuple[str, float]] = field(default_factory=list)  # (layer, seconds), in order

    def status(self, code: str) -> None:
        self.http_statuses[code] = self.http_statuses.get(code, 0) + 1

    def waited(self, layer: str, seconds: float) -> None:
        self.waits.append((layer, seconds))

    def summary(self) -> dict[str, Any]:
        return {
            "http_requests": self.http_requests,
            "http_statuses": dict(sorted(self.http_statuses.items())),
            "http_429": self.http_statuses.get("429", 0),
            "abandoned_499": self.abandoned,
            "transport_errors": self.transport_errors,
            "sdk_retries": self.sdk_retries,
            "sdk_wait_s": round(self.sdk_wait_s, 2),
            "embedder_429_retries": self.embedder_429_retries,
            "embedder_wait_s": round(self.embedder_wait_s, 2),
            "global_waits": self.global_waits,
            "global_wait_s": round(self.global_wait_s, 2),
            "embedder_errors": self.embedder_errors,
            "scanner_retries": self.scanner_retries,
            "scanner_wait_s": round(self.scanner_wait_s, 2),
        }


class CountingTransport(httpx2.AsyncBaseTransport):
    """Counts what goes over the wire: requests, statuses, abandons (read timeouts)."""

    def __init__(self, inner: httpx2.AsyncBaseTransport, stats: ClientStats) -> None:
        self.inner = inner
        self.stats = stats

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        self.stats.http_requests += 1
        try:
            response = await self.inner.handle_async_request(request)
        except httpx2.ReadTimeout:
            self.stats.abandoned += 1
            self.stats.status("abandoned")
            raise
        except httpx2.TransportError as exc:
            self.stats.transport_errors += 1
            self.stats.status(f"transport:{type(exc).__name__}")
            raise
        self.stats.status(str(response.status_code))
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def node_retry_after_s(headers: httpx2.Headers | None, now_epoch_s: float) -> float | None:
    """The Node SDK's reading of `retry-after-ms`, else `retry-after` (seconds or an HTTP
    date); None when absent or unreadable."""
    if headers is None:
        return None
    milliseconds = headers.get("retry-after-ms")
    if milliseconds is not None:
        try:
            value = float(milliseconds)
        except ValueError:
            value = math.nan
        if not math.isnan(value):
            return value / 1000
    text = headers.get("retry-after")
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        try:
            parsed = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        return parsed.timestamp() - now_epoch_s
    return None if math.isnan(value) else value


def node_retry_delay_s(
    headers: httpx2.Headers | None,
    retries_taken: int,
    *,
    rng: random.Random,
    now_epoch_s: float,
) -> float:
    """The Node SDK's wait before its retry number `retries_taken` + 1."""
    retry_after = node_retry_after_s(headers, now_epoch_s)
    if retry_after is not None and 0 <= retry_after < SDK_MAX_RETRY_AFTER_S:
        return retry_after
    delay = min(SDK_INITIAL_RETRY_DELAY_S * 2.0**retries_taken, SDK_MAX_RETRY_DELAY_S)
    return delay * (1 - rng.random() * 0.25)


def node_should_retry(response: httpx2.Response) -> bool:
    """The Node SDK's retryable responses: x-should-retry decides, else 408, 409, 429, 5xx."""
    explicit = response.headers.get("x-should-retry")
    if explicit == "true":
        return True
    if explicit == "false":
        return False
    return response.status_code in (408, 409, 429) or response.status_code >= 500


class NodeRetryOpenAI(openai.AsyncOpenAI):
    """`openai.AsyncOpenAI` whose retries follow the Node SDK's rules, timed by a `Clock`."""

    def __init__(
        self,
        *,
        clock: Clock,
        stats: ClientStats,
        rng: random.Random | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._roo_clock = clock
        self._roo_stats = stats
        self._roo_rng = rng or random.Random()

    def _should_retry(self, response: httpx2.Response) -> bool:
        return node_should_retry(response)

    async def _sleep_for_retry(
        self,
        *,
        retries_taken: int,
        max_retries: int,
        options: Any,
        response: httpx2.Response | None,
    ) -> None:
        delay = node_retry_delay_s(
            response.headers if response is not None else None,
            retries_taken,
            rng=self._roo_rng,
            now_epoch_s=time.time(),
        )
        self._roo_stats.sdk_retries += 1
        self._roo_stats.sdk_wait_s += delay
        self._roo_stats.waited("sdk", delay)
        await self._roo_clock.sleep(delay)


def make_openai_client(
    base_url: str,
    api_key: str,
    *,
    clock: Clock,
    stats: ClientStats,
    transport: httpx2.AsyncBaseTransport | None = None,
    patience_s: float = PATIENCE_S,
    rng: random.Random | None = None,
) -> NodeRetryOpenAI:
    """The SDK client of one Roo window: `base_url` ends in /v1 (the SDK adds /embeddings)."""
    timeout = httpx2.Timeout(patience_s, connect=CONNECT_TIMEOUT_S)
    inner = transport or httpx2.AsyncHTTPTransport(
        limits=httpx2.Limits(max_connections=None, max_keepalive_connections=None)
    )
    http_client = httpx2.AsyncClient(
        transport=CountingTransport(inner, stats), timeout=timeout, follow_redirects=True
    )
    return NodeRetryOpenAI(
        clock=clock,
        stats=stats,
        rng=rng,
        api_key=api_key,
        base_url=base_url,
        max_retries=SDK_MAX_RETRIES,
        timeout=timeout,
        http_client=http_client,
    )


@dataclass
class GlobalRateLimit:
    """OpenAICompatibleEmbedder.globalRateLimitState (milliseconds kept as seconds). Roo guards
    it with a mutex; here every method runs without awaiting, on one event loop."""

    is_rate_limited: bool = False
    reset_time: float = 0.0
    consecutive_errors: int = 0
    last_error: float = -math.inf

    def pause_before_attempt(self, now: float) -> float:
        """waitForGlobalRateLimit: the seconds to wait before an attempt (resets an expired
        limit, as Roo does)."""
        if self.is_rate_limited and self.reset_time > now:
            return self.reset_time - now
        if self.is_rate_limited and self.reset_time <= now:
            self.is_rate_limited = False
            self.consecutive_errors = 0
        return 0.0

    def record_429(self, now: float) -> None:
        """updateGlobalRateLimitState."""
        if (now - self.last_error) * 1000 < RATE_LIMIT_WINDOW_MS:
            self.consecutive_errors += 1
        else:
            self.consecutive_errors = 1
        self.last_error = now
        delay_ms = min(
            RATE_LIMIT_BASE_DELAY_MS * 2 ** (self.consecutive_errors - 1), RATE_LIMIT_MAX_DELAY_MS
        )
        self.is_rate_limited = True
        self.reset_time = now + delay_ms / 1000

    def delay(self, now: float) -> float:
        """getGlobalRateLimitDelay."""
        if self.is_rate_limited and self.reset_time > now:
            return self.reset_time - now
        return 0.0


class EmbedderError(Exception):
    """What Roo's formatEmbeddingError throws; `status` None for timeouts and connection
    errors."""

    def __init__(self, message: str, status: int | None) -> None:
        super().__init__(message)
        self.status = status


class InvalidVectorsError(Exception):
    """Vectors Qdrant would reject on upsert (missing, or not finite)."""


def decode_embedding(value: object) -> list[float]:
    if isinstance(value, str):
        raw = base64.b64decode(value)
        count = len(raw) // 4
        return list(struct.unpack(f"<{count}f", raw[: count * 4]))
    if isinstance(value, list):
        return [float(v) for v in value]
    raise InvalidVectorsError(f"an embedding of type {type(value).__name__}")


class RooEmbedder:
    """OpenAICompatibleEmbedder.createEmbeddings and _embedBatchWithRetries."""

    def __init__(
        self,
        client: openai.AsyncOpenAI,
        model: str,
        *,
        rate_limit: GlobalRateLimit,
        clock: Clock,
        stats: ClientStats,
    ) -> None:
        self.client = client
        self.model = model
        self.rate_limit = rate_limit
        self.clock = clock
        self.stats = stats

    async def create_embeddings(self, texts: Sequence[str]) -> list[list[float]]:
        embeddings: list[list[float]] = []
        remaining = list(texts)
        while remaining:
            batch: list[str] = []
            batch_tokens = 0
            taken: list[int] = []
            for index, text in enumerate(remaining):
                item_tokens = math.ceil(len(text) / 4)
                if item_tokens > MAX_ITEM_TOKENS:
                    taken.append(index)  # skipped, with a warning, as Roo does
                    continue
                if batch_tokens + item_tokens <= MAX_BATCH_TOKENS:
                    batch.append(text)
                    batch_tokens += item_tokens
                    taken.append(index)
                else:
                    break
            for index in reversed(taken):
                del remaining[index]
            if batch:
                embeddings.extend(await self._embed_batch_with_retries(batch))
        return embeddings

    async def _embed_batch_with_retries(self, texts: list[str]) -> list[list[float]]:
        for attempt in range(MAX_RETRIES):
            pause = self.rate_limit.pause_before_attempt(self.clock.now())
            if pause > 0:
                self.stats.global_waits += 1
                self.stats.global_wait_s += pause
                self.stats.waited("global", pause)
                await self.clock.sleep(pause)
            try:
                response = await self.client.embeddings.create(
                    input=texts, model=self.model, encoding_format="base64"
                )
                return [decode_embedding(item.embedding) for item in response.data]
            except openai.APIStatusError as exc:
                has_more_attempts = attempt < MAX_RETRIES - 1
                if exc.status_code == 429:
                    self.rate_limit.record_429(self.clock.now())
                    if has_more_attempts:
                        base = INITIAL_DELAY_MS * 2**attempt / 1000
                        delay = max(base, self.rate_limit.delay(self.clock.now()))
                        self.stats.embedder_429_retries += 1
                        self.stats.embedder_wait_s += delay
                        self.stats.waited("embedder", delay)
                        await self.clock.sleep(delay)
                        continue
                self.stats.embedder_errors += 1
                raise EmbedderError(
                    f"Failed to create embeddings after {MAX_RETRIES} attempts: "
                    f"HTTP {exc.status_code} - {exc.message}",
                    exc.status_code,
                ) from exc
            except openai.APIConnectionError as exc:  # APITimeoutError included
                self.stats.embedder_errors += 1
                raise EmbedderError(
                    f"Failed to create embeddings after {MAX_RETRIES} attempts: {exc.message}",
                    None,
                ) from exc
        self.stats.embedder_errors += 1  # unreachable in Roo too: the last 429 throws above
        raise EmbedderError(f"Failed to create embeddings after {MAX_RETRIES} attempts", None)


Upsert = Callable[[list[str], list[list[float]]], Awaitable[None]]


def check_vectors(texts: Sequence[str], vectors: Sequence[Sequence[float]]) -> None:
    """What Qdrant's upsert would refuse: a block without its vector, or a non-finite one."""
    if len(vectors) != len(texts):
        raise InvalidVectorsError(f"{len(texts)} blocks, {len(vectors)} vectors")
    for vector in vectors:
        if not vector or not all(math.isfinite(v) for v in vector):
            raise InvalidVectorsError("a vector that is empty or not finite")


async def no_upsert(texts: list[str], vectors: list[list[float]]) -> None:
    check_vectors(texts, vectors)


@dataclass
class WorkspaceResult:
    name: str
    blocks: int
    batches: int = 0
    failed_batches: int = 0
    blocks_indexed: int = 0
    errors: list[str] = field(default_factory=list)  # the scanner's onError messages
    elapsed_s: float = 0.0
    finished: bool = False  # False: cancelled (the harness's time bound) before the end

    @property
    def would_drop(self) -> bool:
        return would_drop(self.blocks, self.blocks_indexed, self.failed_batches)


def would_drop(blocks_found: int, blocks_indexed: int, batch_errors: int) -> bool:
    """orchestrator.ts: indexing ends in Error, and Roo clears the collection and its cache,
    when blocks were found and none indexed, or when a batch failed and more than 10 % of the
    blocks are missing."""
    if blocks_found == 0:
        return False
    if blocks_indexed == 0:
        return True
    missing = (blocks_found - blocks_indexed) / blocks_found
    return batch_errors > 0 and missing > MAX_MISSING_FRACTION


async def process_batch(
    texts: list[str],
    embedder: RooEmbedder,
    upsert: Upsert,
    *,
    clock: Clock,
    stats: ClientStats,
    result: WorkspaceResult,
) -> None:
    """DirectoryScanner.processBatch (the deletion of the files' old points is left out: a
    fresh index has none)."""
    last_error: Exception | None = None
    for attempt in range(1, MAX_BATCH_RETRIES + 1):
        try:
            vectors = await embedder.create_embeddings(texts)
            await upsert(texts, vectors)
            result.blocks_indexed += len(texts)
            return
        except Exception as exc:  # Roo catches everything here
            last_error = exc
            if attempt < MAX_BATCH_RETRIES:
                delay = INITIAL_RETRY_DELAY_MS * 2 ** (attempt - 1) / 1000
                stats.scanner_retries += 1
                stats.scanner_wait_s += delay
                stats.waited("scanner", delay)
                await clock.sleep(delay)
    result.failed_batches += 1
    result.errors.append(
        f"Failed to process batch after {MAX_BATCH_RETRIES} attempts: {last_error}"
    )


async def index_workspace(
    name: str,
    texts: Sequence[str],
    embedder: RooEmbedder,
    *,
    clock: Clock,
    stats: ClientStats,
    upsert: Upsert = no_upsert,
    batch_size: int = BATCH_SEGMENT_THRESHOLD,
    result: WorkspaceResult | None = None,
) -> WorkspaceResult:
    """DirectoryScanner.scanDirectory over already parsed blocks: batches of `batch_size`
    through pLimit(BATCH_PROCESSING_CONCURRENCY), at most MAX_PENDING_BATCHES pending.
    `result` (else a new one) is filled in as batches finish, so a caller that cancels the
    scan still has what was done."""
    if result is None:
        result = WorkspaceResult(name, len(texts))
    started = clock.now()
    limiter = asyncio.Semaphore(BATCH_PROCESSING_CONCURRENCY)
    active: set[asyncio.Task[None]] = set()

    async def limited(batch: list[str]) -> None:
        async with limiter:
            await process_batch(batch, embedder, upsert, clock=clock, stats=stats, result=result)

    try:
        for start in range(0, len(texts), batch_size):
            batch = list(texts[start : start + batch_size])
            while len(active) >= MAX_PENDING_BATCHES:
                await asyncio.wait(active, return_when=asyncio.FIRST_COMPLETED)
            result.batches += 1
            task = asyncio.create_task(limited(batch))
            active.add(task)
            task.add_done_callback(active.discard)
        if active:
            await asyncio.gather(*active)
        result.finished = True
    finally:
        for task in active:
            task.cancel()
        result.elapsed_s = clock.now() - started
    return result
