"""Roo's indexing client layers (bench/roo_client.py) under a fake clock and a fake transport:
the waits, retries and verdicts Roo Code's own code would produce, no server involved."""

from __future__ import annotations

import asyncio
import base64
import random
import struct
from collections.abc import Awaitable, Callable

import httpx2
import pytest

from bench import roo_client
from bench.roo_client import (
    ClientStats,
    GlobalRateLimit,
    RealClock,
    RooEmbedder,
    WorkspaceResult,
    index_workspace,
    make_openai_client,
    node_retry_delay_s,
    node_should_retry,
    process_batch,
    would_drop,
)

Handler = Callable[[httpx2.Request], httpx2.Response | Awaitable[httpx2.Response]]


class FakeClock:
    """Time advances only by sleeping; every sleep is recorded."""

    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds
        await asyncio.sleep(0)


def ok(request: httpx2.Request) -> httpx2.Response:
    import json

    inputs = json.loads(request.content)["input"]
    vector = base64.b64encode(struct.pack("<4f", 0.5, 0.5, 0.5, 0.5)).decode()
    return httpx2.Response(
        200,
        json={
            "object": "list",
            "model": "bench",
            "data": [
                {"object": "embedding", "index": i, "embedding": vector} for i in range(len(inputs))
            ],
            "usage": {"prompt_tokens": len(inputs), "total_tokens": len(inputs)},
        },
    )


def embedder(handler: Handler, clock: object, stats: ClientStats) -> RooEmbedder:
    client = make_openai_client(
        "http://127.0.0.1:1/v1",
        "key",
        clock=clock,  # type: ignore[arg-type]
        stats=stats,
        transport=httpx2.MockTransport(handler),
        rng=random.Random(0),
    )
    return RooEmbedder(
        client,
        "bench",
        rate_limit=GlobalRateLimit(),
        clock=clock,  # type: ignore[arg-type]
        stats=stats,
    )


def run_one_batch(handler: Handler, texts: list[str]) -> tuple[WorkspaceResult, ClientStats]:
    clock = FakeClock()
    stats = ClientStats()
    result = WorkspaceResult("ws", len(texts))

    async def go() -> None:
        await process_batch(
            texts,
            embedder(handler, clock, stats),
            roo_client.no_upsert,
            clock=clock,
            stats=stats,
            result=result,
        )

    asyncio.run(go())
    return result, stats


