"""GET /v1/models (and /models), GET /v1/models/{model}: the served model and its aliases."""

from __future__ import annotations

from fastapi import APIRouter, Request

from jina_openai.api.errors import ApiError
from jina_openai.api.openapi_docs import error_responses
from jina_openai.api.request_record import get_record
from jina_openai.api.schemas import ModelCard, ModelList
from jina_openai.api.service_state import ServiceState, service

router = APIRouter()
OWNER = "jina-openai"


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
