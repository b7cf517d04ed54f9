"""Warmup shapes: what the service runs before it reports ready, and what seeds its throughput
estimate (the last shape)."""

from __future__ import annotations

from jina_openai.engine.warmup import warmup_shapes


def test_a_long_context_model_seeds_its_estimate_with_code_chunks_not_its_longest_input() -> None:
    shapes = warmup_shapes(max_input_tokens=8192, max_batch_tokens=4096, max_batch_inputs=64)
    assert shapes == [(1, 16), (1, 4096), (16, 256)]


def test_a_short_context_model_runs_each_shape_once() -> None:
    shapes = warmup_shapes(max_input_tokens=256, max_batch_tokens=4096, max_batch_inputs=64)
    assert shapes == [(1, 16), (16, 256)]


def test_the_batch_input_limit_caps_every_shape() -> None:
    shapes = warmup_shapes(max_input_tokens=128, max_batch_tokens=8192, max_batch_inputs=32)
    assert shapes == [(1, 16), (32, 128)]
