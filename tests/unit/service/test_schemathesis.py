"""Property-based API testing from the app's own OpenAPI schema (schemathesis): whatever is
sent, valid or not, the service never answers 5xx, documents its statuses, and every error is
in the OpenAI envelope."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.testclient import TestClient

from .conftest import TEST_API_KEY, make_settings, running_app

MAX_EXAMPLES = 25
POSITIVE, NEGATIVE = GenerationMode.POSITIVE, GenerationMode.NEGATIVE
CASES = [
    ("/v1/embeddings", "POST", POSITIVE),
    ("/v1/embeddings", "POST", NEGATIVE),
    # A free-form path string or no parameters at all: only positive cases exist.
    ("/v1/models/{model}", "GET", POSITIVE),
    ("/v1/models", "GET", POSITIVE),
    ("/health", "GET", POSITIVE),
    ("/ready", "GET", POSITIVE),
    ("/info", "GET", POSITIVE),
    ("/metrics", "GET", POSITIVE),
]


@pytest.fixture(scope="module")
def keyed_app(tiny_model_dir: Path) -> Iterator[TestClient]:
    settings = make_settings(
        tiny_model_dir,
        model_id="tiny-bert",
        api_keys=[TEST_API_KEY],
        max_batch_tokens=512,
        warmup=False,
    )
    with running_app(settings) as client:
        yield client


def _send(client: TestClient, kwargs: dict[str, Any]) -> httpx.Response:
    request: dict[str, Any] = {
        "method": kwargs["method"],
        "url": kwargs["url"],
        "headers": kwargs.get("headers"),
        "params": kwargs.get("params"),
    }
    if "json" in kwargs:
        request["json"] = kwargs["json"]
    elif kwargs.get("data") is not None:
        data = kwargs["data"]
        request["content"] = data.encode() if isinstance(data, str) else data
    return client.request(**request)


def _assert_envelope(response: httpx.Response) -> None:
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error"}, body
        assert set(body["error"]) == {"message", "type", "param", "code"}, body


@pytest.mark.parametrize(("path", "method", "mode"), CASES)
def test_schema_driven_requests_never_break_the_service(
    keyed_app: TestClient, path: str, method: str, mode: GenerationMode
) -> None:
    schema = schemathesis.openapi.from_dict(
        keyed_app.get("/openapi.json", headers={"Authorization": f"Bearer {TEST_API_KEY}"}).json()
    )
    operation = schema[path][method]
    seen: list[int] = []

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case: Any) -> None:
        kwargs = case.as_transport_kwargs(base_url="http://testserver")
        kwargs["headers"] = {
            **(kwargs.get("headers") or {}),
            "Authorization": f"Bearer {TEST_API_KEY}",
        }
        response = _send(keyed_app, kwargs)
        seen.append(response.status_code)
        case.validate_response(
            response,
            checks=[
                not_a_server_error,
                status_code_conformance,
                content_type_conformance,
                response_schema_conformance,
            ],
        )
        _assert_envelope(response)

    check()
    assert keyed_app.get("/health").status_code == 200  # still alive
    if path == "/v1/embeddings":  # the generator really reached both outcomes
        assert (200 in seen) if mode is POSITIVE else (400 in seen), sorted(set(seen))
