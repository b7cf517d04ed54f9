"""Engine errors -> API errors (status, envelope, Retry-After)."""

from __future__ import annotations

from jina_openai.api.errors import OVERLOADED, SERVER_ERROR, ApiError
from jina_openai.engine.errors import (
    EngineError,
    EngineNotReadyError,
    InferenceFailedError,
    InvalidInputError,
    QueueFullError,
    RequestTooLargeError,
)


def api_error_from(exc: EngineError) -> ApiError:
    if isinstance(exc, InvalidInputError):
        return ApiError(400, str(exc), param=exc.param, code=exc.code)
    if isinstance(exc, QueueFullError):
        return ApiError(
            429,
            str(exc),
            type=OVERLOADED,
            code="server_overloaded",
            headers={"Retry-After": str(exc.retry_after_s)},
        )
    if isinstance(exc, RequestTooLargeError):
        return ApiError(413, str(exc), param="input", code="too_many_tokens")
    if isinstance(exc, EngineNotReadyError):
        headers = {"Retry-After": str(exc.retry_after_s)} if exc.retry_after_s else {}
        return ApiError(503, str(exc), type=SERVER_ERROR, code="model_not_ready", headers=headers)
    if isinstance(exc, InferenceFailedError):
        return ApiError(500, str(exc), type=SERVER_ERROR, code="inference_failed")
    return ApiError(500, str(exc), type=SERVER_ERROR, code="internal_error")
