"""Reading a request body with a size limit and a deadline, straight from ASGI `receive`.

The embeddings route calls this only after admission (engine.admit) has accepted the request, so
a full server answers 429 without reading a byte of the body. The declared Content-Length is
checked before reading (413 at once), the running total while reading (413 as soon as it is
exceeded), and the whole body must arrive within `timeout_s` (408), so a client that trickles
its upload cannot hold a request slot and its memory for long. A client that disconnects
mid-upload is ClientDisconnectedError (logged as 499), not a server error.
"""

from __future__ import annotations

import asyncio

from starlette.types import Receive, Scope

from jina_openai.api.errors import ApiError
from jina_openai.engine.errors import ClientDisconnectedError


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
