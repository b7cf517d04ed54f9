"""ALiBi attention for JinaBERT v2: slopes, the symmetric bias, and memory-bounded attention.

JinaBERT uses a symmetric, bidirectional ALiBi: head ``h`` adds ``-slope_h * |i - j|`` to the
score of query ``i`` against key ``j``. Materialising that bias (and the score matrix) for one
8192-token input costs ``heads * n * n`` floats per layer - 3.2 GB in fp32 at 12 heads - so this
module never builds it whole:

* Sequences are *packed*: the caller passes the real tokens of every input back to back
  (``[total_tokens, hidden]``) plus their lengths, and attention runs per input over exactly its
  own tokens. No padding mask is needed and no work is spent on padding.
* The bias rows of one input are windows of a single ``[heads, 2 * n - 1]`` table: with the keys
  in reverse order, the row of query ``i`` is ``table[:, i : i + n]``. On CPU that window is passed
  to ``scaled_dot_product_attention`` as a strided view (zero copies: the CPU flash-attention
  kernel reads it in place). On other devices each query chunk's bias is materialised in the
  model dtype, a bounded ``[heads, chunk, n]`` block.
* Queries are processed in chunks. Where the bias is materialised, a chunk's ``[heads, chunk, n]``
  block stays under a byte budget. On CPU (bias read in place) chunks are at most
  ``IN_PLACE_QUERY_CHUNK`` queries: the flash kernel does not need them, but they bound memory
  should a build fall back to the math kernel, at a few percent of speed at 8192 tokens.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F  # noqa: N812 - the conventional alias

# Bytes allowed for one query chunk's materialised [heads, chunk, keys] bias block.
DEFAULT_ATTENTION_BLOCK_BYTES = 96 * 1024 * 1024
# Queries per chunk when the bias is read in place (CPU).
IN_PLACE_QUERY_CHUNK = 1024


def alibi_slopes(n_heads: int) -> list[float]:
    """Per-head ALiBi slopes as in the ALiBi paper (and JinaBERT).

    For a power of two ``n``: ``2^(-8/n * k)`` for ``k = 1..n``. Otherwise the slopes of the
    closest lower power of two, followed by every other slope of the rule for twice that number.
    For 12 heads: ``2^-1 .. 2^-8`` then ``2^-0.5, 2^-1.5, 2^-2.5, 2^-3.5``.
    """
    if n_heads < 1:
        raise ValueError(f"n_heads must be positive, got {n_heads}")

    def power_of_two_rule(n: int) -> list[float]:
        return [2.0 ** (-8.0 * k / n) for k in range(1, n + 1)]

    if n_heads & (n_heads - 1) == 0:
        return power_of_two_rule(n_heads)
    closest = 1 << (n_heads.bit_length() - 1)
    extra = power_of_two_rule(2 * closest)[0::2][: n_heads - closest]
    return power_of_two_rule(closest) + extra


class PackedAlibiAttention:
    """Attention over packed inputs with the symmetric ALiBi bias, built once per forward pass.

    ``lengths`` are the token counts of the packed inputs, in order. The bias table is shared by
    every layer and every input of the pass; it holds ``heads * (2 * max_len - 1)`` values.
    ``in_place`` (default: on CPU) passes strided bias views to the kernel instead of
    materialised chunks.
    """

    def __init__(
        self,
        slopes: Sequence[float],
        lengths: Sequence[int],
        *,
        device: torch.device,
        dtype: torch.dtype,
        block_bytes: int = DEFAULT_ATTENTION_BLOCK_BYTES,
        in_place: bool | None = None,
        in_place_chunk: int = IN_PLACE_QUERY_CHUNK,
    ) -> None:
        if not lengths or min(lengths) < 1:
            raise ValueError("every packed input needs at least one token")
        self.lengths = tuple(int(n) for n in lengths)
        self.offsets = tuple(int(x) for x in _offsets(self.lengths))
        self.n_heads = len(slopes)
        self.max_len = max(self.lengths)
        self.block_bytes = block_bytes
        self.in_place_chunk = in_place_chunk
        # On CPU the flash kernel reads a strided bias in place and accumulates in fp32, so the
        # table is at least fp32 (exact distances) even for bf16 compute (a float64 query needs
        # a float64 mask: torch 2.13 mixes them up). Elsewhere the chunk is materialised in the
        # model dtype, which the fused kernels require.
        self.in_place = device.type == "cpu" if in_place is None else in_place
        self.mask_dtype = torch.promote_types(dtype, torch.float32) if self.in_place else dtype
        span = torch.arange(2 * self.max_len - 1, dtype=torch.float32, device=device)
        dist = (span - (self.max_len - 1)).abs()
        slope_t = torch.tensor(list(slopes), dtype=torch.float32, device=device)
        # table[h, t] = -slope_h * |t - (max_len - 1)|
        self.table = (-slope_t[:, None] * dist[None, :]).to(self.mask_dtype).contiguous()
        self._blocks: dict[tuple[int, int, int], torch.Tensor] = {}
        self._cached_bytes = 0

    def query_chunk(self, length: int) -> int:
        """Queries per chunk for an input of ``length`` tokens (a multiple of 64 when chunked)."""
        if self.in_place:
            chunk = self.in_place_chunk
        else:
            per_query = self.n_heads * length * self.table.element_size()
            chunk = self.block_bytes // per_query
        if chunk >= length:
            return length
        return max(64, (chunk // 64) * 64)

    def bias(self, length: int, start: int, stop: int) -> torch.Tensor:
        """Bias for queries ``start:stop`` of an input of ``length`` tokens against its keys in
        REVERSED order: ``[1, heads, stop - start, length]``."""
        # Row i, reversed key j' (key j = length - 1 - j'): -slope * |i - j| is
        # table[h, (max_len - length) + i + j'].
        row_stride = self.table.stride(0)
        view = self.table.as_strided(
            (1, self.n_heads, stop - start, length),
            (self.n_heads * row_stride, row_stride, 1, 1),
            self.table.storage_offset() + (self.max_len - length) + start,
        )
        if self.in_place:
            return view
        # Materialised blocks are the same in every layer: keep them for the pass while they
        # fit in one more block budget.
        key = (length, start, stop)
        block = self._blocks.get(key)
        if block is None:
            block = view.contiguous()
            size = block.numel() * block.element_size()
            if self._cached_bytes + size <= self.block_bytes:
                self._blocks[key] = block
                self._cached_bytes += size
        return block

    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``q``, ``k``, ``v``: packed ``[total_tokens, hidden]``; returns the packed context."""
        hidden = q.shape[1]
        head_dim = hidden // self.n_heads
        out = torch.empty_like(q)
        for offset, length in zip(self.offsets, self.lengths, strict=True):
            end = offset + length

            def heads(x: torch.Tensor, length: int = length) -> torch.Tensor:
                # [length, hidden] -> [1, heads, length, head_dim] (a view)
                return x.view(length, self.n_heads, head_dim).transpose(0, 1).unsqueeze(0)

            out_rows = out[offset:end].view(length, self.n_heads, head_dim)
            qs = heads(q[offset:end])
            ks = heads(k[offset:end].flip(0))
            vs = heads(v[offset:end].flip(0))
            step = self.query_chunk(length)
            for start in range(0, length, step):
                stop = min(length, start + step)
                ctx = F.scaled_dot_product_attention(
                    qs[:, :, start:stop], ks, vs, attn_mask=self.bias(length, start, stop)
                )
                # [1, heads, chunk, head_dim] -> rows of `out`, in one copy
                out_rows[start:stop].copy_(ctx[0].transpose(0, 1))
        return out


def _offsets(lengths: Sequence[int]) -> list[int]:
    offsets, acc = [], 0
    for n in lengths:
        offsets.append(acc)
        acc += n
    return offsets
