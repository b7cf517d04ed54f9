"""The two middlewares every request passes, outermost first, and what they read of a request.

- RequestLogMiddleware: the request id, one structured access-log line and the metrics per
  request, and the last line of defence that turns an unhandled exception into a 500 in the
  OpenAI envelope.
- ApiKeyMiddleware: the API-key check for every route except the open health endpoints. Keys
  come as `Authorization: Bearer KEY` (OpenAI SDKs) or `api-key: KEY` (Azure-style; Roo Code
  sends both). Comparison is constant-time against every configured key. With no key
  configured the middleware is not installed at all (the app warns loudly at startup).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jina_openai.api.errors import ApiError, server_error
from jina_openai.api.schemas import SCOPE_KEY, RequestRecord, get_record
from jina_openai.metrics import ServiceMetrics

logger = logging.getLogger("jina_openai.access")

HEALTH_PATHS = frozenset({"/health", "/ready", "/metrics"})
REQUEST_ID_HEADER = b"x-request-id"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
EMBEDDINGS_ROUTE = "/v1/embeddings"


class RequestLogMiddleware:
    def __init__(self, app: ASGIApp, *, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        record = RequestRecord(
            request_id=_request_id(scope),
            method=scope.get("method", ""),
            path=scope.get("path", ""),
            client=scope["client"][0] if scope.get("client") else None,
            key=presented_key_fingerprint(scope),
        )
        scope[SCOPE_KEY] = record
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                if not record.status:
                    record.status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER, record.request_id.encode("ascii")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            logger.exception("unhandled error in %s %s", record.method, record.path)
            error = server_error()
            record.error_code = error.code
            record.status = 500
            if not response_started:
                await error.send(send_with_id)
        finally:
            self._finish(scope, record, time.perf_counter() - started)

    def _finish(self, scope: Scope, record: RequestRecord, seconds: float) -> None:
        status = record.status or 500
        route = getattr(scope.get("route"), "path", None) or "other"
        self.metrics.request_finished(route=route, status=status, seconds=seconds)
        if route == EMBEDDINGS_ROUTE and status == 200 and record.inputs:
            self.metrics.embedding_request_answered(inputs=record.inputs, seconds=seconds)
        if record.error_code and status >= 400:
            self.metrics.request_rejected(record.error_code)
        fields: dict[str, Any] = {
            "event": "request",
            "request_id": record.request_id,
            "method": record.method,
            "path": record.path,
            "status": status,
            "total_ms": round(seconds * 1000, 2),
            "client": record.client,
        }
        for name in (
            "key",
            "model",
            "requested_model",
            "inputs",
            "tokens",
            "truncated_inputs",
            "cached_inputs",
            "tokenize_ms",
            "queue_ms",
            "inference_ms",
            "dropped_inputs",
            "error_code",
            "reason",
        ):
            value = getattr(record, name)
            if value is not None:
                fields[name] = round(value, 2) if isinstance(value, float) else value
        fields.update(record.extra)
        if record.path in HEALTH_PATHS and status in (200, 503):
            level = logging.DEBUG  # probes and scrapes: not worth a line each
        elif status >= 500 and status != 503:
            level = logging.ERROR
        else:
            level = logging.INFO
        logger.log(level, "%s %s %d", record.method, record.path, status, extra={"fields": fields})


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == REQUEST_ID_HEADER:
            candidate = value.decode("latin-1")
            if _VALID_REQUEST_ID.match(candidate):
                return candidate
            break
    return uuid.uuid4().hex


class ApiKeyMiddleware:
    def __init__(self, app: ASGIApp, *, keys: list[str], open_paths: frozenset[str]) -> None:
        if not keys:
            raise ValueError("ApiKeyMiddleware needs at least one key")
        self.app = app
        self._keys = [key.encode("utf-8") for key in keys]
        self._open_paths = open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self._open_paths:
            await self.app(scope, receive, send)
            return
        presented = presented_keys(scope)
        if not presented:
            error = ApiError(
                401,
                "You didn't provide an API key. Send it as 'Authorization: Bearer YOUR_KEY' "
                "(or an 'api-key' header).",
                code="missing_api_key",
                headers={"WWW-Authenticate": "Bearer"},
            )
        elif not self._accepted(presented):
            error = ApiError(
                401,
                "Incorrect API key provided.",
                code="invalid_api_key",
                headers={"WWW-Authenticate": "Bearer"},
            )
        else:
            await self.app(scope, receive, send)
            return
        get_record(scope).error_code = error.code
        await error.send(send)

    def _accepted(self, presented: list[bytes]) -> bool:
        accepted = False
        for candidate in presented:
            for key in self._keys:
                accepted |= hmac.compare_digest(candidate, key)
        return accepted


def presented_keys(scope: Scope) -> list[bytes]:
    """The keys a request presents (Bearer token, api-key header), unchecked."""
    keys: list[bytes] = []
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, token = value.strip().partition(b" ")
            if scheme.lower() == b"bearer" and token.strip():
                keys.append(token.strip())
        elif name == b"api-key" and value.strip():
            keys.append(value.strip())
    return keys


def key_fingerprint(key: bytes) -> str:
    """What logs and `jina-stack doctor` show of a key: sha256, first 12 hex digits."""
    return hashlib.sha256(key).hexdigest()[:12]


def presented_key_fingerprint(scope: Scope) -> str | None:
    """The fingerprint of the first key a request presents, None when it presents none."""
    keys = presented_keys(scope)
    return key_fingerprint(keys[0]) if keys else None


def client_identity(scope: Scope) -> str:
    """Whose share of the service a request draws on (engine/batch_selection.py): its API key
    (a fingerprint, never the key) when it presents one, else its connection."""
    fingerprint = presented_key_fingerprint(scope)
    if fingerprint:
        return "key:" + fingerprint
    host, port = scope.get("client") or ("?", 0)
    return f"connection:{host}:{port}"
