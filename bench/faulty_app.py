"""The production app with a model that misbehaves on demand (make torture, and the tests).

    gunicorn -c python:jina_openai.gunicorn_conf 'bench.faulty_app:create_app()'

Built exactly as `jina_openai.asgi:create_app()` builds the app (settings from the environment,
the process exits when the engine gives up), but the embedder is wrapped: a batch holding an
input that contains HANG_MARKER never returns, one that contains FAIL_MARKER raises. That is
how a hung forward pass and a broken model look to the service.
"""

from __future__ import annotations

import threading

import numpy as np
from fastapi import FastAPI
from jina_openai.app import create_app as create_app_from_settings
from jina_openai.app import load_configured_embedder
from jina_openai.asgi import exit_process_on_engine_failure
from jina_openai.logging_config import configure_logging
from jina_openai.models.base import Embedder
from jina_openai.settings import Settings

HANG_MARKER = "__torture_hang__"
FAIL_MARKER = "__torture_fail__"


class FaultyEmbedder:
    """An Embedder that delegates to `inner` except for batches holding a marker."""

    def __init__(self, inner: Embedder) -> None:
        self._inner = inner
        for name in (
            "model_id",
            "dimension",
            "max_input_tokens",
            "vocab_size",
            "device",
            "dtype",
            "architecture",
            "parameter_count",
        ):
            setattr(self, name, getattr(inner, name))
        self._hang = inner.tokenize([HANG_MARKER])[0]
        self._fail = inner.tokenize([FAIL_MARKER])[0]
        self._never = threading.Event()

    def tokenize(self, texts: list[str], limit: int | None = None) -> list[list[int]]:
        return self._inner.tokenize(texts, limit)

    def prepare(self, ids: list[int]) -> list[int]:
        return self._inner.prepare(ids)

    def embed(self, batch: list[list[int]]) -> np.ndarray:
        if any(_contains(ids, self._hang) for ids in batch):
            self._never.wait()  # a forward pass that never comes back
        if any(_contains(ids, self._fail) for ids in batch):
            raise RuntimeError("injected failure")
        return self._inner.embed(batch)


def _contains(ids: list[int], marker: list[int]) -> bool:
    width = len(marker)
    return any(ids[start : start + width] == marker for start in range(len(ids) - width + 1))


def create_app() -> FastAPI:
    settings = Settings()  # type: ignore[call-arg]  # model_dir comes from the environment
    configure_logging(settings.log_level, settings.log_format)
    return create_app_from_settings(
        settings,
        embedder_loader=lambda current: FaultyEmbedder(load_configured_embedder(current)),
        on_engine_failure=exit_process_on_engine_failure,
    )
