"""POST /v1/embeddings (and /embeddings): the OpenAI embeddings API."""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.responses import Response

from jina_openai.api.disconnect import ClientDisconnectedError, unless_disconnected
from jina_openai.api.engine_errors import api_error_from
from jina_openai.api.errors import ApiError
from jina_openai.api.input_validation import normalize_input
from jina_openai.api.openapi_docs import EMBEDDING_REQUEST_BODY, error_responses
from jina_openai.api.request_log import STATUS_CLIENT_CLOSED
from jina_openai.api.request_record import get_record
from jina_openai.api.response_encoding import encode_embeddings_response, truncate_dimensions
from jina_openai.api.schemas import EmbeddingRequest, EmbeddingResponse
from jina_openai.api.service_state import ServiceState, service
from jina_openai.engine.errors import EngineError

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
        **error_responses(400, 401, 404, 413, 415, 429, 500, 503),
    },
    openapi_extra=EMBEDDING_REQUEST_BODY,
)
async def create_embeddings(request: Request) -> Response:
    state = service(request)
    record = get_record(request.scope)
    _check_content_type(request)
    try:
        # A full queue answers 429 before the body is read and parsed: under a crowd, reading
        # hundreds of large bodies on the event loop would delay every refusal.
        state.engine.check_capacity()
    except EngineError as exc:
        raise api_error_from(exc) from exc
    parsed = _parse(await request.body())
    try:
        embedder, _, _ = state.engine.ensure_ready()
    except EngineError as exc:
        raise api_error_from(exc) from exc
    model = _resolve_model(parsed.model, state)
    normalized = normalize_input(parsed.input, max_inputs=state.settings.max_inputs_per_request)
    if parsed.dimensions is not None and parsed.dimensions > embedder.dimension:
        raise ApiError(
            400,
            f"'dimensions' must be at most {embedder.dimension} for this model",
            param="dimensions",
            code="invalid_value",
        )
    record.model = model
    record.inputs = len(normalized.items)
    engine = state.engine
    try:
        # Refused here in milliseconds when the queue is full: before tokenizing, not after.
        reserved = engine.reserve(normalized.items, token_ids=normalized.token_ids)
        started = time.perf_counter()
        try:
            prepared = await engine.prepare(
                normalized.items, token_ids=normalized.token_ids, single=normalized.single
            )
        except BaseException:
            engine.release(reserved)
            raise
        record.tokenize_ms = (time.perf_counter() - started) * 1000
        record.tokens = prepared.token_count
        record.truncated_inputs = prepared.truncated_inputs or None
        submitted = engine.submit(prepared, request_id=record.request_id, reserved=reserved)
    except EngineError as exc:
        raise api_error_from(exc) from exc
    try:
        job = await unless_disconnected(submitted.result(), request.receive)
    except ClientDisconnectedError:
        record.dropped_inputs = engine.drop(submitted)
        record.status = STATUS_CLIENT_CLOSED
        record.error_code = "client_disconnected"
        return Response(status_code=STATUS_CLIENT_CLOSED)
    except asyncio.CancelledError:
        engine.drop(submitted)
        raise
    except EngineError as exc:
        raise api_error_from(exc) from exc
    record.queue_ms = job.queue_seconds * 1000
    record.inference_ms = job.inference_seconds * 1000
    assert job.outputs is not None
    vectors = truncate_dimensions(job.outputs, parsed.dimensions)

    def encode() -> bytes:
        return encode_embeddings_response(
            vectors,
            encoding_format=parsed.encoding_format,
            model=model,
            prompt_tokens=prepared.token_count,
        )

    body = await engine.run_in_pool(encode) if vectors.size > ENCODE_IN_POOL_FLOATS else encode()
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


def _resolve_model(requested: str | None, state: ServiceState) -> str:
    accepted = state.accepted_model_ids()
    if requested is None:
        return accepted[0]
    if requested in accepted:
        return requested
    raise ApiError(
        404,
        f"The model '{requested}' does not exist on this server; it serves "
        + ", ".join(f"'{model_id}'" for model_id in accepted)
        + ".",
        param="model",
        code="model_not_found",
    )
