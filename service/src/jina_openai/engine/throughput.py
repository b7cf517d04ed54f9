"""A running estimate of how many real tokens per second the inference thread embeds."""

from __future__ import annotations

import threading


class ThroughputEstimator:
    """Exponentially weighted tokens/s over batches; used to compute `Retry-After`."""

    def __init__(self, *, initial_tokens_per_s: float = 1000.0, smoothing: float = 0.2) -> None:
        self._lock = threading.Lock()
        self._rate = initial_tokens_per_s
        self._smoothing = smoothing
        self._observed = False

    @property
    def tokens_per_s(self) -> float:
        return self._rate

    def observe(self, tokens: int, seconds: float) -> None:
        if tokens <= 0 or seconds <= 0:
            return
        rate = tokens / seconds
        with self._lock:
            if not self._observed:
                self._rate, self._observed = rate, True
            else:
                self._rate += self._smoothing * (rate - self._rate)

    def seconds_for(self, tokens: int) -> float:
        return tokens / max(self._rate, 1e-6)