def test_a_429_storm_makes_exactly_the_waits_roo_makes() -> None:
    def always_429(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(429, headers={"retry-after": "1"}, json={"error": {}})

    result, stats = run_one_batch(always_429, ["def f(): pass"] * 60)
    sdk = [("sdk", 1.0), ("sdk", 1.0)]  # Retry-After honoured, twice per SDK call
    # 1st scanner attempt: the global limit starts at 5 s; each later attempt of the embedder
    # finds it expired, which resets the count, so every pause is 5 s again.
    first = [*sdk, ("embedder", 5.0), *sdk, ("embedder", 5.0), *sdk]
    # 2nd and 3rd: the pause set by the last 429 is still running (global wait), and the next
    # 429 comes within 60 s of it without a reset in between: 10 s.
    second = [("global", 4.5), *sdk, ("embedder", 10.0), *sdk, ("embedder", 5.0), *sdk]
    third = [("global", 4.0), *sdk, ("embedder", 10.0), *sdk, ("embedder", 5.0), *sdk]
    expected = [*first, ("scanner", 0.5), *second, ("scanner", 1.0), *third]
    assert [(layer, pytest.approx(s)) for layer, s in stats.waits] == expected
    assert stats.http_requests == 27  # 3 scanner x 3 embedder x 3 SDK attempts
    assert stats.http_statuses == {"429": 27}
    assert (stats.sdk_retries, stats.embedder_429_retries, stats.scanner_retries) == (18, 6, 2)
    assert stats.embedder_errors == 3
    assert result.failed_batches == 1
    assert result.blocks_indexed == 0
    assert "HTTP 429" in result.errors[0]


def test_429s_the_sdk_absorbs_never_reach_roo() -> None:
    answers = iter([429, 429, 200])

    def twice_429(request: httpx2.Request) -> httpx2.Response:
        status = next(answers)
        return ok(request) if status == 200 else httpx2.Response(429, json={"error": {}})

    result, stats = run_one_batch(twice_429, ["x = 1"] * 3)
    assert result.failed_batches == 0
    assert result.blocks_indexed == 3
    assert stats.sdk_retries == 2
    assert stats.embedder_429_retries == 0
    # no Retry-After: the SDK's backoff, 0.5 s then 1 s, each less up to 25 % jitter
    first, second = (seconds for _, seconds in stats.waits)
    assert 0.375 <= first <= 0.5
    assert 0.75 <= second <= 1.0


def test_a_client_timeout_is_an_abandon_retried_by_the_sdk_then_thrown_at_once() -> None:
    def hang(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ReadTimeout("no headers within the patience", request=request)

    result, stats = run_one_batch(hang, ["y = 2"] * 10)
    assert stats.abandoned == 9  # 3 scanner attempts x (1 + 2 SDK retries)
    assert stats.embedder_429_retries == 0  # not a 429: Roo's embedder throws at once
    assert [layer for layer, _ in stats.waits] == [
        "sdk",
        "sdk",
        "scanner",
        "sdk",
        "sdk",
        "scanner",
        "sdk",
        "sdk",
    ]
    assert result.failed_batches == 1
    assert "timed out" in result.errors[0].lower()


def test_a_client_error_is_neither_retried_by_the_sdk_nor_by_the_embedder() -> None:
    def bad_request(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(400, json={"error": {"message": "bad"}})

    result, stats = run_one_batch(bad_request, ["z = 3"])
    assert stats.http_requests == 3  # one per scanner attempt
    assert stats.sdk_retries == 0
    assert stats.embedder_429_retries == 0
    assert [s for _, s in stats.waits] == [0.5, 1.0]
    assert result.failed_batches == 1


def test_vectors_qdrant_would_refuse_fail_the_batch() -> None:
    def one_vector_short(request: httpx2.Request) -> httpx2.Response:
        response = ok(request)
        body = response.json()
        body["data"] = body["data"][:-1]
        return httpx2.Response(200, json=body)

    result, stats = run_one_batch(one_vector_short, ["a = 1", "b = 2"])
    assert result.failed_batches == 1
    assert stats.scanner_retries == 2


def test_the_global_pause_doubles_within_a_minute_up_to_five_minutes() -> None:
    limit = GlobalRateLimit()
    pauses = []
    for second in range(10):
        limit.record_429(float(second))
        pauses.append(limit.delay(float(second)))
    assert pauses == [5, 10, 20, 40, 80, 160, 300, 300, 300, 300]
    limit.record_429(9.0 + 60.0)  # a minute after the last one: a fresh count
    assert limit.delay(69.0) == 5
    assert limit.pause_before_attempt(70.0) == pytest.approx(4.0)
    assert limit.pause_before_attempt(74.0) == 0
    assert limit.consecutive_errors == 0


def test_node_sdk_retry_rules() -> None:
    rng = random.Random(0)

    def delay(headers: dict[str, str], retries_taken: int = 0) -> float:
        return node_retry_delay_s(
            httpx2.Headers(headers), retries_taken, rng=rng, now_epoch_s=1_000_000.0
        )

    assert delay({"retry-after": "59"}) == 59
    assert delay({"retry-after": "0"}) == 0
    assert delay({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert delay({"retry-after": "Mon, 12 Jan 1970 13:46:50 GMT"}) == pytest.approx(10.0)
    assert 0.375 <= delay({"retry-after": "60"}) <= 0.5  # >= 60 s: the default backoff
    assert 6.0 <= delay({}, retries_taken=5) <= 8.0  # capped at 8 s
    assert node_should_retry(httpx2.Response(429, headers={"retry-after": "600"}))
    assert node_should_retry(httpx2.Response(503))
    assert node_should_retry(httpx2.Response(408))
    assert not node_should_retry(httpx2.Response(400))
    assert not node_should_retry(httpx2.Response(500, headers={"x-should-retry": "false"}))


def test_the_client_gives_up_after_roos_patience() -> None:
    client = make_openai_client(
        "http://127.0.0.1:1/v1", "k", clock=RealClock(), stats=ClientStats()
    )
    assert client.max_retries == 2
    assert client.timeout.read == roo_client.PATIENCE_S == 300.0  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("found", "indexed", "errors", "dropped"),
    [
        (1000, 1000, 0, False),
        (1000, 900, 1, False),  # exactly 10 % missing: kept
        (1000, 899, 1, True),  # more than 10 %: the whole index is dropped
        (1000, 880, 0, False),  # missing without a failed batch (skipped items): kept
        (1000, 0, 0, True),  # nothing indexed
        (0, 0, 0, False),
    ],
)
def test_the_ten_percent_rule(found: int, indexed: int, errors: int, dropped: bool) -> None:
    assert would_drop(found, indexed, errors) is dropped


def test_a_workspace_has_ten_batches_in_flight_and_loses_only_failed_ones() -> None:
    in_flight = 0
    peak = 0

    async def slow(request: httpx2.Request) -> httpx2.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        if b"poison" in request.content:
            return httpx2.Response(400, json={"error": {}})
        return ok(request)

    texts = [f"line {n}" for n in range(25 * 60)]
    texts[5 * 60] = "poison"  # one batch of 25 fails: 4 % missing, the index is kept
    stats = ClientStats()
    clock = FakeClock()

    async def go() -> WorkspaceResult:
        return await index_workspace(
            "ws", texts, embedder(slow, clock, stats), clock=clock, stats=stats
        )

    result = asyncio.run(go())
    assert peak == roo_client.BATCH_PROCESSING_CONCURRENCY == 10
    assert (result.batches, result.failed_batches, result.blocks_indexed) == (25, 1, 24 * 60)
    assert not result.would_drop
    assert stats.http_requests == 24 + 3


def test_a_workspace_with_more_than_ten_percent_failed_is_dropped() -> None:
    def every_fifth_batch_fails(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(400, json={}) if b"bad" in request.content else ok(request)

    texts = [("bad" if (n // 60) % 5 == 0 else "ok") + str(n) for n in range(10 * 60)]
    stats = ClientStats()
    clock = FakeClock()

    async def go() -> WorkspaceResult:
        return await index_workspace(
            "ws", texts, embedder(every_fifth_batch_fails, clock, stats), clock=clock, stats=stats
        )

    result = asyncio.run(go())
    assert (result.failed_batches, result.blocks_indexed) == (2, 8 * 60)
    assert result.would_drop


def test_requests_stay_under_roos_token_bound() -> None:
    sizes: list[int] = []

    def record(request: httpx2.Request) -> httpx2.Response:
        import json

        sizes.append(len(json.loads(request.content)["input"]))
        return ok(request)

    stats = ClientStats()
    clock = FakeClock()
    big = "x" * 4000  # 1000 estimated tokens: 100 fit under MAX_BATCH_TOKENS
    huge = "y" * (4 * roo_client.MAX_ITEM_TOKENS + 4)  # over the item limit: skipped

    async def go() -> list[list[float]]:
        return await embedder(record, clock, stats).create_embeddings([big] * 150 + [huge])

    vectors = asyncio.run(go())
    assert sizes == [100, 50]
    assert len(vectors) == 150
