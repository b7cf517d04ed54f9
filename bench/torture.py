"""`make torture`: adversarial cases against our service, each while a stream of queries runs.

    python -m bench.torture [--cases xff,abort,...] [--quick] [--out docs] [--name torture]

The service runs as production runs it (bench/servers.py: gunicorn with
`jina_openai.gunicorn_conf`, uvicorn workers, `JINA_OPENAI_*` environment) under a 1024 MiB
memory budget; `idle_lowfd` runs it with RLIMIT_NOFILE 256, `hang` and `fail` run
bench/faulty_app.py (the production app with a fault-injecting embedder). The cases are in
bench/torture_cases.py. Per case: peak RSS of the process tree, what the attack got, the
queries' statuses and latency, worker restarts (gunicorn's "Booting worker" lines), CPU time,
the log volume; then the harness waits until the service is idle and ready again (and
restarts it, recording that, when it died or does not recover). Writes OUT/NAME.md and
OUT/NAME.json (bench/torture_report.py). Loopback only; every wait is capped.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.corpus import code_chunks
from bench.rss import RssSampler, tree_rss_mb
from bench.run import default_model, loadavg, usable_cores
from bench.servers import API_KEY, OURS_APP, REPO_ROOT, RunningServer, serve
from bench.torture_cases import CASES, CaseContext
from bench.torture_probe import (
    IDLE_CPU_SHARE,
    LogCursor,
    alive,
    probe,
    tree_cpu_s,
    wait_idle,
    worker_pids,
)
from bench.torture_queries import QueryStream
from bench.torture_report import verdict, write_report

MIB = 2**20
LOW_NOFILE = 256
FAULTY_APP = "bench.faulty_app:create_app()"
# What each case needs the server to be; consecutive cases of one kind share a server.
SERVER_KIND = {"idle_lowfd": "lowfd", "hang": "faulty", "fail": "faulty"}
DESCRIPTIONS = {
    "xff": "X-Forwarded-For: 203.0.113.66 from loopback",
    "abort": "upload aborted (Content-Length 1 MB, 100 KB sent, closed)",
    "idle": "idle sockets and half-sent headers",
    "big": "one code string just under the body limit",
    "cjk": "four CJK strings at once, each body just under the limit",
    "cjk_hangup": "the same four, clients hang up after 0.1 s, then a one-line query",
    "many": "2048 (or as many as fit) inputs of 4 KB while small requests are sent",
    "idle_lowfd": f"idle sockets and half-sent headers, server RLIMIT_NOFILE {LOW_NOFILE}",
    "hang": "a hung forward pass (bench/faulty_app.py)",
    "fail": "six requests whose batch always fails (bench/faulty_app.py)",
}
DEFAULT_CASES = list(DESCRIPTIONS)
# Short timeouts for the watchdog cases (settings of the fixed service; older code ignores
# unknown JINA_OPENAI_* variables).
TORTURE_SETTINGS = {
    "MALLOC_ARENA_MAX": "2",
    "JINA_OPENAI_LOG_LEVEL": "info",  # request lines and gunicorn's "Booting worker"
    "JINA_OPENAI_MAX_INPUT_TOKENS": "256",
    "JINA_OPENAI_GRACEFUL_TIMEOUT": "10",
    "JINA_OPENAI_REQUEST_TIMEOUT_S": "20",
    "JINA_OPENAI_BATCH_TIMEOUT_S": "10",
    "JINA_OPENAI_MAX_CONSECUTIVE_FAILED_BATCHES": "3",
    "JINA_OPENAI_HEADER_TIMEOUT_S": "5",
    "JINA_OPENAI_BODY_TIMEOUT_S": "10",
}


@dataclass
class Service:
    """One server kind, started on demand and restarted when it died."""

    kind: str
    args: argparse.Namespace
    settings: dict[str, str]
    log_path: Path
    starts: int = 0
    running: RunningServer | None = None
    max_body_bytes: int = 0
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def start(self) -> RunningServer:
        self._stack = contextlib.ExitStack()
        self.running = self._stack.enter_context(
            serve(
                "ours",
                self.args.model,
                device=self.args.device,
                threads=self.args.threads,
                settings=self.settings,
                log=self.log_path,
                app=FAULTY_APP if self.kind == "faulty" else OURS_APP,
                nofile=LOW_NOFILE if self.kind == "lowfd" else None,
            )
        )
        self.starts += 1
        info = httpx.get(
            f"{self.running.base_url}/info",
            headers={"Authorization": f"Bearer {API_KEY}"},
            timeout=30,
        ).json()
        self.max_body_bytes = int(info["limits"]["max_body_bytes"])
        return self.running

    def stop(self) -> None:
        self._stack.close()
        self.running = None


def code_version() -> str:
    """The commit of the code under test (and whether the tree had changes)."""

    def git(*args: str) -> str:
        result = subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=False
        )
        return result.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    changed = git("status", "--porcelain", "--untracked-files=no")
    return f"{commit} (with uncommitted changes)" if changed else commit


def query_summary(queries: list[Any]) -> dict[str, Any]:
    from bench.loadgen import percentile

    latencies = sorted(q.latency_s for q in queries)
    statuses: dict[str, int] = {}
    for query in queries:
        statuses[query.status] = statuses.get(query.status, 0) + 1
    return {
        "count": len(queries),
        "statuses": dict(sorted(statuses.items())),
        "p50_s": round(percentile(latencies, 0.5), 3) if latencies else None,
        "p99_s": round(percentile(latencies, 0.99), 3) if latencies else None,
        "max_s": round(latencies[-1], 3) if latencies else None,
    }


def run_case(
    name: str, service: Service, stream: QueryStream, texts: list[str], args: argparse.Namespace
) -> dict[str, Any]:
    running = service.running
    assert running is not None
    log = LogCursor(service.log_path)
    log.mark()
    ctx = CaseContext(
        base_url=running.base_url,
        pid=running.pid,
        api_key=API_KEY,
        max_body_bytes=service.max_body_bytes,
        texts=texts,
        log=log,
        settings=service.settings,
        quick=args.quick,
        idle_cap_s=args.idle_cap_s,
    )
    pids_before = worker_pids(running.pid)
    cpu_before = tree_cpu_s(running.pid)
    rss_before = tree_rss_mb(running.pid)
    started = time.monotonic()
    harness_error = None
    with RssSampler(running.pid, interval_s=0.1) as sampler:
        try:
            facts = CASES[name](ctx)
        except Exception as exc:  # recorded in the report, the run goes on
            facts, harness_error = {"attack": {"harness error": 1}}, repr(exc)
        ended = time.monotonic()
        time.sleep(args.after_s)
        rss_after = tree_rss_mb(running.pid)
        stuck = bool(facts.get("stuck"))  # the case saw that it will not recover
        idle_after = None
        if not stuck:
            # --quick skips the CPU criterion: on a busy machine the queries alone exceed it.
            cpu_share = None if args.quick else IDLE_CPU_SHARE
            idle_after = wait_idle(
                running.base_url, running.pid, args.idle_timeout_s, cpu_share=cpu_share
            )
    idle_at = time.monotonic()
    cpu = tree_cpu_s(running.pid) - cpu_before
    survived = alive(running.pid)
    logged = log.read(keep_access=0)
    queries = query_summary(stream.between(started, idle_at))
    restarted = None
    ready = survived and probe(running.base_url, "/ready")[0] == "200"
    if not survived or stuck or not ready:  # busy but ready: it carries on, recorded as such
        restarted = "it died" if not survived else "stuck" if stuck else "not ready again"
        service.stop()
        stream.set_base_url(service.start().base_url)
    other_lines = sum(logged.other_messages.values())
    result: dict[str, Any] = {
        "description": DESCRIPTIONS[name],
        "server": service.kind,
        "facts": facts,
        "harness_error": harness_error,
        "case_s": round(ended - started, 2),
        "idle_after_s": None if idle_after is None else round(idle_after + args.after_s, 2),
        "cpu_s": round(cpu, 2),
        "rss_before_mib": round(rss_before * 1e6 / MIB, 1),
        "rss_peak_mib": round(sampler.peak_mb * 1e6 / MIB, 1),
        "rss_after_5s_mib": round(rss_after * 1e6 / MIB, 1),
        "rss_samples": len(sampler.samples),
        "queries": queries,
        "worker_restarts": logged.booted_workers,
        "worker_pids": [pids_before, worker_pids(running.pid) if survived else []],
        "service_survived": survived,
        "restarted_by_harness": restarted,
        "log": {
            "lines": logged.lines,
            "bytes": logged.bytes,
            "other_lines": other_lines,
            "lines_per_s": round(logged.lines / max(idle_at - started, 1e-3), 1),
            "top_messages": logged.top_messages(),
        },
    }
    budget = float(service.settings["JINA_OPENAI_MEMORY_BUDGET_MB"])
    result["failures"] = verdict(name, result, service.settings, budget)
    return result


def torture(args: argparse.Namespace, command: str) -> dict[str, Any]:
    (args.out / "logs").mkdir(parents=True, exist_ok=True)
    texts = [t for t in code_chunks(3000) if len(t) >= 900]
    settings = {
        **TORTURE_SETTINGS,
        "JINA_OPENAI_MEMORY_BUDGET_MB": str(args.memory_budget_mb),
        **dict(item.split("=", 1) for item in args.set),
    }
    started_at = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    load_before = loadavg()
    t0 = time.monotonic()
    cases: dict[str, Any] = {}
    services: dict[str, Service] = {}
    stream: QueryStream | None = None
    try:
        for name in args.cases:
            kind = SERVER_KIND.get(name, "ours")
            if kind not in services:
                for other in services.values():
                    if other.running is not None:
                        other.stop()
                log_path = args.out / "logs" / f"{args.name}-{kind}.log"
                log_path.unlink(missing_ok=True)
                services[kind] = Service(kind, args, settings, log_path)
                services[kind].start()
            service = services[kind]
            assert service.running is not None
            if stream is None:
                stream = QueryStream(
                    service.running.base_url,
                    texts,
                    API_KEY,
                    rate_per_s=args.query_rate,
                    timeout_s=args.query_timeout_s,
                ).__enter__()
            stream.set_base_url(service.running.base_url)
            print(f"torture: {name} ...", flush=True)
            cases[name] = run_case(name, service, stream, texts, args)
            print(f"torture: {name}: {cases[name]['failures'] or 'pass'}", flush=True)
    finally:
        if stream is not None:
            stream.__exit__(None, None, None)
        for service in services.values():
            if service.running is not None:
                service.stop()
    return {
        "title": args.title,
        "command": command,
        "code": code_version(),
        "started": started_at,
        "duration_s": round(time.monotonic() - t0, 1),
        "loadavg": [load_before, loadavg()],
        "machine": f"{platform.processor() or platform.machine()}, {usable_cores()} usable cores, "
        f"Python {platform.python_version()}",
        "model": str(args.model),
        "memory_budget_mib": args.memory_budget_mb,
        "settings": settings,
        "query_rate_per_s": args.query_rate,
        "query_timeout_s": args.query_timeout_s,
        "quick": args.quick,
        "server_starts": {kind: s.starts for kind, s in services.items()},
        "cases": cases,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="default: all-MiniLM-L6-v2")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=usable_cores())
    parser.add_argument("--cases", default=",".join(DEFAULT_CASES), help="comma-separated")
    parser.add_argument("--quick", action="store_true", help="fewer sockets, shorter waits")
    parser.add_argument("--memory-budget-mb", type=int, default=1024)
    parser.add_argument("--query-rate", type=float, default=3.0, help="queries per second")
    parser.add_argument("--query-timeout-s", type=float, default=30.0)
    parser.add_argument("--idle-cap-s", type=float, default=None, help="default 60 (quick: 3)")
    parser.add_argument("--after-s", type=float, default=None, help="default 5 (quick: 1)")
    parser.add_argument("--idle-timeout-s", type=float, default=None, help="default 90 (quick: 20)")
    parser.add_argument("--set", action="append", default=[], help="extra KEY=VALUE env")
    parser.add_argument("--out", type=Path, default=Path("docs"))
    parser.add_argument("--name", default="torture", help="writes OUT/NAME.md and .json")
    parser.add_argument("--title", default="make torture: adversarial cases")
    args = parser.parse_args(argv)
    args.cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in args.cases if c not in CASES]
    if unknown:
        parser.error(f"unknown cases {unknown}; known: {', '.join(DEFAULT_CASES)}")
    if args.model is None:
        args.model = default_model()
    if args.idle_cap_s is None:
        args.idle_cap_s = 3.0 if args.quick else 60.0
    if args.idle_timeout_s is None:
        args.idle_timeout_s = 20.0 if args.quick else 90.0
    if args.after_s is None:
        args.after_s = 1.0 if args.quick else 5.0
    return args


def main() -> None:
    # SIGTERM (timeout, kill) ends like Ctrl-C: the servers are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    command = shlex.join(["python", "-m", "bench.torture", *sys.argv[1:]])
    args = parse_args()
    print(f"torture: {command}", flush=True)
    report = torture(args, command)
    path = write_report(args.out, args.name, report)
    failed = [name for name, case in report["cases"].items() if case["failures"]]
    print(f"torture: wrote {path} ({report['duration_s']:.0f} s); command: {command}")
    print(f"torture: {len(failed)} of {len(report['cases'])} cases missed a target: {failed}")


if __name__ == "__main__":
    main()
