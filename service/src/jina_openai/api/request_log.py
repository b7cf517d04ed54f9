"""Outermost middleware: request id, one structured log line and metrics per request, and the
last line of defence that turns an unhandled exception into a 500 in the OpenAI envelope."""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jina_openai.api.auth import presented_key_fingerprint
from jina_openai.api.errors import server_error
from jina_openai.api.request_record import SCOPE_KEY, RequestRecord
from jina_openai.metrics import ServiceMetrics

logger = logging.getLogger("jina_openai.access")

REQUEST_ID_HEADER = b"x-request-id"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
EMBEDDINGS_ROUTE = "/v1/embeddings"
_QUIET_PATHS = frozenset({"/health", "/ready", "/metrics"})


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
        if record.path in _QUIET_PATHS and status in (200, 503):
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
