"""Settings: one pydantic-settings class read from JINA_OPENAI_* variables."""

from __future__ import annotations

from pathlib import Path

import pytest
from jina_openai.settings import Settings
from pydantic import ValidationError


def test_environment_with_comma_separated_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JINA_OPENAI_MODEL_DIR", "/models/x")
    monkeypatch.setenv("JINA_OPENAI_API_KEYS", "alpha, beta ,gamma")
    monkeypatch.setenv("JINA_OPENAI_MODEL_ALIASES", "code-embed,jina")
    monkeypatch.setenv("JINA_OPENAI_MAX_QUEUED_TOKENS", "5000")
    monkeypatch.setenv("JINA_OPENAI_TRUNCATE_INPUTS", "false")
    monkeypatch.setenv("JINA_OPENAI_DEVICE", "cuda:1")
    settings = Settings()  # type: ignore[call-arg]
    assert settings.model_dir == Path("/models/x")
    assert settings.api_key_values() == ["alpha", "beta", "gamma"]
    assert "alpha" not in repr(settings)
    assert settings.model_aliases == ["code-embed", "jina"]
    assert settings.max_queued_tokens == 5000
    assert settings.truncate_inputs is False
    assert settings.device == "cuda:1"


def test_json_lists_and_single_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JINA_OPENAI_API_KEYS", '["a,b", "c"]')
    assert Settings(model_dir=Path("m")).api_key_values() == ["a,b", "c"]
    monkeypatch.setenv("JINA_OPENAI_API_KEYS", "only-one")
    assert Settings(model_dir=Path("m")).api_key_values() == ["only-one"]
    monkeypatch.setenv("JINA_OPENAI_API_KEYS", "")
    assert Settings(model_dir=Path("m")).api_keys == []


def test_defaults() -> None:
    settings = Settings(model_dir=Path("m"))
    assert (settings.host, settings.port, settings.device, settings.dtype) == (
        "127.0.0.1",
        4000,
        "cpu",
        "auto",
    )
    assert settings.truncate_inputs
    assert settings.open_health_endpoints
    assert settings.workers == 1
    assert settings.max_batch_tokens is None


@pytest.mark.parametrize(
    "overrides",
    [
        {"model_id": "text-embedding-3-small"},
        {"model_aliases": ["nomic-embed-code"]},
        {"device": "gpu"},
        {"dtype": "int8"},
        {"port": 70000},
        {"api_keys": ["ok", ""]},
        {"max_queued_tokens": 0},
    ],
)
def test_invalid_settings_are_refused(overrides: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Settings(model_dir=Path("m"), **overrides)


def test_model_dir_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JINA_OPENAI_MODEL_DIR", raising=False)
    with pytest.raises(ValidationError, match="model_dir"):
        Settings()  # type: ignore[call-arg]
