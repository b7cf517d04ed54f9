"""The query lane: a query that arrives while a batch runs is served between its layers."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from jina_openai.engine.engine import EmbeddingEngine, EngineConfig
from jina_openai.models.base import Embedder
from jina_openai.models.registry import load_embedder

from tests.unit.jina_bert.checkpoints import SPEC_ODD_HEADS, train_tokenizer, write_checkpoint

from .conftest import InstrumentedEmbedder

LAYER_S = 0.2


@pytest.fixture(scope="module")
def jina_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tokenizer = train_tokenizer(tmp_path_factory.mktemp("tokenizer") / "tokenizer.json")
    return write_checkpoint(tmp_path_factory.mktemp("jina"), SPEC_ODD_HEADS, tokenizer)


@pytest.mark.parametrize("model", ["tiny_model_dir", "jina_dir"])
def test_models_call_between_layers_after_every_layer_but_the_last(
    model: str, request: pytest.FixtureRequest
) -> None:
    model_dir: Path = request.getfixturevalue(model)
    embedder = load_embedder(model_dir, dtype="float32")
    ids = [embedder.prepare(row) for row in embedder.tokenize(["def f(): pass", "x = 1"])]
    nested: list[np.ndarray] = []
    vectors = embedder.embed(ids, lambda: nested.append(embedder.embed(ids[:1])))
    config = json.loads((model_dir / "config.json").read_text())
    assert len(nested) == config["num_hidden_layers"] - 1
    # A nested forward pass (a query) is exact, and leaves the running batch's result exact.
    np.testing.assert_allclose(vectors, embedder.embed(ids), atol=1e-6)
    np.testing.assert_allclose(nested[0], vectors[:1], atol=1e-5)


class SlowLayers(InstrumentedEmbedder):
    """Each layer of a batch of more than one input takes LAYER_S: a slow indexing batch."""

    def __init__(self, inner: Embedder) -> None:
        super().__init__(inner)
        self.finished: list[str] = []
        self.lock = threading.Lock()

    def embed(
        self, batch: list[list[int]], between_layers: Callable[[], None] | None = None
    ) -> np.ndarray:
        if len(batch) > 1:
            self.batch_started.set()
            for _ in range(4):
                time.sleep(LAYER_S)
                if between_layers is not None:
                    between_layers()
        vectors = self.inner.embed(batch)
        with self.lock:
            self.finished.append("index" if len(batch) > 1 else "query")
        return vectors


def test_a_query_sent_during_an_indexing_batch_is_answered_before_the_batch_ends(
    tiny_model_dir: Path,
) -> None:
    holder: list[SlowLayers] = []

    def load() -> Embedder:
        holder.append(SlowLayers(load_embedder(tiny_model_dir, dtype="float32")))
        return holder[0]

    config = EngineConfig(
        max_batch_tokens=4096,
        max_batch_inputs=256,
        max_queued_tokens=100_000,
        max_queued_requests=10,
        truncate_inputs=True,
        tokenizer_threads=1,
        torch_threads=1,
        warmup=False,
    )

    async def scenario() -> tuple[float, float]:
        engine = EmbeddingEngine(config, load=load)
        engine.start()
        while engine.state != "ready":
            await asyncio.sleep(0.01)
        texts = [f"def chunk_{i}(): return {i}" for i in range(20)]
        index = engine.submit(
            await engine.prepare(texts, token_ids=False, single=False), request_id="index"
        )
        while not holder[0].batch_started.is_set():
            await asyncio.sleep(0.005)
        sent = time.monotonic()
        query = engine.submit(
            await engine.prepare(["where is chunk 7"], token_ids=False, single=True),
            request_id="query",
        )
        job = await asyncio.wait_for(query.result(), 10)
        query_s = time.monotonic() - sent
        assert job.outputs is not None
        index_job = await asyncio.wait_for(index.result(), 10)
        index_s = time.monotonic() - sent
        assert index_job.outputs is not None
        await engine.stop(timeout=5)
        return query_s, index_s

    query_s, index_s = asyncio.run(scenario())
    # The query ran between two layers of the running batch, which then went on.
    assert holder[0].finished == ["query", "index"]
    assert query_s < index_s
