"""The HTTP server's own bounds on a real `jina-openai serve` process: header timeout, connection
limit, the open-files limit, X-Forwarded-For trust (jina_openai/http_server.py)."""

from __future__ import annotations

import json
import logging
import resource
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from jina_openai.http_server import effective_max_connections
from jina_openai.logging_config import RepeatLimitFilter

from .conftest import ServerProcess, free_port, server_process

HEADER_TIMEOUT_S = 1.0


def serve_args(model_dir: Path, port: int, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "jina_openai.cli",
        "serve",
        "--model",
        str(model_dir),
        "--port",
        str(port),
        "--torch-threads",
        "1",
        "--no-warmup",
        *extra,
    ]


@pytest.fixture(scope="module")
def bounded_server(
    tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    port = free_port()
    args = serve_args(
        tiny_model_dir,
        port,
        "--header-timeout-s",
        str(HEADER_TIMEOUT_S),
        "--max-connections",
        "6",
    )
    log_path = tmp_path_factory.mktemp("bounded") / "log"
    with server_process(args, env={}, port=port, log_path=log_path) as server:
        yield server


def connect(server: ServerProcess) -> socket.socket:
    host, port = server.base_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def closed_within(sock: socket.socket, seconds: float) -> bytes | None:
    """What the server sent before closing the connection, or None if it is still open."""
    sock.settimeout(0.2)
    received = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk
    return None


def logged_request(server: ServerProcess, request_id: str) -> dict[str, object]:
    """The service's log line of a request (written just after its response: wait for it)."""
    deadline = time.monotonic() + 10
    while True:
        for line in server.log().splitlines():
            if '"event": "request"' in line and f'"request_id": "{request_id}"' in line:
                return dict(json.loads(line))
        assert time.monotonic() < deadline, f"{request_id} not logged:\n{server.log()}"
        time.sleep(0.05)


def test_idle_and_half_sent_connections_are_closed_after_the_header_timeout(
    bounded_server: ServerProcess,
) -> None:
    idle = connect(bounded_server)
    partial = connect(bounded_server)
    partial.sendall(b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Le")
    assert closed_within(idle, 10 * HEADER_TIMEOUT_S) is not None
    assert closed_within(partial, 10 * HEADER_TIMEOUT_S) is not None
    idle.close()
    partial.close()
    # A slowloris trickling one byte at a time is closed too: the deadline is for the headers.
    slow = connect(bounded_server)
    closed = None
    for byte in b"GET /health HTTP/1.1\r\nHost: x\r\n":
        try:
            slow.sendall(bytes([byte]))
        except OSError:
            closed = b""
            break
        closed = closed_within(slow, HEADER_TIMEOUT_S / 4)
        if closed is not None:
            break
    assert closed is not None
    slow.close()
    assert httpx.get(f"{bounded_server.base_url}/health", timeout=10).status_code == 200


def test_keep_alive_requests_are_not_cut_by_the_header_timeout(
    bounded_server: ServerProcess,
) -> None:
    with httpx.Client(base_url=bounded_server.base_url, timeout=10) as client:
        for _ in range(3):
            response = client.post("/v1/embeddings", json={"input": ["def f(): pass"]})
            assert response.status_code == 200


def test_at_the_limit_a_new_connection_takes_the_place_of_the_longest_idle_one(
    bounded_server: ServerProcess,
) -> None:
    idle = [connect(bounded_server) for _ in range(6)]  # the limit: 6
    try:
        time.sleep(0.2)
        response = httpx.get(f"{bounded_server.base_url}/health", timeout=10)
        assert response.status_code == 200  # served, not locked out by idle sockets
        assert closed_within(idle[0], 5) == b""  # the oldest idle one made room, unanswered
    finally:
        for sock in idle:
            sock.close()


def test_when_every_connection_has_a_request_in_flight_a_new_one_gets_503(
    bounded_server: ServerProcess,
) -> None:
    busy = [connect(bounded_server) for _ in range(6)]
    try:
        for sock in busy:  # headers complete, body still coming: requests in flight
            sock.sendall(
                b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
            )
        time.sleep(0.3)
        extra = connect(bounded_server)
        answer = closed_within(extra, 5)
        extra.close()
        assert answer is not None
        assert answer.startswith(b"HTTP/1.1 503")
        assert b"too_many_connections" in answer
    finally:
        for sock in busy:
            sock.close()
    time.sleep(0.2)
    assert httpx.get(f"{bounded_server.base_url}/health", timeout=10).status_code == 200


def test_x_forwarded_for_is_ignored_unless_from_a_trusted_proxy(
    bounded_server: ServerProcess, tiny_model_dir: Path, tmp_path: Path
) -> None:
    spoof = {"X-Forwarded-For": "203.0.113.66", "X-Request-ID": "spoofed-1"}
    response = httpx.post(
        f"{bounded_server.base_url}/v1/embeddings", json={"input": ["x"]}, headers=spoof
    )
    assert response.status_code == 200
    assert logged_request(bounded_server, "spoofed-1")["client"] == "127.0.0.1"

    port = free_port()
    args = serve_args(tiny_model_dir, port, "--trusted-proxy", "127.0.0.1")
    with server_process(args, env={}, port=port, log_path=tmp_path / "log") as proxied:
        spoof["X-Request-ID"] = "proxied-1"
        httpx.post(f"{proxied.base_url}/v1/embeddings", json={"input": ["x"]}, headers=spoof)
        assert logged_request(proxied, "proxied-1")["client"] == "203.0.113.66"


def test_a_low_open_files_limit_lowers_the_connection_limit_and_floods_no_log(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (192, 192))

    port = free_port()
    args = serve_args(tiny_model_dir, port)
    with server_process(
        args, env={}, port=port, log_path=tmp_path / "log", preexec_fn=low_limit
    ) as server:
        assert "max_connections 1024 lowered to 64" in server.log()
        # More idle sockets than the 192 descriptors the process may open.
        held = [connect(server) for _ in range(150)]
        try:
            time.sleep(0.3)
            assert httpx.get(f"{server.base_url}/health", timeout=10).status_code == 200
            closed = sum(closed_within(sock, 0.3) is not None for sock in held[:90])
            assert closed >= 150 - 64 - 8  # the oldest made room; a few may still be queued
        finally:
            for sock in held:
                sock.close()
        assert "out of system resource" not in server.log()


def test_effective_max_connections_fits_the_open_files_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(resource, "getrlimit", lambda _: (1024, 4096))
    assert effective_max_connections(2000) == 1024 - 128
    assert effective_max_connections(100) == 100
    monkeypatch.setattr(resource, "getrlimit", lambda _: (100, 100))
    assert effective_max_connections(100) == 1


def test_repeated_accept_errors_are_logged_once_per_interval() -> None:
    now = [0.0]
    limiter = RepeatLimitFilter("socket.accept()", interval_s=60, clock=lambda: now[0])

    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord("asyncio", logging.ERROR, __file__, 1, message, None, None)

    message = "socket.accept() out of system resource"
    assert limiter.filter(record(message))
    assert not any(limiter.filter(record(message)) for _ in range(1000))
    assert limiter.filter(record("something else"))
    now[0] = 61.0
    later = record(message)
    assert limiter.filter(later)
    assert "1000 more" in later.getMessage()
