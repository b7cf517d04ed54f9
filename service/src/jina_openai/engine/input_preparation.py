"""Request inputs -> prepared token id arrays (runs in the tokenization thread pool).

Texts are cut before tokenizing (models/bounded_encoding.py: the cost of a text is bounded by the
model maximum, not by its length, and no result changes), token-id inputs are range-checked
against the model's vocabulary; then each input is either truncated to the model maximum (the
default: Roo Code cannot split a chunk) or rejected with a 400 naming it. Prepared ids (special
tokens included) are stored as int32 arrays: a queued token costs 4 bytes. Texts are tokenized
in slices of TOKENIZE_SLICE, so a request whose client has gone stops between slices.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from jina_openai.engine.errors import ClientDisconnectedError, InvalidInputError
from jina_openai.models.base import Embedder


@dataclass(frozen=True)
class PreparedInputs:
    ids: list[np.ndarray]  # int32, special tokens included, at most max_input_tokens each
    token_count: int
    truncated_inputs: int


CHARS_PER_TOKEN = 4
TOKENIZE_SLICE = 64
# Python's str header; a text costs this plus 1, 2 or 4 bytes per character (PEP 393).
STR_OVERHEAD_BYTES = 64


class InputPreparer:
    def __init__(self, embedder: Embedder, *, truncate: bool) -> None:
        self._embedder = embedder
        self._truncate = truncate
        self.special_tokens = len(embedder.prepare([]))
        self.max_content_tokens = embedder.max_input_tokens - self.special_tokens

    def estimate_tokens(self, inputs: list[str] | list[list[int]], *, token_ids: bool) -> int:
        """Tokens the inputs will hold once prepared, before tokenizing: exact for token ids;
        for text ~CHARS_PER_TOKEN characters per token (code and English with WordPiece/BPE
        average 3.5-4.5), each capped at the model maximum. Admission reserves this much of the
        queue while the request is tokenized."""
        cap = self._embedder.max_input_tokens
        if token_ids:
            return sum(min(cap, len(ids) + self.special_tokens) for ids in inputs)
        return sum(min(cap, len(text) // CHARS_PER_TOKEN + self.special_tokens) for text in inputs)

    def min_tokens(self, inputs: list[str] | list[list[int]]) -> int:
        """A lower bound of the prepared tokens: the special tokens of every input."""
        return len(inputs) * self.special_tokens

    @staticmethod
    def input_bytes(inputs: list[str] | list[list[int]], *, token_ids: bool) -> int:
        """Memory the parsed inputs hold (Python objects), known before tokenizing."""
        if token_ids:
            return sum(STR_OVERHEAD_BYTES + 8 * len(ids) for ids in inputs)
        return sum(STR_OVERHEAD_BYTES + len(text) * _char_width(text) for text in inputs)

    def prepare_texts(
        self, texts: list[str], *, single: bool, cancelled: threading.Event | None = None
    ) -> PreparedInputs:
        content: list[list[int]] = []
        for start in range(0, len(texts), TOKENIZE_SLICE):
            if cancelled is not None and cancelled.is_set():
                raise ClientDisconnectedError()
            try:
                content += self._embedder.tokenize(
                    texts[start : start + TOKENIZE_SLICE], limit=self.max_content_tokens
                )
            except Exception as exc:  # tokenizers can refuse exotic input: a client error
                raise InvalidInputError(
                    f"the input could not be tokenized: {exc}", param="input", code="invalid_input"
                ) from exc
        return self._finish(content, single=single)

    def prepare_token_ids(
        self, inputs: list[list[int]], *, single: bool, cancelled: threading.Event | None = None
    ) -> PreparedInputs:
        if cancelled is not None and cancelled.is_set():
            raise ClientDisconnectedError()
        vocab = self._embedder.vocab_size
        for position, ids in enumerate(inputs):
            low, high = min(ids), max(ids)
            if low < 0 or high >= vocab:
                bad = low if low < 0 else high
                raise InvalidInputError(
                    f"token id {bad} is outside this model's vocabulary [0, {vocab})",
                    param=_param(position, single),
                    code="invalid_token_id",
                )
        return self._finish(inputs, single=single)

    def _finish(self, content: list[list[int]], *, single: bool) -> PreparedInputs:
        prepared: list[np.ndarray] = []
        tokens = 0
        truncated = 0
        for position, ids in enumerate(content):
            if len(ids) > self.max_content_tokens:
                if not self._truncate:
                    raise InvalidInputError(
                        f"{_param(position, single)} has more than "
                        f"{self._embedder.max_input_tokens} tokens, the most this model takes "
                        "(truncation is disabled on this server)",
                        param=_param(position, single),
                        code="input_too_long",
                    )
                truncated += 1
            array = np.asarray(self._embedder.prepare(ids), dtype=np.int32)
            prepared.append(array)
            tokens += int(array.shape[0])
        return PreparedInputs(ids=prepared, token_count=tokens, truncated_inputs=truncated)


def _char_width(text: str) -> int:
    """Bytes per character of a Python str holding `text`."""
    if text.isascii():
        return 1
    widest = ord(max(text))
    return 1 if widest < 0x100 else 2 if widest < 0x10000 else 4


def _param(position: int, single: bool) -> str:
    return "input" if single else f"input[{position}]"
