"""The shapes of what the API reads and writes: request and response bodies (pydantic models;
they also make the OpenAPI document), the OpenAPI details FastAPI cannot infer, and the record
of one request that the access log writes as one line.

`input` is parsed as any JSON value and checked by hand (`embeddings.normalize_input`), so that
every mistake gets a precise message naming the offending item instead of pydantic's union
report; its OpenAPI schema is declared explicitly below.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, WithJsonSchema
from starlette.types import Scope

_TEXT = {"type": "string", "minLength": 1}
_TOKEN_IDS = {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 0}}
INPUT_JSON_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {**_TEXT, "title": "One text"},
        {"type": "array", "minItems": 1, "items": _TEXT, "title": "Texts"},
        {**_TOKEN_IDS, "title": "One input as token ids"},
        {"type": "array", "minItems": 1, "items": _TOKEN_IDS, "title": "Inputs as token ids"},
    ],
    "title": "Input",
    "description": "Text(s) or token id array(s) to embed. Empty strings and arrays are invalid. "
    "Token ids are content tokens: the model's special tokens are added by the server.",
}


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", title="EmbeddingRequest")

    input: Annotated[Any, WithJsonSchema(INPUT_JSON_SCHEMA)]
    model: StrictStr | None = Field(
        default=None,
        description="The served model id or one of its aliases; omitted = the served model.",
    )
    encoding_format: Literal["float", "base64"] = Field(
        default="float", description="base64: little-endian float32 bytes, base64-encoded."
    )
    dimensions: Annotated[StrictInt, Field(ge=1)] | None = Field(
        default=None,
        description="Keep the first N dimensions and re-normalise. Only Matryoshka-trained "
        "models keep their quality when truncated.",
    )
    user: StrictStr | None = Field(default=None, description="Accepted and ignored.")


class EmbeddingItem(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class Usage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingItem]
    model: str
    usage: Usage


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    # Extensions beyond OpenAI's card (clients ignore unknown fields): what Roo Code's
    # "model dimension" setting must be, and the longest input before truncation.
    dimension: int
    max_input_tokens: int


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(BaseModel):
    error: ErrorDetail


class HealthStatus(BaseModel):
    status: Literal["ok"] = "ok"


class ReadyStatus(BaseModel):
    status: Literal["ready"] = "ready"
    model: str


class DtypeChoiceInfo(BaseModel):
    configured: str = Field(description="The dtype setting: auto or an explicit dtype.")
    reason: str = Field(description="Why this dtype, with the self-check's figures.")
    native_bf16: list[str] = Field(description="The CPU's native bfloat16 flags.")
    float32_inputs_per_cpu_s: float | None
    bfloat16_inputs_per_cpu_s: float | None
    min_cosine: float | None = Field(description="Self-check: bfloat16 vs float32 vectors.")


class ModelInfo(BaseModel):
    id: str
    aliases: list[str]
    architecture: str
    dimension: int
    max_input_tokens: int
    parameter_count: int
    device: str
    dtype: str
    dtype_choice: DtypeChoiceInfo
    model_dir: str


class LimitsInfo(BaseModel):
    max_body_bytes: int
    max_inputs_per_request: int
    max_input_tokens: int
    truncate_inputs: bool
    max_batch_tokens: int
    max_batch_inputs: int
    max_queued_tokens: int
    max_queued_requests: int
    max_queue_wait_s: float
    max_request_tokens: int
    max_held_bytes: int | None
    request_timeout_s: float
    batch_timeout_s: float
    header_timeout_s: float
    body_timeout_s: float
    max_connections: int


class CacheInfo(BaseModel):
    memory_mb: float = Field(description="Capacity of the in-memory tier; 0: off.")
    disk_path: str | None = Field(description="The persistent tier's sqlite file; null: off.")
    disk_mb: float | None = Field(description="Its size cap.")
    identity: str | None = Field(description="sha256 of model files, dtype and truncation.")


class ServiceInfo(BaseModel):
    model: ModelInfo
    limits: LimitsInfo
    cache: CacheInfo
    auth: Literal["api_key", "open"]
    torch_threads: int
    tokenizer_threads: int
    measured_tokens_per_s: float
    versions: dict[str, str]


# --- OpenAPI details FastAPI cannot infer: the hand-parsed request body and error responses.

_ERROR_DESCRIPTIONS = {
    400: "Invalid request (bad JSON, wrong types, empty input, unknown token ids...)",
    401: "Missing or incorrect API key",
    404: "Unknown model or route",
    405: "Method not allowed",
    408: "The request body did not arrive within body_timeout_s",
    413: "Request body or token count too large",
    415: "Content-Type is not JSON",
    429: "Server at capacity; retry after the Retry-After header's seconds",
    500: "Server error",
    503: "Model loading, failed, shutting down, or the request passed its deadline",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        status: {"model": ErrorResponse, "description": _ERROR_DESCRIPTIONS[status]}
        for status in statuses
    }


EMBEDDING_REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/EmbeddingRequest"}}
        },
    }
}


def install_openapi(app: FastAPI) -> None:
    """Add the request schema of the hand-parsed embeddings body to the generated document."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            schemas["EmbeddingRequest"] = EmbeddingRequest.model_json_schema(
                ref_template="#/components/schemas/{model}"
            )
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


# --- What one request did: filled in along the way, logged once at the end (middleware.py).

SCOPE_KEY = "jina_openai.request_record"


@dataclass
class RequestRecord:
    request_id: str = ""
    method: str = ""
    path: str = ""
    client: str | None = None
    key: str | None = None  # fingerprint of the API key presented (middleware.key_fingerprint)
    status: int = 0
    error_code: str | None = None
    reason: str | None = None  # of a 429: the bound that refused it (QueueFullError.reason)
    model: str | None = None
    requested_model: str | None = None  # a model id this server does not serve (404)
    inputs: int | None = None
    tokens: int | None = None
    truncated_inputs: int | None = None
    cached_inputs: int | None = None  # answered from the embedding cache
    tokenize_ms: float | None = None
    queue_ms: float | None = None
    inference_ms: float | None = None
    dropped_inputs: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def get_record(scope: Scope) -> RequestRecord:
    """The request's record (created on first use when no middleware made one)."""
    record = scope.get(SCOPE_KEY)
    if not isinstance(record, RequestRecord):
        record = RequestRecord()
        scope[SCOPE_KEY] = record
    return record
