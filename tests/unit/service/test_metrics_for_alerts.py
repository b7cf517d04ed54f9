"""The metrics the alert rules and the dashboard need (docs/observability.md): readiness as a
gauge, and the latency of answered embedding requests by shape (search: one input; index: more)."""

from __future__ import annotations

import re
import threading
from pathlib import Path

from .conftest import loading_app, make_settings, running_app, wait_ready


def sample(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert match, f"{name} not in /metrics"
    return float(match.group(1))


def test_ready_gauge_is_0_while_loading_and_1_when_warm(tiny_model_dir: Path) -> None:
    with loading_app(tiny_model_dir) as (client, release):
        assert client.get("/ready").status_code == 503
        assert sample(client.get("/metrics").text, "jina_openai_ready") == 0.0
        release.set()
        wait_ready(client)
        assert sample(client.get("/metrics").text, "jina_openai_ready") == 1.0


def test_ready_gauge_is_0_after_a_failed_load(tiny_model_dir: Path) -> None:
    settings = make_settings(tiny_model_dir / "missing")
    with running_app(settings, ready=False) as client:
        for _ in range(500):
            if "does not exist" in client.get("/ready").json()["error"]["message"]:
                break
            threading.Event().wait(0.01)
        else:
            raise AssertionError("the load did not fail")
        assert sample(client.get("/metrics").text, "jina_openai_ready") == 0.0


def test_embedding_latency_is_split_by_request_shape(tiny_model_dir: Path) -> None:
    name = "jina_openai_embedding_request_duration_seconds_count"
    with running_app(make_settings(tiny_model_dir)) as client:
        before = client.get("/metrics").text
        assert sample(before, f'{name}{{shape="search"}}') == 0.0
        assert sample(before, f'{name}{{shape="index"}}') == 0.0
        assert client.post("/v1/embeddings", json={"input": "one query"}).status_code == 200
        assert client.post("/v1/embeddings", json={"input": ["a b", "c d"]}).status_code == 200
        assert client.post("/v1/embeddings", json={"input": ["x y z"] * 3}).status_code == 200
        assert client.post("/v1/embeddings", json={"input": []}).status_code == 400
        after = client.get("/metrics").text
    assert sample(after, f'{name}{{shape="search"}}') == 1.0
    assert sample(after, f'{name}{{shape="index"}}') == 2.0
