"""Every request, client and fault is bounded: admission before the body, slow and vanishing
clients, deadlines, a hung or broken model. Behaviour is asserted, never timings."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from jina_openai.engine.errors import EngineGaveUpError
from jina_openai.models.errors import ModelLoadError
from jina_openai.models.registry import load_embedder
from starlette.testclient import TestClient

from .conftest import asgi_post_scope, make_settings, running_app
from .test_api_embeddings import assert_error

Message = dict[str, Any]


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.005)
    assert condition()


def call_app(
    client: TestClient, scope: dict[str, Any], receive: Callable[[], Any]
) -> list[Message]:
    """Drive the app of `client` with a raw ASGI call on its event loop; the messages sent."""
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def run() -> list[Message]:
        await client.app(scope, receive, send)
        return sent

    assert client.portal is not None
    return client.portal.call(run)


def status_of(sent: list[Message]) -> int:
    return int(next(m["status"] for m in sent if m["type"] == "http.response.start"))


def body_of(sent: list[Message]) -> dict[str, Any]:
    return json.loads(
        b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    )


class ScriptedReceive:
    """An ASGI `receive` that counts its calls. It plays `chunks` as the body (the last one
    ends it unless `complete` is false), then: "disconnect" (at once, or once `gone` is set),
    or "stall" (never answers: a client that stays, or an upload that stopped)."""

    def __init__(
        self,
        chunks: list[bytes],
        *,
        complete: bool = True,
        after: str = "disconnect",
        gone: asyncio.Event | None = None,
    ) -> None:
        self.calls = 0
        self._chunks = list(chunks)
        self._complete = complete
        self._after = after
        self._gone = gone

    async def __call__(self) -> Message:
        self.calls += 1
        if self._chunks:
            chunk = self._chunks.pop(0)
            more = bool(self._chunks) or not self._complete
            return {"type": "http.request", "body": chunk, "more_body": more}
        if self._after == "stall":
            await asyncio.Event().wait()
        if self._gone is not None:
            await self._gone.wait()
        return {"type": "http.disconnect"}


def test_a_full_queue_answers_429_without_reading_a_byte_of_the_body(
    instrumented_app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="jina_openai.access")
    with instrumented_app(gated=True, max_queued_requests=1) as (client, embedder):
        scheduler = client.app.state.service.engine.scheduler  # type: ignore[attr-defined]

        with ThreadPoolExecutor(max_workers=2) as pool:
            running = pool.submit(client.post, "/v1/embeddings", json={"input": ["def f(): 1"]})
            wait_for(lambda: scheduler.admitted_tokens > 0 and scheduler.queued_requests == 0)
            waiting = pool.submit(client.post, "/v1/embeddings", json={"input": ["def g(): 2"]})
            wait_for(lambda: scheduler.queued_requests == 1)
            body = json.dumps({"input": ["x" * 100_000]}).encode()
            receive = ScriptedReceive([body])
            sent = call_app(client, asgi_post_scope(len(body)), receive)
            assert status_of(sent) == 429
            assert body_of(sent)["error"]["code"] == "server_overloaded"
            assert receive.calls == 0  # refused before the body was read
            refused = [r.fields for r in caplog.records if r.name == "jina_openai.access"]  # type: ignore[attr-defined]
            assert [(f["status"], f["reason"]) for f in refused] == [(429, "queued_requests")]
            embedder.gate.set()
            assert running.result(timeout=30).status_code == 200
            assert waiting.result(timeout=30).status_code == 200
        receive = ScriptedReceive([body], after="stall")  # a client that waits for its answer
        assert status_of(call_app(client, asgi_post_scope(len(body)), receive)) == 200
        assert receive.calls >= 1


def test_a_declared_body_above_the_limit_is_413_without_reading_it(
    shared_tiny_client: TestClient,
) -> None:
    receive = ScriptedReceive([b"{}"])
    sent = call_app(shared_tiny_client, asgi_post_scope(10 * 1024 * 1024), receive)
    assert status_of(sent) == 413
    assert body_of(sent)["error"]["code"] == "request_too_large"
    assert receive.calls == 0


def test_an_undeclared_body_over_the_limit_is_413_while_reading(
    shared_tiny_client: TestClient,
) -> None:
    chunks = [b'{"input": ["' + b"y" * 40_000] + [b"y" * 40_000] * 3 + [b'"]}']
    receive = ScriptedReceive(chunks)
    sent = call_app(shared_tiny_client, asgi_post_scope(None), receive)  # chunked upload
    assert status_of(sent) == 413
    assert receive.calls < len(chunks)  # stopped reading once over 64 KiB


def test_an_aborted_upload_is_499_not_a_server_error(tiny_client: TestClient) -> None:
    receive = ScriptedReceive([b'{"input": ["half'], complete=False, after="disconnect")
    sent = call_app(tiny_client, asgi_post_scope(1_000_000), receive)
    assert status_of(sent) == 499
    metrics = tiny_client.get("/metrics").text
    assert 'status="499"' in metrics
    assert 'status="500"' not in metrics
    assert 'jina_openai_rejected_requests_total{reason="client_disconnected"} 1.0' in metrics


def test_a_body_that_does_not_arrive_in_time_is_408(tiny_model_dir: Path) -> None:
    settings = make_settings(tiny_model_dir, warmup=False, body_timeout_s=0.2)
    with running_app(settings) as client:
        receive = ScriptedReceive([b'{"input": ["slow'], complete=False, after="stall")
        sent = call_app(client, asgi_post_scope(100), receive)
        assert status_of(sent) == 408
        assert body_of(sent)["error"]["code"] == "request_timeout"
        scheduler = client.app.state.service.engine.scheduler  # type: ignore[attr-defined]
        assert (scheduler.held_bytes, scheduler.queued_requests) == (0, 0)


def test_a_client_gone_while_waiting_for_the_tokenizer_is_never_tokenized(
    instrumented_app: Any,
) -> None:
    with instrumented_app(tokenizer_threads=1) as (client, embedder):
        embedder.tokenize_gate.clear()
        engine = client.app.state.service.engine  # type: ignore[attr-defined]
        first_body = json.dumps({"input": ["holds the tokenizer"]}).encode()
        second_body = json.dumps({"input": ["never tokenized"]}).encode()

        async def scenario() -> tuple[list[Message], list[Message]]:
            sent_first: list[Message] = []
            sent_second: list[Message] = []
            gone = asyncio.Event()

            async def send_to(sent: list[Message], message: Message) -> None:
                sent.append(message)

            first = asyncio.create_task(
                client.app(  # type: ignore[arg-type]
                    asgi_post_scope(len(first_body)),
                    ScriptedReceive([first_body], after="stall"),
                    lambda m: send_to(sent_first, m),
                )
            )
            while not embedder.tokenize_started.is_set():
                await asyncio.sleep(0.005)
            second = asyncio.create_task(
                client.app(  # type: ignore[arg-type]
                    asgi_post_scope(len(second_body)),
                    ScriptedReceive([second_body], gone=gone),
                    lambda m: send_to(sent_second, m),
                )
            )
            while engine.scheduler.reserved_tokens < 2:
                await asyncio.sleep(0.005)
            gone.set()  # the second client leaves while its text waits for the tokenizer
            await asyncio.wait_for(second, 10)
            embedder.tokenize_gate.set()
            await asyncio.wait_for(first, 10)
            return sent_first, sent_second

        assert client.portal is not None
        sent_first, sent_second = client.portal.call(scenario)
        assert status_of(sent_first) == 200
        assert status_of(sent_second) == 499
        assert embedder.tokenized == ["holds the tokenizer"]
        assert engine.scheduler.reserved_tokens == 0
        assert engine.scheduler.held_bytes == 0


def test_a_request_past_its_deadline_is_dropped_and_answered_503(instrumented_app: Any) -> None:
    with instrumented_app(gated=True, request_timeout_s=0.5) as (client, embedder):
        scheduler = client.app.state.service.engine.scheduler  # type: ignore[attr-defined]

        with ThreadPoolExecutor(max_workers=1) as pool:
            blocking = pool.submit(client.post, "/v1/embeddings", json={"input": ["blocks"]})
            wait_for(embedder.batch_started.is_set)
            late = client.post("/v1/embeddings", json={"input": ["a", "b", "c"]})
            assert_error(late, 503, code="request_timeout")
            assert int(late.headers["retry-after"]) >= 1
            assert scheduler.queued_inputs == 0  # its inputs left the queue
            embedder.gate.set()
            blocking.result(timeout=30)
        assert embedder.embedded_inputs == 1  # "a", "b", "c" never reached the model


def test_a_hung_batch_turns_the_service_unready_and_tells_the_owner(
    instrumented_app: Any,
) -> None:
    failures: list[tuple[BaseException, bool]] = []
    options = {"app_options": {"on_engine_failure": lambda e, load: failures.append((e, load))}}
    with instrumented_app(gated=True, batch_timeout_s=0.5, **options) as (client, _):
        response = client.post("/v1/embeddings", json={"input": ["never comes back"]})
        assert_error(response, 503, code="model_not_ready")  # retry: the worker is replaced
        assert int(response.headers["retry-after"]) >= 1
        assert_error(client.get("/ready"), 503, code="model_not_ready")
        assert_error(client.post("/v1/embeddings", json={"input": ["x"]}), 503)
    assert len(failures) == 1
    error, during_load = failures[0]
    assert isinstance(error, EngineGaveUpError)
    assert "hung" in str(error)
    assert during_load is False


def test_batch_after_batch_failing_gives_up(instrumented_app: Any) -> None:
    failures: list[tuple[BaseException, bool]] = []
    options = {"app_options": {"on_engine_failure": lambda e, load: failures.append((e, load))}}
    with instrumented_app(max_consecutive_failed_batches=3, **options) as (client, embedder):
        embedder.fail_next = RuntimeError("one bad batch")
        assert_error(client.post("/v1/embeddings", json={"input": ["x"]}), 500)
        assert client.post("/v1/embeddings", json={"input": ["x"]}).status_code == 200  # reset
        embedder.fail_always = RuntimeError("broken model")
        for _ in range(3):
            assert_error(client.post("/v1/embeddings", json={"input": ["x"]}), 500)
        assert_error(client.get("/ready"), 503, code="model_not_ready")
    assert len(failures) == 1
    assert isinstance(failures[0][0], EngineGaveUpError)
    assert "3 batches in a row" in str(failures[0][0])


def test_a_tokenizer_that_does_not_belong_to_the_weights_fails_the_load(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    model_dir = shutil.copytree(tiny_model_dir, tmp_path / "model")
    tokenizer = json.loads((model_dir / "tokenizer.json").read_text())
    rows = json.loads((model_dir / "config.json").read_text())["vocab_size"]
    tokenizer["added_tokens"].append(
        {
            "id": rows,
            "content": "<beyond>",
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
    )
    (model_dir / "tokenizer.json").write_text(json.dumps(tokenizer))
    with pytest.raises(ModelLoadError, match="does not belong to these weights"):
        load_embedder(model_dir)
