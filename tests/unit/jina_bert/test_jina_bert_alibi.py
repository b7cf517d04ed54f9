"""ALiBi slopes and the memory-bounded attention against a materialised reference."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from jina_openai.models.alibi import PackedAlibiAttention, alibi_slopes
from jina_openai.models.jina_bert import alibi_slopes as exported_slopes

from .reference import alibi_bias, reference_slopes

CPU = torch.device("cpu")


def test_slopes_for_12_heads_are_the_published_ones() -> None:
    published = [2.0**-k for k in range(1, 9)] + [2.0**-0.5, 2.0**-1.5, 2.0**-2.5, 2.0**-3.5]
    assert exported_slopes(12) == pytest.approx(published, rel=1e-12)


@pytest.mark.parametrize("heads", [1, 2, 3, 4, 6, 8, 12, 16, 20])
def test_slopes_follow_the_alibi_rule(heads: int) -> None:
    assert alibi_slopes(heads) == pytest.approx(reference_slopes(heads), rel=1e-12)
    assert len(set(alibi_slopes(heads))) == heads


def test_power_of_two_slopes() -> None:
    assert alibi_slopes(8) == pytest.approx([2.0**-k for k in range(1, 9)], rel=1e-12)
    assert alibi_slopes(4) == pytest.approx([2.0**-k for k in (2, 4, 6, 8)], rel=1e-12)


def test_invalid_head_count() -> None:
    with pytest.raises(ValueError, match="n_heads"):
        alibi_slopes(0)


@pytest.mark.parametrize("in_place", [True, False])
def test_bias_windows_equal_the_materialised_bias(in_place: bool) -> None:
    slopes = alibi_slopes(3)
    lengths = [5, 17, 1]
    attn = PackedAlibiAttention(slopes, lengths, device=CPU, dtype=torch.float32, in_place=in_place)
    for length in lengths:
        full = alibi_bias(slopes, length)  # [heads, n, n], keys in natural order
        for start, stop in [(0, length), (length // 2, length)]:
            window = attn.bias(length, start, stop)[0]  # keys reversed
            torch.testing.assert_close(window.flip(-1), full[:, start:stop], rtol=0, atol=0)


def _materialised_attention(q, k, v, slopes, lengths):
    heads = len(slopes)
    out, offset = [], 0
    for n in lengths:
        qs, ks, vs = (x[offset : offset + n].view(n, heads, -1).transpose(0, 1) for x in (q, k, v))
        scores = qs @ ks.transpose(-1, -2) / math.sqrt(qs.shape[-1]) + alibi_bias(slopes, n).to(q)
        out.append((torch.softmax(scores, -1) @ vs).transpose(0, 1).reshape(n, -1))
        offset += n
    return torch.cat(out)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("in_place", [True, False])
@pytest.mark.parametrize("block_bytes", [1, 1 << 30])  # 1 byte: smallest chunks (64 queries)
def test_packed_attention_matches_materialised_scores(
    dtype: torch.dtype, in_place: bool, block_bytes: int
) -> None:
    gen = torch.Generator().manual_seed(0)
    slopes = alibi_slopes(4)
    lengths = [1, 7, 200, 130]
    total, hidden = sum(lengths), 4 * 16
    q, k, v = (torch.randn(total, hidden, generator=gen, dtype=dtype) for _ in range(3))
    attn = PackedAlibiAttention(
        slopes,
        lengths,
        device=CPU,
        dtype=dtype,
        block_bytes=block_bytes,
        in_place=in_place,
        in_place_chunk=1 if block_bytes == 1 else 1 << 20,
    )
    if block_bytes == 1:
        assert attn.query_chunk(200) == 64
    got = attn(q, k, v)
    want = _materialised_attention(q.double(), k.double(), v.double(), slopes, lengths)
    tol = 1e-9 if dtype == torch.float64 else 2e-5
    torch.testing.assert_close(got.double(), want, rtol=tol, atol=tol)
    torch.testing.assert_close(attn(q, k, v), got, rtol=0, atol=0)  # next layer: cached blocks


def test_in_place_chunking_is_bounded_for_long_inputs() -> None:
    attn = PackedAlibiAttention(alibi_slopes(12), [8192], device=CPU, dtype=torch.float32)
    assert attn.query_chunk(8192) <= 1024
    assert attn.table.shape == (12, 2 * 8192 - 1)
    view = attn.bias(8192, 0, 1024)
    assert view.shape == (1, 12, 1024, 8192)
    assert view.untyped_storage().nbytes() == attn.table.untyped_storage().nbytes()  # no copy


def test_bf16_attention_on_cpu_is_close() -> None:
    gen = torch.Generator().manual_seed(1)
    slopes = alibi_slopes(3)
    q, k, v = (torch.randn(300, 48, generator=gen) for _ in range(3))
    attn32 = PackedAlibiAttention(slopes, [300], device=CPU, dtype=torch.float32)
    attn16 = PackedAlibiAttention(slopes, [300], device=CPU, dtype=torch.bfloat16)
    got = attn16(q.bfloat16(), k.bfloat16(), v.bfloat16()).float()
    want = attn32(q, k, v)
    assert F.cosine_similarity(got, want, dim=-1).min() > 0.99
