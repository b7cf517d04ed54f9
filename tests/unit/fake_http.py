"""A fake HTTP server for unit tests: a handler class with JSON helpers, served on loopback.

    class Service(JsonHandler):
        def do_GET(self) -> None:
            self.send_json(200, {"status": "ready"})

    with serve(Service) as server:
        ... server.url ...

The server runs in a daemon thread on a free port and is shut down on leaving the block.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class JsonHandler(BaseHTTPRequestHandler):
    """A quiet request handler that answers JSON (or text) with its length."""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send_body(self, status: int, raw: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def send_json(self, status: int, body: object) -> None:
        self.send_body(status, json.dumps(body).encode(), "application/json")

    def send_text(self, status: int, text: str) -> None:
        self.send_body(status, text.encode(), "text/plain; charset=utf-8")

    def read_json(self) -> Any:
        """The request's JSON body (None when it has none)."""
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length)) if length else None


@dataclass(frozen=True)
class Served:
    server: ThreadingHTTPServer
    port: int
    url: str  # http://127.0.0.1:PORT


@contextlib.contextmanager
def serve(handler: type[BaseHTTPRequestHandler], quiet_errors: bool = False) -> Iterator[Served]:
    """HANDLER served on 127.0.0.1 at a free port while the block runs.

    quiet_errors: a client that gives up before the answer (a timeout test) is expected, so
    the broken pipe is not printed.
    """
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    if quiet_errors:
        server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        yield Served(server, port, f"http://127.0.0.1:{port}")
    finally:
        server.shutdown()
        server.server_close()
