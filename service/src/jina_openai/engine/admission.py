"""One request's way through the engine, from before its body is read until its vectors are out.

    with engine.admit(body_bytes=declared) as admission:    # 429 / 413 / 503 before the body
        ... read and parse the body ...
        result = await admission.embed(inputs, ..., client_gone=watcher)

`EmbeddingEngine.admit` reserves a request slot and the declared body bytes. `embed` then owns
every step: grow the reservation by the parsed request's estimated tokens and memory (429 /
413 before tokenizing), tokenize in the pool, look the prepared inputs up in the embedding cache
(engine/embedding_cache.py), submit a job of the misses only (refused on waiting time, it
first waits its turn in the engine's line for room: engine/waiting_line.py), await their
vectors and store them. Each await races the client's disconnect and the request's deadline:
a client that left is dropped before its text is tokenized or, once queued, before its inputs
reach a batch; a request past its deadline is dropped and answered 503. Leaving the `with`
block gives back whatever the request still holds, whatever happened.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from jina_openai.engine.errors import (
    ClientDisconnectedError,
    DeadlineExceededError,
    QueueFullError,
)
from jina_openai.engine.job import EmbeddingJob
from jina_openai.engine.scheduler import BatchScheduler, Reservation

if TYPE_CHECKING:
    from jina_openai.engine.engine import EmbeddingEngine, RawInputs
    from jina_openai.engine.input_preparation import PreparedInputs

T = TypeVar("T")
OUTPUT_BYTES_PER_DIMENSION = 4  # float32 vectors
LINE_POLL_S = 0.2  # how often a request in the waiting line looks for room


@dataclass(frozen=True)
class EmbeddingResult:
    vectors: np.ndarray  # float32 [inputs, dimension], input order
    token_count: int
    truncated_inputs: int
    tokenize_seconds: float
    queue_seconds: float
    inference_seconds: float
    cached_inputs: int = 0  # answered from the embedding cache, not embedded


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


class Admission:
    def __init__(
        self,
        engine: EmbeddingEngine,
        reservation: Reservation,
        *,
        deadline: float | None,
        clock: Callable[[], float],
    ) -> None:
        self._engine = engine
        self._reservation = reservation
        self._deadline = deadline
        self._clock = clock

    def __enter__(self) -> Admission:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._engine.end(self._reservation)

    async def embed(
        self,
        inputs: RawInputs,
        *,
        token_ids: bool,
        single: bool,
        request_id: str,
        client_gone: asyncio.Future[None],
        response_bytes: int = 0,
        client: str = "",
    ) -> EmbeddingResult:
        """Reserve, tokenize, queue and await the vectors of `inputs`. Raises EngineError:
        QueueFullError / RequestTooLargeError before any work, ClientDisconnectedError when
        `client_gone` completes first, DeadlineExceededError past the deadline, and the errors
        of preparation and inference."""
        engine = self._engine
        embedder, scheduler, preparer = engine.ensure_ready()
        scheduler.grow(
            self._reservation,
            estimated_tokens=preparer.estimate_tokens(inputs, token_ids=token_ids),
            min_tokens=preparer.min_tokens(inputs),
            extra_bytes=preparer.input_bytes(inputs, token_ids=token_ids)
            + len(inputs) * embedder.dimension * OUTPUT_BYTES_PER_DIMENSION
            + response_bytes,
        )
        cancelled = threading.Event()  # tells a running tokenization to stop between slices
        started = time.perf_counter()
        prepared = await self._until(
            engine.prepare(inputs, token_ids=token_ids, single=single, cancelled=cancelled),
            client_gone,
            on_stop=cancelled.set,
        )
        lookup = await self._until(engine.look_up(prepared), client_gone)
        tokenize_seconds = time.perf_counter() - started
        if lookup is not None and not lookup.misses:  # every input was cached
            return EmbeddingResult(
                vectors=lookup.merge(None, dimension=embedder.dimension),
                token_count=prepared.token_count,
                truncated_inputs=prepared.truncated_inputs,
                tokenize_seconds=tokenize_seconds,
                queue_seconds=0.0,
                inference_seconds=0.0,
                cached_inputs=len(lookup.hits),
            )
        queued = prepared if lookup is None else lookup.missing_inputs(prepared)
        submitted = await self._submit_in_line(
            queued, request_id=request_id, client=client, client_gone=client_gone
        )
        try:
            job = await self._until(submitted.result(), client_gone)
        except (ClientDisconnectedError, DeadlineExceededError) as exc:
            exc.dropped_inputs = engine.drop(submitted)
            raise
        except asyncio.CancelledError:
            engine.drop(submitted)
            raise
        assert job.outputs is not None
        vectors = job.outputs
        if lookup is not None:
            engine.remember(lookup, job.outputs)
            vectors = lookup.merge(job.outputs, dimension=embedder.dimension)
        return EmbeddingResult(
            vectors=vectors,
            token_count=prepared.token_count,
            truncated_inputs=prepared.truncated_inputs,
            tokenize_seconds=tokenize_seconds,
            queue_seconds=job.queue_seconds,
            inference_seconds=job.inference_seconds,
            cached_inputs=0 if lookup is None else len(lookup.hits),
        )

    async def _submit_in_line(
        self,
        queued: PreparedInputs,
        *,
        request_id: str,
        client: str,
        client_gone: asyncio.Future[None],
    ) -> SubmittedJob:
        """`engine.submit`; refused on waiting time, the request waits its turn in the engine's
        line (engine/waiting_line.py) for room, up to the line's patience, then gets the 429."""
        engine = self._engine
        line = engine.waiting_line
        scheduler = engine.ensure_ready()[1]
        small = queued.token_count <= scheduler.limits.max_batch_tokens  # a search: exempt
        if small or not len(line):
            try:
                return engine.submit(
                    queued, request_id=request_id, reservation=self._reservation, client=client
                )
            except QueueFullError as exc:
                if small or exc.reason != "queue_wait" or line.patience_s <= 0:
                    raise
        else:
            scheduler.step_aside(self._reservation)  # its estimate must not block those ahead
        ticket = line.join(client)
        give_up_at = self._clock() + line.patience_s
        try:
            while True:
                await self._until(asyncio.sleep(LINE_POLL_S), client_gone)
                last_try = self._clock() >= give_up_at
                if not (last_try or line.is_next(ticket, scheduler.client_tokens)):
                    continue
                try:
                    return engine.submit(
                        queued, request_id=request_id, reservation=self._reservation, client=client
                    )
                except QueueFullError as exc:
                    if exc.reason != "queue_wait" or last_try:
                        raise
        finally:
            line.leave(ticket)

    async def _until(
        self,
        awaitable: Awaitable[T],
        client_gone: asyncio.Future[None],
        *,
        on_stop: Callable[[], None] | None = None,
    ) -> T:
        """`awaitable`'s result, unless the client leaves or the deadline passes first."""
        task = asyncio.ensure_future(awaitable)
        timeout = None if self._deadline is None else max(0.0, self._deadline - self._clock())
        try:
            await asyncio.wait({task, client_gone}, timeout=timeout, return_when="FIRST_COMPLETED")
        finally:
            if not task.done():
                task.cancel()
                if on_stop is not None:
                    on_stop()
        if task.done() and not task.cancelled():
            return task.result()
        if client_gone.done():
            raise ClientDisconnectedError()
        raise DeadlineExceededError(
            f"the request was not done within this server's request_timeout_s "
            f"({self._engine.config.request_timeout_s:g} s); retry later",
            retry_after_s=self._engine.retry_after_s(),
        )
