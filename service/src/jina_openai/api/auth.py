"""API-key check for every route except the open health endpoints.

Keys come as `Authorization: Bearer KEY` (OpenAI SDKs) or `api-key: KEY` (Azure-style; Roo Code
sends both). Comparison is constant-time against every configured key. With no key configured
the middleware is not installed at all (the app warns loudly at startup).
"""

from __future__ import annotations

import hashlib
import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from jina_openai.api.errors import ApiError
from jina_openai.api.request_record import get_record

HEALTH_PATHS = frozenset({"/health", "/ready", "/metrics"})


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
