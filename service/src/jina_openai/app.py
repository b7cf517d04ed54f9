"""The app factory: `create_app(settings)` wires settings, engine, metrics, routes, middleware.

Nothing heavy happens here: the lifespan starts the inference thread, which loads and warms the
model in the background (/health answers at once, /ready turns 200 when warm) and stops it on
shutdown after the server has drained in-flight requests.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

import jina_openai
from jina_openai.api import embeddings, routes
from jina_openai.api.errors import install_error_handlers
from jina_openai.api.middleware import HEALTH_PATHS, ApiKeyMiddleware, RequestLogMiddleware
from jina_openai.api.routes import ServiceState
from jina_openai.api.schemas import install_openapi
from jina_openai.engine.embedding_cache import CacheConfig
from jina_openai.engine.engine import (
    EmbeddingEngine,
    EngineConfig,
    EngineFailureHandler,
    EngineState,
)
from jina_openai.metrics import ServiceMetrics
from jina_openai.models.base import Embedder
from jina_openai.settings import Settings

logger = logging.getLogger(__name__)

EmbedderLoader = Callable[[Settings], Embedder]


def load_configured_embedder(settings: Settings) -> Embedder:
    from jina_openai.models.registry import load_embedder

    return load_embedder(
        settings.model_dir,
        model_id=settings.model_id,
        device=settings.device,
        dtype=settings.dtype,
        max_input_tokens=settings.max_input_tokens,
    )


def usable_cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def create_app(
    settings: Settings,
    *,
    embedder_loader: EmbedderLoader | None = None,
    on_engine_failure: EngineFailureHandler | None = None,
) -> FastAPI:
    """Build the service. `embedder_loader` replaces the model registry (tests wrap models
    with it); `on_engine_failure(exc, during_load)` is called from the inference thread when
    the model fails to load or the thread dies (the entry points exit the process; by default
    the app stays up and answers 503 with the cause)."""
    load = embedder_loader or load_configured_embedder
    metrics = ServiceMetrics()
    engine = EmbeddingEngine(
        EngineConfig(
            max_batch_tokens=settings.max_batch_tokens,
            max_batch_inputs=settings.max_batch_inputs,
            max_queued_tokens=settings.max_queued_tokens,
            max_queued_requests=settings.max_queued_requests,
            truncate_inputs=settings.truncate_inputs,
            tokenizer_threads=settings.tokenizer_threads,
            torch_threads=settings.torch_threads or usable_cpu_count(),
            warmup=settings.warmup,
            memory_budget_mb=settings.memory_budget_mb,
            malloc_trim_interval_s=settings.malloc_trim_interval_s,
            request_timeout_s=settings.request_timeout_s,
            batch_timeout_s=settings.batch_timeout_s,
            max_consecutive_failed_batches=settings.max_consecutive_failed_batches,
            max_queue_wait_s=settings.max_queue_wait_s,
            cache=CacheConfig(
                model_dir=settings.model_dir,
                memory_bytes=settings.cache_memory_mb << 20,
                disk_path=settings.cache_path,
                disk_bytes=settings.cache_disk_mb << 20,
            ),
        ),
        load=lambda: load(settings),
        observer=metrics,
        on_failure=on_engine_failure,
    )
    metrics.track_queue(lambda: engine.scheduler)
    metrics.track_cache(lambda: engine.cache)
    metrics.track_readiness(lambda: engine.state is EngineState.READY)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if not settings.api_keys:
            logger.warning(
                "NO API KEY CONFIGURED: anyone who can reach %s:%d can use this service "
                "(set JINA_OPENAI_API_KEYS)",
                settings.host,
                settings.port,
            )
        logger.info("loading model from %s on %s", settings.model_dir, settings.device)
        engine.start()
        try:
            yield
        finally:
            await engine.stop(timeout=float(settings.graceful_timeout))

    app = FastAPI(
        title="jina-openai",
        version=jina_openai.__version__,
        description="OpenAI-compatible embeddings service.",
        lifespan=lifespan,
        redoc_url=None,
    )
    app.state.service = ServiceState(settings=settings, engine=engine, metrics=metrics)
    install_error_handlers(app)
    app.include_router(embeddings.router)
    app.include_router(routes.router)
    install_openapi(app)
    # Added innermost first: RequestLog -> ApiKey -> routes. The embeddings route reads its
    # body itself, after admission (api/embeddings.py).
    if settings.api_keys:
        open_paths = HEALTH_PATHS if settings.open_health_endpoints else frozenset()
        app.add_middleware(ApiKeyMiddleware, keys=settings.api_key_values(), open_paths=open_paths)
    app.add_middleware(RequestLogMiddleware, metrics=metrics)
    return app
