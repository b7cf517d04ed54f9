"""Every route but the embeddings one, and the state all routes read.

- GET /v1/models (and /models), GET /v1/models/{model}: the served model and its aliases;
- GET /health (liveness), /ready (model loaded and warmed), /info (what is served, how);
- GET /metrics: Prometheus text exposition of this app's registry.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass

from fastapi import APIRouter, Request
from starlette.responses import Response

import jina_openai
from jina_openai.api.errors import ApiError
from jina_openai.api.schemas import (
    CacheInfo,
    DtypeChoiceInfo,
    HealthStatus,
    LimitsInfo,
    ModelCard,
    ModelInfo,
    ModelList,
    ReadyStatus,
    ServiceInfo,
    error_responses,
    get_record,
)
from jina_openai.engine.embedding_cache import EmbeddingCache
from jina_openai.engine.engine import EmbeddingEngine
from jina_openai.metrics import METRICS_CONTENT_TYPE, ServiceMetrics
from jina_openai.models.device import dtype_name
from jina_openai.settings import Settings

router = APIRouter()
OWNER = "jina-openai"


@dataclass
class ServiceState:
    """Everything the routes need, stored on `app.state.service` by the app factory."""

    settings: Settings
    engine: EmbeddingEngine
    metrics: ServiceMetrics

    def served_model_id(self) -> str | None:
        """The id the model is served under; None until it is loaded (unless configured)."""
        if self.settings.model_id:
            return self.settings.model_id
        embedder = self.engine.embedder
        return embedder.model_id if embedder is not None else None

    def accepted_model_ids(self) -> list[str]:
        served = self.served_model_id()
        ids = [served] if served else []
        return ids + [alias for alias in self.settings.model_aliases if alias != served]


def service(request: Request) -> ServiceState:
    state = request.app.state.service
    assert isinstance(state, ServiceState)
    return state


def _cards(state: ServiceState) -> list[ModelCard]:
    embedder, _, _ = state.engine.ensure_ready()
    created = int(state.engine.loaded_at or 0)
    return [
        ModelCard(
            id=model_id,
            created=created,
            owned_by=OWNER,
            dimension=embedder.dimension,
            max_input_tokens=embedder.max_input_tokens,
        )
        for model_id in state.accepted_model_ids()
    ]


@router.get(
    "/v1/models",
    summary="List models",
    operation_id="listModels",
    responses=error_responses(401, 503),
)
async def list_models(request: Request) -> ModelList:
    return ModelList(data=_cards(service(request)))


router.add_api_route("/models", list_models, methods=["GET"], include_in_schema=False)


@router.get(
    "/v1/models/{model:path}",
    summary="Retrieve a model",
    operation_id="retrieveModel",
    responses=error_responses(401, 404, 503),
)
async def retrieve_model(model: str, request: Request) -> ModelCard:
    for card in _cards(service(request)):
        if card.id == model:
            return card
    get_record(request.scope).requested_model = model
    raise ApiError(
        404,
        f"The model '{model}' does not exist on this server.",
        param="model",
        code="model_not_found",
    )


@router.get("/health", summary="Liveness (never touches the model)", operation_id="health")
async def health() -> HealthStatus:
    return HealthStatus()


@router.get(
    "/ready",
    summary="Readiness: 503 until the model is loaded and warmed",
    operation_id="ready",
    responses=error_responses(503),
)
async def ready(request: Request) -> ReadyStatus:
    state = service(request)
    state.engine.ensure_ready()
    return ReadyStatus(model=state.served_model_id() or "")


@router.get(
    "/info",
    summary="Served model, limits, device and versions",
    operation_id="info",
    responses=error_responses(401, 503),
)
async def info(request: Request) -> ServiceInfo:
    state = service(request)
    embedder, scheduler, _ = state.engine.ensure_ready()
    settings = state.settings
    choice = embedder.dtype_choice
    import tokenizers
    import torch
    import transformers

    return ServiceInfo(
        model=ModelInfo(
            id=state.served_model_id() or embedder.model_id,
            aliases=[alias for alias in state.accepted_model_ids()[1:]],
            architecture=embedder.architecture,
            dimension=embedder.dimension,
            max_input_tokens=embedder.max_input_tokens,
            parameter_count=embedder.parameter_count,
            device=str(embedder.device),
            dtype=dtype_name(embedder.dtype),
            dtype_choice=DtypeChoiceInfo(
                configured=choice.configured,
                reason=choice.reason,
                native_bf16=list(choice.native_bf16),
                float32_inputs_per_cpu_s=choice.float32_inputs_per_cpu_s,
                bfloat16_inputs_per_cpu_s=choice.bfloat16_inputs_per_cpu_s,
                min_cosine=choice.min_cosine,
            ),
            model_dir=str(settings.model_dir),
        ),
        limits=LimitsInfo(
            max_body_bytes=settings.max_body_bytes,
            max_inputs_per_request=settings.max_inputs_per_request,
            max_input_tokens=embedder.max_input_tokens,
            truncate_inputs=settings.truncate_inputs,
            max_batch_tokens=scheduler.limits.max_batch_tokens,
            max_batch_inputs=scheduler.limits.max_batch_inputs,
            max_queued_tokens=scheduler.limits.max_queued_tokens,
            max_queued_requests=scheduler.limits.max_queued_requests,
            max_queue_wait_s=scheduler.limits.max_queue_wait_s,
            max_request_tokens=scheduler.limits.request_tokens,
            max_held_bytes=scheduler.limits.max_held_bytes,
            request_timeout_s=settings.request_timeout_s,
            batch_timeout_s=settings.batch_timeout_s,
            header_timeout_s=settings.header_timeout_s,
            body_timeout_s=settings.body_timeout_s,
            max_connections=settings.max_connections,
        ),
        cache=_cache_info(state.engine.cache),
        auth="api_key" if settings.api_keys else "open",
        torch_threads=state.engine.config.torch_threads or torch.get_num_threads(),
        tokenizer_threads=settings.tokenizer_threads,
        measured_tokens_per_s=round(state.engine.tokens_per_s, 1),
        versions={
            "jina_openai": jina_openai.__version__,
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
        },
    )


def _cache_info(cache: EmbeddingCache | None) -> CacheInfo:
    if cache is None:
        return CacheInfo(memory_mb=0, disk_path=None, disk_mb=None, identity=None)
    store = cache.store if cache.store is not None and cache.store.enabled else None
    return CacheInfo(
        memory_mb=(cache.memory.capacity_bytes if cache.memory is not None else 0) / (1 << 20),
        disk_path=str(store.path) if store else None,
        disk_mb=store.max_bytes / (1 << 20) if store else None,
        identity=cache.identity,
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    operation_id="metrics",
    response_class=Response,
    responses={
        200: {
            "content": {"text/plain": {"schema": {"type": "string"}}},
            "description": "Prometheus text format",
        }
    },
)
async def metrics(request: Request) -> Response:
    return Response(service(request).metrics.render(), media_type=METRICS_CONTENT_TYPE)
