"""Token bounds derived from the memory budget, and the periodic malloc_trim."""

from __future__ import annotations

import pytest
from jina_openai.engine.allocator import MallocTrimmer, load_malloc_trim
from jina_openai.engine.memory_budget import (
    ALLOCATOR_SLACK,
    GPU_BATCH_SHARE,
    GPU_MAX_BATCH_TOKENS,
    QUEUE_DEFAULT,
    QUEUE_FLOOR,
    activation_bytes_per_token,
    derive_bounds,
    peak_mb,
    request_token_share,
)
from jina_openai.settings import Settings

MINILM = {"hidden": 384, "dtype_bytes": 4, "max_input_tokens": 256, "default_batch_tokens": 4096}


def test_without_a_budget_the_fixed_defaults_apply() -> None:
    bounds = derive_bounds(budget_mb=None, resident_mb=500, on_gpu=False, **MINILM)
    assert (bounds.max_batch_tokens, bounds.max_queued_tokens) == (4096, QUEUE_DEFAULT)


@pytest.mark.parametrize("budget_mb", [700, 800, 1024, 2048, 8192])
def test_derived_bounds_keep_the_promised_peak_within_the_budget(budget_mb: int) -> None:
    bounds = derive_bounds(budget_mb=budget_mb, resident_mb=520, on_gpu=False, **MINILM)
    expected = peak_mb(
        resident_mb=520,
        hidden=384,
        dtype_bytes=4,
        max_batch_tokens=bounds.max_batch_tokens,
        max_queued_tokens=bounds.max_queued_tokens,
    )
    assert expected <= budget_mb
    assert 256 <= bounds.max_batch_tokens <= 4096
    assert QUEUE_FLOOR <= bounds.max_queued_tokens <= QUEUE_DEFAULT


def test_a_tighter_budget_gives_smaller_batches() -> None:
    small = derive_bounds(budget_mb=650, resident_mb=520, on_gpu=False, **MINILM)
    large = derive_bounds(budget_mb=4096, resident_mb=520, on_gpu=False, **MINILM)
    assert small.max_batch_tokens < large.max_batch_tokens == 4096


def test_a_budget_below_the_loaded_model_falls_back_to_the_floors() -> None:
    bounds = derive_bounds(budget_mb=300, resident_mb=520, on_gpu=False, **MINILM)
    assert bounds.free_mb < 0
    assert bounds.max_batch_tokens == 256  # one longest input still runs
    assert bounds.max_queued_tokens == QUEUE_FLOOR  # a 60-chunk request is never 413


def test_explicit_settings_win_over_the_budget() -> None:
    bounds = derive_bounds(
        budget_mb=650,
        resident_mb=520,
        on_gpu=False,
        max_batch_tokens=2048,
        max_queued_tokens=5000,
        **MINILM,
    )
    assert (bounds.max_batch_tokens, bounds.max_queued_tokens) == (2048, 5000)


def test_on_gpu_the_budget_bounds_only_the_queue() -> None:
    jina = {"hidden": 768, "dtype_bytes": 2, "max_input_tokens": 8192}
    bounds = derive_bounds(
        budget_mb=1500, resident_mb=1400, on_gpu=True, default_batch_tokens=16384, **jina
    )
    assert bounds.max_batch_tokens == 16384
    assert bounds.max_queued_tokens == QUEUE_FLOOR


def test_settings_read_the_budget_and_the_trim_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JINA_OPENAI_MODEL_DIR", "/m")
    monkeypatch.setenv("JINA_OPENAI_MEMORY_BUDGET_MB", "3000")
    monkeypatch.setenv("JINA_OPENAI_MALLOC_TRIM_INTERVAL_S", "0")
    settings = Settings()  # type: ignore[call-arg]
    assert (settings.memory_budget_mb, settings.malloc_trim_interval_s) == (3000, 0)
    assert settings.max_queued_tokens is None  # derived at startup


