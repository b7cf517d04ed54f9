"""The waiting line (engine/waiting_line.py): a request refused on waiting time waits its turn
for room, up to half the bound, before it gets its 429; the client with the fewest tokens
queued goes next."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from jina_openai.engine.admission import SubmittedJob
from jina_openai.engine.engine import EmbeddingEngine, EngineConfig
from jina_openai.engine.errors import QueueFullError
from jina_openai.engine.input_preparation import PreparedInputs
from jina_openai.engine.waiting_line import REFRESH_S, WaitingLine
from jina_openai.models.base import Embedder
from jina_openai.models.registry import load_embedder

from .conftest import InstrumentedEmbedder

TEXT = "def f(a, b): return a + b"  # more tokens than one batch holds: not a search


def test_one_clients_tickets_are_served_in_arrival_order() -> None:
    line = WaitingLine(patience_s=1.0)
    first, second = line.join("key:a"), line.join("key:a")
    assert line.is_next(first, _none_queued)
    assert not line.is_next(second, _none_queued)
    line.leave(first)
    assert line.is_next(second, _none_queued)
    assert len(line) == 1
    line.leave(first)  # leaving twice is harmless
    line.leave(second)
    assert len(line) == 0


def test_the_client_with_the_fewest_tokens_queued_goes_next() -> None:
    """A window back from a pause (nothing queued) goes ahead of one that fills the queue,
    whoever joined first; the order follows the queue as its batches form."""
    queued = {"key:busy": 5000, "key:back": 0}
    now = [0.0]
    line = WaitingLine(patience_s=1.0, clock=lambda: now[0])
    busy = line.join("key:busy")
    back = line.join("key:back")
    assert line.is_next(back, queued.__getitem__)
    assert not line.is_next(busy, queued.__getitem__)
    queued["key:back"] = 9000  # it entered once and now holds more than the other
    assert line.is_next(back, queued.__getitem__)  # the choice holds for REFRESH_S
    now[0] += REFRESH_S
    assert line.is_next(busy, queued.__getitem__)
    line.leave(busy)
    assert line.is_next(back, queued.__getitem__)


def test_the_choice_is_made_once_per_refresh_not_once_per_ticket() -> None:
    looked_up: list[str] = []

    def queued(client: str) -> int:
        looked_up.append(client)
        return 0

    line = WaitingLine(patience_s=1.0, clock=lambda: 0.0)
    tickets = [line.join(f"connection:127.0.0.1:{port}") for port in range(100)]
    assert [line.is_next(t, queued) for t in tickets] == [True] + [False] * 99
    assert len(looked_up) == 100  # one look at each ticket for all hundred polls


def _none_queued(client: str) -> int:
    return 0


def _engine(
    tiny_model_dir: Path,
    holder: list[InstrumentedEmbedder],
    *,
    max_queue_wait_s: float = 2.0,  # the line's patience: 1 s
    delay_s: float = 0.0,
) -> EmbeddingEngine:
    """One input per batch; batches held at the embedder's gate, or each `delay_s` long."""

    def load() -> Embedder:
        inner = load_embedder(tiny_model_dir)
        holder.append(InstrumentedEmbedder(inner, gated=not delay_s, delay_s=delay_s))
        return holder[0]

    config = EngineConfig(
        max_batch_tokens=2,
        max_batch_inputs=1,
        max_queued_tokens=100_000,
        max_queued_requests=100,
        max_queue_wait_s=max_queue_wait_s,
        truncate_inputs=True,
        tokenizer_threads=1,
        torch_threads=1,
        warmup=False,
    )
    return EmbeddingEngine(config, load=load)


async def _started(engine: EmbeddingEngine) -> None:
    engine.start()
    while engine.state != "ready":
        await asyncio.sleep(0.01)
    # A rate at which two requests are 2.5 s of work: over the 2 s bound at submit (so the
    # second waits in line), within bound + patience (3 s) before tokenizing.
    tokens = (await engine.prepare([TEXT], token_ids=False, single=True)).token_count
    engine._throughput.observe(tokens=int(2 * tokens * 1000 / 2.5), seconds=1000.0)


async def _embed(engine: EmbeddingEngine, request_id: str) -> float:
    gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    started = time.monotonic()
    with engine.admit(body_bytes=100) as admission:
        await admission.embed(
            [TEXT], token_ids=False, single=True, request_id=request_id, client_gone=gone
        )
    return time.monotonic() - started


def _run(tiny_model_dir: Path, scenario: Callable[..., object]) -> None:
    holder: list[InstrumentedEmbedder] = []
    engine = _engine(tiny_model_dir, holder)

    async def main() -> None:
        await _started(engine)
        try:
            await scenario(engine, holder[0])  # type: ignore[misc]
        finally:
            holder[0].gate.set()
            await engine.stop(timeout=10)

    asyncio.run(main())


