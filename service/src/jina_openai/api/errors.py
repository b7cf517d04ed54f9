"""Every error leaves the service in the OpenAI envelope:
`{"error": {"message", "type", "param", "code"}}`, with a meaningful HTTP status.

FastAPI's own 422 validation body never reaches a client: its handler is replaced here. The
engine's refusals and failures (EngineError) are mapped onto statuses in one handler, so routes
just let them propagate.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import Send

from jina_openai.api.schemas import get_record
from jina_openai.engine.errors import (
    ClientDisconnectedError,
    DeadlineExceededError,
    EngineError,
    EngineNotReadyError,
    InferenceFailedError,
    InvalidInputError,
    QueueFullError,
    RequestTooLargeError,
)

INVALID_REQUEST = "invalid_request_error"
SERVER_ERROR = "server_error"
OVERLOADED = "rate_limit_error"
# nginx's "client closed request": what is logged (and counted) for a client that left.
STATUS_CLIENT_CLOSED = 499


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = INVALID_REQUEST,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = dict(headers or {})

    def body(self) -> bytes:
        return error_body(self.message, type=self.type, param=self.param, code=self.code)

    def response(self) -> Response:
        return Response(
            self.body(),
            status_code=self.status,
            headers=self.headers,
            media_type="application/json",
        )

    async def send(self, send: Send) -> None:
        """Send this error from a pure ASGI middleware."""
        headers = [(b"content-type", b"application/json")]
        headers += [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in self.headers.items()
        ]
        body = self.body()
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def error_body(message: str, *, type: str, param: str | None, code: str | None) -> bytes:
    payload = {"error": {"message": message, "type": type, "param": param, "code": code}}
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


def server_error(
    message: str = "The server had an error while processing your request.",
) -> ApiError:
    return ApiError(500, message, type=SERVER_ERROR, code="internal_error")


def api_error_from(exc: EngineError) -> ApiError:
    """Engine errors -> API errors (status, envelope, Retry-After)."""
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
        return ApiError(413, str(exc), param="input", code=exc.code)
    if isinstance(exc, EngineNotReadyError):
        headers = {"Retry-After": str(exc.retry_after_s)} if exc.retry_after_s else {}
        return ApiError(503, str(exc), type=SERVER_ERROR, code="model_not_ready", headers=headers)
    if isinstance(exc, DeadlineExceededError):
        return ApiError(
            503,
            str(exc),
            type=SERVER_ERROR,
            code="request_timeout",
            headers={"Retry-After": str(exc.retry_after_s)},
        )
    if isinstance(exc, InferenceFailedError):
        return ApiError(500, str(exc), type=SERVER_ERROR, code="inference_failed")
    return ApiError(500, str(exc), type=SERVER_ERROR, code="internal_error")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)  # type: ignore[arg-type]
    app.add_exception_handler(EngineError, _engine_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]


def respond(request: Request, error: ApiError) -> Response:
    get_record(request.scope).error_code = error.code or f"http_{error.status}"
    return error.response()


async def _api_error(request: Request, exc: ApiError) -> Response:
    return respond(request, exc)


async def _engine_error(request: Request, exc: EngineError) -> Response:
    record = get_record(request.scope)
    if isinstance(exc, DeadlineExceededError | ClientDisconnectedError):
        record.dropped_inputs = exc.dropped_inputs or None
    if isinstance(exc, QueueFullError):
        record.reason = exc.reason
    if isinstance(exc, ClientDisconnectedError):
        # Nobody reads this response; it makes the log line and the metrics say 499.
        record.error_code = "client_disconnected"
        return Response(status_code=STATUS_CLIENT_CLOSED)
    return respond(request, api_error_from(exc))


async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
    first = exc.errors()[0] if exc.errors() else {}
    location = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path")]
    param = location[0] if location else None
    message = first.get("msg", "invalid request")
    return respond(
        request,
        ApiError(400, f"Invalid value for '{param}': {message}", param=param, code="invalid_value"),
    )


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    headers = dict(exc.headers or {})
    if exc.status_code == 404:
        error = ApiError(
            404,
            f"Invalid URL ({request.method} {request.url.path})",
            code="not_found",
            headers=headers,
        )
    elif exc.status_code == 405:
        error = ApiError(
            405,
            f"Method {request.method} is not allowed for {request.url.path}",
            code="method_not_allowed",
            headers=headers,
        )
    else:
        kind = SERVER_ERROR if exc.status_code >= 500 else INVALID_REQUEST
        error = ApiError(
            exc.status_code,
            str(exc.detail),
            type=kind,
            code=f"http_{exc.status_code}",
            headers=headers,
        )
    return respond(request, error)
