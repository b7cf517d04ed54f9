"""Tokenizing with a bounded cost: texts are cut before the tokenizer sees them.

The service keeps at most `limit` content tokens of an input (the model maximum less its special
tokens), yet a request may carry megabytes of text in one string. Tokenizing all of it costs
seconds of CPU and gigabytes of offsets and alignments (8 MiB of code: 8.6 s, +2.2 GB RSS) for
tokens that are then thrown away. So each text is first cut to

    (limit + 1) x CUT_CHARS_PER_TOKEN characters        (8 per token: code and prose average
                                                          3.5-5 characters per token with
                                                          WordPiece, BPE or Unigram)

and only that prefix is tokenized. The cut never changes a result:

- A text no longer than the cut is tokenized whole, as before.
- A longer text's prefix is tokenized; its tokens are exact except those of the last pre-token
  word (`Encoding.word_ids`), which the cut may have split. Pre-tokenizers split text into words
  locally (whitespace, punctuation, CJK characters, the byte-level regex) and normalizers act on
  characters, so every word before the last one tokenizes exactly as in the whole text.
- When the exact tokens number more than `limit`, the input will be truncated anyway and its
  first `limit` tokens are known: done. Otherwise (a prefix of long whitespace runs, very long
  words that become one [UNK], ...) the cut grows 4x and the text is tokenized again, up to the
  whole text. So a text that fits the limit is always tokenized whole and never changed, and a
  pathological one costs at most ~1.33x tokenizing it whole, within the body size limit.

Truncation semantics therefore stay exactly as they are: the first `limit` content tokens of the
whole text.
"""

from __future__ import annotations

from typing import Any, Protocol

CUT_CHARS_PER_TOKEN = 8
CUT_GROWTH = 4


class _Encoding(Protocol):
    ids: list[int]
    word_ids: list[int | None]


class _Tokenizer(Protocol):
    def encode_batch(self, inputs: list[str], add_special_tokens: bool) -> list[_Encoding]: ...


def cut_length(limit: int) -> int:
    """Characters of a text tokenized first for a limit of `limit` content tokens."""
    return (limit + 1) * CUT_CHARS_PER_TOKEN


def encode_bounded(tokenizer: _Tokenizer, texts: list[str], limit: int | None) -> list[list[int]]:
    """Content ids (no special tokens) of each text. With a `limit`, a text holding more than
    `limit` content tokens may come back shortened to any length above `limit`; its first
    `limit` ids are exactly those of the whole text."""
    if limit is None:
        encodings = tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [list(encoding.ids) for encoding in encodings]
    results: list[list[int] | None] = [None] * len(texts)
    cuts = [cut_length(limit)] * len(texts)
    pending = list(range(len(texts)))
    while pending:
        prefixes = [texts[index][: cuts[index]] for index in pending]
        encodings = tokenizer.encode_batch(prefixes, add_special_tokens=False)
        still_pending: list[int] = []
        for index, prefix, encoding in zip(pending, prefixes, encodings, strict=True):
            if len(prefix) == len(texts[index]):
                results[index] = list(encoding.ids)  # the whole text
                continue
            exact = _exact_token_count(encoding)
            if exact > limit:
                results[index] = list(encoding.ids[:exact])
                continue
            cuts[index] *= CUT_GROWTH
            still_pending.append(index)
        pending = still_pending
    return [ids if ids is not None else [] for ids in results]


def _exact_token_count(encoding: _Encoding) -> int:
    """Tokens before the first token of the prefix's last word (which the cut may have split)."""
    words = encoding.word_ids
    last_word = max((word for word in words if word is not None), default=None)
    if last_word is None:
        return max(0, len(words) - 1)
    return words.index(last_word)


def id_limit(tokenizer: Any) -> int:
    """One past the largest id a `tokenizers.Tokenizer` can produce (added tokens included):
    the model must have at least this many embeddings."""
    vocab = tokenizer.get_vocab(with_added_tokens=True)
    return max(vocab.values(), default=-1) + 1
