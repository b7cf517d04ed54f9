"""POST /v1/embeddings through an ASGI client: shapes, encodings, options, limits, bad input."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from starlette.testclient import TestClient

from .conftest import TINY_MAX_POSITIONS, make_settings, running_app


def assert_error(
    response: httpx.Response, status: int, *, param: Any = ..., code: Any = ...
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str)
    assert error["message"]
    if param is not ...:
        assert error["param"] == param, error
    if code is not ...:
        assert error["code"] == code, error
    return error


def vectors_of(response: httpx.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    rows = []
    for position, item in enumerate(response.json()["data"]):
        assert item["object"] == "embedding"
        assert item["index"] == position
        embedding = item["embedding"]
        if isinstance(embedding, str):
            rows.append(np.frombuffer(base64.b64decode(embedding), dtype="<f4"))
        else:
            rows.append(np.asarray(embedding, dtype=np.float32))
    return np.stack(rows)


def embed(client: TestClient, **body: Any) -> httpx.Response:
    return client.post("/v1/embeddings", json=body)


def test_text_inputs_get_unit_vectors_in_order(shared_tiny_client: TestClient) -> None:
    texts = ["def f(x): return x", "import os", "class A: pass"]
    response = embed(shared_tiny_client, input=texts, model="tiny-bert")
    body = response.json()
    assert body["object"] == "list"
    assert body["model"] == "tiny-bert"
    vectors = vectors_of(response)
    assert vectors.shape == (3, 32)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    for position, text in enumerate(texts):
        alone = vectors_of(embed(shared_tiny_client, input=text, model="tiny-bert"))[0]
        assert float(alone @ vectors[position]) > 0.9999
    usage = body["usage"]
    assert usage["prompt_tokens"] == usage["total_tokens"] > 3 * 2


def test_token_id_inputs(shared_tiny_client: TestClient) -> None:
    one = embed(shared_tiny_client, input=[5, 6, 7])
    assert vectors_of(one).shape == (1, 32)
    assert one.json()["usage"]["prompt_tokens"] == 5  # 3 content tokens + [CLS] + [SEP]
    many = embed(shared_tiny_client, input=[[5, 6, 7], [8]])
    assert vectors_of(many).shape == (2, 32)
    assert many.json()["usage"]["prompt_tokens"] == 5 + 3
    assert float(vectors_of(one)[0] @ vectors_of(many)[0]) > 0.9999


def test_base64_is_little_endian_float32_of_the_same_vectors(
    shared_tiny_client: TestClient,
) -> None:
    floats = vectors_of(embed(shared_tiny_client, input=["same text"]))
    response = embed(shared_tiny_client, input=["same text"], encoding_format="base64")
    assert isinstance(response.json()["data"][0]["embedding"], str)
    assert np.array_equal(vectors_of(response), floats)


def test_dimensions_truncate_and_renormalise(shared_tiny_client: TestClient) -> None:
    full = vectors_of(embed(shared_tiny_client, input="abc def"))[0]
    short = vectors_of(embed(shared_tiny_client, input="abc def", dimensions=8))[0]
    assert short.shape == (8,)
    assert np.isclose(np.linalg.norm(short), 1.0, atol=1e-5)
    assert np.allclose(short, full[:8] / np.linalg.norm(full[:8]), atol=1e-6)
    assert_error(embed(shared_tiny_client, input="x", dimensions=33), 400, param="dimensions")
    assert_error(embed(shared_tiny_client, input="x", dimensions=0), 400, param="dimensions")


def test_model_ids_aliases_and_unknown_models(shared_tiny_client: TestClient) -> None:
    assert embed(shared_tiny_client, input="x").json()["model"] == "tiny-bert"
    assert embed(shared_tiny_client, input="x", model="tiny").json()["model"] == "tiny"
    error = assert_error(
        embed(shared_tiny_client, input="x", model="text-embedding-3-small"),
        404,
        param="model",
        code="model_not_found",
    )
    assert "tiny-bert" in error["message"]


def test_user_and_unknown_fields_are_accepted(shared_tiny_client: TestClient) -> None:
    response = embed(shared_tiny_client, input="x", user="someone", extra_field={"a": 1})
    assert response.status_code == 200


def test_unversioned_path_alias(shared_tiny_client: TestClient) -> None:
    response = shared_tiny_client.post("/embeddings", json={"input": ["x"]})
    assert vectors_of(response).shape == (1, 32)


def test_long_inputs_are_truncated_by_default(shared_tiny_client: TestClient) -> None:
    response = embed(shared_tiny_client, input=["word " * 500, "short"])
    assert response.status_code == 200
    short = embed(shared_tiny_client, input=["short"]).json()["usage"]["prompt_tokens"]
    assert response.json()["usage"]["prompt_tokens"] == TINY_MAX_POSITIONS + short


def test_long_inputs_are_rejected_when_truncation_is_off(tiny_model_dir: Path) -> None:
    settings = make_settings(tiny_model_dir, truncate_inputs=False, warmup=False)
    with running_app(settings) as client:
        assert embed(client, input=[[7], [5] * 62]).status_code == 200  # 62 + 2 = 64 fits
        assert_error(
            embed(client, input=[[7], [5] * 63]), 400, param="input[1]", code="input_too_long"
        )
        assert_error(
            embed(client, input=["ok", "word " * 500]), 400, param="input[1]", code="input_too_long"
        )
        assert_error(
            embed(client, input=list(range(5, 100))), 400, param="input", code="input_too_long"
        )


def test_request_holding_more_tokens_than_the_queue_is_413(tiny_model_dir: Path) -> None:
    settings = make_settings(tiny_model_dir, max_queued_tokens=100, warmup=False)
    with running_app(settings) as client:
        assert_error(
            embed(client, input=["word " * 60, "word " * 60]),
            413,
            param="input",
            code="too_many_tokens",
        )
        assert embed(client, input=["word " * 60]).status_code == 200


def test_too_many_inputs(shared_tiny_client: TestClient) -> None:
    assert embed(shared_tiny_client, input=["x"] * 50).status_code == 200
    assert_error(
        embed(shared_tiny_client, input=["x"] * 51), 400, param="input", code="too_many_inputs"
    )


def test_body_size_limit_is_413_in_the_envelope(shared_tiny_client: TestClient) -> None:
    big = json.dumps({"input": ["a" * 70_000]}).encode()
    assert_error(
        shared_tiny_client.post(
            "/v1/embeddings", content=big, headers={"content-type": "application/json"}
        ),
        413,
        code="request_too_large",
    )

    def chunks() -> Any:  # no Content-Length: the limit applies while reading
        yield b'{"input": ["'
        for _ in range(40):
            yield b"b" * 2048
        yield b'"]}'

    assert_error(
        shared_tiny_client.post(
            "/v1/embeddings", content=chunks(), headers={"content-type": "application/json"}
        ),
        413,
        code="request_too_large",
    )


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"input": ""}, "input", "empty_input"),
        ({"input": []}, "input", "empty_input"),
        ({"input": ["ok", ""]}, "input[1]", "empty_input"),
        ({"input": [[1, 2], []]}, "input[1]", "empty_input"),
        ({"input": [[]]}, "input[0]", "empty_input"),
        ({"input": 5}, "input", "invalid_type"),
        ({"input": None}, "input", "invalid_type"),
        ({"input": {"text": "x"}}, "input", "invalid_type"),
        ({"input": [1.5]}, "input[0]", "invalid_type"),
        ({"input": [True, False]}, "input[0]", "invalid_type"),
        ({"input": [1, "a"]}, "input", "invalid_type"),
        ({"input": ["a", 1]}, "input[1]", "invalid_type"),
        ({"input": ["a", ["b"]]}, "input[1]", "invalid_type"),
        ({"input": [[1], "a"]}, "input[1]", "invalid_type"),
        ({"input": [[1, [2]]]}, "input[0]", "invalid_type"),
        ({"input": [[[1]]]}, "input[0]", "invalid_type"),
        ({"input": [None]}, "input[0]", "invalid_type"),
        ({"input": [1, 10**6]}, "input", "invalid_token_id"),
        ({"input": [[1], [-1]]}, "input[1]", "invalid_token_id"),
        ({"input": [2**70]}, "input", "invalid_token_id"),
        ({}, "input", "missing_required_parameter"),
        ({"input": "x", "model": 3}, "model", "invalid_value"),
        ({"input": "x", "encoding_format": "int8"}, "encoding_format", "invalid_value"),
        ({"input": "x", "dimensions": "8"}, "dimensions", "invalid_value"),
        ({"input": "x", "dimensions": 8.0}, "dimensions", "invalid_value"),
        ({"input": "x", "user": 1}, "user", "invalid_value"),
    ],
)
def test_bad_inputs_are_400_naming_the_param(
    shared_tiny_client: TestClient, body: dict[str, Any], param: str, code: str
) -> None:
    assert_error(shared_tiny_client.post("/v1/embeddings", json=body), 400, param=param, code=code)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{",
        b"not json",
        b'{"input": "x",}',
        b'{"input": "\\ud800"}',  # lone surrogate
        b"[" * 100_00 + b"]" * 100_00,  # deep nesting
        b'{"input": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        b'\xff\xfe{"input": "x"}',
        b'["input"]',
        b'"input"',
        b"null",
    ],
)
def test_unparsable_bodies_are_400(shared_tiny_client: TestClient, raw: bytes) -> None:
    response = shared_tiny_client.post(
        "/v1/embeddings", content=raw, headers={"content-type": "application/json"}
    )
    assert_error(response, 400)


def test_content_type(shared_tiny_client: TestClient) -> None:
    body = b'{"input": "x"}'
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
        assert_error(
            shared_tiny_client.post(
                "/v1/embeddings", content=body, headers={"content-type": content_type}
            ),
            415,
            code="unsupported_media_type",
        )
    for content_type in ("application/json; charset=utf-8", "application/vnd.api+json"):
        assert (
            shared_tiny_client.post(
                "/v1/embeddings", content=body, headers={"content-type": content_type}
            ).status_code
            == 200
        )
    assert shared_tiny_client.post("/v1/embeddings", content=body).status_code == 200


@pytest.mark.parametrize(
    "text",
    [
        "héllo wörld ñ ç",
        "日本語のテキストと中文文本",
        "emoji 👩‍👩‍👧‍👦 🏳️‍🌈 🇯🇵",
        "RTL שלום עולם مرحبا",
        "a" + "\u0301" * 5000,  # one letter, thousands of combining accents
        "\u200b\u200d\ufeff zero width",
        "nul \u0000 and controls \u0007\u001b",
        "\U0010ffff private use \ue000",
        " ",
        "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 " * 200,
    ],
)
def test_deep_unicode_gets_finite_unit_vectors(shared_tiny_client: TestClient, text: str) -> None:
    vectors = vectors_of(embed(shared_tiny_client, input=[text], encoding_format="base64"))
    assert np.isfinite(vectors).all()
    assert np.isclose(np.linalg.norm(vectors[0]), 1.0, atol=1e-5)


def test_large_request_within_limits(shared_tiny_client: TestClient) -> None:
    texts = [f"chunk {i} " + "x = y + z; " * 30 for i in range(50)]
    response = embed(shared_tiny_client, input=texts, encoding_format="float")
    vectors = vectors_of(response)
    assert vectors.shape == (50, 32)
    assert len({row.tobytes() for row in vectors}) == 50


def test_no_fastapi_validation_body_ever(shared_tiny_client: TestClient) -> None:
    responses = [
        shared_tiny_client.get("/v1/models/%ff"),
        shared_tiny_client.post("/v1/embeddings", content=b"{}"),
        shared_tiny_client.get("/v1/embeddings"),
        shared_tiny_client.get("/does/not/exist"),
        shared_tiny_client.delete("/v1/models"),
    ]
    for response in responses:
        assert response.status_code >= 400
        assert "detail" not in response.json()
        assert_error(response, response.status_code)


def test_huge_payloads_with_default_limits(tiny_model_dir: Path) -> None:
    with running_app(make_settings(tiny_model_dir, warmup=False)) as client:
        many = embed(client, input=[f"item {i}" for i in range(2048)], encoding_format="base64")
        assert vectors_of(many).shape == (2048, 32)
        assert_error(embed(client, input=["x"] * 2049), 400, code="too_many_inputs")
        long_text = embed(client, input="token " * 340_000)  # 2.0 MB in one input: truncated
        assert long_text.json()["usage"]["prompt_tokens"] == TINY_MAX_POSITIONS
        too_big = json.dumps({"input": ["y" * (2 * 1024 * 1024)]}).encode()
        assert_error(client.post("/v1/embeddings", content=too_big), 413, code="request_too_large")
