"""Token bounds derived from one memory budget (`JINA_OPENAI_MEMORY_BUDGET_MB`).

The process's resident memory under any load is bounded by

    resident_after_load                       (measured once the model is loaded)
  + RESERVE_MB                                (Python heap, HTTP buffers, tokenizer, metrics)
  + ALLOCATOR_SLACK x max_batch_tokens x A    (activations of one forward pass; A bytes per
                                               padded token, the allocator may keep a freed
                                               pass's memory while the next one runs)
  + max_queued_tokens x QUEUED_TOKEN_BYTES    (admitted work: token ids and their share
                                               of tokenizer and batch bookkeeping)
  + max_held_bytes                            (request memory of requests in flight, counted
                                               per request by admission: body bytes, decoded
                                               texts, output vectors, response bytes)

with A = ACTIVATION_BYTES_PER_TOKEN_PER_WIDTH x hidden width x dtype bytes / 4 (hidden width =
output dimension for the BERT family). So with budget B:

    free              = B - resident_after_load - RESERVE_MB
    max_batch_tokens  = min(device default, BATCH_SHARE x free / (ALLOCATOR_SLACK x A))
    max_queued_tokens = min(QUEUE_DEFAULT,  (1 - BATCH_SHARE) x free / QUEUED_TOKEN_BYTES)

    max_held_bytes    = what the queue's share leaves: (1 - BATCH_SHARE) x free
                        - max_queued_tokens x QUEUED_TOKEN_BYTES, within [32 MiB, 256 MiB]

each at least its floor (a batch of one longest input always runs; the queue holds at least
one full batch and QUEUE_FLOOR tokens, so that a Roo Code request of 60 full chunks is never
413). Explicit `max_batch_tokens` / `max_queued_tokens` settings win. The constants
were measured with all-MiniLM-L6-v2 on CPU (see ACTIVATION_BYTES_PER_TOKEN_PER_WIDTH). On CUDA the
activations live in GPU memory: the budget bounds only the queue, batch tokens keep their
device default, or, when the GPU's free memory after loading (G) is known,

    max_batch_tokens  = clamp(GPU_BATCH_SHARE x G / (ALLOCATOR_SLACK x A),
                              floor, GPU_MAX_BATCH_TOKENS)

with A at the model's dtype (2 bytes for float16). The same estimate as on CPU, so conservative
for SDPA's fused kernels; an out-of-memory batch is split in halves anyway. Sizes are MiB, as
systemd's `MemoryHigh=...M` (which does not cover GPU memory).
"""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1 << 20
RESERVE_MB = 96
ALLOCATOR_SLACK = 2.0
BATCH_SHARE = 0.75
# Peak activation bytes of one padded token, per unit of hidden width, in float32: measured
# peak RSS growth of a forward pass / (padded tokens x hidden width) = 88-90 for
# all-MiniLM-L6-v2, 16 x 256 tokens, MALLOC_ARENA_MAX=2 (attention scores included: they grow
# with the sequence length, so check long-context models against their startup log line).
ACTIVATION_BYTES_PER_TOKEN_PER_WIDTH = 96.0
QUEUED_TOKEN_BYTES = 128
# The queue's memory bound, at most 1M tokens (128 MiB): high enough that the waiting-time bound
# (max_queue_wait_s at the measured rate) is what refuses work - all-MiniLM-L6-v2 on 2 CPU cores
# embeds ~8,000 tokens/s, 120 s of that is ~1M tokens; the former 262,144 refused four Roo
# windows of MiniLM work at ~30 s, and every 429 doubles Roo's global pause (make roo-load).
QUEUE_DEFAULT = 1_048_576
MIN_BATCH_TOKENS = 256
QUEUE_FLOOR = 65_536
# Request memory (bodies, texts, vectors, responses) of the requests in flight. At least 32 MiB:
# one request may hold half of it (REQUEST_BYTES_SHARE), and one request of the largest body
# (2 MiB by default) with its texts and results needs well under 16 MiB.
HELD_BYTES_FLOOR = 32 * MIB
HELD_BYTES_DEFAULT = 256 * MIB
# One request may hold at most this share of the queue's tokens / of the request memory: a
# single client never takes the whole queue, and four of Roo Code's largest requests (200
# chunks, ~58k tokens) fit the default queue at once.
REQUEST_TOKEN_SHARE = 0.25
REQUEST_BYTES_SHARE = 0.5
# ...but never less than Roo Code's largest request (200 chunks of ~1150 characters, ~58k
# tokens), as long as the queue holds that much: a legitimate request is never too large.
REQUEST_TOKENS_FLOOR = 65_536


