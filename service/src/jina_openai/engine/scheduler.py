"""The queue between request handlers and the inference thread: admission and batch forming.

Admission bounds four things:

- tokens admitted and not yet embedded (queued plus the running batch): `max_queued_tokens`,
  a memory bound (ids and bookkeeping, QUEUED_TOKEN_BYTES each, not activations);
- the time that work takes at the measured throughput: `max_queue_wait_s`. A request is queued
  when the work ahead of it and its own can be done within it, else refused (the admission
  layer first lets it wait in line for room: engine/waiting_line.py) with 429 and the
  `Retry-After` that drains the excess (at most 59 s: the openai SDK in Node honours < 60 s).
  Requests that fit one batch (searches) are exempt: the query lane serves them ahead of the queue;
- request memory held by requests in flight (body bytes, decoded texts, output vectors and
  response bytes): `max_held_bytes`;
- request slots: `max_queued_requests`.

A request takes a `Reservation` before its body is read (its body bytes, one slot), grows it
once parsed (estimated tokens, text and output memory), and `submit` turns the estimate into
the measured admission; the bytes stay held until the request ends and `release`s it. No single
request may hold more than `max_request_tokens` / `max_request_bytes` (a share of the queue):
beyond that it can never be admitted and gets RequestTooLargeError (413) at once; otherwise a
request that does not fit now is refused with QueueFullError (429) and a `Retry-After`
estimated from the measured throughput.

Batches are formed by engine/batch_selection.py, fair between clients: each client (its API key,
else its connection: `EmbeddingJob.client`) has a count of the tokens batched for it while it
has work queued, and the client with the fewest goes first; a client that arrives starts level
with the least served one, so nobody banks service while away.

Thread-safety: every method takes the internal condition's lock; `next_batch` blocks the
inference thread until work arrives or the scheduler is closed.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from jina_openai.engine.batch_selection import Selection, select_batch, select_query_batch
from jina_openai.engine.errors import QueueFullError, RequestTooLargeError
from jina_openai.engine.job import EmbeddingJob
from jina_openai.engine.throughput import ThroughputEstimator

# The openai SDK in Node (Roo Code's) honours Retry-After only below 60 s; at 60 and above it
# falls back to 0.5-8 s backoffs, so a capped 60 would make every client retry almost at once.
MAX_RETRY_AFTER_S = 59
# A body up to this size may be a search even when the queue is past its waiting time: such
# requests are only judged once parsed (a Roo Code search is one chunk, ~1-3 KB of JSON).
SMALL_BODY_BYTES = 32 * 1024


@dataclass(frozen=True)
class SchedulerLimits:
    max_batch_tokens: int  # padded tokens per forward pass (one input always fits alone)
    max_batch_inputs: int
    max_queued_tokens: int  # admitted and unfinished tokens
    max_queued_requests: int
    max_request_tokens: int | None = None  # one request's share of the queue (None: all)
    max_held_bytes: int | None = None  # request memory of requests in flight (None: unbounded)
    max_request_bytes: int | None = None  # one request's share of it (None: all)
    max_queue_wait_s: float = 0.0  # work queued ahead, at the measured rate (0: no bound)
    # How long a request refused at submit on waiting time may then wait in the engine's line
    # (engine/waiting_line.py): the checks before tokenizing allow for it.
    max_line_wait_s: float = 0.0

    @property
    def request_tokens(self) -> int:
        return min(self.max_request_tokens or self.max_queued_tokens, self.max_queued_tokens)

    @property
    def request_bytes(self) -> int | None:
        if self.max_held_bytes is None:
            return self.max_request_bytes
        return min(self.max_request_bytes or self.max_held_bytes, self.max_held_bytes)


class Reservation:
    """One request's hold on the queue; created by `BatchScheduler.reserve`, guarded by the
    scheduler's lock. `tokens`: the estimate held until `submit`; `bytes`: request memory held
    until `release`; `peak_bytes`: the most it held."""

    def __init__(self, held_bytes: int) -> None:
        self.tokens = 0
        self.bytes = held_bytes
        self.peak_bytes = held_bytes
        self.has_slot = True  # a request slot, until submitted (then the job holds it)
        self.released = False


@dataclass
class Batch:
    batch_id: int
    items: list[tuple[EmbeddingJob, int]]  # (job, input index)
    tokens: int  # real tokens
    padded_tokens: int  # longest x count: what the forward pass costs
    formed_at: float


class BatchScheduler:
    def __init__(
        self,
        limits: SchedulerLimits,
        throughput: ThroughputEstimator,
        *,
        clock: Callable[[], float] = time.monotonic,
        wait_bound_at_submit_only: bool = False,
    ) -> None:
        self.limits = limits
        self._throughput = throughput
        self._clock = clock
        # With an embedding cache, a request's queue time is known only once it is looked up:
        # the waiting-time bound then applies at `submit`, to its misses (a re-sent chunk costs
        # no queue time), not to the body or the parsed estimate.
        self._wait_bound_at_submit_only = wait_bound_at_submit_only
        self._condition = threading.Condition()
        self._jobs: dict[int, EmbeddingJob] = {}  # jobs with pending inputs, in arrival order
        self._served: dict[str, int] = {}  # tokens batched per client with jobs queued
        self._client_jobs: dict[str, int] = {}  # queued jobs per client
        self._client_tokens: dict[str, int] = {}  # tokens queued, not yet batched, per client
        self._seq = itertools.count()
        self._batch_ids = itertools.count()
        self._admitted_tokens = 0
        self._reserved_tokens = 0  # estimates of requests not yet submitted
        self._reservations = 0  # request slots held by reservations not yet submitted
        self._held_bytes = 0
        self._queued_tokens = 0
        self._queued_inputs = 0
        self._closed = False

    # --- observation (lock-free reads of ints: fine for gauges) ---------------------------------
    @property
    def queued_inputs(self) -> int:
        return self._queued_inputs

    @property
    def queued_tokens(self) -> int:
        return self._queued_tokens

    @property
    def admitted_tokens(self) -> int:
        return self._admitted_tokens

    @property
    def queued_requests(self) -> int:
        return len(self._jobs)

    def client_tokens(self, client: str) -> int:
        """Tokens `client` has queued and not yet batched (the waiting line's order)."""
        return self._client_tokens.get(client, 0)

    @property
    def reserved_tokens(self) -> int:
        return self._reserved_tokens

    @property
    def held_bytes(self) -> int:
        return self._held_bytes

    @property
    def closed(self) -> bool:
        return self._closed

    # --- request side ---------------------------------------------------------------------------

    def reserve(self, held_bytes: int = 0) -> Reservation:
        """Before the body is read: hold a request slot and `held_bytes` (the declared body
        size), or refuse at once: 413 when one request may never hold that much, 429 when the
        queue is full now (tokens, bytes or slots)."""
        held_bytes = max(0, held_bytes)
        with self._condition:
            self._check_open()
            self._check_request_bytes(held_bytes)
            self._check_slot()
            self._check_room(tokens=0, held_bytes=held_bytes)
            if held_bytes > SMALL_BODY_BYTES and not self._wait_bound_at_submit_only:
                # not a search: the waiting time applies, and the line's
                self._check_wait(tokens=0, exempt=False, with_line=True)
            reservation = Reservation(held_bytes)
            self._reservations += 1
            self._held_bytes += held_bytes
            return reservation

    def grow(
        self,
        reservation: Reservation,
        *,
        estimated_tokens: int,
        min_tokens: int = 0,
        extra_bytes: int = 0,
    ) -> None:
        """Once the request is parsed, before it is tokenized: add its estimated tokens (at
        most one request's share: the measured size decides at `submit`) and the memory of its
        texts and results. 413 when even `min_tokens` exceeds one request's share."""
        tokens = min(max(0, estimated_tokens), self.limits.request_tokens)
        extra_bytes = max(0, extra_bytes)
        with self._condition:
            self._check_open()
            self._check_request_tokens(min_tokens)
            self._check_request_bytes(reservation.bytes + extra_bytes)
            self._check_room(tokens=tokens - reservation.tokens, held_bytes=extra_bytes)
            if not self._wait_bound_at_submit_only:
                self._check_wait(
                    tokens=tokens - reservation.tokens,
                    exempt=self._fits_batch(tokens),
                    with_line=True,
                )
            self._reserved_tokens += tokens - reservation.tokens
            reservation.tokens = tokens
            self._held_bytes += extra_bytes
            reservation.bytes += extra_bytes
            reservation.peak_bytes = max(reservation.peak_bytes, reservation.bytes)

    def release(self, reservation: Reservation) -> None:
        """The request is over (answered, refused or gone): give back what it still holds.
        Idempotent."""
        with self._condition:
            if reservation.released:
                return
            reservation.released = True
            self._give_back_estimate(reservation)
            self._held_bytes -= reservation.bytes
            reservation.bytes = 0
            assert self._held_bytes >= 0

    def step_aside(self, reservation: Reservation) -> None:
        """The request waits in the engine's line (engine/waiting_line.py): its estimate and
        slot are given back, as a refused `submit` does; its bytes stay held."""
        with self._condition:
            self._give_back_estimate(reservation)

    def submit(self, job: EmbeddingJob, *, reservation: Reservation | None = None) -> None:
        """Admit the job on its measured tokens; the reservation's estimate (and slot) is given
        back whatever the outcome, its bytes stay held until `release`."""
        with self._condition:
            if reservation is not None:
                self._give_back_estimate(reservation)
            self._check_request_tokens(job.total_tokens)
            self._check_open()
            self._check_room(tokens=job.total_tokens, held_bytes=0)
            self._check_wait(tokens=job.total_tokens, exempt=self._fits_batch(job.total_tokens))
            self._check_slot()
            job.seq = next(self._seq)
            self._jobs[job.seq] = job
            self._add_client(job.client, job.total_tokens)
            self._admitted_tokens += job.total_tokens
            self._queued_tokens += job.total_tokens
            self._queued_inputs += job.size
            self._condition.notify()

    def cancel(self, job: EmbeddingJob) -> int:
        """Drop the job's inputs that have not reached a batch; returns how many were dropped."""
        with self._condition:
            job.cancelled = True
            if self._jobs.pop(job.seq, None) is None:
                return 0
            dropped = len(job.pending_lengths)
            self._release_pending(job)
            self._remove_client(job.client)
            return dropped

    # --- inference side -------------------------------------------------------------------------
    def next_batch(self, timeout: float | None = None) -> Batch | None:
        """Block until work is queued; None when closed (or on timeout)."""
        with self._condition:
            if not self._condition.wait_for(lambda: self._jobs or self._closed, timeout):
                return None
            if self._closed:
                return None
            selections = select_batch(
                list(self._jobs.values()),
                max_tokens=self.limits.max_batch_tokens,
                max_inputs=self.limits.max_batch_inputs,
                served=self._served,
            )
            return self._form_batch(selections)

    def next_query_batch(self) -> Batch | None:
        """The query lane (never blocks): a batch of small requests only, or None. Called by
        the inference thread between the layers of a running batch."""
        with self._condition:
            if self._closed or not self._jobs:
                return None
            selections = select_query_batch(
                list(self._jobs.values()),
                max_tokens=self.limits.max_batch_tokens,
                max_inputs=self.limits.max_batch_inputs,
                served=self._served,
            )
            return self._form_batch(selections) if selections else None

    def finish_batch(self, batch: Batch) -> None:
        """The batch left the model (done or failed): its tokens no longer count as admitted."""
        with self._condition:
            self._admitted_tokens -= batch.tokens

    def close(self) -> list[EmbeddingJob]:
        """Stop handing out batches; returns the jobs that still had pending inputs."""
        with self._condition:
            self._closed = True
            jobs = list(self._jobs.values())
            for job in jobs:
                self._release_pending(job)
            self._jobs.clear()
            self._served.clear()
            self._client_jobs.clear()
            self._client_tokens.clear()
            self._condition.notify_all()
            return jobs

    # --- internals (called with the lock held) ----------------------------------------------------
    def _form_batch(self, selections: list[Selection]) -> Batch:
        """Take the selected inputs out of their jobs' pending lists."""
        items: list[tuple[EmbeddingJob, int]] = []
        tokens = 0
        longest = 0
        by_job: dict[int, list[int]] = {}
        for selection in selections:
            job = selection.request
            assert isinstance(job, EmbeddingJob)
            by_job.setdefault(job.seq, []).append(selection.position)
            items.append((job, selection.index))
            self._served[job.client] += selection.length
            self._client_tokens[job.client] -= selection.length
            tokens += selection.length
            longest = max(longest, selection.length)
        for seq, positions in by_job.items():
            job = self._jobs[seq]
            for position in sorted(positions, reverse=True):
                job.pending_tokens -= job.pending_lengths.pop(position)
                job.pending_indices.pop(position)
            if not job.pending_lengths:
                del self._jobs[seq]
                self._remove_client(job.client)
        self._queued_tokens -= tokens
        self._queued_inputs -= len(items)
        return Batch(
            batch_id=next(self._batch_ids),
            items=items,
            tokens=tokens,
            padded_tokens=longest * len(items),
            formed_at=self._clock(),
        )

    def _give_back_estimate(self, reservation: Reservation) -> None:
        self._reserved_tokens -= reservation.tokens
        reservation.tokens = 0
        if reservation.has_slot:
            reservation.has_slot = False
            self._reservations -= 1
        assert self._reserved_tokens >= 0
        assert self._reservations >= 0

    def _check_open(self) -> None:
        if self._closed:
            raise QueueFullError(
                "the server is shutting down", retry_after_s=5, reason="shutting_down"
            )

    def _check_request_tokens(self, tokens: int) -> None:
        if tokens > self.limits.request_tokens:
            raise RequestTooLargeError(
                f"the request holds {tokens} tokens, more than the {self.limits.request_tokens} "
                "one request may hold on this server; split it into smaller requests",
                code="too_many_tokens",
            )

    def _check_request_bytes(self, held_bytes: int) -> None:
        limit = self.limits.request_bytes
        if limit is not None and held_bytes > limit:
            raise RequestTooLargeError(
                f"the request needs about {held_bytes} bytes of memory (body, texts and "
                f"results), more than the {limit} one request may hold on this server; "
                "split it into smaller requests",
                code="request_too_large",
            )

    def _check_slot(self) -> None:
        if len(self._jobs) + self._reservations >= self.limits.max_queued_requests:
            raise self._queue_full(
                0,
                what=f"{self.limits.max_queued_requests} queued requests",
                reason="queued_requests",
            )

    def _check_room(self, *, tokens: int, held_bytes: int) -> None:
        held = self._admitted_tokens + self._reserved_tokens
        if held >= self.limits.max_queued_tokens or held + tokens > self.limits.max_queued_tokens:
            raise self._queue_full(
                max(1, held + tokens - self.limits.max_queued_tokens),
                what=f"{self.limits.max_queued_tokens} queued tokens",
                reason="queued_tokens",
            )
        bound = self.limits.max_held_bytes
        if bound is not None and held_bytes and self._held_bytes + held_bytes > bound:
            # Request memory frees as requests finish: a batch's worth of time is the estimate.
            raise self._queue_full(
                0, what=f"{bound} bytes of request memory", reason="request_memory"
            )

    def _add_client(self, client: str, tokens: int) -> None:
        if client not in self._client_jobs:
            self._served[client] = min(self._served.values(), default=0)
            self._client_tokens[client] = 0
        self._client_jobs[client] = self._client_jobs.get(client, 0) + 1
        self._client_tokens[client] += tokens

    def _remove_client(self, client: str) -> None:
        self._client_jobs[client] -= 1
        if self._client_jobs[client] == 0:
            del self._client_jobs[client]
            del self._served[client]
            remaining = self._client_tokens.pop(client)
            assert remaining == 0, remaining

    def _fits_batch(self, tokens: int) -> bool:
        return tokens <= self.limits.max_batch_tokens

    def _check_wait(self, *, tokens: int, exempt: bool, with_line: bool = False) -> None:
        """The waiting-time bound: the work admitted ahead plus this request's must be done
        within `max_queue_wait_s` at the measured throughput (`with_line`, before tokenizing:
        plus the time it may then wait in line). A request that fits one batch (a search) is
        exempt: the query lane serves it ahead of the queue. So does any request into an empty
        queue (its token share still applies)."""
        bound = self.limits.max_queue_wait_s
        if bound > 0 and with_line:
            bound += self.limits.max_line_wait_s
        held = self._admitted_tokens + self._reserved_tokens
        if bound <= 0 or exempt or held == 0:
            return
        if self._throughput.seconds_for(held + tokens) > bound:
            rate = self._throughput.tokens_per_s
            raise self._queue_full(
                max(1, held + tokens - int(rate * bound)),
                what=f"{bound:g} s of queued work at ~{rate:.0f} tokens/s",
                reason="queue_wait",
            )

    def _release_pending(self, job: EmbeddingJob) -> None:
        self._client_tokens[job.client] -= job.pending_tokens  # its client is still counted
        self._admitted_tokens -= job.pending_tokens
        self._queued_tokens -= job.pending_tokens
        self._queued_inputs -= len(job.pending_lengths)
        job.pending_tokens = 0
        job.pending_lengths = []
        job.pending_indices = []

    def _queue_full(self, excess_tokens: int, *, what: str, reason: str) -> QueueFullError:
        wait = self._throughput.seconds_for(max(excess_tokens, self.limits.max_batch_tokens))
        retry_after = min(MAX_RETRY_AFTER_S, max(1, math.ceil(wait)))
        return QueueFullError(
            f"the server is at capacity ({what}); retry after {retry_after} s",
            retry_after_s=retry_after,
            reason=reason,
        )
