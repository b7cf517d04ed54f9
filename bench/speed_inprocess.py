"""One dtype of one model, in a fresh process: load, embed the bench chunks, report.

Run by `make bench-speed` once per dtype, so that each gets its own peak RSS (ru_maxrss: the
load included). Inputs sorted by length in ideal batches of the service's CPU batch budget (as
bench/inprocess.py); the vectors, in corpus order, go to `--vectors` (.npy) for the cosine to
the other dtype. Prints one JSON object.

    python -m bench.speed_inprocess --model DIR --dtype bfloat16 --inputs 64 --vectors V.npy
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np

from bench.corpus import code_chunks
from bench.inprocess import ideal_batches


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1000  # Linux: KiB -> ~MB


def measure(
    model: Path, *, dtype: str, threads: int, inputs: int, max_input_tokens: int | None
) -> tuple[dict[str, object], np.ndarray]:
    import torch
    from jina_openai.engine.engine import DEFAULT_BATCH_TOKENS
    from jina_openai.models.registry import load_embedder

    torch.set_num_threads(threads)
    rss_before_load = peak_rss_mb()
    started = time.perf_counter()
    embedder = load_embedder(model, dtype=dtype, max_input_tokens=max_input_tokens)
    load_s = time.perf_counter() - started
    rss_after_load = peak_rss_mb()
    budget = DEFAULT_BATCH_TOKENS["cpu"]
    texts = code_chunks(inputs)
    warm = sorted(embedder.prepare(ids) for ids in embedder.tokenize(texts[:16]))
    with torch.inference_mode():
        for batch in ideal_batches([len(ids) for ids in warm], budget):
            embedder.embed([warm[p] for p in batch])
    started = time.perf_counter()
    prepared = [embedder.prepare(ids) for ids in embedder.tokenize(texts)]
    order = sorted(range(len(prepared)), key=lambda p: len(prepared[p]))
    vectors = np.zeros((len(texts), embedder.dimension), dtype=np.float32)
    with torch.inference_mode():
        for batch in ideal_batches([len(prepared[p]) for p in order], budget):
            positions = [order[k] for k in batch]
            vectors[positions] = embedder.embed([prepared[p] for p in positions])
    elapsed = time.perf_counter() - started
    tokens = sum(map(len, prepared))
    result = {
        "dtype": str(embedder.dtype).removeprefix("torch."),
        "inputs": len(texts),
        "tokens_per_input": round(tokens / len(texts), 1),
        "max_batch_tokens": budget,
        "load_s": round(load_s, 2),
        "elapsed_s": round(elapsed, 2),
        "inputs_per_s": round(len(texts) / elapsed, 2),
        "rss_before_load_mb": round(rss_before_load),
        "rss_after_load_mb": round(rss_after_load),
        "peak_rss_mb": round(peak_rss_mb()),
    }
    return result, vectors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--dtype", required=True, choices=["float32", "bfloat16"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--inputs", type=int, default=64)
    parser.add_argument("--max-input-tokens", type=int, default=None)
    parser.add_argument("--vectors", type=Path, required=True)
    args = parser.parse_args()
    result, vectors = measure(
        args.model,
        dtype=args.dtype,
        threads=args.threads,
        inputs=args.inputs,
        max_input_tokens=args.max_input_tokens,
    )
    np.save(args.vectors, vectors)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
