"""Texts are cut before the tokenizer sees them, and the cut never changes a result
(models/bounded_encoding.py): the first `limit` tokens are those of the whole text, and a text
that fits the limit is tokenized whole."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from jina_openai.models.bounded_encoding import cut_length, encode_bounded
from tokenizers import Tokenizer, pre_tokenizers, trainers
from tokenizers.models import BPE

from .conftest import stdlib_texts

LIMIT = 254  # all-MiniLM-L6-v2: 256 tokens less [CLS] and [SEP]


@pytest.fixture(scope="module")
def wordpiece(minilm_dir: Path) -> Tokenizer:
    tokenizer = Tokenizer.from_file(str(minilm_dir / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


@pytest.fixture(scope="module")
def byte_level_bpe() -> Tokenizer:
    tokenizer = Tokenizer(BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=800, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tokenizer.train_from_iterator(stdlib_texts(300), trainer)
    return tokenizer


def tricky_texts() -> list[str]:
    """Texts whose tokens straddle every kind of boundary the cut can fall on."""
    rng = random.Random(7)
    code = "".join(stdlib_texts(40))
    pieces = ["    ", "\t", "\n", " ", "x" * 150, "中文字符", "é", "e\u0301", "🙂", "'s", "--", "a"]
    texts = [
        code,
        "中文字符测试" * 2000,
        " " * 50_000,
        "x" * 60_000,
        ("word " * 100) + " " * 30_000 + ("tail " * 400),
        "a b",
        "",
    ]
    for _ in range(30):
        texts.append("".join(rng.choice(pieces) for _ in range(rng.randint(200, 3000))))
    for start in range(0, 20):  # code cut at every offset around the first cut length
        texts.append(code[start : start + cut_length(LIMIT) + rng.randint(-40, 40)])
    return texts


@pytest.mark.parametrize("tokenizer_name", ["wordpiece", "byte_level_bpe"])
def test_the_cut_keeps_the_first_limit_tokens_and_whole_texts_that_fit(
    tokenizer_name: str, request: pytest.FixtureRequest
) -> None:
    tokenizer: Tokenizer = request.getfixturevalue(tokenizer_name)
    texts = tricky_texts()
    whole = [e.ids for e in tokenizer.encode_batch(texts, add_special_tokens=False)]
    bounded = encode_bounded(tokenizer, texts, LIMIT)
    for text, full, cut in zip(texts, whole, bounded, strict=True):
        assert cut[:LIMIT] == full[:LIMIT], text[:80]
        if len(full) <= LIMIT:
            assert cut == full  # a text that fits is never changed
        else:
            assert len(cut) > LIMIT  # still known to be truncated


def test_without_a_limit_nothing_is_cut(wordpiece: Tokenizer) -> None:
    text = "".join(stdlib_texts(10))
    assert (
        encode_bounded(wordpiece, [text], None)[0]
        == wordpiece.encode(text, add_special_tokens=False).ids
    )


def test_a_huge_text_is_tokenized_only_up_to_its_cut(wordpiece: Tokenizer) -> None:
    huge = "".join(stdlib_texts(40)) * 40  # ~1.6 MB of code, ~400k tokens
    (ids,) = encode_bounded(wordpiece, [huge], LIMIT)
    assert LIMIT < len(ids) <= cut_length(LIMIT)  # one cut's worth of tokens, not 400k
