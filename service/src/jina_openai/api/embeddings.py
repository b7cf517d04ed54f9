"""POST /v1/embeddings (and /embeddings): the OpenAI embeddings API, in the order a request
meets it.

1. Content-Type, then the declared Content-Length against `max_body_bytes` (413 at once).
2. Admission (`engine.admit`) before a byte of the body is read, so a full server answers 429
   without reading it.
3. The body, read straight from ASGI `receive` with its size limit (413 as soon as it is
   exceeded) and deadline (408), so a client that trickles its upload cannot hold a request
   slot and its memory for long; a client that disconnects mid-upload is
   ClientDisconnectedError (logged as 499), not a server error.
4. Parsing, the model id, and the four shapes of `input`, checked by hand so that each error
   names the offending item.
5. The engine (tokenize, cache, queue, batch, embed), raced against the client hanging up.
6. The response body, built as bytes directly (float lists or base64 float32): no per-float
   pydantic or jsonable_encoder work on large responses.
"""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.responses import Response
from starlette.types import Receive, Scope

from jina_openai.api.errors import ApiError
from jina_openai.api.middleware import client_identity
from jina_openai.api.routes import ServiceState, service
from jina_openai.api.schemas import (
    EMBEDDING_REQUEST_BODY,
    EmbeddingRequest,
    EmbeddingResponse,
    RequestRecord,
    error_responses,
    get_record,
)
from jina_openai.engine.errors import ClientDisconnectedError

router = APIRouter()

# Above this many floats, encoding the response moves off the event loop.
ENCODE_IN_POOL_FLOATS = 64 * 1024

EncodingFormat = Literal["float", "base64"]


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


# --- The body: its size limit and deadline; then the client hanging up.


def declared_length(scope: Scope) -> int | None:
    """The Content-Length header, or None when absent or malformed (chunked uploads)."""
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def body_too_large(max_bytes: int) -> ApiError:
    return ApiError(
        413,
        f"The request body exceeds this server's limit of {max_bytes} bytes; "
        "send fewer or shorter inputs per request.",
        code="request_too_large",
    )


async def read_body(receive: Receive, *, max_bytes: int, timeout_s: float) -> bytes:
    try:
        return await asyncio.wait_for(_read(receive, max_bytes), timeout=timeout_s)
    except TimeoutError:
        raise ApiError(
            408,
            f"The request body did not arrive within {timeout_s:g} s.",
            code="request_timeout",
        ) from None


async def _read(receive: Receive, max_bytes: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnectedError()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            raise body_too_large(max_bytes)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def wait_for_disconnect(receive: Receive) -> None:
    """Return when the server reports `http.disconnect` (call after the body has been read)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


# --- The four shapes of `input`.

SHAPES = (
    "a string, an array of strings, an array of token ids (integers) "
    "or an array of arrays of token ids"
)


@dataclass(frozen=True)
class NormalizedInput:
    items: list[str] | list[list[int]]
    token_ids: bool  # items are token id lists
    single: bool  # the request held one input (a string or one token id array)


def normalize_input(value: Any, *, max_inputs: int) -> NormalizedInput:
    if isinstance(value, str):
        if not value:
            raise _invalid("'input' must not be an empty string", "input", "empty_input")
        return NormalizedInput([value], token_ids=False, single=True)
    if not isinstance(value, list):
        raise _invalid(f"'input' must be {SHAPES}", "input", "invalid_type")
    if not value:
        raise _invalid("'input' must not be an empty array", "input", "empty_input")
    first = value[0]
    if _is_token_id(first):
        _check_token_ids(value, "input")
        return NormalizedInput([value], token_ids=True, single=True)
    if len(value) > max_inputs:
        raise _invalid(
            f"'input' holds {len(value)} items; this server takes at most {max_inputs} per request",
            "input",
            "too_many_inputs",
        )
    if isinstance(first, str):
        for position, item in enumerate(value):
            param = f"input[{position}]"
            if not isinstance(item, str):
                raise _invalid(
                    f"'{param}' must be a string like the other items", param, "invalid_type"
                )
            if not item:
                raise _invalid(f"'{param}' must not be an empty string", param, "empty_input")
        return NormalizedInput(value, token_ids=False, single=False)
    if isinstance(first, list):
        for position, item in enumerate(value):
            param = f"input[{position}]"
            if not isinstance(item, list):
                raise _invalid(
                    f"'{param}' must be an array of token ids like the other items",
                    param,
                    "invalid_type",
                )
            if not item:
                raise _invalid(f"'{param}' must not be an empty array", param, "empty_input")
            _check_token_ids(item, param)
        return NormalizedInput(value, token_ids=True, single=False)
    raise _invalid(f"'input' must be {SHAPES}", "input[0]", "invalid_type")


def _is_token_id(value: Any) -> bool:
    return type(value) is int  # bool is an int subclass: excluded on purpose


def _check_token_ids(ids: list[Any], param: str) -> None:
    for position, token in enumerate(ids):
        if not _is_token_id(token):
            raise _invalid(
                f"'{param}[{position}]' must be an integer token id", param, "invalid_type"
            )


def _invalid(message: str, param: str, code: str) -> ApiError:
    return ApiError(400, message, param=param, code=code)


# --- Vectors -> the JSON body of the response.


def truncate_dimensions(vectors: np.ndarray, dimensions: int | None) -> np.ndarray:
    """Keep the first `dimensions` values of each row and re-normalise to unit length."""
    if dimensions is None or dimensions >= vectors.shape[1]:
        return vectors
    kept = np.array(vectors[:, :dimensions], dtype=np.float32)
    norms = np.linalg.norm(kept, axis=1, keepdims=True)
    return kept / np.maximum(norms, 1e-12)


# Upper bounds of one encoded value, with the join's copy: float JSON writes up to ~24
# characters per float32 ("-0.012345678901234567,"), base64 4/3 of its 4 bytes.
_ENCODED_BYTES_PER_VALUE = {"float": 2 * 24, "base64": 2 * 6}


def response_size_bound(inputs: int, dimension: int, encoding_format: EncodingFormat) -> int:
    """Bytes the response body of `inputs` vectors may take while it is built."""
    return inputs * dimension * _ENCODED_BYTES_PER_VALUE[encoding_format]


def encode_embeddings_response(
    vectors: np.ndarray,
    *,
    encoding_format: EncodingFormat,
    model: str,
    prompt_tokens: int,
) -> bytes:
    rows = np.ascontiguousarray(vectors, dtype="<f4")
    if encoding_format == "base64":
        encoded = ['"' + base64.b64encode(row.tobytes()).decode("ascii") + '"' for row in rows]
    else:
        encoded = [json.dumps(row.tolist(), separators=(",", ":")) for row in rows]
    items = ",".join(
        f'{{"object":"embedding","index":{index},"embedding":{embedding}}}'
        for index, embedding in enumerate(encoded)
    )
    usage = f'{{"prompt_tokens":{prompt_tokens},"total_tokens":{prompt_tokens}}}'
    text = f'{{"object":"list","data":[{items}],"model":{json.dumps(model)},"usage":{usage}}}'
    return text.encode("utf-8")
