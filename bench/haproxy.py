"""HAProxy in front of loopback services, for the benchmarks and demos (`make scale-out`,
`make dashboard`): a plain-HTTP cut of roles/stack_proxy's haproxy.cfg and Debian's binary run
in its own session.

The cut keeps what decides where requests go and how long they may take: `balance`, the
`/ready` (`/readyz`) checks, `maxconn` per server, the timeouts, `retries` with `retry-on` and
`redispatch`, `option forwardfor`, HAProxy's Prometheus endpoint and stats page - the values
from roles/stack_proxy/defaults/main.yml. It leaves out TLS, the chroot and user switch, and
syslog: everything binds 127.0.0.1. The binary is Debian 12's package unpacked under
build/haproxy (tests/unit/stack_proxy/haproxy_binary.py, tools/debian-binary.sh), never
installed.
"""

from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
ROLE_DEFAULTS = REPO_ROOT / "roles/stack_proxy/defaults/main.yml"
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class Server:
    name: str
    port: int  # on 127.0.0.1
    maxconn: int


@dataclass(frozen=True)
class Backend:
    """One frontend on 127.0.0.1:`port` and its backend of the same name."""

    name: str
    port: int
    check_path: str  # /ready (embeddings), /readyz (Qdrant)
    servers: tuple[Server, ...]


def role_defaults() -> dict[str, Any]:
    return dict(yaml.safe_load(ROLE_DEFAULTS.read_text()))


def embeddings_maxconn(settings: dict[str, str], role: dict[str, Any] | None = None) -> int:
    """A server's maxconn as roles/stack_proxy's template derives it for an embeddings host:
    stack_proxy_embeddings_maxconn when > 0, else that host's queue, workers x
    max_queued_requests, at most workers x max_connections (`settings`: the host's
    JINA_OPENAI_* environment; the service's defaults where it has none)."""
    role = role_defaults() if role is None else role
    fixed = int(role["stack_proxy_embeddings_maxconn"])
    if fixed > 0:
        return fixed
    workers = int(settings.get("JINA_OPENAI_WORKERS", "1"))
    queued = int(settings.get("JINA_OPENAI_MAX_QUEUED_REQUESTS", "1024"))
    connections = int(settings.get("JINA_OPENAI_MAX_CONNECTIONS", "1024"))
    return min(workers * queued, workers * connections)


def haproxy_config(
    backends: Sequence[Backend],
    *,
    stats_port: int | None,
    check_inter_s: int = 2,
    role: dict[str, Any] | None = None,
) -> str:
    """haproxy.cfg for `backends`; `check_inter_s` replaces the role's check interval (short
    loads want a server's state within seconds)."""
    r = role_defaults() if role is None else role
    lines = [
        "global",
        f"    maxconn {r['stack_proxy_maxconn']}",
        "defaults",
        "    mode http",
        "    option http-keep-alive",
        "    option forwardfor",
        f"    timeout connect {r['stack_proxy_timeout_connect_s']}s",
        f"    timeout client {r['stack_proxy_timeout_client_s']}s",
        f"    timeout server {r['stack_proxy_timeout_server_s']}s",
        f"    timeout http-request {r['stack_proxy_timeout_http_request_s']}s",
        f"    timeout http-keep-alive {r['stack_proxy_timeout_http_keep_alive_s']}s",
        f"    timeout queue {r['stack_proxy_timeout_queue_s']}s",
        f"    timeout check {r['stack_proxy_timeout_connect_s']}s",
        f"    retries {r['stack_proxy_retries']}",
        "    retry-on conn-failure empty-response",
        "    option redispatch 1",
    ]
    for backend in backends:
        lines += [
            f"frontend {backend.name}",
            f"    bind 127.0.0.1:{backend.port}",
            "    http-request del-header X-Forwarded-For",
            f"    default_backend {backend.name}",
            f"backend {backend.name}",
            f"    balance {r['stack_proxy_balance']}",
            "    option httpchk",
            f"    http-check send meth GET uri {backend.check_path} ver HTTP/1.1"
            " hdr Host localhost",
            "    http-check expect status 200",
            f"    default-server check inter {check_inter_s}s"
            f" fall {r['stack_proxy_check_fall']} rise {r['stack_proxy_check_rise']}",
        ]
        lines += [
            f"    server {server.name} 127.0.0.1:{server.port} maxconn {server.maxconn}"
            for server in backend.servers
        ]
    if stats_port is not None:
        lines += [
            "frontend stats",
            f"    bind 127.0.0.1:{stats_port}",
            "    no log",
            "    http-request use-service prometheus-exporter if { path /metrics }",
            "    stats enable",
            "    stats uri /stats",
        ]
    return "\n".join(lines) + "\n"


def haproxy_env(binary: Path) -> dict[str, str]:
    """The environment for the unpacked binary: the libraries unpacked beside it
    (build/haproxy/root/usr/sbin/haproxy -> build/haproxy/root/usr/lib/x86_64-linux-gnu)."""
    libs = binary.parents[2] / "usr/lib/x86_64-linux-gnu"
    return os.environ | {"LD_LIBRARY_PATH": str(libs)}


@contextmanager
def run_haproxy(binary: Path, config: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """HAProxy in the foreground (-db), in its own session, until the block ends: SIGTERM,
    then SIGKILL of that session only."""
    output = log.open("ab")
    child = subprocess.Popen(
        [str(binary), "-db", "-f", str(config)],
        env=haproxy_env(binary),
        stdout=output,
        stderr=output,
        start_new_session=True,
    )
    try:
        yield child
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGTERM)
            try:
                child.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait(10)
        output.close()


def parse_stats_csv(text: str) -> list[dict[str, str]]:
    """HAProxy's `/stats;csv`: one dict per proxy and server row (pxname, svname, status,
    check_status, stot, hrsp_2xx, ...)."""
    return list(csv.DictReader(io.StringIO(text.removeprefix("# "))))


def server_rows(rows: list[dict[str, str]], backend: str) -> dict[str, dict[str, str]]:
    """The server rows of `backend` by server name (not its FRONTEND/BACKEND summary rows)."""
    return {
        row["svname"]: row
        for row in rows
        if row.get("pxname") == backend and row.get("svname") not in ("FRONTEND", "BACKEND")
    }


def all_up(rows: list[dict[str, str]], backend: str, names: Sequence[str]) -> bool:
    """Every server in `names` is UP and its last check passed (L7OK)."""
    servers = server_rows(rows, backend)
    return all(
        name in servers
        and servers[name].get("status", "").startswith("UP")
        and servers[name].get("check_status") == "L7OK"
        for name in names
    )


def stats(stats_port: int) -> list[dict[str, str]]:
    response = httpx.get(f"http://127.0.0.1:{stats_port}/stats;csv", timeout=5)
    response.raise_for_status()
    return parse_stats_csv(response.text)


def wait_up(
    child: subprocess.Popen[bytes], stats_port: int, backend: str, names: Sequence[str]
) -> None:
    """Until HAProxy has checked every server of `backend` in `names` and found it UP."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise RuntimeError(f"haproxy exited with status {child.returncode}")
        try:
            if all_up(stats(stats_port), backend, names):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"haproxy did not see {', '.join(names)} UP within {READY_TIMEOUT_S:.0f} s")
