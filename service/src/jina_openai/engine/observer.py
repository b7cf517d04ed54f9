"""What the engine reports about its work (the service's metrics implement it)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from jina_openai.models.base import Embedder


class EngineObserver(Protocol):
    def batch_completed(
        self,
        *,
        inputs: int,
        tokens: int,
        padded_tokens: int,
        seconds: float,
        queue_waits: Sequence[float],
    ) -> None: ...

    def batch_failed(self) -> None: ...

    def inputs_dropped(self, count: int) -> None: ...

    def tokenization_completed(self, seconds: float) -> None: ...

    def model_loaded(self, embedder: Embedder) -> None: ...

    def cache_looked_up(self, *, memory_hits: int, disk_hits: int, misses: int) -> None: ...

    def cache_evicted(self, tier: str, count: int) -> None: ...


class NullObserver:
    """An observer that records nothing."""

    def batch_completed(
        self,
        *,
        inputs: int,
        tokens: int,
        padded_tokens: int,
        seconds: float,
        queue_waits: Sequence[float],
    ) -> None:
        return None

    def batch_failed(self) -> None:
        return None

    def inputs_dropped(self, count: int) -> None:
        return None

    def tokenization_completed(self, seconds: float) -> None:
        return None

    def model_loaded(self, embedder: Embedder) -> None:
        return None

    def cache_looked_up(self, *, memory_hits: int, disk_hits: int, misses: int) -> None:
        return None

    def cache_evicted(self, tier: str, count: int) -> None:
        return None
