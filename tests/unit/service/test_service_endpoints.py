"""Health, readiness (while loading, after a failed load), info, models, metrics, request logs."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from pathlib import Path

import pytest
from jina_openai.app import create_app
from jina_openai.logging_config import JsonFormatter, KeyValueFormatter
from jina_openai.models.dtype_choice import fixed_choice
from jina_openai.models.errors import ModelLoadError
from starlette.testclient import TestClient

from .conftest import loading_app, make_settings, running_app, wait_ready
from .test_api_embeddings import assert_error


def test_health_answers_and_ready_is_503_while_the_model_loads(tiny_model_dir: Path) -> None:
    with loading_app(tiny_model_dir) as (client, release):
        assert client.get("/health").json() == {"status": "ok"}
        not_ready = client.get("/ready")
        assert_error(not_ready, 503, code="model_not_ready")
        assert int(not_ready.headers["retry-after"]) >= 1
        assert_error(client.post("/v1/embeddings", json={"input": "x"}), 503)
        assert_error(client.get("/info"), 503)
        assert_error(client.get("/v1/models"), 503)
        release.set()
        wait_ready(client)
        assert client.get("/ready").json()["status"] == "ready"


def test_a_failed_load_is_reported_and_handed_to_the_callback(tiny_model_dir: Path) -> None:
    failures: list[tuple[BaseException, bool]] = []
    settings = make_settings(tiny_model_dir / "missing")
    app = create_app(
        settings, on_engine_failure=lambda exc, during_load: failures.append((exc, during_load))
    )
    with TestClient(app) as client:
        for _ in range(500):
            if failures:
                break
            threading.Event().wait(0.01)
        assert isinstance(failures[0][0], ModelLoadError)
        assert failures[0][1] is True
        error = assert_error(client.get("/ready"), 503, code="model_not_ready")
        assert "does not exist" in error["message"]
        assert client.get("/health").status_code == 200


def test_info_describes_model_limits_and_versions(shared_tiny_client: TestClient) -> None:
    info = shared_tiny_client.get("/info").json()
    assert info["model"] == {
        "id": "tiny-bert",
        "aliases": ["tiny"],
        "architecture": "bert",
        "dimension": 32,
        "max_input_tokens": 64,
        "parameter_count": info["model"]["parameter_count"],
        "device": "cpu",
        "dtype": "float32",
        "dtype_choice": {
            "configured": "float32",
            "reason": "float32: configured",
            "native_bf16": [],
            "float32_inputs_per_cpu_s": None,
            "bfloat16_inputs_per_cpu_s": None,
            "min_cosine": None,
        },
        "model_dir": info["model"]["model_dir"],
    }
    assert info["limits"]["max_batch_tokens"] == 1024
    assert info["limits"]["max_inputs_per_request"] == 50
    assert info["limits"]["max_queue_wait_s"] == 120
    assert info["limits"]["truncate_inputs"] is True
    assert {"jina_openai", "torch", "transformers", "tokenizers", "python"} <= set(info["versions"])
    assert info["measured_tokens_per_s"] > 0


def test_models_list_and_retrieve(shared_tiny_client: TestClient) -> None:
    listed = shared_tiny_client.get("/v1/models").json()
    assert listed["object"] == "list"
    assert [card["id"] for card in listed["data"]] == ["tiny-bert", "tiny"]
    assert all(card["object"] == "model" and card["created"] > 0 for card in listed["data"])
    assert shared_tiny_client.get("/models").json() == listed
    assert shared_tiny_client.get("/v1/models/tiny").json()["id"] == "tiny"
    assert_error(shared_tiny_client.get("/v1/models/other/model"), 404, code="model_not_found")


def test_metrics_cover_requests_latencies_batches_queue_rejections_memory(
    tiny_model_dir: Path,
) -> None:
    with running_app(make_settings(tiny_model_dir, max_inputs_per_request=2)) as client:
        assert client.post("/v1/embeddings", json={"input": ["a b", "c"]}).status_code == 200
        assert client.post("/v1/embeddings", json={"input": ["a", "b", "c"]}).status_code == 400
        text = client.get("/metrics").text
        assert client.get("/metrics").headers["content-type"].startswith("text/plain")
    expected = [
        'jina_openai_requests_total{route="/v1/embeddings",status="200"} 1.0',
        'jina_openai_requests_total{route="/v1/embeddings",status="400"} 1.0',
        'jina_openai_rejected_requests_total{reason="too_many_inputs"} 1.0',
        "jina_openai_request_duration_seconds_bucket",
        "jina_openai_queue_wait_seconds_count",
        "jina_openai_tokenization_seconds_count 1.0",
        "jina_openai_inference_seconds_count",
        "jina_openai_batch_inputs_bucket",
        "jina_openai_batch_tokens_bucket",
        "jina_openai_batch_padded_tokens_bucket",
        "jina_openai_queue_inputs 0.0",
        "jina_openai_queue_tokens 0.0",
        "jina_openai_admitted_tokens 0.0",
        "jina_openai_reserved_tokens 0.0",
        "jina_openai_held_request_bytes 0.0",  # every request gave back what it held
        "jina_openai_embedded_inputs_total",
        "jina_openai_dropped_inputs_total 0.0",
        "\nprocess_resident_memory_bytes ",
        'jina_openai_model_info{architecture="bert",device="cpu",dimension="32"',
    ]
    for line in expected:
        assert line in text, line
    assert "jina_openai_process_resident_memory_bytes" not in text  # the collector's is the one


def test_gpu_memory_is_exported_for_a_cuda_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """No GPU here: a model reporting a CUDA device, and torch's CUDA memory readers faked."""
    import torch
    from jina_openai.metrics import ServiceMetrics

    readers = {
        "memory_allocated": 1_000.0,
        "memory_reserved": 2_000.0,
        "max_memory_allocated": 3_000.0,
        "max_memory_reserved": 4_000.0,
    }
    for name, value in readers.items():
        monkeypatch.setattr(torch.cuda, name, lambda device, value=value: value)

    class CudaModel:
        model_id = "gpu-model"
        architecture = "bert"
        dimension = 8
        max_input_tokens = 16
        device = torch.device("cuda", 0)
        dtype = torch.float16
        dtype_choice = fixed_choice(torch.float16, "auto", torch.device("cuda", 0))

    metrics = ServiceMetrics()
    assert b"gpu_memory" not in metrics.render()
    metrics.model_loaded(CudaModel())  # type: ignore[arg-type]
    text = metrics.render().decode()
    for kind, value in zip(
        ("allocated", "reserved", "max_allocated", "max_reserved"), readers.values(), strict=True
    ):
        line = f'jina_openai_gpu_memory_bytes{{device="cuda:0",kind="{kind}"}} {value}'
        assert line in text, line


