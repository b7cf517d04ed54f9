"""`make bench-speed`: the CPU-speed phases (bfloat16, the embedding cache, the query lane).

    python -m bench.speed [--quick] [--phases full-size,quality,reindex,queries] [--out docs]

Every server is ours as production runs it (bench/servers.py) with its dtype and cache set
explicitly; each ratio comes from one run on one machine. Phases:
  full-size  the full-size JinaBERT v2 architecture (random weights, bench/full_size_model.py),
             float32 vs bfloat16: in-process (a fresh process per dtype: inputs/s, peak RSS,
             cosine) and served (a Roo-shaped index load: inputs/s, peak RSS); cache off
  quality    all-MiniLM-L6-v2 (real weights) served in float32 and in bfloat16: cosine over the
             corpus, top-1 of the code-search evaluation (bench/speed_eval.py) and agreement
  reindex    a Roo-shaped index of the corpus cold (empty cache), warm (the same server again),
             and after a restart (the sqlite tier only): time, vectors, search results
  queries    typed search queries (one per request) while a Roo-shaped index runs: their p99,
             and the index throughput with them vs without (ABBA order: without, with,
             with, without, twice); then whole chunks back to back as a stress shape; cache off
Writes OUT/benchmarks-speed.json and OUT/benchmarks-speed.md (bench/speed_report.py), then
re-renders OUT/benchmarks.md (which links it) when OUT/benchmarks.json exists. `--quick`:
small inputs and a small model of the same architecture, seconds; its default OUT is
build/bench-speed so that docs/ keeps the real run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil

from bench import full_size_model
from bench.corpus import code_chunks
from bench.loadgen import percentile
from bench.report import write_report
from bench.rss import RssSampler
from bench.run import default_model, loadavg, machine, usable_cores, versions
from bench.servers import API_KEY, RunningServer, serve
from bench.speed_client import embed_each, index_corpus, index_while_querying
from bench.speed_eval import (
    agreement,
    cosine_summary,
    search_pairs,
    search_summary,
    top1,
)
from bench.speed_report import write_speed_report

PHASES = ("full-size", "quality", "reindex", "queries")
DTYPES = ("float32", "bfloat16")

# name: (full run, --quick)
SIZES: dict[str, tuple[int, int]] = {
    "full_inprocess_inputs": (48, 8),
    "full_served_chunks": (240, 30),
    "quality_chunks": (1000, 60),
    "eval_pairs": (300, 20),
    "reindex_chunks": (1000, 120),
    "queries_chunks": (1200, 120),
    "queries_rounds": (4, 1),  # ABBA rounds of runs alone / with typed queries
}


def settings(dtype: str, *, cache_mb: int, cache_path: Path | None = None, **extra: str) -> dict:
    """The environment of one server: dtype and cache always explicit."""
    env = {
        "MALLOC_ARENA_MAX": "2",  # as the role's unit
        "JINA_OPENAI_DTYPE": dtype,
        "JINA_OPENAI_CACHE_MEMORY_MB": str(cache_mb),
    }
    if cache_path is not None:
        env["JINA_OPENAI_CACHE_PATH"] = str(cache_path)
    env.update(extra)
    return env


def tree_hwm_mb(pid: int) -> float:
    """Sum of VmHWM (each process's own peak RSS since it started, the model load included)
    over the server's process tree, in MB: an upper bound of the tree's peak."""
    total_kb = 0
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    for process in processes:
        try:
            for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total_kb += int(line.split()[1])
        except (OSError, ValueError):
            continue
    return round(total_kb * 1.024 / 1000, 1)  # KiB -> MB


def info(running: RunningServer) -> dict[str, Any]:
    response = httpx.get(
        f"{running.base_url}/info", headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10
    )
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def metric(running: RunningServer, name: str, labels: str = "") -> float:
    """One sample of /metrics (0 when absent): `name` with exactly `labels`, e.g. 'tier="disk"'."""
    text = httpx.get(f"{running.base_url}/metrics", timeout=10).text
    wanted = f"{name}{{{labels}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.split()[-1])
    return 0.0


def model_name(model: Path) -> str:
    """The model directory's name; the packaged MiniLM's directory is called `model`."""
    return model.parent.name if model.name == "model" else model.name


def served_dtype(running: RunningServer, wanted: str) -> str:
    dtype = str(info(running)["model"]["dtype"])
    if dtype != wanted:
        raise RuntimeError(f"asked for {wanted}, the service runs {dtype}")
    return dtype


# Student's t, two-sided 95 %, by degrees of freedom (rounds - 1)
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def throughput_shares(
    runs: list[dict[str, Any]], alone: str, typed: str, back_to_back: str
) -> dict[str, Any]:
    """Index throughput with typed queries as a share of alone: over all runs (the target),
    per ABBA round with a 95 % interval over rounds, and as predicted by one query's cost (the
    index seconds the back-to-back run lost per query, against the alone runs' mean rate)."""
    rate: dict[str, list[float]] = {"alone": [], "typed": []}
    rounds: list[float] = []
    for start in range(0, len(runs) - 3, 4):
        block = runs[start : start + 4]
        if [r["label"] for r in block] != [alone, typed, typed, alone]:
            break
        a = [r["index"]["inputs_per_s"] for r in (block[0], block[3])]
        t = [r["index"]["inputs_per_s"] for r in (block[1], block[2])]
        rate["alone"] += a
        rate["typed"] += t
        rounds.append(round(statistics.mean(t) / statistics.mean(a), 4))
    alone_rate = statistics.mean(rate["alone"])
    result: dict[str, Any] = {
        "alone_inputs_per_s": round(alone_rate, 2),
        "with_queries_inputs_per_s": round(statistics.mean(rate["typed"]), 2),
        "round_shares": rounds,
    }
    result["throughput_share"] = round(result["with_queries_inputs_per_s"] / alone_rate, 4)
    if len(rounds) > 1:
        half = T95.get(len(rounds) - 1, 2.0) * statistics.stdev(rounds) / len(rounds) ** 0.5
        mean = statistics.mean(rounds)
        result["round_share_ci95"] = [round(mean - half, 4), round(mean + half, 4)]
    stress = next((r for r in runs if r["label"] == back_to_back), None)
    if stress is not None:
        index = stress["index"]
        lost_s = index["elapsed_s"] - index["inputs"] / alone_rate
        cost_s = lost_s / max(stress["queries"]["queries"], 1)
        typed_runs = [r for r in runs if r["label"] == typed]
        rate_per_s = sum(r["queries"]["queries"] for r in typed_runs) / sum(
            r["index"]["elapsed_s"] for r in typed_runs
        )
        result["query_cost_ms"] = round(cost_s * 1000, 1)
        result["typed_queries_per_s"] = round(rate_per_s, 2)
        result["predicted_share"] = round(1 - rate_per_s * cost_s, 4)
    return result


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.started = time.time()
        self.logs = args.out / "logs"

    def size(self, name: str) -> int:
        override = getattr(self.args, name, None)
        if override:
            return int(override)
        full, quick = SIZES[name]
        return quick if self.args.quick else full

    def step(self, text: str) -> None:
        print(f"[bench-speed {time.time() - self.started:6.0f} s] {text}", flush=True)

    def serve(self, model: Path, env: dict[str, str], log: str) -> Any:
        if self.args.memory_budget_mb:
            env = {**env, "JINA_OPENAI_MEMORY_BUDGET_MB": str(self.args.memory_budget_mb)}
        return serve(
            "ours",
            model,
            device="cpu",
            threads=self.args.threads,
            settings=env,
            log=self.logs / f"{log}.log",
        )

    # --- phase: full-size ----------------------------------------------------------------------

    def fresh_process(self, module: str, *args: str) -> dict[str, Any]:
        """Run `python -m module args` (threads given) and return the JSON it prints last."""
        command = [sys.executable, "-m", module, "--threads", str(self.args.threads), *args]
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        done = subprocess.run(command, check=False, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return result

    def in_process(self, model: Path, dtype: str, vectors: Path) -> dict[str, Any]:
        result = self.fresh_process(
            "bench.speed_inprocess",
            *("--model", str(model), "--dtype", dtype),
            *("--inputs", str(self.size("full_inprocess_inputs"))),
            *("--max-input-tokens", str(full_size_model.MAX_INPUT_TOKENS)),
            *("--vectors", str(vectors)),
        )
        result["loadavg"] = loadavg()
        return result

    def full_size(self) -> dict[str, Any]:
        self.step("full-size: writing (or reusing) the checkpoint")
        model = full_size_model.model_dir(self.args.work, quick=self.args.quick)
        texts = code_chunks(self.size("full_served_chunks"))
        phase: dict[str, Any] = {
            "architecture": "quick (small)" if self.args.quick else "full size",
            "spec": full_size_model.QUICK if self.args.quick else full_size_model.FULL,
            "max_input_tokens": full_size_model.MAX_INPUT_TOKENS,
            "in_process": {},
            "served": {},
        }
        vectors: dict[str, np.ndarray] = {}
        for dtype in DTYPES:
            self.step(f"full-size: in-process, {dtype}")
            path = self.args.work / f"full-size-{dtype}.npy"
            phase["in_process"][dtype] = self.in_process(model, dtype, path)
            vectors[dtype] = np.load(path)
        phase["in_process_cosine"] = cosine_summary(vectors["float32"], vectors["bfloat16"])
        served: dict[str, np.ndarray] = {}
        for dtype in DTYPES:
            self.step(f"full-size: served, {dtype}, {len(texts)} chunks")
            tokens = str(full_size_model.MAX_INPUT_TOKENS)
            env = settings(dtype, cache_mb=0, JINA_OPENAI_MAX_INPUT_TOKENS=tokens)
            with self.serve(model, env, f"full-size-{dtype}") as running:
                served_dtype(running, dtype)
                load_before = loadavg()
                with RssSampler(running.pid, interval_s=0.5) as sampler:
                    result = asyncio.run(index_corpus(running.base_url, texts, api_key=API_KEY))
                phase["served"][dtype] = {
                    **result.summary(),
                    "rss_peak_mb": round(sampler.peak_mb, 1),
                    "hwm_mb": tree_hwm_mb(running.pid),
                    "loadavg": [load_before, loadavg()],
                }
                served[dtype] = result.vectors
        phase["served_cosine"] = cosine_summary(served["float32"], served["bfloat16"])
        return phase

    # --- phase: quality ------------------------------------------------------------------------

    def quality(self) -> dict[str, Any]:
        texts = code_chunks(self.size("quality_chunks"))
        pairs = search_pairs(self.size("eval_pairs"))
        chunks = [pair.chunk for pair in pairs]
        queries = [pair.query for pair in pairs]
        expected = list(range(len(pairs)))
        found: dict[str, np.ndarray] = {}
        corpus: dict[str, np.ndarray] = {}
        eval_chunks: dict[str, np.ndarray] = {}
        eval_queries: dict[str, np.ndarray] = {}
        phase: dict[str, Any] = {
            "model": model_name(Path(self.args.model)),
            "chunks": len(texts),
            "pairs": len(pairs),
            "examples": [
                {"query": p.query, "where": p.where} for p in pairs[:: max(1, len(pairs) // 5)]
            ],
            "search": {},
            "served": {},
        }
        for dtype in DTYPES:
            self.step(f"quality: MiniLM served, {dtype}")
            with self.serve(self.args.model, settings(dtype, cache_mb=0), f"quality-{dtype}") as s:
                served_dtype(s, dtype)
                result = asyncio.run(index_corpus(s.base_url, texts, api_key=API_KEY))
                phase["served"][dtype] = result.summary()
                corpus[dtype] = result.vectors
                eval_chunks[dtype] = asyncio.run(
                    index_corpus(s.base_url, chunks, api_key=API_KEY)
                ).vectors
                eval_queries[dtype] = asyncio.run(embed_each(s.base_url, queries, api_key=API_KEY))
            found[dtype] = top1(eval_queries[dtype], eval_chunks[dtype])
            phase["search"][dtype] = search_summary(expected, found[dtype])
        phase["corpus_cosine"] = cosine_summary(corpus["float32"], corpus["bfloat16"])
        phase["eval_chunk_cosine"] = cosine_summary(eval_chunks["float32"], eval_chunks["bfloat16"])
        phase["query_cosine"] = cosine_summary(eval_queries["float32"], eval_queries["bfloat16"])
        phase["top1_agreement"] = agreement(found["float32"], found["bfloat16"])
        return phase

    # --- phase: reindex ------------------------------------------------------------------------

    def reindex(self) -> dict[str, Any]:
        dtype = self.args.reindex_dtype
        pairs = search_pairs(self.size("eval_pairs"))
        eval_chunks = [pair.chunk for pair in pairs]
        queries = [pair.query for pair in pairs]
        texts = code_chunks(self.size("reindex_chunks")) + eval_chunks
        first_eval = len(texts) - len(eval_chunks)
        cache_path = self.args.work / "reindex-cache.sqlite3"
        for stale in self.args.work.glob("reindex-cache.sqlite3*"):
            stale.unlink()
        env = settings(dtype, cache_mb=self.args.cache_memory_mb, cache_path=cache_path)
        phase: dict[str, Any] = {
            "dtype": dtype,
            "cache_memory_mb": self.args.cache_memory_mb,
            "cache_path": "a fresh sqlite file (JINA_OPENAI_CACHE_PATH)",
            "inputs": len(texts),
            "pairs": len(pairs),
            "passes": {},
        }
        vectors: dict[str, np.ndarray] = {}
        found: dict[str, np.ndarray] = {}

        def one_pass(name: str, running: RunningServer) -> None:
            self.step(f"reindex: {name}, {len(texts)} chunks")
            hits_before = self._cache_counts(running)
            result = asyncio.run(index_corpus(running.base_url, texts, api_key=API_KEY))
            hits_after = self._cache_counts(running)
            query_vectors = asyncio.run(embed_each(running.base_url, queries, api_key=API_KEY))
            vectors[name] = result.vectors
            found[name] = top1(query_vectors, result.vectors[first_eval:])
            phase["passes"][name] = {
                **result.summary(),
                "cache": {k: hits_after[k] - hits_before[k] for k in hits_after},
                "search": search_summary(list(range(len(pairs))), found[name]),
            }

        with self.serve(self.args.model, env, "reindex") as running:
            served_dtype(running, dtype)
            one_pass("cold", running)
            one_pass("warm", running)
            phase["disk_entries_before_restart"] = self._wait_disk_entries(running, len(texts))
        with self.serve(self.args.model, env, "reindex-restart") as running:
            one_pass("restart", running)
        cold = phase["passes"]["cold"]["elapsed_s"]
        for name in ("warm", "restart"):
            phase["passes"][name]["speedup"] = round(
                cold / max(phase["passes"][name]["elapsed_s"], 1e-9), 1
            )
            phase["passes"][name]["cosine_to_cold"] = cosine_summary(vectors["cold"], vectors[name])
            phase["passes"][name]["identical_vectors"] = bool(
                np.array_equal(vectors["cold"], vectors[name])
            )
            phase["passes"][name]["same_top1"] = bool(np.array_equal(found["cold"], found[name]))
        return phase

    def _cache_counts(self, running: RunningServer) -> dict[str, float]:
        return {
            "memory_hits": metric(running, "jina_openai_cache_hits_total", 'tier="memory"'),
            "disk_hits": metric(running, "jina_openai_cache_hits_total", 'tier="disk"'),
            "misses": metric(running, "jina_openai_cache_misses_total"),
        }

    def _wait_disk_entries(self, running: RunningServer, wanted: int) -> float:
        """The sqlite tier is written by a background thread: wait (<= 60 s) until it holds
        the corpus, so that the restart measures the disk tier and not a race."""
        deadline = time.monotonic() + 60
        entries = 0.0
        while time.monotonic() < deadline:
            entries = metric(running, "jina_openai_cache_entries", 'tier="disk"')
            if entries >= wanted:
                break
            time.sleep(0.5)
        return entries

    # --- phase: queries ------------------------------------------------------------------------

    def queries(self) -> dict[str, Any]:
        dtype = self.args.queries_dtype
        count = self.size("queries_chunks")
        every = code_chunks(count + 200)
        texts, chunk_queries = every[:count], every[count:]
        # What a user types into Roo's search box: a docstring's first line.
        typed_queries = [pair.query for pair in search_pairs(200)]
        pause_s = self.args.query_pause_s
        # (label, queries or None, pause): runs alone and with typed queries in ABBA order
        # (alone, with, with, alone, ...), so that a drift of the machine's speed falls on both
        # equally. Then two stress shapes back to back: typed queries, whose index time lost per
        # query gives the cost of one query (estimated far more precisely than a 2-5 % share
        # is measured directly on this noisy machine), and whole chunks (make bench's mixed).
        alone: tuple[str, list[str] | None, float] = ("index alone", None, 0.0)
        typed: tuple[str, list[str] | None, float] = ("with typed queries", typed_queries, pause_s)
        typed_back_to_back = ("with typed queries back to back", typed_queries, 0.0)
        plan = [alone, typed, typed, alone] * self.size("queries_rounds")
        plan += [typed_back_to_back, ("with chunk queries back to back", chunk_queries, 0.0)]
        phase: dict[str, Any] = {
            "dtype": dtype,
            "cache_memory_mb": 0,
            "inputs": len(texts),
            "query_pause_s": pause_s,
            "runs": [],
        }
        with self.serve(self.args.model, settings(dtype, cache_mb=0), "queries") as running:
            served_dtype(running, dtype)
            self.step("queries: warm-up index, 200 chunks (not reported)")
            asyncio.run(index_corpus(running.base_url, texts[:200], api_key=API_KEY))
            for label, queries, pause in plan:
                self.step(f"queries: {label}, {len(texts)} chunks")
                run: dict[str, Any] = {
                    "label": label,
                    "with_queries": queries is not None,
                    "loadavg": loadavg(),
                }
                if queries is not None:
                    result, summary = asyncio.run(
                        index_while_querying(
                            running.base_url, texts, queries, api_key=API_KEY, pause_s=pause
                        )
                    )
                    run["queries"] = summary
                else:
                    result = asyncio.run(index_corpus(running.base_url, texts, api_key=API_KEY))
                run["index"] = result.summary()
                phase["runs"].append(run)
        phase.update(throughput_shares(phase["runs"], alone[0], typed[0], typed_back_to_back[0]))
        typed_runs = [r for r in phase["runs"] if r["label"] == typed[0]]
        latencies = sorted(s for r in typed_runs for s in r["queries"].pop("latencies_s"))
        phase["query_p99_s"] = round(percentile(latencies, 0.99), 4)
        return phase

    # --- the run -------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        args = self.args
        args.out.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        args.work.mkdir(parents=True, exist_ok=True)
        report: dict[str, Any] = {
            "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.started)),
            "quick": args.quick,
            "command": "make bench-speed"
            + (f' BENCH_SPEED_ARGS="{" ".join(sys.argv[1:])}"' if sys.argv[1:] else ""),
            "machine": machine(),
            "versions": versions(),
            "parameters": {
                "model": str(args.model),
                "threads": args.threads,
                "phases": args.phases,
                "memory_budget_mb": args.memory_budget_mb or None,
                "sizes": {name: self.size(name) for name in SIZES},
            },
            "phases": {},
        }
        self.step("the CPU's matrix-multiply rate, float32 and bfloat16")
        report["machine"]["matrix_multiply"] = self.fresh_process("bench.gemm_calibration")
        runners: dict[str, Callable[[], dict[str, Any]]] = {
            "full-size": self.full_size,
            "quality": self.quality,
            "reindex": self.reindex,
            "queries": self.queries,
        }
        for name in args.phases:
            phase_started = time.time()
            report["phases"][name] = runners[name]()
            report["phases"][name]["duration_s"] = round(time.time() - phase_started)
        report["finished"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        report["duration_s"] = round(time.time() - self.started)
        (args.out / "benchmarks-speed.json").write_text(json.dumps(report, indent=1) + "\n")
        path = write_speed_report(args.out)
        if (args.out / "benchmarks.json").is_file():
            write_report(args.out)
        self.step(f"done: {path}")
        return report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (seconds)")
    parser.add_argument(
        "--phases",
        type=lambda s: [p for p in s.split(",") if p],
        default=list(PHASES),
        help=",".join(PHASES),
    )
    parser.add_argument("--model", type=Path, default=None, help="default: all-MiniLM-L6-v2")
    parser.add_argument("--threads", type=int, default=usable_cores())
    parser.add_argument("--reindex-dtype", default="bfloat16", choices=DTYPES)
    parser.add_argument("--queries-dtype", default="bfloat16", choices=DTYPES)
    parser.add_argument(
        "--query-pause-s",
        type=float,
        default=0.5,
        help="between one typed query's answer and the next (a person searching: ~2/s at most)",
    )
    parser.add_argument("--cache-memory-mb", type=int, default=64, help="reindex phase")
    parser.add_argument(
        "--memory-budget-mb", type=int, default=0, help="JINA_OPENAI_MEMORY_BUDGET_MB; 0: unset"
    )
    for name in SIZES:
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=None, dest=name)
    parser.add_argument("--out", type=Path, default=None, help="default: docs (quick: build/...)")
    parser.add_argument(
        "--work", type=Path, default=Path("build/bench-speed/work"), help="checkpoints, caches"
    )
    args = parser.parse_args(argv)
    unknown = set(args.phases) - set(PHASES)
    if unknown:
        parser.error(f"unknown phases {sorted(unknown)}; known: {','.join(PHASES)}")
    if args.model is None:
        args.model = default_model()
    if args.out is None:
        args.out = Path("build/bench-speed") if args.quick else Path("docs")
    return args


def main() -> None:
    Bench(parse_args()).run()


if __name__ == "__main__":
    main()
