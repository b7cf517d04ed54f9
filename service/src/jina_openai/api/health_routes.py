"""GET /health (liveness), /ready (model loaded and warmed), /info (what is served, how)."""

from __future__ import annotations

import platform

from fastapi import APIRouter, Request

import jina_openai
from jina_openai.api.openapi_docs import error_responses
from jina_openai.api.schemas import (
    CacheInfo,
    DtypeChoiceInfo,
    HealthStatus,
    LimitsInfo,
    ModelInfo,
    ReadyStatus,
    ServiceInfo,
)
from jina_openai.api.service_state import service
from jina_openai.engine.embedding_cache import EmbeddingCache
from jina_openai.models.device import dtype_name

router = APIRouter()


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