def test_settings_defaults_leave_the_bounds_to_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JINA_OPENAI_MODEL_DIR", "/m")
    settings = Settings()  # type: ignore[call-arg]
    assert settings.memory_budget_mb is None
    assert settings.max_batch_tokens is None
    assert settings.max_queued_tokens is None
    assert settings.malloc_trim_interval_s == 1.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_trimmer_trims_at_most_once_per_interval_while_busy() -> None:
    calls: list[int] = []
    clock = FakeClock()
    trimmer = MallocTrimmer(1.0, trim=lambda pad: calls.append(pad) or 1, clock=clock)
    for _ in range(10):  # ten batches in 0.5 s
        clock.now += 0.05
        trimmer.batch_done()
    assert calls == []
    clock.now += 0.6
    trimmer.batch_done()
    assert calls == [0]


def test_trimmer_trims_once_when_idle_after_work() -> None:
    calls: list[int] = []
    trimmer = MallocTrimmer(5.0, trim=lambda pad: calls.append(pad) or 1, clock=FakeClock())
    assert trimmer.idle_timeout() is None  # nothing to give back yet: sleep until work comes
    trimmer.batch_done()
    assert trimmer.idle_timeout() == 5.0
    trimmer.idle()
    trimmer.idle()
    assert calls == [0]
    assert trimmer.idle_timeout() is None


def test_trimmer_with_interval_zero_never_trims() -> None:
    calls: list[int] = []
    trimmer = MallocTrimmer(0, trim=lambda pad: calls.append(pad) or 1, clock=FakeClock())
    trimmer.batch_done()
    trimmer.idle()
    assert calls == []
    assert trimmer.idle_timeout() is None


def test_glibc_malloc_trim_is_found_and_callable() -> None:
    trim = load_malloc_trim()
    assert trim is not None
    assert trim(0) in (0, 1)


class FakeEmbedder:
    max_input_tokens = 256

    def prepare(self, ids: list[int]) -> list[int]:
        return [101, *ids, 102]


def test_token_estimate_before_tokenizing_is_capped_per_input() -> None:
    from jina_openai.engine.input_preparation import InputPreparer

    preparer = InputPreparer(FakeEmbedder(), truncate=True)  # type: ignore[arg-type]
    assert preparer.estimate_tokens([[1, 2, 3], list(range(1000))], token_ids=True) == 5 + 256
    assert preparer.estimate_tokens(["x" * 400, "y" * 5000], token_ids=False) == 102 + 256


JINA_FP16 = {"hidden": 768, "dtype_bytes": 2, "max_input_tokens": 8192}


def test_on_gpu_the_batch_budget_follows_the_free_gpu_memory() -> None:
    per_token = ALLOCATOR_SLACK * activation_bytes_per_token(768, 2)
    small, large = (
        derive_bounds(
            budget_mb=None,
            resident_mb=900,
            on_gpu=True,
            default_batch_tokens=16384,
            gpu_free_mb=free_mb,
            **JINA_FP16,
        ).max_batch_tokens
        for free_mb in (2000, 4000)
    )
    assert small == int(GPU_BATCH_SHARE * 2000 * (1 << 20) / per_token)
    assert 256 < small < large < GPU_MAX_BATCH_TOKENS
    with_budget = derive_bounds(
        budget_mb=1500,
        resident_mb=1400,
        on_gpu=True,
        default_batch_tokens=16384,
        gpu_free_mb=2000,
        **JINA_FP16,
    )
    assert with_budget.max_batch_tokens == small  # host memory bounds only the queue


def test_gpu_batch_budget_is_capped_and_floored_and_explicit_settings_win() -> None:
    def batch(free_mb: float, explicit: int | None = None) -> int:
        return derive_bounds(
            budget_mb=None,
            resident_mb=900,
            on_gpu=True,
            default_batch_tokens=16384,
            gpu_free_mb=free_mb,
            max_batch_tokens=explicit,
            **JINA_FP16,
        ).max_batch_tokens

    assert batch(140_000) == GPU_MAX_BATCH_TOKENS
    assert batch(1) == 256
    assert batch(4000, explicit=1024) == 1024


def test_one_request_holds_a_quarter_of_the_queue_but_always_fits_roo_codes_largest() -> None:
    assert request_token_share(262_144) == 65_536
    assert request_token_share(1_000_000) == 250_000
    assert request_token_share(65_536) == 65_536  # a small queue: Roo's largest still fits
    assert request_token_share(1_000) == 1_000  # never more than the queue itself
