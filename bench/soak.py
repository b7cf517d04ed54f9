"""`make soak`: a long mixed load against our service; fails when RSS keeps growing.

    python -m bench.soak [--requests 20000] [--clients 4] [--bound 1.0] [--out docs]

Requests carry 1 to 60 chunks (log-uniform: as many 1-5 chunk requests as 12-60 chunk ones,
Roo Code's searches and index batches) of Python stdlib source cut to at most `--max-chars`
characters (short, so that 20k requests fit in minutes on 2 CPU cores: the soak looks for
leaks per request, not for throughput). The service runs under its production gunicorn
configuration with worker recycling off (`JINA_OPENAI_MAX_REQUESTS=0`: recycling would hide a
leak). RSS of the whole process tree is sampled every second with the number of requests done;
after the warmup fraction, the lowest sample of each of 10 equal request windows (the floor RSS
returns to between batches; single samples swing by a batch's activations) gives, by least
squares, the slope in MB per 1000 requests. Exit status 1 when it exceeds `--bound` (default
1 MB / 1000 requests: with the production recycling after 10000 requests that is at most
~10 MB per worker lifetime, 1 % of a 1 GB budget; a real leak of one response, ~40 KB per
request, is 40x over it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bench.corpus import code_chunks
from bench.loadgen import ClientGroup, run_load
from bench.report import write_report
from bench.rss import tree_rss_mb
from bench.run import default_model, loadavg, usable_cores
from bench.servers import API_KEY, serve

FIT_WINDOWS = 10


def least_squares(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """(slope, intercept) of the least-squares line; (0, mean) for fewer than two distinct x."""
    n = len(xs)
    if n == 0:
        return 0.0, 0.0
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    var = sum((x - mean_x) ** 2 for x in xs)
    if var == 0:
        return 0.0, mean_y
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / var
    return slope, mean_y - slope * mean_x


def fit_after_warmup(
    samples: list[list[float]], warmup_fraction: float, windows: int = FIT_WINDOWS
) -> dict[str, float]:
    """Fit RSS (MB) against requests done past the warmup fraction, through the lowest sample
    of each of `windows` equal request windows: RSS swings by a batch's activations (tens of
    MB) from second to second, while a leak raises the floor it returns to."""
    total = samples[-1][1] if samples else 0
    start = warmup_fraction * total
    kept = [s for s in samples if s[1] >= start]
    floors: list[list[float]] = []
    if kept:
        width = max((total - start) / windows, 1e-9)
        by_window: dict[int, list[float]] = {}
        for sample in kept:
            index = min(windows - 1, int((sample[1] - start) / width))
            if index not in by_window or sample[2] < by_window[index][2]:
                by_window[index] = sample
        floors = [by_window[i] for i in sorted(by_window)]
    slope, intercept = least_squares([s[1] for s in floors], [s[2] for s in floors])
    return {
        "from_requests": start,
        "points": len(floors),
        "samples": len(kept),
        "slope_mb_per_request": slope,
        "intercept_mb": intercept,
    }


def cache_counts(base_url: str) -> dict[str, float]:
    """The cache's hit, miss and eviction counters from /metrics, summed over labels."""
    response = httpx.get(f"{base_url}/metrics", timeout=10)
    counts: dict[str, float] = {}
    for line in response.text.splitlines():
        for name in ("hits", "misses", "evictions"):
            if line.startswith(f"jina_openai_cache_{name}_total"):
                counts[name] = counts.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return counts


