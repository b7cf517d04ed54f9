"""The optimized forward pass against an eager reference; batching, padding, dtypes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from jina_openai.models.jina_bert import (
    JinaBertConfig,
    JinaBertModel,
    load_jina_bert_model,
)
from jina_openai.models.model_config import read_model_config

from .checkpoints import SPEC_ODD_HEADS, SPEC_POW2_HEADS, MakeCheckpoint, TinySpec, load_state
from .helpers import load
from .reference import reference_embeddings, reference_hidden

SPECS = pytest.mark.parametrize(
    "spec", [SPEC_ODD_HEADS, SPEC_POW2_HEADS], ids=["3-heads", "4-heads"]
)


def random_ids(length: int, vocab: int, seed: int) -> list[int]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(5, vocab, (length,), generator=gen).tolist()


def row_cosines(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return F.cosine_similarity(a.double(), b.double(), dim=-1)


@SPECS
@pytest.mark.parametrize("length", [1, 7, 512, 2048])
def test_matches_eager_reference(make_checkpoint: MakeCheckpoint, spec: TinySpec, length: int):
    model_dir = make_checkpoint(spec, prefix="bert.")
    embedder = load(model_dir)
    state, config = load_state(model_dir), read_model_config(model_dir)
    ids = random_ids(length, spec.vocab, seed=length)

    want_hidden = reference_hidden(state, config, [ids])[0]
    got_hidden = embedder.model(torch.tensor([ids]), torch.ones(1, length, dtype=torch.long))[0]
    assert row_cosines(got_hidden, want_hidden).min() >= 0.9999
    # Stricter than the cosine: a 10% error in the ALiBi slopes moves these by ~5e-2.
    assert (got_hidden.double() - want_hidden).abs().max() < 1e-3

    got = torch.from_numpy(embedder.embed([ids]))
    want = reference_embeddings(state, config, [ids])
    assert row_cosines(got, want).min() >= 0.9999


def test_reference_comparison_is_sensitive_to_alibi(make_checkpoint: MakeCheckpoint) -> None:
    """Guard against a vacuous comparison: no ALiBi at all must fail the tolerances above."""
    model_dir = make_checkpoint(SPEC_ODD_HEADS, prefix="bert.")
    config = read_model_config(model_dir)
    cfg = JinaBertConfig.from_dict(config)
    model = load_jina_bert_model(model_dir, cfg)
    model.slopes = [0.0] * cfg.num_attention_heads
    ids = random_ids(512, SPEC_ODD_HEADS.vocab, seed=512)
    want = reference_hidden(load_state(model_dir), config, [ids])[0]
    got = model(torch.tensor([ids]), torch.ones(1, 512))[0]
    assert (got.double() - want).abs().max() > 1e-2


@SPECS
def test_alone_and_in_padded_batch_agree(make_checkpoint: MakeCheckpoint, spec: TinySpec) -> None:
    embedder = load(make_checkpoint(spec))
    inputs = [random_ids(n, spec.vocab, seed=n) for n in (300, 1, 17, 64, 2, 300)]
    batch = embedder.embed(inputs)
    for row, ids in zip(batch, inputs, strict=True):
        alone = embedder.embed([ids])[0]
        assert float(np.dot(row, alone)) >= 0.99999


@SPECS
def test_padded_forward_matches_reference_batch(make_checkpoint: MakeCheckpoint, spec: TinySpec):
    model_dir = make_checkpoint(spec)
    model: JinaBertModel = load(model_dir).model
    inputs = [random_ids(n, spec.vocab, seed=n) for n in (40, 3, 25)]
    want = reference_hidden(load_state(model_dir), read_model_config(model_dir), inputs)
    width = 48
    for side in ("right", "left"):
        ids = torch.ones(len(inputs), width, dtype=torch.long)  # <pad> = 1
        mask = torch.zeros(len(inputs), width, dtype=torch.long)
        for row, x in enumerate(inputs):
            cols = slice(0, len(x)) if side == "right" else slice(width - len(x), width)
            ids[row, cols] = torch.tensor(x)
            mask[row, cols] = 1
        out = model(ids, mask)
        for row, x in enumerate(inputs):
            cols = slice(0, len(x)) if side == "right" else slice(width - len(x), width)
            assert row_cosines(out[row, cols], want[row]).min() >= 0.9999
            assert float(out[row][mask[row] == 0].abs().sum()) == 0.0


def test_forward_rejects_holes_in_the_mask(odd_heads_dir: Path) -> None:
    model = load(odd_heads_dir).model
    with pytest.raises(ValueError, match="contiguous"):
        model(torch.tensor([[0, 5, 6, 2]]), torch.tensor([[1, 0, 1, 1]]))
    with pytest.raises(ValueError, match="contiguous"):
        model(torch.tensor([[0, 5]]), torch.tensor([[0, 0]]))


@SPECS
def test_outputs_are_unit_length_float32(make_checkpoint: MakeCheckpoint, spec: TinySpec) -> None:
    embedder = load(make_checkpoint(spec))
    texts = ["def f():\n    pass\n", "", "a" * 300]
    out = embedder.embed([embedder.prepare(ids) for ids in embedder.tokenize(texts)])
    assert out.dtype == np.float32
    assert out.shape == (3, spec.hidden) == (3, embedder.dimension)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    assert embedder.embed([]).shape == (0, spec.hidden)


def test_embed_works_without_inference_mode_and_keeps_no_graph(odd_heads_dir: Path) -> None:
    embedder = load(odd_heads_dir)
    with torch.enable_grad():
        out = embedder.embed([[0, 7, 2]])
    assert isinstance(out, np.ndarray)
    with torch.inference_mode():
        np.testing.assert_array_equal(embedder.embed([[0, 7, 2]]), out)


def test_embed_rejects_bad_ids(odd_heads_dir: Path) -> None:
    embedder = load(odd_heads_dir)
    with pytest.raises(ValueError, match="token ids"):
        embedder.embed([[0, SPEC_ODD_HEADS.vocab, 2]])
    with pytest.raises(ValueError, match="token ids"):
        embedder.embed([[0, -1, 2]])
    with pytest.raises(ValueError, match="empty"):
        embedder.embed([[0, 2], []])


@SPECS
def test_bf16_on_cpu_runs_and_is_close(make_checkpoint: MakeCheckpoint, spec: TinySpec) -> None:
    model_dir = make_checkpoint(spec)
    fp32 = load(model_dir)
    bf16 = load(model_dir, dtype=torch.bfloat16)
    assert bf16.dtype == torch.bfloat16
    assert next(bf16.model.parameters()).dtype == torch.bfloat16
    inputs = [random_ids(n, spec.vocab, seed=n) for n in (1, 30, 700)]
    got, want = bf16.embed(inputs), fp32.embed(inputs)
    assert got.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-5)
    assert (got * want).sum(axis=1).min() > 0.99


def test_small_chunks_change_nothing(make_checkpoint: MakeCheckpoint) -> None:
    """MLP row chunking and attention query chunking are exact re-partitions of the work."""
    model_dir = make_checkpoint(SPEC_POW2_HEADS)
    cfg = JinaBertConfig.from_dict(read_model_config(model_dir))
    big = load_jina_bert_model(model_dir, cfg)
    small = load_jina_bert_model(model_dir, cfg, attention_block_bytes=1, mlp_rows=50)
    ids = torch.tensor(random_ids(333, SPEC_POW2_HEADS.vocab, seed=3))
    lengths = [333]
    torch.testing.assert_close(
        small.encode_packed(ids, lengths), big.encode_packed(ids, lengths), rtol=1e-5, atol=1e-5
    )
