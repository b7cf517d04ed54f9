"""Many clients at once, overload, disconnects, fairness for small requests, batch failures."""

from __future__ import annotations

import asyncio
import json
import random
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from jina_openai.engine.engine import EmbeddingEngine, EngineConfig
from jina_openai.engine.errors import EngineNotReadyError
from jina_openai.engine.input_preparation import InputPreparer
from jina_openai.models.base import Embedder
from jina_openai.models.registry import load_embedder
from starlette.testclient import TestClient

from .conftest import (
    MINILM_ID,
    InstrumentedEmbedder,
    asgi_post_scope,
    reference_vectors,
    stdlib_texts,
)
from .test_api_embeddings import assert_error, vectors_of


def test_many_concurrent_clients_each_get_their_own_vectors(
    minilm_client: TestClient, minilm_embedder: Embedder
) -> None:
    texts = stdlib_texts(40, chars=200)
    reference = reference_vectors(minilm_embedder, texts)

    def client_session(seed: int) -> int:
        rng = random.Random(seed)
        checked = 0
        for _ in range(2):
            picks = rng.sample(range(len(texts)), 5)
            response = minilm_client.post(
                "/v1/embeddings",
                json={
                    "input": [texts[i] for i in picks],
                    "model": MINILM_ID,
                    "encoding_format": rng.choice(["float", "base64"]),
                },
            )
            vectors = vectors_of(response)
            cosines = np.sum(vectors * reference[picks], axis=1)
            assert cosines.min() >= 0.9999, cosines
            checked += len(picks)
        return checked

    with ThreadPoolExecutor(max_workers=12) as pool:
        assert sum(pool.map(client_session, range(12))) == 12 * 2 * 5


def test_overload_is_refused_at_once_while_accepted_work_completes(
    instrumented_app: Any,
) -> None:
    with instrumented_app(delay_s=0.05, max_queued_tokens=200, max_batch_tokens=128) as (
        client,
        _,
    ):
        texts = stdlib_texts(40, chars=120)
        reference = reference_vectors(
            client.app.state.service.engine.embedder,  # type: ignore[attr-defined]
            texts,
        )

        def one(index: int) -> tuple[int, float, Any]:
            started = time.monotonic()
            picks = [index % 40, (index * 7) % 40, (index * 13) % 40]
            response = client.post("/v1/embeddings", json={"input": [texts[i] for i in picks]})
            return response.status_code, time.monotonic() - started, (picks, response)

        with ThreadPoolExecutor(max_workers=30) as pool:
            results = list(pool.map(one, range(30)))
    statuses = [status for status, _, _ in results]
    assert statuses.count(429) > 0, statuses
    assert statuses.count(200) > 0, statuses
    assert set(statuses) <= {200, 429}
    for status, seconds, (picks, response) in results:
        if status == 429:
            assert_error(response, 429, code="server_overloaded")
            assert int(response.headers["retry-after"]) >= 1
            assert seconds < 5.0  # refused at once, not after waiting in a queue
        else:
            cosines = np.sum(vectors_of(response) * reference[picks], axis=1)
            assert cosines.min() >= 0.9999