def soak(args: argparse.Namespace) -> dict[str, Any]:
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "logs").mkdir(exist_ok=True)
    texts = code_chunks(args.chunks, max_chars=args.max_chars)
    done = 0
    lock = threading.Lock()

    def count() -> None:
        nonlocal done
        with lock:
            done += 1

    settings = {
        "MALLOC_ARENA_MAX": "2",
        "JINA_OPENAI_MAX_REQUESTS": "0",
        "JINA_OPENAI_MEMORY_BUDGET_MB": str(args.memory_budget_mb),
        # The embedding cache as the role turns it on: memory tier plus the sqlite file.
        "JINA_OPENAI_CACHE_MEMORY_MB": str(args.cache_memory_mb),
    }
    if args.cache_memory_mb:
        cache_file = args.out / "logs" / "soak-cache.sqlite"
        for stale in cache_file.parent.glob(f"{cache_file.name}*"):
            stale.unlink()
        settings["JINA_OPENAI_CACHE_PATH"] = str(cache_file.resolve())
    started_at = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    load_before = loadavg()
    samples: list[list[float]] = []
    with serve(
        "ours",
        args.model,
        device=args.device,
        threads=args.threads,
        settings=settings,
        log=args.out / "logs" / "soak.log",
    ) as running:
        stop = threading.Event()
        t0 = time.monotonic()

        def sample() -> None:
            while True:
                samples.append(
                    [round(time.monotonic() - t0, 1), done, round(tree_rss_mb(running.pid), 1)]
                )
                if stop.wait(1.0):
                    return

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        group = ClientGroup("soak", args.clients, args.min_inputs, args.max_inputs)
        results = asyncio.run(
            run_load(
                running.base_url,
                texts,
                [group],
                seconds=args.max_seconds,
                max_requests=args.requests,
                api_key=API_KEY,
                on_response=count,
                sizes=log_uniform_sizes(args.min_inputs, args.max_inputs),
            )
        )
        stop.set()
        sampler.join()
        cache = cache_counts(running.base_url)
    summary = results["soak"].summary()
    fit = fit_after_warmup(samples, args.warmup_fraction)
    slope = fit["slope_mb_per_request"] * 1000
    report = {
        "started": started_at,
        "loadavg": [load_before, loadavg()],
        "requests": summary["requests"],
        "statuses": summary["statuses"],
        "inputs_per_s": summary["inputs_per_s"],
        "duration_s": summary["elapsed_s"],
        "clients": args.clients,
        "cache_memory_mb": args.cache_memory_mb,
        "cache": cache,
        "min_inputs": args.min_inputs,
        "max_inputs": args.max_inputs,
        "max_chars": args.max_chars,
        "warmup_fraction": args.warmup_fraction,
        "fit": fit,
        "slope_mb_per_1000": round(slope, 3),
        "bound_mb_per_1000": args.bound,
        "passed": slope <= args.bound,
        "rss_start_mb": samples[0][2] if samples else 0.0,
        "rss_peak_mb": max((s[2] for s in samples), default=0.0),
        "rss_end_mb": samples[-1][2] if samples else 0.0,
        "samples": samples,
    }
    (args.out / "soak.json").write_text(json.dumps(report, indent=1) + "\n")
    if (args.out / "benchmarks.json").is_file():
        write_report(args.out)
    return report


def log_uniform_sizes(low: int, high: int) -> Callable[[random.Random], int]:
    def draw(rng: random.Random) -> int:
        return min(high, max(low, int(math.exp(rng.uniform(math.log(low), math.log(high + 1))))))

    return draw


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="default: all-MiniLM-L6-v2")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=usable_cores())
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--max-seconds", type=float, default=1500.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--min-inputs", type=int, default=1)
    parser.add_argument("--max-inputs", type=int, default=60)
    parser.add_argument("--max-chars", type=int, default=80)
    parser.add_argument("--chunks", type=int, default=5000)
    parser.add_argument("--warmup-fraction", type=float, default=0.2)
    parser.add_argument("--bound", type=float, default=1.0, help="MB per 1000 requests")
    parser.add_argument("--memory-budget-mb", type=int, default=1024)
    parser.add_argument(
        "--cache-memory-mb", type=int, default=64, help="0: cache off; else memory + disk tier"
    )
    parser.add_argument("--out", type=Path, default=Path("docs"))
    args = parser.parse_args(argv)
    if args.model is None:
        args.model = default_model()
    return args


def main() -> None:
    report = soak(parse_args())
    print(
        f"soak: {report['requests']} requests, statuses {report['statuses']}, RSS slope "
        f"{report['slope_mb_per_1000']:+.3f} MB per 1000 requests "
        f"(bound {report['bound_mb_per_1000']})"
    )
    sys.exit(0 if report["passed"] else 1)


if __name__ == "__main__":
    main()
