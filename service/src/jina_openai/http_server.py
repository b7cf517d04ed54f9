"""The HTTP server's own bounds, which no ASGI app can enforce (it only sees complete headers).

uvicorn closes idle keep-alive connections, but a connection that never completes its request
line and headers (an idle socket, a slowloris trickling one header byte at a time) stays open
for ever, and nothing caps how many connections one worker holds. `BoundedH11Protocol`, uvicorn's
h11 protocol with two additions, fixes both:

- **header timeout**: a connection must deliver its request line and headers within
  `header_timeout_s` of opening, or of its previous response; otherwise it is closed.
- **connection limit**: at `max_connections` open connections, a new one takes the place of
  the connection that has waited longest for its next request's headers (idle sockets cannot
  lock clients out); when every connection has a request in flight, the new one is answered
  `503` and closed at once. Descriptors stay bounded either way. The limit is lowered to fit the
  process's open-files limit (RLIMIT_NOFILE) less FD_RESERVE, so accept() never runs out of
  descriptors; should it still (another process of the user), asyncio's "socket.accept() out
  of system resource" error is logged once per minute with a count, not thousands of times a
  second (logging_config.py).

X-Forwarded-For is believed only from `trusted_proxies` (uvicorn and gunicorn trust 127.0.0.1 by
default, and every ssh-tunnel client comes from loopback). Used by gunicorn through
`BoundedUvicornWorker` (gunicorn_conf.py) and by `jina-openai serve` (`uvicorn_options`).
"""

from __future__ import annotations

import asyncio
import logging
import resource
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn_worker import UvicornWorker

from jina_openai.settings import Settings

logger = logging.getLogger(__name__)

# Descriptors kept for everything but client connections: the listening sockets, model and
# tokenizer files, torch's and the tokenizer pool's, logging, gunicorn's pipes.
FD_RESERVE = 128
_BUSY_BODY = (
    b'{"error": {"message": "Too many open connections; retry later.", '
    b'"type": "server_error", "param": null, "code": "too_many_connections"}}'
)
_BUSY_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
    b"connection: close\r\nretry-after: 1\r\n"
    + b"content-length: %d\r\n\r\n" % len(_BUSY_BODY)
    + _BUSY_BODY
)


def effective_max_connections(configured: int, *, reserve: int = FD_RESERVE) -> int:
    """`configured`, lowered to what RLIMIT_NOFILE leaves after `reserve` (at least 1)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return configured
    fitting = max(1, soft - reserve)
    if fitting < configured:
        logger.warning(
            "max_connections %d lowered to %d: the open-files limit is %d (LimitNOFILE) and "
            "%d descriptors are kept for the process itself",
            configured,
            fitting,
            soft,
            reserve,
        )
        return fitting
    return configured


def bounded_protocol(*, header_timeout_s: float, max_connections: int) -> type[H11Protocol]:
    """uvicorn's h11 protocol class with these bounds (uvicorn's `http=` option)."""

    class BoundedH11Protocol(H11Protocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            if len(self.connections) >= max_connections and not self._evict_an_idle_one():
                self.transport = transport
                transport.write(_BUSY_RESPONSE)
                transport.close()
                return
            super().connection_made(transport)
            self._header_deadline: asyncio.TimerHandle | None = None
            self._waiting_since = 0.0
            self._cycle_seen = self.cycle
            self._arm_header_deadline()

        def _evict_an_idle_one(self) -> bool:
            """At the limit, close the connection that has waited longest for its next
            request's headers (idle, or a slowloris), so that a crowd of idle sockets cannot
            lock out clients with requests. False when every connection has one in flight."""
            waiting = [
                other
                for other in self.connections
                if isinstance(other, BoundedH11Protocol) and other._header_deadline is not None
            ]
            if not waiting:
                return False
            oldest = min(waiting, key=lambda other: other._waiting_since)
            oldest._disarm_header_deadline()
            oldest.transport.close()
            return True

        def connection_lost(self, exc: Exception | None) -> None:
            if self.flow is None:  # refused in connection_made: nothing was set up
                return
            self._disarm_header_deadline()
            super().connection_lost(exc)

        def handle_events(self) -> None:
            super().handle_events()
            if self.cycle is not self._cycle_seen:  # a request's headers are complete
                self._cycle_seen = self.cycle
                self._disarm_header_deadline()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            idle = self.cycle is None or self.cycle.response_complete  # no pipelined request
            if idle and not self.transport.is_closing():
                self._arm_header_deadline()  # the next request's headers are due in time

        def _arm_header_deadline(self) -> None:
            self._disarm_header_deadline()
            self._waiting_since = self.loop.time()
            self._header_deadline = self.loop.call_later(header_timeout_s, self._headers_late)

        def _disarm_header_deadline(self) -> None:
            if self._header_deadline is not None:
                self._header_deadline.cancel()
                self._header_deadline = None

        def _headers_late(self) -> None:
            self._header_deadline = None
            if not self.transport.is_closing():
                self.transport.close()

    return BoundedH11Protocol


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """uvicorn Config options for these settings: the bounded protocol and proxy trust."""
    return {
        "loop": "asyncio",
        "http": bounded_protocol(
            header_timeout_s=settings.header_timeout_s,
            max_connections=effective_max_connections(settings.max_connections),
        ),
        "proxy_headers": bool(settings.trusted_proxies),
        "forwarded_allow_ips": list(settings.trusted_proxies),
        "timeout_keep_alive": settings.keepalive,
    }


class BoundedUvicornWorker(UvicornWorker):
    """gunicorn's uvicorn worker with `uvicorn_options` (settings from the environment)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        settings = Settings()  # type: ignore[call-arg]  # model_dir comes from the environment
        self.CONFIG_KWARGS = {**UvicornWorker.CONFIG_KWARGS, **uvicorn_options(settings)}
        super().__init__(*args, **kwargs)
