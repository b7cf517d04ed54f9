"""The in-process limit: the model's forward pass over the bench inputs, no HTTP, no queue.

Tokenization included; inputs sorted by length and cut into batches of at most
`max_batch_tokens` padded tokens (the service's default budget for the device): the ideal
batches a server can only approach. Prints one JSON object.

    python -m bench.inprocess --model DIR [--device cpu] [--threads 2] [--inputs 600]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from bench.corpus import code_chunks


def ideal_batches(lengths: list[int], max_batch_tokens: int) -> list[list[int]]:
    """Positions of `lengths` (ascending) grouped so that longest x count <= the budget."""
    batches: list[list[int]] = []
    current: list[int] = []
    for position, length in enumerate(lengths):
        if current and (len(current) + 1) * length > max_batch_tokens:
            batches.append(current)
            current = []
        current.append(position)
    if current:
        batches.append(current)
    return batches


def measure(
    model: Path, *, device: str, threads: int, inputs: int, max_batch_tokens: int | None
) -> dict[str, object]:
    import torch
    from jina_openai.engine.engine import DEFAULT_BATCH_TOKENS
    from jina_openai.models.registry import load_embedder

    torch.set_num_threads(threads)
    embedder = load_embedder(model, device=device)
    budget = max_batch_tokens or DEFAULT_BATCH_TOKENS.get(
        embedder.device.type, DEFAULT_BATCH_TOKENS["cpu"]
    )
    texts = code_chunks(inputs)
    warm = sorted(embedder.prepare(ids) for ids in embedder.tokenize(texts[:64]))
    with torch.inference_mode():
        for batch in ideal_batches([len(ids) for ids in warm], budget):
            embedder.embed([warm[p] for p in batch])
    started = time.perf_counter()
    prepared = sorted((embedder.prepare(ids) for ids in embedder.tokenize(texts)), key=len)
    with torch.inference_mode():
        for batch in ideal_batches([len(ids) for ids in prepared], budget):
            embedder.embed([prepared[p] for p in batch])
    elapsed = time.perf_counter() - started
    tokens = sum(len(ids) for ids in prepared)
    return {
        "inputs": len(texts),
        "tokens": tokens,
        "tokens_per_input": round(tokens / len(texts), 1),
        "max_batch_tokens": budget,
        "elapsed_s": round(elapsed, 2),
        "inputs_per_s": round(len(texts) / elapsed, 2),
        "tokens_per_s": round(tokens / elapsed, 1),
        "model": embedder.model_id,
        "dtype": str(embedder.dtype).removeprefix("torch."),
        "device": str(embedder.device),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--inputs", type=int, default=600)
    parser.add_argument("--max-batch-tokens", type=int, default=None)
    args = parser.parse_args()
    result = measure(
        args.model,
        device=args.device,
        threads=args.threads,
        inputs=args.inputs,
        max_batch_tokens=args.max_batch_tokens,
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