def test_a_request_over_the_bound_waits_in_line_and_enters_when_room_is_made(
    tiny_model_dir: Path,
) -> None:
    async def scenario(engine: EmbeddingEngine, embedder: InstrumentedEmbedder) -> None:
        running = asyncio.create_task(_embed(engine, "running"))
        while not embedder.batch_started.is_set():
            await asyncio.sleep(0.005)
        waiting = asyncio.create_task(_embed(engine, "waiting"))
        await asyncio.sleep(0.3)
        assert len(engine.waiting_line) == 1
        assert not waiting.done()
        embedder.gate.set()  # the running batch ends: room for the one in line
        await asyncio.wait_for(running, 5)
        assert await asyncio.wait_for(waiting, 5) >= 0.3
        assert len(engine.waiting_line) == 0

    _run(tiny_model_dir, scenario)


def test_a_request_still_in_line_after_its_patience_gets_429(tiny_model_dir: Path) -> None:
    async def scenario(engine: EmbeddingEngine, embedder: InstrumentedEmbedder) -> None:
        running = asyncio.create_task(_embed(engine, "running"))
        while not embedder.batch_started.is_set():
            await asyncio.sleep(0.005)
        started = time.monotonic()
        with pytest.raises(QueueFullError) as refused:
            await _embed(engine, "refused")
        assert refused.value.reason == "queue_wait"
        assert 0.9 <= time.monotonic() - started <= 3.0  # patience: half the 2 s bound
        assert len(engine.waiting_line) == 0
        embedder.gate.set()
        await asyncio.wait_for(running, 5)

    _run(tiny_model_dir, scenario)


def test_a_crowd_over_the_bound_is_served_in_turn_without_429(tiny_model_dir: Path) -> None:
    """Twice the bound's work at once: those that do not fit wait in line, and the ones that
    join behind others give back their estimates, which would otherwise block the head."""
    holder: list[InstrumentedEmbedder] = []
    # Four requests' work at the rate below; patience 2 s.
    engine = _engine(tiny_model_dir, holder, max_queue_wait_s=4.0, delay_s=0.3)

    async def main() -> list[float]:
        engine.start()
        while engine.state != "ready":
            await asyncio.sleep(0.01)
        tokens = (await engine.prepare([TEXT], token_ids=False, single=True)).token_count
        engine._throughput.observe(tokens=tokens * 1000, seconds=1000.0)  # 1 s per request
        try:
            return await asyncio.gather(*(_embed(engine, f"r{n}") for n in range(8)))
        finally:
            await engine.stop(timeout=10)

    seconds = asyncio.run(main())  # a 429 would raise QueueFullError here
    assert len(seconds) == 8
    assert len(engine.waiting_line) == 0


def test_a_client_with_nothing_queued_enters_before_one_that_fills_the_queue(
    tiny_model_dir: Path,
) -> None:
    """Client a has a four-input request in the queue and a second request in line; client b
    joins the line after it. Each batch that ends makes room for one request: b's enters first
    (a still has inputs queued), so it is also batched first (the oldest request goes first)."""
    holder: list[InstrumentedEmbedder] = []
    engine = _engine(tiny_model_dir, holder, max_queue_wait_s=6.0, delay_s=0.3)  # patience: 3 s
    entered: list[str] = []  # request ids in the order they entered the queue
    submit = engine.submit

    def recording_submit(prepared: PreparedInputs, **kwargs: Any) -> SubmittedJob:
        job = submit(prepared, **kwargs)
        entered.append(kwargs["request_id"])
        return job

    engine.submit = recording_submit  # type: ignore[method-assign]

    async def embed(name: str, inputs: int, client: str) -> None:
        gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with engine.admit(body_bytes=100) as admission:
            await admission.embed(
                [f"{TEXT}  # {name} {n}" for n in range(inputs)],
                token_ids=False,
                single=False,
                request_id=name,
                client_gone=gone,
                client=client,
            )

    async def main() -> None:
        engine.start()
        while engine.state != "ready":
            await asyncio.sleep(0.01)
        probe = await engine.prepare([f"{TEXT}  # a1 0"], token_ids=False, single=True)
        tokens = probe.token_count
        # 0.8 inputs/s as measured: four inputs (5 s) fit the 6 s bound, five (6.25 s) do not.
        engine._throughput.observe(tokens=int(tokens * 800), seconds=1000.0)
        try:
            first = asyncio.create_task(embed("a1", 4, "key:a"))
            while not holder[0].batch_started.is_set():
                await asyncio.sleep(0.005)
            second = asyncio.create_task(embed("a2", 1, "key:a"))
            while len(engine.waiting_line) < 1:
                await asyncio.sleep(0.005)
            other = asyncio.create_task(embed("b1", 1, "key:b"))
            while len(engine.waiting_line) < 2:
                await asyncio.sleep(0.005)
            await asyncio.wait_for(asyncio.gather(first, second, other), 10)
        finally:
            await engine.stop(timeout=10)

    asyncio.run(main())  # a 429 would raise QueueFullError here
    assert entered == ["a1", "b1", "a2"]
