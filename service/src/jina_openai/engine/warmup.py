"""Warmup: run the batch shapes the scheduler will form before the service reports ready.

The first forward passes allocate memory pools and pick kernels; doing them at startup keeps the
first real requests fast, proves the model produces finite unit vectors in the configured dtype,
and gives the throughput estimate behind `Retry-After` a measured starting point.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from jina_openai.models.base import Embedder

_SHORT_INPUT_TOKENS = 16
# A code chunk as indexers send it: Roo Code's are at most ~1150 characters, ~250-300 tokens.
# The throughput estimate starts from a full batch of these; one of a long-context model's
# longest inputs (8192 tokens, quadratic attention) embeds several times fewer tokens per second
# and would make admission refuse most of the first index requests.
_CODE_CHUNK_TOKENS = 256


def warmup_shapes(
    *, max_input_tokens: int, max_batch_tokens: int, max_batch_inputs: int
) -> list[tuple[int, int]]:
    """(inputs, tokens per input): one short input, a full batch of the longest inputs a batch
    can hold (one input always fits, however long), and last a full batch of code chunks."""
    longest = max(1, min(max_input_tokens, max_batch_tokens))
    chunk = min(longest, _CODE_CHUNK_TOKENS)
    shapes = [
        (1, min(_SHORT_INPUT_TOKENS, max_input_tokens)),
        (max(1, min(max_batch_inputs, max_batch_tokens // longest)), longest),
        (max(1, min(max_batch_inputs, max_batch_tokens // chunk)), chunk),
    ]
    return list(dict.fromkeys(shapes))


def run_warmup(embedder: Embedder, shapes: list[tuple[int, int]]) -> tuple[int, float]:
    """Embed dummy batches of the given shapes; returns (tokens, seconds) of the last one,
    the throughput estimate's starting point."""
    filler = (embedder.tokenize(["warmup"])[0] or [0])[0]
    specials = len(embedder.prepare([]))
    measured = (0, 0.0)
    for inputs, tokens in shapes:
        ids = embedder.prepare([filler] * max(0, tokens - specials))
        started = time.perf_counter()
        with torch.inference_mode():
            vectors = embedder.embed([ids] * inputs)
        seconds = time.perf_counter() - started
        _check(vectors, inputs, embedder)
        measured = (len(ids) * inputs, seconds)
    return measured


def _check(vectors: np.ndarray, inputs: int, embedder: Embedder) -> None:
    if vectors.shape != (inputs, embedder.dimension):
        raise RuntimeError(
            f"warmup: the model returned shape {vectors.shape}, "
            f"expected {(inputs, embedder.dimension)}"
        )
    if not np.isfinite(vectors).all():
        raise RuntimeError(
            f"warmup: the model produced non-finite values in {embedder.dtype} "
            "(try dtype float32 or bfloat16)"
        )
    norms = np.linalg.norm(vectors, axis=1)
    if not np.allclose(norms, 1.0, atol=1e-3):
        raise RuntimeError(f"warmup: vectors are not unit length (norms {norms.min():.4f}..)")
