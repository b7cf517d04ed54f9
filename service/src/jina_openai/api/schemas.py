"""Request and response bodies of the API (pydantic models; they also make the OpenAPI schema).

`input` is parsed as any JSON value and checked by `input_validation.py`, so that every
mistake gets a precise message naming the offending item instead of pydantic's union report;
its OpenAPI schema is declared explicitly below.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, WithJsonSchema

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
