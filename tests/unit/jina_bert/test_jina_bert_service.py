"""The service answers /v1/embeddings with a tiny JinaBERT v2 checkpoint (ASGI, lifespan run)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from starlette.testclient import TestClient

from .checkpoints import SPEC_POW2_HEADS, MakeCheckpoint
from .helpers import load

DEFAULT_ID = "jinaai/jina-embeddings-v2-base-code"
TEXTS = ["def add(a, b):\n    return a + b\n", "SELECT 1;", "x" * 50]


@pytest.fixture
def jina_client(make_checkpoint: MakeCheckpoint) -> Iterator[tuple[TestClient, Path]]:
    from jina_openai.app import create_app
    from jina_openai.settings import Settings

    model_dir = make_checkpoint(SPEC_POW2_HEADS, prefix="bert.")
    settings = Settings(model_dir=model_dir, torch_threads=1, tokenizer_threads=1)
    with TestClient(create_app(settings), raise_server_exceptions=True) as client:
        deadline = time.monotonic() + 60
        while client.get("/ready").status_code != 200:
            assert time.monotonic() < deadline, client.get("/ready").text
            time.sleep(0.02)
        yield client, model_dir


def test_embeddings_endpoint_serves_the_native_model(jina_client) -> None:
    client, model_dir = jina_client
    response = client.post("/v1/embeddings", json={"model": DEFAULT_ID, "input": TEXTS})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == DEFAULT_ID
    vectors = np.array([item["embedding"] for item in body["data"]], dtype=np.float32)
    assert vectors.shape == (len(TEXTS), SPEC_POW2_HEADS.hidden)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-4)

    direct = load(model_dir)
    prepared = [direct.prepare(ids) for ids in direct.tokenize(TEXTS)]
    expected = direct.embed(prepared)
    assert (vectors * expected).sum(axis=1).min() >= 0.9999
    assert body["usage"]["prompt_tokens"] == sum(len(p) for p in prepared)


def test_models_and_info_report_the_model(jina_client) -> None:
    client, _ = jina_client
    models = client.get("/v1/models")
    assert models.status_code == 200
    cards = {card["id"]: card for card in models.json()["data"]}
    assert cards[DEFAULT_ID]["dimension"] == SPEC_POW2_HEADS.hidden
    assert cards[DEFAULT_ID]["max_input_tokens"] == 8192

    info = client.get("/info").json()["model"]
    assert info["id"] == DEFAULT_ID
    assert info["architecture"] == "jina-bert-v2"
    assert info["dimension"] == SPEC_POW2_HEADS.hidden
    assert info["max_input_tokens"] == 8192
