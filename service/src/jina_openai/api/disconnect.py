"""Noticing that a client has gone: after its body is read, `receive()` returns only on
`http.disconnect` (the embeddings route races its work against this)."""

from __future__ import annotations

from starlette.types import Receive


async def wait_for_disconnect(receive: Receive) -> None:
    """Return when the server reports `http.disconnect` (call after the body has been read)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
