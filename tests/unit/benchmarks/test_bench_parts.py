"""The pure parts of the benchmarks: inputs, ideal batches, percentiles, the soak's verdict."""

from __future__ import annotations

import pytest

from bench.corpus import MAX_CHUNK_CHARS, code_chunks
from bench.inprocess import ideal_batches
from bench.loadgen import check_loopback, percentile
from bench.soak import fit_after_warmup, least_squares


def test_chunks_are_deterministic_roo_code_sized_source() -> None:
    chunks = code_chunks(300)
    assert chunks == code_chunks(300)
    assert len(chunks) == 300
    assert all(100 <= len(chunk) <= MAX_CHUNK_CHARS for chunk in chunks)
    assert sum(map(len, chunks)) / len(chunks) > 800  # mostly full chunks, like Roo's


def test_ideal_batches_stay_within_the_padded_budget() -> None:
    lengths = sorted([10] * 50 + [200] * 30 + [256] * 40)
    batches = ideal_batches(lengths, 1024)
    assert sorted(p for batch in batches for p in batch) == list(range(len(lengths)))
    assert all(max(lengths[p] for p in batch) * len(batch) <= 1024 for batch in batches)
    assert ideal_batches([5000], 1024) == [[0]]  # one input always runs


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50
    assert percentile(values, 0.99) == 99
    assert percentile([3.0], 0.99) == 3.0


def test_loads_refuse_non_loopback_targets() -> None:
    check_loopback("http://127.0.0.1:4000")
    check_loopback("http://localhost:4000")
    with pytest.raises(ValueError, match="loopback"):
        check_loopback("http://10.0.0.5:4000")


def test_soak_slope_ignores_warmup_and_finds_a_leak() -> None:
    # 100 MB of warmup growth over the first 1000 requests, then 2 MB per 1000 requests.
    samples = [
        [float(i), float(r), 500 + min(r, 1000) * 0.1 + max(0, r - 1000) * 0.002]
        for i, r in enumerate(range(0, 10_001, 100))
    ]
    fit = fit_after_warmup(samples, 0.2)
    assert fit["slope_mb_per_request"] * 1000 == pytest.approx(2.0)
    flat = [[s[0], s[1], 600.0] for s in samples]
    assert fit_after_warmup(flat, 0.2)["slope_mb_per_request"] == 0


def test_least_squares_degenerate_inputs() -> None:
    assert least_squares([], []) == (0.0, 0.0)
    assert least_squares([5.0, 5.0], [1.0, 3.0]) == (0.0, 2.0)


def test_short_chunks_for_the_soak() -> None:
    chunks = code_chunks(200, max_chars=80)
    assert len(chunks) == 200
    assert all(40 <= len(chunk) <= 80 for chunk in chunks)
