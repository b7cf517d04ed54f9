"""What one request did, filled in along the way and logged once at the end."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.types import Scope

SCOPE_KEY = "jina_openai.request_record"


@dataclass
class RequestRecord:
    request_id: str = ""
    method: str = ""
    path: str = ""
    client: str | None = None
    key: str | None = None  # fingerprint of the API key presented (auth.key_fingerprint)
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
