"""The production app with fault injection, for `make torture` (bench/torture.py) and the test
that a hung or broken model gets its worker replaced (tests/unit/service/test_server_process.py).

    gunicorn -c python:jina_openai.gunicorn_conf 'bench.faulty_app:create_app()'

Built exactly like `jina_openai.asgi.create_app()` (settings from the environment, the same
logging, the process exits when the engine fails) except that the real embedder is wrapped:
a batch holding an input whose text contained `HANG_MARKER` blocks in `embed` far longer than
any timeout (a hung forward pass), one holding `FAIL_MARKER` raises RuntimeError (a batch that
always fails). `embed` sees token ids, not text, so the markers are found as the token sequence
they tokenize to.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

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
HANG_S = 24 * 3600.0


def contains(ids: list[int], needle: list[int]) -> bool:
    """Whether `needle` occurs in `ids` as a contiguous run."""
    width = len(needle)
    return width > 0 and any(ids[i : i + width] == needle for i in range(len(ids) - width + 1))


class FaultyEmbedder:
    """Delegates everything to `inner`; `embed` hangs or raises on the markers."""

    def __init__(self, inner: Embedder) -> None:
        self._inner = inner
        self._hang_ids = inner.tokenize([HANG_MARKER])[0]
        self._fail_ids = inner.tokenize([FAIL_MARKER])[0]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def tokenize(self, texts: list[str], limit: int | None = None) -> list[list[int]]:
        return self._inner.tokenize(texts, limit)

    def prepare(self, ids: list[int]) -> list[int]:
        return self._inner.prepare(ids)

    def embed(
        self, batch: list[list[int]], between_layers: Callable[[], None] | None = None
    ) -> np.ndarray:
        if any(contains(ids, self._hang_ids) for ids in batch):
            time.sleep(HANG_S)
        if any(contains(ids, self._fail_ids) for ids in batch):
            raise RuntimeError("injected failure (bench/faulty_app.py)")
        return self._inner.embed(batch, between_layers)


def load_faulty_embedder(settings: Settings) -> Embedder:
    return FaultyEmbedder(load_configured_embedder(settings))  # type: ignore[return-value]


def create_app() -> FastAPI:
    settings = Settings()  # type: ignore[call-arg]  # model_dir comes from the environment
    configure_logging(settings.log_level, settings.log_format)
    return create_app_from_settings(
        settings,
        embedder_loader=load_faulty_embedder,
        on_engine_failure=exit_process_on_engine_failure,
    )
