"""The scheduling policy and the queue: token budgets, fairness, admission, cancellation."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from jina_openai.engine.batch_selection import select_batch
from jina_openai.engine.errors import QueueFullError, RequestTooLargeError
from jina_openai.engine.job import EmbeddingJob
from jina_openai.engine.scheduler import Batch, BatchScheduler, SchedulerLimits
from jina_openai.engine.throughput import ThroughputEstimator


def make_job(lengths: list[int], name: str = "r", client: str = "") -> EmbeddingJob:
    inputs = [np.full(length, 7, dtype=np.int32) for length in lengths]
    return EmbeddingJob(
        request_id=name,
        inputs=inputs,
        dimension=4,
        admitted_at=0.0,
        on_finished=lambda job: None,
        client=client,
    )


def scheduler(**limits: float) -> BatchScheduler:
    values = {
        "max_batch_tokens": 1024,
        "max_batch_inputs": 64,
        "max_queued_tokens": 100_000,
        "max_queued_requests": 100,
    }
    values.update(limits)
    return BatchScheduler(SchedulerLimits(**values), ThroughputEstimator(initial_tokens_per_s=1000))


def padded_cost(batch: Batch) -> int:
    return max(len(job.inputs[index]) for job, index in batch.items) * len(batch.items)


def drain(queue: BatchScheduler) -> list[Batch]:
    batches = []
    while queue.queued_inputs:
        batch = queue.next_batch(timeout=0)
        assert batch is not None
        queue.finish_batch(batch)
        batches.append(batch)
    return batches


def test_batches_respect_the_padded_token_budget_and_sort_by_length() -> None:
    queue = scheduler(max_batch_tokens=1000)
    rng = np.random.default_rng(0)
    jobs = [make_job(list(rng.integers(5, 250, size=60)), f"r{i}") for i in range(5)]
    for job in jobs:
        queue.submit(job)
    batches = drain(queue)
    assert sum(len(batch.items) for batch in batches) == 300
    assert all(padded_cost(batch) <= 1000 for batch in batches)
    # Length-homogeneous batches: little padding overall.
    real = sum(batch.tokens for batch in batches)
    padded = sum(batch.padded_tokens for batch in batches)
    assert real / padded > 0.85
    assert queue.admitted_tokens == 0


def test_an_input_longer_than_the_budget_still_runs_alone() -> None:
    queue = scheduler(max_batch_tokens=100)
    queue.submit(make_job([300, 20]))
    batches = drain(queue)
    assert sorted(len(b.items) for b in batches) == [1, 1]


def test_batch_input_count_is_capped() -> None:
    queue = scheduler(max_batch_inputs=8)
    queue.submit(make_job([3] * 20))
    assert [len(b.items) for b in drain(queue)] == [8, 8, 4]


def test_one_input_query_rides_in_the_next_batch_behind_hundreds_of_chunks() -> None:
    queue = scheduler(max_batch_tokens=2048)
    for i in range(6):
        queue.submit(make_job([200 + (i * 7 + k) % 50 for k in range(60)], f"index{i}"))
    first = queue.next_batch(timeout=0)
    assert first is not None
    query = make_job([12], "query")
    queue.submit(query)
    second = queue.next_batch(timeout=0)
    assert second is not None
    assert any(job is query for job, _ in second.items)


def test_queries_behind_index_requests_get_a_short_batch_of_their_own() -> None:
    queue = scheduler(max_batch_tokens=4096, max_batch_inputs=256, max_queued_tokens=200_000)
    index = [make_job([250] * 60, f"index{i}") for i in range(10)]
    for job in index:
        queue.submit(job)
    running = queue.next_batch(timeout=0)
    assert running is not None
    assert len(running.items) == 16  # a full batch of chunks
    queries = [make_job([40], "q1"), make_job([30, 35], "q2")]
    for job in queries:
        queue.submit(job)
    batch = queue.next_batch(timeout=0)
    assert batch is not None
    jobs = {job.request_id for job, _ in batch.items}
    # The queries, plus one chunk of the oldest request (which must not starve), nothing else.
    assert jobs == {"q1", "q2", "index0"}
    assert len(batch.items) == 4
    assert batch.padded_tokens == 4 * 250
    # Then indexing goes on in full batches.
    after = queue.next_batch(timeout=0)
    assert after is not None
    assert len(after.items) == 16


def test_the_query_lane_takes_only_small_requests_and_nothing_of_the_oldest() -> None:
    queue = scheduler(max_batch_tokens=4096, max_batch_inputs=256, max_queued_tokens=200_000)
    queue.submit(make_job([250] * 60, "index"))
    assert queue.next_query_batch() is None  # indexing only: the lane has nothing to run
    queue.submit(make_job([40], "q1"))
    queue.submit(make_job([30, 35], "q2"))
    lane = queue.next_query_batch()
    assert lane is not None
    assert sorted(job.request_id for job, _ in lane.items) == ["q1", "q2", "q2"]
    assert lane.padded_tokens == 3 * 40
    assert queue.next_query_batch() is None
    assert queue.queued_inputs == 60  # the index request is untouched
    queue.close()
    assert queue.next_query_batch() is None


def test_the_tail_of_a_big_request_counts_as_small() -> None:
    queue = scheduler(max_batch_tokens=1000, max_batch_inputs=256)
    queue.submit(make_job([100] * 30, "a"))
    queue.submit(make_job([100] * 12, "b"))
    first = queue.next_batch(timeout=0)
    assert first is not None
    assert sorted(job.request_id for job, _ in first.items) == ["a"] + ["b"] * 9
    # "b" has 3 inputs left: small, so it finishes in a short batch (plus one of "a").
    second = queue.next_batch(timeout=0)
    assert second is not None
    assert sorted(job.request_id for job, _ in second.items) == ["a", "b", "b", "b"]


def test_the_oldest_request_progresses_in_every_batch_despite_a_stream_of_queries() -> None:
    queue = scheduler(max_batch_tokens=256, max_batch_inputs=4)
    big = make_job([60] * 10, "big")
    queue.submit(big)
    for round_ in range(10):
        for q in range(4):
            queue.submit(make_job([5], f"q{round_}-{q}"))
        batch = queue.next_batch(timeout=0)
        assert batch is not None
        assert any(job is big for job, _ in batch.items)
        queue.finish_batch(batch)
    assert not big.pending_lengths


def test_equal_requests_complete_one_after_another() -> None:
    queue = scheduler(max_batch_tokens=300)
    for i in range(3):
        queue.submit(make_job([100] * 8, f"r{i}"))
    batches = [{job.request_id for job, _ in batch.items} for batch in drain(queue)]
    first = {
        name: min(i for i, names in enumerate(batches) if name in names)
        for name in ["r0", "r1", "r2"]
    }
    last = {
        name: max(i for i, names in enumerate(batches) if name in names)
        for name in ["r0", "r1", "r2"]
    }
    # FIFO completion, not round-robin: a request starts no earlier than its elder's last batch.
    assert first["r1"] >= last["r0"]
    assert first["r2"] >= last["r1"]


def test_selection_prefers_inputs_no_longer_than_the_batch_longest() -> None:
    old = make_job([100])
    old.seq = 0
    other = make_job([10, 20, 90, 95, 300])
    other.seq = 1
    chosen = select_batch([old, other], max_tokens=300, max_inputs=10)
    assert sorted(selection.length for selection in chosen) == [90, 95, 100]


def test_admission_refuses_with_retry_after_when_the_queue_is_full() -> None:
    queue = scheduler(max_queued_tokens=1000)
    queue.submit(make_job([400, 400]))
    with pytest.raises(QueueFullError) as refused:
        queue.submit(make_job([300]))
    assert refused.value.retry_after_s >= 1
    assert refused.value.reason == "queued_tokens"
    queue.submit(make_job([200]))  # still fits
    with pytest.raises(QueueFullError):
        queue.reserve()  # full: refused before the body is read


def test_a_request_larger_than_the_whole_queue_is_too_large_not_overload() -> None:
    queue = scheduler(max_queued_tokens=1000)
    with pytest.raises(RequestTooLargeError):
        queue.submit(make_job([600, 600]))


def test_request_count_is_bounded() -> None:
    queue = scheduler(max_queued_requests=2)
    queue.submit(make_job([5]))
    queue.submit(make_job([5]))
    with pytest.raises(QueueFullError) as refused:
        queue.submit(make_job([5]))
    assert refused.value.reason == "queued_requests"


def test_cancel_drops_pending_inputs_and_releases_their_tokens() -> None:
    queue = scheduler(max_batch_tokens=100)
    job = make_job([50] * 6)
    queue.submit(job)
    batch = queue.next_batch(timeout=0)
    assert batch is not None
    assert len(batch.items) == 2
    assert queue.cancel(job) == 4
    assert queue.queued_inputs == 0
    assert queue.admitted_tokens == 100  # the running batch still counts until it finishes
    queue.finish_batch(batch)
    assert queue.admitted_tokens == 0
    assert queue.next_batch(timeout=0) is None


def test_close_wakes_the_inference_thread_and_returns_pending_jobs() -> None:
    queue = scheduler()
    results: list[object] = []
    waiter = threading.Thread(target=lambda: results.append(queue.next_batch()))
    waiter.start()
    pending = make_job([5])
    queue.close()
    waiter.join(5)
    assert results == [None]
    assert not waiter.is_alive()
    with pytest.raises(QueueFullError) as refused:
        queue.submit(pending)
    assert refused.value.reason == "shutting_down"


def test_retry_after_follows_measured_throughput() -> None:
    throughput = ThroughputEstimator()
    throughput.observe(tokens=1000, seconds=1.0)
    queue = BatchScheduler(SchedulerLimits(100, 8, 10_000, 10), throughput)
    queue.submit(make_job([5000, 5000]))
    with pytest.raises(QueueFullError) as refused:
        queue.submit(make_job([4000]))
    assert refused.value.retry_after_s == 4


def test_retry_after_stays_below_60_s_which_nodes_openai_sdk_ignores() -> None:
    """Node's openai SDK (Roo Code's) honours Retry-After only below 60 s; a 60 would send every
    refused client back after its 0.5-8 s default backoff."""
    throughput = ThroughputEstimator()
    throughput.observe(tokens=10, seconds=1.0)  # slow: the excess takes minutes to drain
    queue = BatchScheduler(SchedulerLimits(100, 8, 10_000, 10), throughput)
    queue.submit(make_job([5000, 5000]))
    with pytest.raises(QueueFullError) as refused:
        queue.submit(make_job([4000]))
    assert refused.value.retry_after_s == 59


def test_reservations_refuse_a_crowd_before_it_is_tokenized() -> None:
    queue = scheduler(max_queued_tokens=1000)
    first = queue.reserve()
    queue.grow(first, estimated_tokens=400)
    second = queue.reserve()
    queue.grow(second, estimated_tokens=400)
    third = queue.reserve()
    with pytest.raises(QueueFullError) as refused:
        queue.grow(third, estimated_tokens=400)
    assert refused.value.retry_after_s >= 1
    queue.release(third)
    queue.release(first)
    again = queue.reserve()
    queue.grow(again, estimated_tokens=400)
    assert queue.reserved_tokens == 800
    last = queue.reserve()
    queue.grow(last, estimated_tokens=200)
    with pytest.raises(QueueFullError):
        queue.reserve()  # full now: refused before the body is read


def test_submit_turns_a_reservation_into_the_measured_admission() -> None:
    queue = scheduler(max_queued_tokens=1000)
    reservation = queue.reserve()
    queue.grow(reservation, estimated_tokens=600)
    queue.submit(make_job([250, 250]), reservation=reservation)  # the estimate was high
    assert (queue.reserved_tokens, queue.admitted_tokens) == (0, 500)
    queue.release(reservation)
    assert queue.reserved_tokens == 0


def test_one_request_holds_at_most_its_share_of_the_queue() -> None:
    queue = scheduler(max_queued_tokens=1000, max_request_tokens=250)
    big = queue.reserve()
    queue.grow(big, estimated_tokens=5000)  # capped at its share: the real size decides
    assert queue.reserved_tokens == 250
    others = [queue.reserve() for _ in range(3)]
    for other in others:
        queue.grow(other, estimated_tokens=250)  # the rest of the queue stays for others
    with pytest.raises(RequestTooLargeError) as too_large:
        queue.submit(make_job([200, 200]), reservation=big)
    assert too_large.value.code == "too_many_tokens"
    assert queue.reserved_tokens == 750  # given back whatever the outcome
    queue.release(big)


def test_a_request_whose_lower_bound_exceeds_its_share_is_413_before_tokenizing() -> None:
    queue = scheduler(max_queued_tokens=1000, max_request_tokens=250)
    reservation = queue.reserve()
    with pytest.raises(RequestTooLargeError):
        queue.grow(reservation, estimated_tokens=100, min_tokens=300)
    queue.release(reservation)
    assert (queue.reserved_tokens, queue.queued_requests) == (0, 0)


def test_request_memory_is_bounded_per_request_and_in_total() -> None:
    queue = scheduler(max_held_bytes=1000, max_request_bytes=500)
    with pytest.raises(RequestTooLargeError) as too_large:
        queue.reserve(600)  # a declared body that one request may never hold: 413 at once
    assert too_large.value.code == "request_too_large"
    first = queue.reserve(400)
    with pytest.raises(RequestTooLargeError):
        queue.grow(first, estimated_tokens=10, extra_bytes=200)  # texts and results: 600
    second = queue.reserve(400)
    with pytest.raises(QueueFullError) as refused:
        queue.reserve(400)  # 1200 of 1000 bytes: wait for others to finish
    assert refused.value.reason == "request_memory"
    assert queue.held_bytes == 800
    queue.release(first)
    queue.release(first)  # idempotent
    queue.grow(second, estimated_tokens=10, extra_bytes=100)
    assert (queue.held_bytes, second.peak_bytes) == (500, 500)
    queue.release(second)
    assert queue.held_bytes == 0


def test_reservations_count_as_waiting_requests() -> None:
    queue = scheduler(max_queued_requests=2)
    queue.submit(make_job([5]))
    queue.reserve()
    with pytest.raises(QueueFullError):
        queue.reserve()
    with pytest.raises(QueueFullError):
        queue.submit(make_job([5]))


# --- admission by waiting time --------------------------------------------------------------


def test_a_request_is_queued_while_the_work_ahead_fits_the_waiting_time_bound() -> None:
    # 1000 tokens/s measured, 10 s bound: 10,000 tokens of work may be queued at once.
    queue = scheduler(max_batch_tokens=1024, max_queued_tokens=100_000, max_queue_wait_s=10)
    queue.submit(make_job([100] * 80, "first"))  # an empty queue admits any request: 8 s
    queue.submit(make_job([100] * 15, "fits"))  # 9.5 s of work
    with pytest.raises(QueueFullError, match=r"10 s of queued work at ~1000 tokens/s") as refused:
        queue.submit(make_job([100] * 20, "over"))  # 11.5 s
    assert refused.value.retry_after_s == 2  # drains the excess (1500 tokens, a batch at least)
    assert refused.value.reason == "queue_wait"
    queue.submit(make_job([500, 500], "search"))  # fits one batch: the query lane serves it
    assert queue.queued_requests == 3


def test_the_waiting_time_bound_refuses_a_large_body_before_it_is_read() -> None:
    queue = scheduler(max_batch_tokens=1024, max_queued_tokens=100_000, max_queue_wait_s=5)
    queue.submit(make_job([100] * 60, "ahead"))  # 6 s of work
    with pytest.raises(QueueFullError):
        queue.reserve(200_000)  # a 60-chunk body: judged before a byte is read
    queue.release(queue.reserve(2_000))  # a search's body: judged once parsed
    unbounded = scheduler(max_batch_tokens=1024, max_queued_tokens=100_000)
    unbounded.submit(make_job([100] * 60, "ahead"))
    unbounded.submit(make_job([100] * 60, "more"))  # no waiting-time bound: tokens only


def test_with_a_cache_the_waiting_time_bound_judges_only_the_misses_at_submit() -> None:
    # A re-sent 60-chunk request whose chunks are all cached needs no queue time: the bound may
    # not refuse its body or its estimate, only the misses it submits.
    queue = BatchScheduler(
        SchedulerLimits(
            max_batch_tokens=1024,
            max_batch_inputs=64,
            max_queued_tokens=100_000,
            max_queued_requests=100,
            max_queue_wait_s=5,
        ),
        ThroughputEstimator(initial_tokens_per_s=1000),
        wait_bound_at_submit_only=True,
    )
    queue.submit(make_job([100] * 60, "ahead"))  # 6 s of work
    reservation = queue.reserve(200_000)  # a 60-chunk body is read
    queue.grow(reservation, estimated_tokens=6_000)  # and tokenized, then looked up
    with pytest.raises(QueueFullError) as refused:
        queue.submit(make_job([100] * 20, "misses"), reservation=reservation)
    assert refused.value.reason == "queue_wait"
    queue.release(reservation)
    assert queue.reserved_tokens == 0


# --- fairness between clients ---------------------------------------------------------------


def test_clients_share_the_model_evenly_whatever_their_requests_in_flight() -> None:
    queue = scheduler(max_batch_tokens=400, max_batch_inputs=64, max_queued_tokens=100_000)
    for i in range(10):  # one workspace with 10 requests in flight ...
        queue.submit(make_job([100] * 6, f"a{i}", client="key:a"))
    queue.submit(make_job([100] * 6, "b0", client="key:b"))  # ... and one with a single one
    served = {"key:a": 0, "key:b": 0}
    while queue.queued_inputs:
        batch = queue.next_batch(timeout=0)
        assert batch is not None
        for job, _ in batch.items:
            served[job.client] += 1
        queue.finish_batch(batch)
        if served["key:b"] == 6:
            break
    # b's request finished while a had been served about as much, not after all of a's 60.
    assert served["key:b"] == 6
    assert served["key:a"] <= 6 + 3  # plus rule 1's one input of the oldest request per batch


def test_a_client_that_comes_back_starts_level_with_the_least_served() -> None:
    queue = scheduler(max_batch_tokens=400, max_batch_inputs=64, max_queued_tokens=100_000)
    queue.submit(make_job([100] * 20, "a", client="a"))
    for _ in range(3):  # a alone: 1200 tokens served
        batch = queue.next_batch(timeout=0)
        assert batch is not None
        queue.finish_batch(batch)
    queue.submit(make_job([100] * 20, "b", client="b"))  # b starts level with a, not 1200 behind
    taken: list[str] = []
    for _ in range(4):
        batch = queue.next_batch(timeout=0)
        assert batch is not None
        taken += [job.client for job, _ in batch.items]
        queue.finish_batch(batch)
    # Starting from 0, b would take all but rule 1's input of every batch (a: 4 of 16).
    assert taken.count("a") == taken.count("b") == 8


def test_each_clients_queued_tokens_follow_submit_batches_and_cancel() -> None:
    """What the waiting line orders by (engine/waiting_line.py): tokens queued, not batched."""
    queue = scheduler(max_batch_tokens=200, max_batch_inputs=64, max_queued_tokens=100_000)
    first = make_job([100] * 4, "a0", client="key:a")
    queue.submit(first)
    queue.submit(make_job([100] * 2, "b0", client="key:b"))
    assert (queue.client_tokens("key:a"), queue.client_tokens("key:b")) == (400, 200)
    batch = queue.next_batch(timeout=0)
    assert batch is not None
    taken = {"key:a": 0, "key:b": 0}
    for job, index in batch.items:
        taken[job.client] += job.inputs[index].shape[0]
    assert queue.client_tokens("key:a") == 400 - taken["key:a"]
    assert queue.client_tokens("key:b") == 200 - taken["key:b"]
    queue.finish_batch(batch)
    queue.cancel(first)
    assert queue.client_tokens("key:a") == 0
    assert queue.client_tokens("nobody") == 0
    drain(queue)
    assert queue.client_tokens("key:b") == 0
