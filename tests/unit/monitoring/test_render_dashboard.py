"""tools/render_dashboard.py runs exactly the dashboard's queries (variables replaced) against
a Prometheus HTTP API and draws them; here against a stub API on loopback."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tools import render_dashboard

from .known_series import ROOT

DASHBOARD = ROOT / "roles/monitoring/files/dashboards/jina-stack.json"


class StubPrometheus(BaseHTTPRequestHandler):
    queries: list[str] = []  # noqa: RUF012 (one server per test, reset by the fixture)

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        params = urllib.parse.parse_qs(url.query)
        assert url.path == "/api/v1/query_range"
        self.queries.append(params["query"][0])
        start, end = float(params["start"][0]), float(params["end"][0])
        values = [[start + k * (end - start) / 4, str(k)] for k in range(5)]
        values.append([end, "+Inf"])  # MemoryMax=infinity: dropped, not drawn
        result = [
            {"metric": {"instance": "h1", "shape": "index", "dtype": "bfloat16"}, "values": values}
        ]
        body = json.dumps({"status": "success", "data": {"resultType": "matrix", "result": result}})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def prometheus() -> Iterator[str]:
    StubPrometheus.queries = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), StubPrometheus)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_substitute_replaces_grafanas_variables() -> None:
    variables = {"instance": ".*", "__rate_interval": "10s", "__interval": "2s"}
    expr = 'rate(x{instance=~"$instance"}[$__rate_interval]) + y{i="${instance}"}[$__interval]'
    assert render_dashboard.substitute(expr, variables) == (
        'rate(x{instance=~".*"}[10s]) + y{i=".*"}[2s]'
    )


def test_legend_follows_legend_format() -> None:
    labels = {"__name__": "m", "instance": "h1", "status": "429"}
    assert render_dashboard.legend("{{instance}} {{ status }}", labels) == "h1 429"
    assert render_dashboard.legend("", labels) == 'm{instance="h1", status="429"}'


def test_renders_every_query_of_the_dashboard(prometheus: str, tmp_path: Path) -> None:
    board = json.loads(DASHBOARD.read_text())
    out = tmp_path / "dashboard.png"
    render_dashboard.render(board, prometheus, (1_000_000.0, 1_000_600.0, 5.0), "30s", out)
    expected = [
        render_dashboard.substitute(
            target["expr"], {"instance": ".*", "__rate_interval": "30s", "__interval": "5s"}
        )
        for panel in board["panels"]
        for target in panel.get("targets", [])
    ]
    assert StubPrometheus.queries == expected
    assert not any("$" in query for query in StubPrometheus.queries)
    assert out.read_bytes().startswith(b"\x89PNG")
    assert out.stat().st_size > 50_000
