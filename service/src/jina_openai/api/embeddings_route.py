"""POST /v1/embeddings (and /embeddings): the OpenAI embeddings API."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.responses import Response

from jina_openai.api.auth import client_identity
from jina_openai.api.disconnect import wait_for_disconnect
from jina_openai.api.errors import ApiError
from jina_openai.api.input_validation import normalize_input
from jina_openai.api.openapi_docs import EMBEDDING_REQUEST_BODY, error_responses
from jina_openai.api.request_body import body_too_large, declared_length, read_body
from jina_openai.api.request_record import RequestRecord, get_record
from jina_openai.api.response_encoding import (
    encode_embeddings_response,
    response_size_bound,
    truncate_dimensions,
)
from jina_openai.api.schemas import EmbeddingRequest, EmbeddingResponse
from jina_openai.api.service_state import ServiceState, service

router = APIRouter()

# Above this many floats, encoding the response moves off the event loop.
ENCODE_IN_POOL_FLOATS = 64 * 1024


@router.post(
    "/v1/embeddings",
    summary="Create embeddings",
    operation_id="createEmbedding",
    response_model=None,
    responses={
        200: {"model": EmbeddingResponse, "description": "One unit vector per input, in order"},
        **error_responses(400, 401, 404, 408, 413, 415, 429, 500, 503),
    },
    openapi_extra=EMBEDDING_REQUEST_BODY,
)
async def create_embeddings(request: Request) -> Response:
    state = service(request)
    settings = state.settings
    record = get_record(request.scope)
    _check_content_type(request)
    declared = declared_length(request.scope)
    if declared is not None and declared > settings.max_body_bytes:
        raise body_too_large(settings.max_body_bytes)
    # Admission before a byte of the body is read: a full server answers a crowd of large
    # bodies with 429 at once, and no body is held without being counted.
    with state.engine.admit(body_bytes=declared or settings.max_body_bytes) as admission:
        body = await read_body(
            request.receive, max_bytes=settings.max_body_bytes, timeout_s=settings.body_timeout_s
        )
        parsed = _parse(body)
        del body  # the parsed texts are what the request holds from here on
        embedder = state.engine.ensure_ready()[0]
        model = _resolve_model(parsed.model, state, record)
        normalized = normalize_input(parsed.input, max_inputs=settings.max_inputs_per_request)
        if parsed.dimensions is not None and parsed.dimensions > embedder.dimension:
            raise ApiError(
                400,
                f"'dimensions' must be at most {embedder.dimension} for this model",
                param="dimensions",
                code="invalid_value",
            )
        record.model = model
        record.inputs = len(normalized.items)
        client_gone = asyncio.ensure_future(wait_for_disconnect(request.receive))
        try:
            result = await admission.embed(
                normalized.items,
                token_ids=normalized.token_ids,
                single=normalized.single,
                request_id=record.request_id,
                client_gone=client_gone,
                client=client_identity(request.scope),
                response_bytes=response_size_bound(
                    len(normalized.items),
                    parsed.dimensions or embedder.dimension,
                    parsed.encoding_format,
                ),
            )
        finally:
            client_gone.cancel()
        record.tokenize_ms = result.tokenize_seconds * 1000
        record.tokens = result.token_count
        record.truncated_inputs = result.truncated_inputs or None
        record.cached_inputs = result.cached_inputs or None
        record.queue_ms = result.queue_seconds * 1000
        record.inference_ms = result.inference_seconds * 1000
        vectors = truncate_dimensions(result.vectors, parsed.dimensions)

        def encode() -> bytes:
            return encode_embeddings_response(
                vectors,
                encoding_format=parsed.encoding_format,
                model=model,
                prompt_tokens=result.token_count,
            )

        if vectors.size > ENCODE_IN_POOL_FLOATS:
            body = await state.engine.run_in_pool(encode)
        else:
            body = encode()
    return Response(body, media_type="application/json")


router.add_api_route("/embeddings", create_embeddings, methods=["POST"], include_in_schema=False)


def _check_content_type(request: Request) -> None:
    content_type = request.headers.get("content-type")
    if content_type is None:
        return
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == "application/json" or media_type.endswith("+json"):
        return
    raise ApiError(
        415,
        f"Content-Type must be application/json, got {content_type!r}",
        code="unsupported_media_type",
    )


def _parse(body: bytes) -> EmbeddingRequest:
    try:
        return EmbeddingRequest.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "json_invalid":
            raise ApiError(
                400,
                f"We could not parse the JSON body of your request ({first['msg']}).",
                code="invalid_json",
            ) from None
        location = first.get("loc", ())
        if not location:
            raise ApiError(
                400, "The request body must be a JSON object.", code="invalid_body"
            ) from None
        param = str(location[0])
        if first["type"] == "missing":
            raise ApiError(
                400, f"'{param}' is required.", param=param, code="missing_required_parameter"
            ) from None
        raise ApiError(
            400, f"Invalid value for '{param}': {first['msg']}.", param=param, code="invalid_value"
        ) from None


def _resolve_model(requested: str | None, state: ServiceState, record: RequestRecord) -> str:
    accepted = state.accepted_model_ids()
    if requested is None:
        return accepted[0]
    if requested in accepted:
        return requested
    record.requested_model = requested  # logged: what `jina-stack doctor` reports
    raise ApiError(
        404,
        f"The model '{requested}' does not exist on this server; it serves "
        + ", ".join(f"'{model_id}'" for model_id in accepted)
        + ".",
        param="model",
        code="model_not_found",
    )
