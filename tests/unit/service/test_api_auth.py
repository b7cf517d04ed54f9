"""API keys: Bearer and api-key headers, several keys, open health endpoints, open service."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from .conftest import make_settings, running_app
from .test_api_embeddings import assert_error

KEYS = ["key-one", "key-two"]


@pytest.fixture(scope="module")
def keyed_client(tiny_model_dir: Path) -> Iterator[TestClient]:
    settings = make_settings(tiny_model_dir, api_keys=KEYS, warmup=False)
    with running_app(settings) as client:
        yield client


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer key-one"},
        {"Authorization": "bearer key-two"},
        {"api-key": "key-one"},
        {"api-key": "key-two", "Authorization": "Bearer key-two"},  # what Roo Code sends
        {"api-key": "wrong", "Authorization": "Bearer key-one"},
    ],
)
def test_accepted_keys(keyed_client: TestClient, headers: dict[str, str]) -> None:
    response = keyed_client.post("/v1/embeddings", json={"input": ["x"]}, headers=headers)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_api_key"),
        ({"Authorization": "Bearer"}, "missing_api_key"),
        ({"Authorization": "Basic a2V5LW9uZTo="}, "missing_api_key"),
        ({"Authorization": "Bearer key-three"}, "invalid_api_key"),
        ({"Authorization": "Bearer key-one-and-more"}, "invalid_api_key"),
        ({"api-key": "KEY-ONE"}, "invalid_api_key"),
    ],
)
def test_refused_keys(keyed_client: TestClient, headers: dict[str, str], code: str) -> None:
    response = keyed_client.post("/v1/embeddings", json={"input": ["x"]}, headers=headers)
    assert_error(response, 401, code=code)
    assert response.headers["www-authenticate"] == "Bearer"


def test_refusals_are_logged_with_the_presented_keys_fingerprint(
    keyed_client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="jina_openai.access"):
        for headers in ({"Authorization": "Bearer key-three"}, {"api-key": "key-one"}, {}):
            keyed_client.post("/v1/embeddings", json={"input": ["x"]}, headers=headers)
    lines = [r.fields for r in caplog.records if r.name == "jina_openai.access"]  # type: ignore[attr-defined]
    refused, accepted, missing = lines
    assert (refused["status"], refused["error_code"]) == (401, "invalid_api_key")
    assert refused["key"] == hashlib.sha256(b"key-three").hexdigest()[:12]
    assert "key-three" not in json.dumps(refused)  # a fingerprint, never the key
    assert accepted["status"] == 200
    assert accepted["key"] == hashlib.sha256(b"key-one").hexdigest()[:12]
    assert (missing["status"], missing["error_code"]) == (401, "missing_api_key")
    assert "key" not in missing


def test_every_api_route_needs_the_key(keyed_client: TestClient) -> None:
    for path in ("/v1/models", "/models", "/info", "/docs", "/openapi.json", "/nowhere"):
        assert_error(keyed_client.get(path), 401)
    good = {"Authorization": "Bearer key-one"}
    assert keyed_client.get("/v1/models", headers=good).status_code == 200
    assert_error(keyed_client.get("/nowhere", headers=good), 404)


def test_health_endpoints_are_open_by_default(keyed_client: TestClient) -> None:
    for path in ("/health", "/ready", "/metrics"):
        assert keyed_client.get(path).status_code == 200, path


def test_health_endpoints_can_require_the_key(tiny_model_dir: Path) -> None:
    settings = make_settings(
        tiny_model_dir, api_keys=KEYS, open_health_endpoints=False, warmup=False
    )
    with running_app(settings) as client:
        for path in ("/health", "/ready", "/metrics"):
            assert_error(client.get(path), 401)
            assert client.get(path, headers={"api-key": "key-two"}).status_code == 200


def test_no_key_configured_runs_open_and_says_so(
    tiny_model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING"), running_app(make_settings(tiny_model_dir)) as client:
        assert (
            client.post(
                "/v1/embeddings", json={"input": "x"}, headers={"Authorization": "Bearer anything"}
            ).status_code
            == 200
        )
        assert client.post("/v1/embeddings", json={"input": "x"}).status_code == 200
        assert client.get("/info").json()["auth"] == "open"
    assert any("NO API KEY CONFIGURED" in record.getMessage() for record in caplog.records)


def test_the_fairness_identity_is_the_keys_fingerprint_else_the_connection() -> None:
    from jina_openai.api.middleware import client_identity

    def scope(headers: list[tuple[bytes, bytes]]) -> dict:
        return {"type": "http", "headers": headers, "client": ("10.0.0.7", 50123)}

    alice = client_identity(scope([(b"authorization", b"Bearer alice-key")]))
    assert alice == client_identity(scope([(b"api-key", b"alice-key")]))
    assert alice.startswith("key:")
    assert "alice-key" not in alice
    assert alice != client_identity(scope([(b"authorization", b"Bearer bob-key")]))
    assert client_identity(scope([])) == "connection:10.0.0.7:50123"
