"""A Hugging Face `tokenizers` tokenizer split into the two steps the engine needs.

`encode` gives content ids (no special tokens, no truncation: the engine decides what to do with
long inputs); `wrap` adds the model's special tokens around (truncated) content ids. The special
tokens are discovered once from the tokenizer's own post-processor, so BERT (`[CLS] x [SEP]`) and
RoBERTa (`<s> x </s>`) templates both work. `tokenizers.Tokenizer` is thread-safe for encoding.
"""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
from tokenizers.models import WordPiece

from jina_openai.models.bounded_encoding import encode_bounded, id_limit
from jina_openai.models.errors import ModelLoadError

_PROBES = ("a", "hello", "x y z")


class TextTokenizer:
    def __init__(self, tokenizer: Tokenizer, *, source: Path) -> None:
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self._tokenizer = tokenizer
        self.prefix, self.suffix = _special_tokens_around_content(tokenizer, source)

    @property
    def special_token_count(self) -> int:
        return len(self.prefix) + len(self.suffix)

    @property
    def id_limit(self) -> int:
        """One past the largest id the tokenizer can produce (added tokens included)."""
        return id_limit(self._tokenizer)

    def encode(self, texts: list[str], limit: int | None = None) -> list[list[int]]:
        """Content ids; see bounded_encoding.encode_bounded for what `limit` does."""
        return encode_bounded(self._tokenizer, texts, limit)

    def wrap(self, ids: list[int], max_total: int) -> list[int]:
        room = max(0, max_total - self.special_token_count)
        return [*self.prefix, *ids[:room], *self.suffix]


def load_text_tokenizer(model_dir: Path) -> TextTokenizer:
    """tokenizer.json when present, else a BERT WordPiece tokenizer from vocab.txt."""
    tokenizer_json = model_dir / "tokenizer.json"
    if tokenizer_json.is_file():
        try:
            tokenizer = Tokenizer.from_file(str(tokenizer_json))
        except Exception as exc:
            raise ModelLoadError(f"{tokenizer_json} cannot be loaded: {exc}") from exc
        return TextTokenizer(tokenizer, source=tokenizer_json)
    vocab_txt = model_dir / "vocab.txt"
    if vocab_txt.is_file():
        return TextTokenizer(_wordpiece_from_vocab(vocab_txt), source=vocab_txt)
    raise ModelLoadError(f"{tokenizer_json} is missing (and there is no vocab.txt either)")


def _wordpiece_from_vocab(vocab_txt: Path) -> Tokenizer:
    lowercase = True
    config_path = vocab_txt.parent / "tokenizer_config.json"
    if config_path.is_file():
        try:
            lowercase = bool(json.loads(config_path.read_text("utf-8")).get("do_lower_case", True))
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"{config_path} is not readable JSON: {exc}") from exc
    try:
        vocab = WordPiece.read_file(str(vocab_txt))
    except Exception as exc:
        raise ModelLoadError(f"{vocab_txt} cannot be read: {exc}") from exc
    for token in ("[CLS]", "[SEP]", "[UNK]"):
        if token not in vocab:
            raise ModelLoadError(f"{vocab_txt} lacks the special token {token}")
    tokenizer = Tokenizer(WordPiece(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return tokenizer


def _special_tokens_around_content(
    tokenizer: Tokenizer, source: Path
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    for probe in _PROBES:
        content = tokenizer.encode(probe, add_special_tokens=False).ids
        full = tokenizer.encode(probe, add_special_tokens=True).ids
        if not content:
            continue
        for start in range(len(full) - len(content) + 1):
            if full[start : start + len(content)] == content:
                return tuple(full[:start]), tuple(full[start + len(content) :])
    raise ModelLoadError(f"{source}: cannot tell the special tokens from the content tokens")