def _asgi_post(body: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    raw = json.dumps(body).encode()
    return asgi_post_scope(len(raw)), [{"type": "http.request", "body": raw, "more_body": False}]


def test_inputs_of_a_disconnected_client_are_dropped_before_inference(
    instrumented_app: Any,
) -> None:
    with instrumented_app(gated=True) as (client, embedder):
        app = client.app
        scheduler = app.state.service.engine.scheduler  # type: ignore[attr-defined]

        async def call(body: dict[str, Any], gone: asyncio.Event) -> list[dict[str, Any]]:
            scope, messages = _asgi_post(body)
            sent: list[dict[str, Any]] = []

            async def receive() -> dict[str, Any]:
                if messages:
                    return messages.pop(0)
                await gone.wait()
                return {"type": "http.disconnect"}

            async def send(message: dict[str, Any]) -> None:
                sent.append(message)

            await app(scope, receive, send)
            return sent

        async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
            stays, leaves = asyncio.Event(), asyncio.Event()
            first = asyncio.create_task(call({"input": ["blocks the model"]}, stays))
            while not embedder.batch_started.is_set():
                await asyncio.sleep(0.005)
            second = asyncio.create_task(call({"input": [f"text {i}" for i in range(5)]}, leaves))
            while scheduler.queued_inputs < 5:
                await asyncio.sleep(0.005)
            leaves.set()
            dropped = await asyncio.wait_for(second, 10)
            assert scheduler.queued_inputs == 0
            assert scheduler.queued_requests == 0
            embedder.gate.set()
            kept = await asyncio.wait_for(first, 10)
            stays.set()
            return kept, dropped

        assert client.portal is not None
        kept, dropped = client.portal.call(scenario)
        assert kept[0]["status"] == 200
        assert dropped[0]["status"] == 499
        assert embedder.embedded_inputs == 1  # the five inputs never reached the model
        metrics = client.get("/metrics").text
        assert "jina_openai_dropped_inputs_total 5.0" in metrics
        assert 'jina_openai_rejected_requests_total{reason="client_disconnected"} 1.0' in metrics


def test_a_query_arriving_behind_indexing_rides_in_the_next_batch(instrumented_app: Any) -> None:
    chunks = stdlib_texts(160, chars=1000)
    with instrumented_app(delay_s=0.03, max_batch_tokens=256) as (client, embedder):
        query_ids = client.app.state.service.engine.embedder.tokenize(  # type: ignore[attr-defined]
            ["where are sockets opened"]
        )[0]
        with ThreadPoolExecutor(max_workers=4) as pool:
            indexing = [
                pool.submit(
                    client.post, "/v1/embeddings", json={"input": chunks[i * 40 : (i + 1) * 40]}
                )
                for i in range(4)
            ]
            while len(embedder.batches) < 3:
                time.sleep(0.005)
            started_before = len(embedder.batches)
            started = time.monotonic()
            query = client.post("/v1/embeddings", json={"input": ["where are sockets opened"]})
            waited = time.monotonic() - started
            assert query.status_code == 200
            assert all(future.result().status_code == 200 for future in indexing)
    total_batches = len(embedder.batches)
    position = next(
        i
        for i, batch in enumerate(embedder.batches)
        if any(ids[1:-1] == query_ids for ids in batch)
    )
    assert position <= started_before + 1, (position, started_before, total_batches)
    assert total_batches > position + 10  # most indexing work was still queued
    assert waited < 3.0


def test_a_failing_batch_fails_its_requests_and_the_thread_carries_on(
    instrumented_app: Any,
) -> None:
    with instrumented_app() as (client, embedder):
        embedder.fail_next = RuntimeError("boom")
        assert_error(
            client.post("/v1/embeddings", json={"input": ["x"]}), 500, code="inference_failed"
        )
        embedder.nan_next = True
        assert_error(
            client.post("/v1/embeddings", json={"input": ["x"]}), 500, code="inference_failed"
        )
        assert client.post("/v1/embeddings", json={"input": ["x"]}).status_code == 200
        assert "jina_openai_failed_batches_total 1.0" in client.get("/metrics").text


def test_out_of_memory_splits_the_batch(instrumented_app: Any) -> None:
    with instrumented_app(gated=True) as (client, embedder):
        embedder.fail_next = MemoryError()
        embedder.gate.set()
        response = client.post("/v1/embeddings", json={"input": ["a", "b c", "d e f"]})
        assert vectors_of(response).shape == (3, 32)
        assert [len(batch) for batch in embedder.batches] == [3, 1, 2]


def test_stop_fails_queued_work_and_lets_the_running_batch_finish(tiny_model_dir: Path) -> None:
    holder: list[InstrumentedEmbedder] = []

    def load() -> Embedder:
        holder.append(InstrumentedEmbedder(load_embedder(tiny_model_dir), gated=True))
        return holder[0]

    config = EngineConfig(
        max_batch_tokens=1,
        max_batch_inputs=1,
        max_queued_tokens=1000,
        max_queued_requests=10,
        truncate_inputs=True,
        tokenizer_threads=1,
        torch_threads=1,
        warmup=False,
    )

    async def scenario() -> None:
        engine = EmbeddingEngine(config, load=load)
        engine.start()
        while engine.state != "ready":
            await asyncio.sleep(0.01)
        running = engine.submit(
            await engine.prepare(["a"], token_ids=False, single=True), request_id="a"
        )
        while not holder[0].batch_started.is_set():
            await asyncio.sleep(0.005)
        queued = engine.submit(
            await engine.prepare(["b"], token_ids=False, single=True), request_id="b"
        )
        stopping = asyncio.create_task(engine.stop(timeout=10))
        try:
            await asyncio.wait_for(queued.result(), 5)
            raise AssertionError("queued work should fail")
        except EngineNotReadyError:
            pass
        holder[0].gate.set()
        job = await asyncio.wait_for(running.result(), 5)
        assert job.outputs is not None
        assert job.outputs.shape == (1, 32)
        await stopping
        assert engine.state == "stopped"

    asyncio.run(scenario())


def test_input_preparer_counts_special_tokens(tiny_model_dir: Path) -> None:
    embedder = load_embedder(tiny_model_dir)
    preparer = InputPreparer(embedder, truncate=True)
    assert preparer.special_tokens == 2
    prepared = preparer.prepare_token_ids([[5] * 100, [6]], single=False)
    assert [len(ids) for ids in prepared.ids] == [64, 3]
    assert prepared.token_count == 67
    assert prepared.truncated_inputs == 1
    assert prepared.ids[0].dtype == np.int32


def test_a_crashed_inference_thread_fails_requests_instead_of_hanging(
    instrumented_app: Any, monkeypatch: Any
) -> None:
    from jina_openai.engine.job import EmbeddingJob

    def broken(self: EmbeddingJob, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("bug")

    with instrumented_app() as (client, _):
        monkeypatch.setattr(EmbeddingJob, "deliver", broken)
        assert_error(
            client.post("/v1/embeddings", json={"input": ["x"]}), 500, code="inference_failed"
        )
        assert_error(client.get("/ready"), 503, code="model_not_ready")
        assert_error(client.post("/v1/embeddings", json={"input": ["x"]}), 503)


def test_nothing_is_kept_per_request(instrumented_app: Any, monkeypatch: Any) -> None:
    import gc
    import weakref

    from jina_openai.engine import engine as engine_module

    jobs: list[weakref.ref[Any]] = []
    original = engine_module.EmbeddingJob

    class TrackedJob(original):  # type: ignore[misc, valid-type]
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            jobs.append(weakref.ref(self))

    monkeypatch.setattr(engine_module, "EmbeddingJob", TrackedJob)
    with instrumented_app(max_batch_tokens=128) as (client, _):
        with ThreadPoolExecutor(max_workers=8) as pool:
            responses = list(
                pool.map(
                    lambda i: client.post("/v1/embeddings", json={"input": [f"text {i}"] * 3}),
                    range(40),
                )
            )
        assert all(response.status_code == 200 for response in responses)
        scheduler = client.app.state.service.engine.scheduler  # type: ignore[attr-defined]
        assert scheduler.admitted_tokens == 0
        assert scheduler.queued_requests == 0
        del responses
        gc.collect()
        assert len(jobs) == 40
        assert [ref for ref in jobs if ref() is not None] == []


def test_a_full_queue_refuses_before_reading_the_body(instrumented_app: Any) -> None:
    """429 comes from the queue state alone: even a body that is not JSON is not looked at."""
    with instrumented_app(gated=True, max_queued_requests=1) as (client, embedder):
        scheduler = client.app.state.service.engine.scheduler  # type: ignore[attr-defined]

        def wait_for(condition: Any) -> None:
            deadline = time.monotonic() + 10
            while not condition() and time.monotonic() < deadline:
                time.sleep(0.01)
            assert condition()

        with ThreadPoolExecutor(max_workers=2) as pool:
            # The first request runs (held at the gate), the second waits: the queue is full.
            running = pool.submit(client.post, "/v1/embeddings", json={"input": ["def f(): 1"]})
            wait_for(lambda: scheduler.admitted_tokens > 0 and scheduler.queued_requests == 0)
            waiting = pool.submit(client.post, "/v1/embeddings", json={"input": ["def g(): 2"]})
            wait_for(lambda: scheduler.queued_requests == 1)
            refused = client.post(
                "/v1/embeddings",
                content=b"{not json",
                headers={"content-type": "application/json"},
            )
            assert_error(refused, 429, code="server_overloaded")
            assert int(refused.headers["retry-after"]) >= 1
            embedder.gate.set()
            assert running.result(timeout=30).status_code == 200
            assert waiting.result(timeout=30).status_code == 200
        # With room again, the same body is judged on its content.
        assert_error(
            client.post(
                "/v1/embeddings",
                content=b"{not json",
                headers={"content-type": "application/json"},
            ),
            400,
            code="invalid_json",
        )
