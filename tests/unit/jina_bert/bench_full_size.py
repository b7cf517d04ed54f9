"""One-off measurements of the full-size JinaBERT v2 architecture (random weights). Not a test.

    .venv/bin/python -m tests.unit.jina_bert.bench_full_size make /tmp/jina-full
    .venv/bin/python -m tests.unit.jina_bert.bench_full_size rss /tmp/jina-full [--tokens 8192]
    .venv/bin/python -m tests.unit.jina_bert.bench_full_size throughput /tmp/jina-full

`make` writes a checkpoint directory in the upstream layout (hidden 768, 12 layers, 12 heads,
intermediate 3072, vocab 61056; ~640 MB). `rss` runs in the current (fresh) process: load, embed
one input of --tokens tokens, print latency and the process's peak RSS (ru_maxrss). `throughput`
embeds batches of ~250-token inputs and prints inputs/s and tokens/s.
"""

from __future__ import annotations

import argparse
import random
import resource
import tempfile
import time
from pathlib import Path

import torch

from .checkpoints import TinySpec, train_tokenizer, write_checkpoint

FULL = TinySpec(hidden=768, layers=12, heads=12, intermediate=3072, vocab=61056)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _load(model_dir: Path, dtype: str) -> object:
    from jina_openai.models.jina_bert import load_jina_bert_embedder
    from jina_openai.models.model_config import read_model_config

    return load_jina_bert_embedder(
        model_dir,
        read_model_config(model_dir),
        model_id=None,
        device=torch.device("cpu"),
        dtype=getattr(torch, dtype),
        max_input_tokens=None,
    )


def make(dest: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = train_tokenizer(Path(tmp) / "tokenizer.json")
        write_checkpoint(dest, FULL, tokenizer, prefix="bert.", seed=0)
    print(f"wrote {dest}")


def rss(model_dir: Path, tokens: int, dtype: str) -> None:
    print(f"start: peak RSS {_peak_rss_mb():.0f} MB (python + torch imported)")
    t0 = time.perf_counter()
    embedder = _load(model_dir, dtype)
    print(f"loaded in {time.perf_counter() - t0:.1f} s: peak RSS {_peak_rss_mb():.0f} MB")
    rng = random.Random(0)
    ids = [0] + [rng.randrange(5, 400) for _ in range(tokens - 2)] + [2]
    with torch.inference_mode():
        t0, c0 = time.perf_counter(), time.process_time()
        vec = embedder.embed([ids])  # type: ignore[attr-defined]
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(
        f"one {tokens}-token input ({dtype}, {torch.get_num_threads()} threads): {elapsed:.1f} s "
        f"wall, {cpu:.1f} s CPU; "
        f"norm {float((vec**2).sum()) ** 0.5:.4f}; peak RSS {_peak_rss_mb():.0f} MB"
    )


def throughput(model_dir: Path, dtype: str, batch: int, length: int, batches: int) -> None:
    embedder = _load(model_dir, dtype)
    rng = random.Random(0)

    def make_batch() -> list[list[int]]:
        out = []
        for _ in range(batch):
            n = rng.randint(int(length * 0.8), int(length * 1.2))
            out.append([0] + [rng.randrange(5, 400) for _ in range(n - 2)] + [2])
        return out

    work = [make_batch() for _ in range(batches + 1)]
    with torch.inference_mode():
        embedder.embed(work[0])  # type: ignore[attr-defined]  # warm-up
        t0, c0 = time.perf_counter(), time.process_time()
        for b in work[1:]:
            embedder.embed(b)  # type: ignore[attr-defined]
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    n_inputs = batch * batches
    n_tokens = sum(len(x) for b in work[1:] for x in b)
    print(
        f"{dtype}, {torch.get_num_threads()} threads, batches of {batch} x ~{length} tokens: "
        f"{n_inputs / elapsed:.2f} inputs/s, {n_tokens / elapsed:.0f} tokens/s "
        f"({batches} batches in {elapsed:.1f} s wall, {cpu:.1f} s CPU); "
        f"peak RSS {_peak_rss_mb():.0f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["make", "rss", "throughput"])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--tokens", type=int, default=8192)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--length", type=int, default=250)
    parser.add_argument("--batches", type=int, default=4)
    args = parser.parse_args()
    if args.mode == "make":
        make(args.model_dir)
    elif args.mode == "rss":
        rss(args.model_dir, args.tokens, args.dtype)
    else:
        throughput(args.model_dir, args.dtype, args.batch, args.length, args.batches)


if __name__ == "__main__":
    main()