def test_cpu_model_exports_no_gpu_memory(tiny_model_dir: Path) -> None:
    with running_app(make_settings(tiny_model_dir)) as client:
        assert "gpu_memory" not in client.get("/metrics").text


def test_each_app_has_its_own_registry(tiny_model_dir: Path) -> None:
    first = create_app(make_settings(tiny_model_dir)).state.service.metrics.registry
    second = create_app(make_settings(tiny_model_dir)).state.service.metrics.registry
    assert first is not second


def test_one_structured_log_line_per_request(
    shared_tiny_client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="jina_openai.access"):
        response = shared_tiny_client.post(
            "/v1/embeddings", json={"input": ["a b c", "d"]}, headers={"x-request-id": "abc-123"}
        )
        shared_tiny_client.post("/v1/embeddings", json={"input": ""})
    assert response.headers["x-request-id"] == "abc-123"
    lines = [r for r in caplog.records if r.name == "jina_openai.access"]
    assert len(lines) == 2
    fields = lines[0].fields  # type: ignore[attr-defined]
    assert fields["request_id"] == "abc-123"
    assert fields["status"] == 200
    assert fields["inputs"] == 2
    assert fields["tokens"] > 4
    assert {"queue_ms", "inference_ms", "tokenize_ms", "total_ms"} <= set(fields)
    assert lines[1].fields["status"] == 400  # type: ignore[attr-defined]
    assert lines[1].fields["error_code"] == "empty_input"  # type: ignore[attr-defined]
    payload = json.loads(JsonFormatter().format(lines[0]))
    assert payload["request_id"] == "abc-123"
    assert payload["level"] == "info"
    assert "request_id=abc-123" in KeyValueFormatter().format(lines[0])


def test_log_lines_carry_what_jina_stack_doctor_reads(
    shared_tiny_client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    """A model id the server does not serve, the inputs it truncated, the key's fingerprint
    (roles/stack_cli's `doctor` reads these from the journal)."""
    with caplog.at_level(logging.INFO, logger="jina_openai.access"):
        shared_tiny_client.post(
            "/v1/embeddings",
            json={"input": ["x"], "model": "text-embedding-3-small"},
            headers={"Authorization": "Bearer some-key"},
        )
        shared_tiny_client.get("/v1/models/nomic-embed-code")
        shared_tiny_client.post("/v1/embeddings", json={"input": ["word " * 500, "w " * 300, "x"]})
        shared_tiny_client.post("/v1/embeddings", json={"input": ["short"]})
    lines = [r.fields for r in caplog.records if r.name == "jina_openai.access"]  # type: ignore[attr-defined]
    assert len(lines) == 4
    wrong_model, wrong_card, truncated, clean = lines
    assert wrong_model["status"] == 404
    assert wrong_model["error_code"] == "model_not_found"
    assert wrong_model["requested_model"] == "text-embedding-3-small"
    assert wrong_model["key"] == hashlib.sha256(b"some-key").hexdigest()[:12]
    assert "some-key" not in json.dumps(wrong_model)
    assert wrong_card["requested_model"] == "nomic-embed-code"
    assert "key" not in wrong_card
    assert truncated["status"] == 200
    assert truncated["truncated_inputs"] == 2
    assert "requested_model" not in truncated
    assert "truncated_inputs" not in clean


def test_request_ids_are_generated_when_missing_or_unsafe(shared_tiny_client: TestClient) -> None:
    generated = shared_tiny_client.get("/health").headers["x-request-id"]
    assert len(generated) == 32
    unsafe = shared_tiny_client.get("/health", headers={"x-request-id": "a b\tc"})
    assert unsafe.headers["x-request-id"] != "a b\tc"
