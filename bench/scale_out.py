"""`make scale-out`: one embedding host vs two behind HAProxy, each host pinned to one core.

    python -m bench.scale_out --haproxy build/haproxy/root/usr/sbin/haproxy
                              [--workspaces 2] [--chunks 3500] [--model minilm|full-size|DIR]
                              [--dtype auto] [--cores 0,1] [--client-cores ""] [--out docs]

Two phases in one run, on fresh servers each: (a) ONE host pinned to the first of `--cores`,
(b) TWO hosts pinned to the first two, each behind the same HAProxy configuration
(bench/haproxy.py: a plain-HTTP cut of roles/stack_proxy's haproxy.cfg, leastconn, checks on
/ready, maxconn per server derived as the role derives it). A host is one service process tree
of ours (bench/servers.py: gunicorn as the unit runs it, 1 worker, torch threads 1, the
jina_embeddings role's default settings as bench/roo_load.py derives them) started under
`taskset --cpu-list N`: the process and everything it forks or spawns may only run on core N,
what `podman run --cpuset-cpus N` gives a container. Both phases get the same Roo-shaped index
load through the proxy: `--workspaces` Roo windows of `--chunks` chunks each (disjoint slices of
bench/corpus.py; bench/roo_client.py: batches of 60, 10 in flight, Roo's retries), all started at
once. Reported per phase: inputs/s, failed batches, 429s, 499s (requests abandoned after Roo's
300 s), requests and CPU per host, the cores each host's threads may use (read back), the
client's and HAProxy's CPU; and the ratio of the two throughputs against issue 17's 1.7x.

Writes OUT/NAME.json and OUT/NAME.md (bench/scale_out_report.py), logs in OUT/logs/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack, suppress
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench import haproxy
from bench.corpus import code_chunks
from bench.roo_client import (
    BATCH_SEGMENT_THRESHOLD,
    PATIENCE_S,
    GlobalRateLimit,
    RealClock,
    RooEmbedder,
    WorkspaceResult,
    index_workspace,
    make_openai_client,
    no_upsert,
)
from bench.roo_load import (
    Workspace,
    log_statuses,
    memtotal_mb,
    model_settings,
    resolve_model,
    role_settings,
    scrape_statuses,
)
from bench.scale_out_report import write_report
from bench.servers import API_KEY, RunningServer, free_port, serve
from bench.torture_probe import LogCursor

MODEL_ID = "bench"  # bench/servers.py's JINA_OPENAI_MODEL_ID
BACKEND = "embeddings"
PHASES = (1, 2)  # hosts per phase: (a) one, (b) two


def host_settings(args: argparse.Namespace) -> dict[str, str]:
    """One host's environment: the role's defaults, 1 worker, what `make roo-load` sets for
    the model (the full-size architecture's input cut), the dtype asked for, then `--set`.
    The same in both phases (the cache file is added per host)."""
    return {
        **role_settings(memtotal_mb()),
        "JINA_OPENAI_WORKERS": "1",
        **model_settings(args.model),
        "JINA_OPENAI_DTYPE": args.dtype,
        "MALLOC_ARENA_MAX": "2",  # what the role's unit sets
        **dict(item.split("=", 1) for item in args.set),
    }


def steady_inputs_per_s(
    done: Sequence[tuple[float, int]], low: float = 0.1, high: float = 0.9
) -> float | None:
    """Inputs/s between the moments `low` and `high` of all inputs were done (`done`: (time,
    inputs) per finished batch): the rate without the start and the tail, where fewer batches
    than hosts may be left. None when the window is empty."""
    events = sorted(done)
    total = sum(n for _, n in events)
    if total == 0:
        return None
    cumulative = 0
    start: tuple[float, int] | None = None
    for moment, n in events:
        cumulative += n
        if start is None and cumulative >= low * total:
            start = (moment, cumulative)
        if start is not None and cumulative >= high * total:
            if moment <= start[0]:
                return None
            return (cumulative - start[1]) / (moment - start[0])
    return None


def ratio(one: float, two: float) -> float | None:
    return round(two / one, 3) if one > 0 else None


def tree_processes(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its descendants so far."""
    total = 0.0
    for process in tree_processes(pid):
        with suppress(psutil.NoSuchProcess):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def tree_affinity(pid: int) -> list[int]:
    """Every core any thread of the process tree may run on (read back from the kernel)."""
    cores: set[int] = set()
    for process in tree_processes(pid):
        with suppress(psutil.NoSuchProcess):
            for thread in process.threads():
                with suppress(OSError):
                    cores |= os.sched_getaffinity(thread.id)
    return sorted(cores)


def self_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def index_load(
    api: str, workspaces: list[Workspace], args: argparse.Namespace
) -> tuple[list[WorkspaceResult], list[tuple[float, int]]]:
    """Every workspace indexing at once through `api`, each one Roo window (its own SDK
    client and global rate limit); (time, inputs) of every batch embedded."""
    clock = RealClock()
    done: list[tuple[float, int]] = []

    async def record(texts: list[str], vectors: list[list[float]]) -> None:
        await no_upsert(texts, vectors)  # fails where Qdrant's upsert would
        done.append((time.monotonic(), len(texts)))

    clients = []
    results = [WorkspaceResult(w.name, len(w.texts)) for w in workspaces]
    try:
        scans = []
        for workspace, result in zip(workspaces, results, strict=True):
            client = make_openai_client(
                api,
                workspace.api_key,
                clock=clock,
                stats=workspace.stats,
                patience_s=args.patience_s,
            )
            clients.append(client)
            embedder = RooEmbedder(
                client,
                MODEL_ID,
                rate_limit=GlobalRateLimit(),
                clock=clock,
                stats=workspace.stats,
            )
            scan = index_workspace(
                workspace.name,
                workspace.texts,
                embedder,
                clock=clock,
                stats=workspace.stats,
                upsert=record,
                batch_size=args.batch_size,
                result=result,
            )
            scans.append(asyncio.create_task(scan))
        _, unfinished = await asyncio.wait(scans, timeout=args.max_seconds)
        for scan in unfinished:  # past --max-seconds: reported as unfinished
            scan.cancel()
        await asyncio.gather(*scans, return_exceptions=True)
        for scan in scans:
            if not scan.cancelled() and scan.exception() is not None:
                raise scan.exception()  # type: ignore[misc]
    finally:
        for client in clients:
            await client.close()
    return results, done


def start_hosts(
    stack: ExitStack, args: argparse.Namespace, cores: Sequence[int], phase: str
) -> list[tuple[RunningServer, Path]]:
    """One pinned host per core, started at once (each loads its model on its own core); the
    stack stops them. Returns each host with its log."""
    logs = args.out / "logs"
    managers: list[AbstractContextManager[RunningServer]] = []
    paths = []
    for number, core in enumerate(cores, start=1):
        log = logs / f"{args.name}-{phase}-host{number}.log"
        log.unlink(missing_ok=True)
        cache = logs / f"{args.name}-{phase}-host{number}-cache.sqlite"
        for stale in logs.glob(f"{cache.name}*"):
            stale.unlink()
        settings = {**args.settings, "JINA_OPENAI_CACHE_PATH": str(cache.resolve())}
        managers.append(
            serve(
                "ours",
                args.model_path,
                device=args.device,
                threads=args.threads,
                settings=settings,
                log=log,
                cpus=[core],
            )
        )
        paths.append(log)
    with ThreadPoolExecutor(len(managers)) as pool:
        futures = [pool.submit(manager.__enter__) for manager in managers]
    hosts = []
    error: BaseException | None = None
    for manager, future, log in zip(managers, futures, paths, strict=True):
        try:
            server = future.result()
        except Exception as exc:  # that one has stopped itself; stop the others
            error = error or exc
            continue
        stack.push(manager.__exit__)
        hosts.append((server, log))
    if error is not None:
        raise error
    return hosts


def host_info(base_url: str, api_key: str) -> dict[str, Any]:
    """What the host runs (its /info): dtype and why, torch threads, measured tokens/s."""
    try:
        response = httpx.get(
            f"{base_url}/info", headers={"Authorization": f"Bearer {api_key}"}, timeout=10
        )
        info = response.json() if response.status_code == 200 else {}
    except (httpx.HTTPError, ValueError):
        info = {}
    model = info.get("model", {})
    return {
        "dtype": model.get("dtype"),
        "dtype_reason": model.get("dtype_choice", {}).get("reason"),
        "torch_threads": info.get("torch_threads"),
        "tokenizer_threads": info.get("tokenizer_threads"),
        "measured_tokens_per_s": info.get("measured_tokens_per_s"),
        "max_batch_tokens": info.get("limits", {}).get("max_batch_tokens"),
    }


def run_phase(
    args: argparse.Namespace, hosts: int, corpus: list[str], *, phase: str
) -> dict[str, Any]:
    cores = args.cores[:hosts]
    workspaces = [
        Workspace(
            f"ws{number + 1}",
            corpus[number * args.chunks : (number + 1) * args.chunks],
            args.api_key,  # one key for all: scale-out measures capacity, not fairness
        )
        for number in range(args.workspaces)
    ]
    logs = args.out / "logs"
    loadavg = Path("/proc/loadavg").read_text().split()[:3]
    with ExitStack() as stack:
        running = start_hosts(stack, args, cores, phase)
        names = [f"host{number}" for number in range(1, hosts + 1)]
        maxconn = haproxy.embeddings_maxconn(args.settings)
        frontend, stats_port = free_port(), free_port()
        config = logs / f"{args.name}-{phase}-haproxy.cfg"
        config.write_text(
            haproxy.haproxy_config(
                [
                    haproxy.Backend(
                        BACKEND,
                        frontend,
                        "/ready",
                        tuple(
                            haproxy.Server(name, int(server.base_url.rsplit(":", 1)[1]), maxconn)
                            for name, (server, _) in zip(names, running, strict=True)
                        ),
                    )
                ],
                stats_port=stats_port,
            )
        )
        log = logs / f"{args.name}-{phase}-haproxy.log"
        log.unlink(missing_ok=True)
        proxy = stack.enter_context(haproxy.run_haproxy(args.haproxy, config, log))
        haproxy.wait_up(proxy, stats_port, BACKEND, names)
        infos = [host_info(server.base_url, args.api_key) for server, _ in running]
        cursors = [LogCursor(path) for _, path in running]
        for cursor in cursors:
            cursor.mark()
        cpu_before = [tree_cpu_s(server.pid) for server, _ in running]
        proxy_before = tree_cpu_s(proxy.pid)
        client_before = self_cpu_s()
        print(
            f"[scale-out] {phase}: {hosts} host(s) on core(s) {','.join(map(str, cores))}, "
            f"{args.workspaces} x {args.chunks} chunks through HAProxy",
            flush=True,
        )
        started = time.monotonic()
        results, done = asyncio.run(index_load(f"http://127.0.0.1:{frontend}/v1", workspaces, args))
        wall_s = time.monotonic() - started
        client_cpu = self_cpu_s() - client_before
        proxy_cpu = tree_cpu_s(proxy.pid) - proxy_before
        cpu_after = [tree_cpu_s(server.pid) for server, _ in running]
        affinity = [tree_affinity(server.pid) for server, _ in running]
        time.sleep(1.0)  # the hosts log abandoned requests once they notice
        proxy_servers = haproxy.server_rows(haproxy.stats(stats_port), BACKEND)
        per_host = []
        for number, (server, _) in enumerate(running):
            row = proxy_servers.get(names[number], {})
            busy_s = cpu_after[number] - cpu_before[number]
            per_host.append(
                {
                    "name": names[number],
                    "core": cores[number],
                    "affinity_read_back": affinity[number],
                    "pinned": affinity[number] == [cores[number]],
                    **infos[number],
                    "cpu_s": round(busy_s, 2),
                    "cores_busy": round(busy_s / wall_s, 3) if wall_s > 0 else None,
                    "metrics_statuses": scrape_statuses(server.base_url),
                    "log_statuses": log_statuses(cursors[number]),
                    "proxy_sessions": _int(row.get("stot")),
                    "proxy_status": row.get("status"),
                    "proxy_hrsp": {
                        key.removeprefix("hrsp_"): _int(row.get(key))
                        for key in ("hrsp_2xx", "hrsp_4xx", "hrsp_5xx")
                    },
                }
            )
    inputs = sum(result.blocks_indexed for result in results)
    per_workspace = [
        {
            "name": result.name,
            "chunks": result.blocks,
            "batches": result.batches,
            "failed_batches": result.failed_batches,
            "blocks_indexed": result.blocks_indexed,
            "would_drop_index": result.would_drop if result.finished else None,
            "finished": result.finished,
            "elapsed_s": round(result.elapsed_s, 2),
            "errors": result.errors[:5],
            **workspace.stats.summary(),
        }
        for workspace, result in zip(workspaces, results, strict=True)
    ]
    steady = steady_inputs_per_s(done)
    return {
        "phase": phase,
        "hosts": hosts,
        "cores": cores,
        "loadavg_before": loadavg,
        "wall_s": round(wall_s, 2),
        "inputs": inputs,
        "inputs_per_s": round(inputs / wall_s, 2) if wall_s > 0 else 0.0,
        "steady_inputs_per_s": round(steady, 2) if steady is not None else None,
        "failed_batches": sum(w["failed_batches"] for w in per_workspace),
        "http_429": sum(w["http_429"] for w in per_workspace),
        "abandoned_499": sum(w["abandoned_499"] for w in per_workspace),
        "unfinished": [w["name"] for w in per_workspace if not w["finished"]],
        "client_cpu_s": round(client_cpu, 2),
        "haproxy_cpu_s": round(proxy_cpu, 2),
        "haproxy_maxconn_per_server": maxconn,
        "per_host": per_host,
        "per_workspace": per_workspace,
    }


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


def run(args: argparse.Namespace) -> dict[str, Any]:
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "logs").mkdir(exist_ok=True)
    args.model_path = resolve_model(args.model)
    args.settings = host_settings(args)
    usable_cores = len(os.sched_getaffinity(0))
    if args.client_cores:
        # the harness (load generator) and HAProxy, which it starts, run only there; the hosts
        # get their own cores from taskset whatever this process may use
        os.sched_setaffinity(0, args.client_cores)
    corpus = code_chunks(args.workspaces * args.chunks)
    report: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "parameters": {
            "workspaces": args.workspaces,
            "chunks_per_workspace": args.chunks,
            "batch_size": args.batch_size,
            "model": args.model,
            "dtype": args.dtype,
            "device": args.device,
            "torch_threads": args.threads,
            "cores": args.cores[: max(PHASES)],
            "client_cores": args.client_cores or None,
            "patience_s": args.patience_s,
            "usable_cores": usable_cores,
            "haproxy": str(args.haproxy),
            "command": args.command,
        },
        "service_settings": args.settings,
        "phases": [],
    }
    for hosts, phase in zip(PHASES, ("one", "two"), strict=True):
        report["phases"].append(run_phase(args, hosts, corpus, phase=phase))
    one, two = report["phases"]
    report["ratio"] = ratio(one["inputs_per_s"], two["inputs_per_s"])
    steady_one, steady_two = one["steady_inputs_per_s"], two["steady_inputs_per_s"]
    report["steady_ratio"] = (
        ratio(steady_one, steady_two) if steady_one is not None and steady_two is not None else None
    )
    report["finished"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    (args.out / f"{args.name}.json").write_text(json.dumps(report, indent=1) + "\n")
    write_report(args.out / f"{args.name}.md", report)
    print(
        f"[scale-out] one host {one['inputs_per_s']} inputs/s, two hosts {two['inputs_per_s']} "
        f"inputs/s: {report['ratio']}x; wrote {args.out / (args.name + '.md')}",
        flush=True,
    )
    return report


def _cores(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--haproxy", type=Path, required=True, help="the haproxy binary")
    parser.add_argument("--workspaces", type=int, default=2, help="Roo windows indexing at once")
    parser.add_argument(
        "--chunks", type=int, default=3500, help="per workspace (default: ~6 min with MiniLM)"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=BATCH_SEGMENT_THRESHOLD,
        help="Roo's embeddingBatchSize (1..200, default 60)",
    )
    parser.add_argument("--model", default="minilm", help="minilm, full-size or a model dir")
    parser.add_argument("--dtype", default="auto", help="the role's default: auto")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per host")
    parser.add_argument(
        "--cores",
        type=_cores,
        default=sorted(os.sched_getaffinity(0))[:2],
        help="the cores of host 1 and host 2 (default: the first two usable)",
    )
    parser.add_argument(
        "--client-cores",
        type=_cores,
        default=[],
        help="pin the load generator and HAProxy to these cores (default: not pinned)",
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="host environment"
    )
    parser.add_argument("--api-key", default=API_KEY)
    parser.add_argument("--patience-s", type=float, default=PATIENCE_S)
    parser.add_argument("--max-seconds", type=float, default=1800.0, help="per phase, then abort")
    parser.add_argument("--out", type=Path, default=Path("docs"))
    parser.add_argument("--name", default="scale-out")
    args = parser.parse_args(argv)
    if not 1 <= args.batch_size <= 200:
        parser.error("--batch-size: Roo allows 1..200")
    if len(args.cores) < max(PHASES) or len(set(args.cores)) < len(args.cores):
        parser.error(f"--cores: {max(PHASES)} distinct cores are needed")
    if not args.haproxy.is_file():
        parser.error(f"--haproxy: no file {args.haproxy}")
    if shutil.which("taskset") is None:
        parser.error("taskset (util-linux) is needed to pin the hosts")
    args.command = "python -m bench.scale_out " + " ".join(argv if argv is not None else [])
    return args


def main() -> None:
    run(parse_args(sys.argv[1:]))


if __name__ == "__main__":
    main()
