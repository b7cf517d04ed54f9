"""The contract between the serving engine and a loaded embedding model."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np
import torch

if TYPE_CHECKING:
    from jina_openai.models.dtype_choice import DtypeChoice


@runtime_checkable
class Embedder(Protocol):
    """A loaded model that turns token ids into unit-length vectors.

    The engine calls `tokenize` and `prepare` from worker threads (tokenizers are thread-safe)
    and `embed` only from its single inference thread, inside `torch.inference_mode()`.
    """

    model_id: str  # default id to serve under, e.g. "jinaai/jina-embeddings-v2-base-code"
    dimension: int  # length of the output vectors
    max_input_tokens: int  # longest prepared input, special tokens included
    vocab_size: int  # token ids must be in [0, vocab_size)
    device: torch.device
    dtype: torch.dtype
    dtype_choice: DtypeChoice  # how `dtype` was chosen (set by the model registry)
    architecture: str  # short name shown by /info, e.g. "bert" or "jina-bert-v2"
    parameter_count: int  # number of model parameters (check-model prints it)

    def tokenize(self, texts: list[str], limit: int | None = None) -> list[list[int]]:
        """Token ids of each text WITHOUT special tokens. Without `limit`, untruncated; with
        it, each text is cut before tokenizing (models/bounded_encoding.py): a text holding
        more than `limit` tokens may come back shortened, its first `limit` ids exact."""
        ...

    def prepare(self, ids: list[int]) -> list[int]:
        """Add the model's special tokens around `ids`, truncating the content so the result
        has at most `max_input_tokens` ids. Its length is the input's token count in `usage`."""
        ...

    def embed(
        self, batch: list[list[int]], between_layers: Callable[[], None] | None = None
    ) -> np.ndarray:
        """Embed prepared inputs (any lengths; the embedder pads and masks internally).

        Returns float32 [len(batch), dimension], each row L2-normalised. No tensor survives the
        call. An input embedded alone and inside a batch must agree (cosine >= 0.9999).
        `between_layers`, when given, is called after each encoder layer but the last, on the
        calling thread: the engine's query lane runs a waiting query's whole forward pass
        there (engine/inference_worker.py), so a query never waits for a full batch. It may call
        `embed` again (without `between_layers`).
        """
        ...
