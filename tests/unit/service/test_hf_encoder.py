"""Loading Hugging Face encoders through the registry: pooling, limits, errors, correctness."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from jina_openai.models.base import Embedder
from jina_openai.models.errors import ModelLoadError
from jina_openai.models.registry import load_embedder

from .conftest import MINILM_ID, TINY_MAX_POSITIONS, build_tiny_bert, stdlib_texts


def test_minilm_loads_with_its_sentence_transformers_settings(minilm_embedder: Embedder) -> None:
    embedder = minilm_embedder
    assert isinstance(embedder, Embedder)
    assert embedder.model_id == MINILM_ID
    assert embedder.dimension == 384
    assert embedder.max_input_tokens == 256  # sentence_bert_config.json, not the 512 positions
    assert embedder.vocab_size == 30522
    assert embedder.architecture == "bert"
    assert embedder.device == torch.device("cpu")
    assert embedder.dtype == torch.float32
    assert 22_000_000 < embedder.parameter_count < 23_000_000


def test_minilm_matches_sentence_transformers(minilm_embedder: Embedder, minilm_dir: Path) -> None:
    sentence_transformers = pytest.importorskip("sentence_transformers")
    texts = ["def add(a, b):\n    return a + b", "Hello, world!", stdlib_texts(1)[0]]
    reference = sentence_transformers.SentenceTransformer(str(minilm_dir), device="cpu").encode(
        texts, normalize_embeddings=True
    )
    ids = [minilm_embedder.prepare(content) for content in minilm_embedder.tokenize(texts)]
    ours = minilm_embedder.embed(ids)
    assert ours.dtype == np.float32
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    assert np.min(np.sum(ours * reference, axis=1)) > 0.9999


def test_results_do_not_depend_on_batching(minilm_embedder: Embedder) -> None:
    texts = ["x = 1", *stdlib_texts(5, chars=700), "a query about sockets"]
    ids = [minilm_embedder.prepare(content) for content in minilm_embedder.tokenize(texts)]
    together = minilm_embedder.embed(ids)
    for row, single in enumerate(ids):
        alone = minilm_embedder.embed([single])[0]
        assert float(alone @ together[row]) >= 0.9999


def test_prepare_adds_special_tokens_and_truncates(minilm_embedder: Embedder) -> None:
    assert minilm_embedder.prepare([]) == [101, 102]
    long = minilm_embedder.prepare(list(range(1000, 2000)))
    assert len(long) == 256
    assert long[0] == 101
    assert long[-1] == 102
    assert long[1:-1] == list(range(1000, 1254))


def test_tokenize_neither_truncates_nor_adds_specials(minilm_embedder: Embedder) -> None:
    (ids,) = minilm_embedder.tokenize(["word " * 600])
    assert len(ids) == 600
    assert 101 not in ids


def test_tiny_model_from_vocab_txt_and_cls_pooling(tmp_path: Path) -> None:
    directory = build_tiny_bert(tmp_path / "cls", pooling="cls")
    tokenizer = json.loads((directory / "tokenizer.json").read_text())
    vocab = sorted(tokenizer["model"]["vocab"].items(), key=lambda item: item[1])
    (directory / "vocab.txt").write_text("".join(f"{token}\n" for token, _ in vocab))
    (directory / "tokenizer.json").unlink()
    embedder = load_embedder(directory)
    assert embedder.model_id == "cls"
    assert getattr(embedder, "pooling", None) == "cls"
    assert embedder.max_input_tokens == TINY_MAX_POSITIONS
    vectors = embedder.embed([embedder.prepare(ids) for ids in embedder.tokenize(["a b", "c"])])
    assert vectors.shape == (2, 32)


def test_max_input_tokens_override(tiny_model_dir: Path) -> None:
    assert load_embedder(tiny_model_dir, max_input_tokens=16).max_input_tokens == 16
    with pytest.raises(ModelLoadError, match="exceeds"):
        load_embedder(tiny_model_dir, max_input_tokens=TINY_MAX_POSITIONS + 1)


def test_bfloat16_on_cpu(tiny_model_dir: Path) -> None:
    embedder = load_embedder(tiny_model_dir, dtype="bfloat16")
    assert embedder.dtype == torch.bfloat16
    vectors = embedder.embed([embedder.prepare([5, 6, 7])])
    assert vectors.dtype == np.float32
    assert np.isfinite(vectors).all()


@pytest.mark.parametrize(
    ("breakage", "named"),
    [
        ("config.json", "config.json"),
        ("model.safetensors", "model.safetensors"),
        ("tokenizer.json", "tokenizer.json"),
    ],
)
def test_incomplete_directories_name_the_missing_file(
    tiny_model_dir: Path, tmp_path: Path, breakage: str, named: str
) -> None:
    copy = Path(shutil.copytree(tiny_model_dir, tmp_path / "model"))
    (copy / breakage).unlink()
    with pytest.raises(ModelLoadError, match=named):
        load_embedder(copy)


def test_unsupported_configs_are_refused_clearly(tiny_model_dir: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(tiny_model_dir, tmp_path / "model"))
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "model_type": "gpt2"}))
    with pytest.raises(ModelLoadError, match="model_type 'gpt2' is not supported"):
        load_embedder(copy)
    (copy / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match=r"config\.json is not readable JSON"):
        load_embedder(copy)
    (copy / "config.json").write_text(json.dumps(config))
    (copy / "1_Pooling" / "config.json").write_text('{"pooling_mode_max_tokens": true}')
    with pytest.raises(ModelLoadError, match="pooling_mode_max_tokens"):
        load_embedder(copy)


def test_missing_directory_and_bad_device_or_dtype(tiny_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_embedder(tmp_path / "nowhere")
    with pytest.raises(ModelLoadError, match="unsupported device"):
        load_embedder(tiny_model_dir, device="tpu")
    with pytest.raises(ModelLoadError, match="unsupported dtype"):
        load_embedder(tiny_model_dir, dtype="int8")
    if not torch.cuda.is_available():
        with pytest.raises(ModelLoadError, match="CUDA is not available"):
            load_embedder(tiny_model_dir, device="cuda")
        assert load_embedder(tiny_model_dir, device="auto").device == torch.device("cpu")


def test_minilm_in_bfloat16_stays_within_cosine_0999_of_float32(
    minilm_embedder: Embedder, minilm_dir: Path
) -> None:
    """What `dtype: auto` relies on to choose bfloat16 (models/dtype_choice.py), on real code."""
    bfloat16 = load_embedder(minilm_dir, dtype="bfloat16")
    assert bfloat16.dtype == torch.bfloat16
    texts = stdlib_texts(48)
    ids = [minilm_embedder.prepare(content) for content in minilm_embedder.tokenize(texts)]
    reference = minilm_embedder.embed(ids)
    vectors = bfloat16.embed(ids)
    assert vectors.dtype == np.float32
    cosines = np.sum(reference * vectors, axis=1)
    assert cosines.min() >= 0.999, cosines.min()