def request_token_share(max_queued_tokens: int) -> int:
    """Tokens one request may hold of a queue of `max_queued_tokens`."""
    share = int(REQUEST_TOKEN_SHARE * max_queued_tokens)
    return max(share, min(max_queued_tokens, REQUEST_TOKENS_FLOOR))


# Half the GPU memory left after loading goes to one pass's activations; beyond 64k padded
# tokens a pass gains no throughput and only makes queries wait longer behind it.
GPU_BATCH_SHARE = 0.5
GPU_MAX_BATCH_TOKENS = 65_536


@dataclass(frozen=True)
class DerivedBounds:
    max_batch_tokens: int
    max_queued_tokens: int
    free_mb: float  # what the budget leaves after the loaded model and the reserve
    max_held_bytes: int = HELD_BYTES_DEFAULT


def activation_bytes_per_token(hidden: int, dtype_bytes: int) -> float:
    return ACTIVATION_BYTES_PER_TOKEN_PER_WIDTH * hidden * dtype_bytes / 4


def derive_bounds(
    *,
    budget_mb: int | None,
    resident_mb: float,
    hidden: int,
    dtype_bytes: int,
    on_gpu: bool,
    max_input_tokens: int,
    default_batch_tokens: int,
    max_batch_tokens: int | None = None,
    max_queued_tokens: int | None = None,
    gpu_free_mb: float | None = None,
) -> DerivedBounds:
    """The scheduler's token bounds; explicit settings (not None) are kept as they are."""
    floor_batch = min(MIN_BATCH_TOKENS, max_input_tokens)
    gpu_batch = None
    if on_gpu and max_batch_tokens is None and gpu_free_mb is not None:
        gpu_batch = gpu_batch_tokens(
            gpu_free_mb=gpu_free_mb, hidden=hidden, dtype_bytes=dtype_bytes, floor=floor_batch
        )
    if budget_mb is None:
        batch = max_batch_tokens or gpu_batch or default_batch_tokens
        queued = max_queued_tokens if max_queued_tokens is not None else max(batch, QUEUE_DEFAULT)
        return DerivedBounds(batch, queued, float("inf"), HELD_BYTES_DEFAULT)
    free_mb = budget_mb - resident_mb - RESERVE_MB
    free_bytes = max(0.0, free_mb) * MIB
    if max_batch_tokens is not None:
        batch = max_batch_tokens
    elif on_gpu:
        batch = gpu_batch or default_batch_tokens
    else:
        per_token = ALLOCATOR_SLACK * activation_bytes_per_token(hidden, dtype_bytes)
        batch = int(BATCH_SHARE * free_bytes / per_token)
        batch = max(floor_batch, min(default_batch_tokens, batch))
    if max_queued_tokens is not None:
        queued = max_queued_tokens
    else:
        share = 1.0 if on_gpu else 1.0 - BATCH_SHARE
        queued = int(share * free_bytes / QUEUED_TOKEN_BYTES)
        queued = max(batch, QUEUE_FLOOR, min(QUEUE_DEFAULT, queued))
    queue_share = free_bytes if on_gpu else (1.0 - BATCH_SHARE) * free_bytes
    held = int(queue_share - queued * QUEUED_TOKEN_BYTES)
    held = max(HELD_BYTES_FLOOR, min(HELD_BYTES_DEFAULT, held))
    return DerivedBounds(batch, queued, free_mb, held)


def gpu_batch_tokens(*, gpu_free_mb: float, hidden: int, dtype_bytes: int, floor: int) -> int:
    """Padded tokens per forward pass that fit GPU_BATCH_SHARE of the GPU's free memory."""
    per_token = ALLOCATOR_SLACK * activation_bytes_per_token(hidden, dtype_bytes)
    tokens = int(GPU_BATCH_SHARE * max(0.0, gpu_free_mb) * MIB / per_token)
    return max(floor, min(GPU_MAX_BATCH_TOKENS, tokens))


def peak_mb(
    *,
    resident_mb: float,
    hidden: int,
    dtype_bytes: int,
    max_batch_tokens: int,
    max_queued_tokens: int,
    max_held_bytes: int = 0,
) -> float:
    """The bound on resident memory the formula promises for these bounds."""
    activations = (
        ALLOCATOR_SLACK * max_batch_tokens * activation_bytes_per_token(hidden, dtype_bytes)
    )
    queued = max_queued_tokens * QUEUED_TOKEN_BYTES + max_held_bytes
    return resident_mb + RESERVE_MB + (activations + queued) / MIB
