"""Loading upstream-layout checkpoints: key layouts, detection, and clear errors."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from jina_openai.models.base import Embedder
from jina_openai.models.errors import ModelLoadError
from jina_openai.models.jina_bert import (
    CheckpointError,
    JinaBertConfig,
    JinaBertModel,
    MissingCheckpointFileError,
    is_jina_bert_config,
)
from jina_openai.models.model_config import read_model_config
from safetensors.torch import load_file, save_file

from .checkpoints import (
    SPEC_ODD_HEADS,
    SPEC_POW2_HEADS,
    SPECIALS,
    MakeCheckpoint,
    TinySpec,
    upstream_config,
)
from .helpers import CPU, copy_dir, embed_texts, load

TEXTS = ["def add(a, b):\n    return a + b\n", "SELECT id FROM users;", "x"]


# ---------------------------------------------------------------- detection and config


def test_detects_the_upstream_config_not_the_directory_name(make_checkpoint: MakeCheckpoint):
    config = upstream_config(SPEC_ODD_HEADS)
    assert is_jina_bert_config(config)
    only_auto_map = {"model_type": "bert", "auto_map": config["auto_map"]}
    assert is_jina_bert_config(only_auto_map)
    assert is_jina_bert_config({"feed_forward_type": "geglu"})
    assert is_jina_bert_config({"position_embedding_type": "alibi"})
    plain_bert = {"model_type": "bert", "position_embedding_type": "absolute", "hidden_size": 8}
    assert not is_jina_bert_config(plain_bert)
    assert not is_jina_bert_config({})


def test_directory_name_does_not_matter(make_checkpoint: MakeCheckpoint, tmp_path: Path):
    renamed = copy_dir(make_checkpoint(SPEC_ODD_HEADS), tmp_path / "all-MiniLM-L6-v2")
    assert load(renamed).dimension == SPEC_ODD_HEADS.hidden


def test_config_fields_are_read() -> None:
    cfg = JinaBertConfig.from_dict(upstream_config(TinySpec(max_positions=4096)))
    assert (cfg.hidden_size, cfg.num_attention_heads, cfg.max_position_embeddings) == (24, 3, 4096)
    assert JinaBertConfig().vocab_size == 61056  # defaults are the base-code model


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"hidden_size": 25}, "not divisible"),
        ({"feed_forward_type": "original"}, "feed_forward_type"),
        ({"position_embedding_type": "absolute"}, "position_embedding_type"),
        ({"hidden_act": "swish"}, "hidden_act"),
        ({"num_hidden_layers": 0}, "num_hidden_layers"),
        ({"vocab_size": "many"}, "vocab_size"),
    ],
)
def test_unsupported_configs_fail_clearly(change: dict, message: str) -> None:
    config = upstream_config(SPEC_ODD_HEADS) | change
    with pytest.raises(CheckpointError, match=message) as info:
        JinaBertConfig.from_dict(config)
    assert "config.json" in str(info.value)


def test_missing_required_config_field() -> None:
    config = upstream_config(SPEC_ODD_HEADS)
    del config["num_attention_heads"]
    with pytest.raises(CheckpointError, match="num_attention_heads"):
        JinaBertConfig.from_dict(config)


# ---------------------------------------------------------------- key layouts


@pytest.mark.parametrize("spec", [SPEC_ODD_HEADS, SPEC_POW2_HEADS], ids=["3-heads", "4-heads"])
def test_both_key_layouts_load_and_agree(make_checkpoint: MakeCheckpoint, spec: TinySpec):
    plain = load(make_checkpoint(spec, prefix="", seed=3))
    prefixed = load(make_checkpoint(spec, prefix="bert.", seed=3))
    no_heads = load(make_checkpoint(spec, prefix="bert.", extra_heads=False, seed=3))
    a, b, c = (embed_texts(e, TEXTS) for e in (plain, prefixed, no_heads))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    assert a.shape == (len(TEXTS), spec.hidden)


def test_embedder_attributes(odd_heads_dir: Path) -> None:
    embedder = load(odd_heads_dir)
    assert isinstance(embedder, Embedder)
    assert embedder.model_id == "jinaai/jina-embeddings-v2-base-code"
    assert embedder.architecture == "jina-bert-v2"
    assert embedder.dimension == SPEC_ODD_HEADS.hidden
    assert embedder.max_input_tokens == 8192
    assert embedder.vocab_size == SPEC_ODD_HEADS.vocab
    assert embedder.device == CPU
    assert embedder.dtype == torch.float32
    expected_params = sum(
        t.numel()
        for k, t in load_file(str(odd_heads_dir / "model.safetensors")).items()
        if not k.startswith(("pooler", "bert.pooler", "cls."))
    )
    assert embedder.parameter_count == expected_params
    custom = load(odd_heads_dir, model_id="my/code-model", max_input_tokens=16)
    assert (custom.model_id, custom.max_input_tokens) == ("my/code-model", 16)


def test_model_is_not_trainable_and_weights_are_assigned(odd_heads_dir: Path) -> None:
    model = load(odd_heads_dir).model
    assert isinstance(model, JinaBertModel)
    assert not model.training
    assert all(not p.requires_grad and p.device == CPU for p in model.parameters())
    saved = load_file(str(odd_heads_dir / "model.safetensors"))
    torch.testing.assert_close(
        model.encoder.layer[1].mlp.up_gated_layer.weight,
        saved["encoder.layer.1.mlp.up_gated_layer.weight"],
    )


# ---------------------------------------------------------------- tokenizer


def test_tokenize_and_prepare(odd_heads_dir: Path) -> None:
    embedder = load(odd_heads_dir, max_input_tokens=10)
    long_text = "def add(a, b): return a + b  " * 20
    (ids,) = embedder.tokenize([long_text])
    assert len(ids) > 512 / 20  # no truncation from tokenizer.json's settings
    assert all(i not in (0, 1, 2) for i in ids)  # no specials
    prepared = embedder.prepare(ids)
    assert len(prepared) == 10
    assert prepared[0] == SPECIALS.index("<s>")
    assert prepared[-1] == SPECIALS.index("</s>")
    assert prepared[1:-1] == ids[:8]
    assert embedder.prepare([]) == [0, 2]
    assert [len(x) for x in embedder.tokenize(["a", "a b c d"])] != [7, 7]  # no padding


# ---------------------------------------------------------------- clear errors


@pytest.mark.parametrize("name", ["model.safetensors", "tokenizer.json"])
def test_missing_file_is_named(odd_heads_dir: Path, tmp_path: Path, name: str) -> None:
    broken = copy_dir(odd_heads_dir, tmp_path / "ckpt")
    (broken / name).unlink()
    with pytest.raises(MissingCheckpointFileError, match=re.escape(name)) as info:
        load(broken)
    assert isinstance(info.value, FileNotFoundError)
    assert isinstance(info.value, ModelLoadError)  # what the registry's callers catch


def test_missing_config_is_named(tmp_path: Path) -> None:
    with pytest.raises(MissingCheckpointFileError, match=r"config\.json"):
        read_model_config(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"config\.json"):
        read_model_config(tmp_path)


def _rewrite_weights(model_dir: Path, edit) -> None:
    path = model_dir / "model.safetensors"
    tensors = load_file(str(path))
    edit(tensors)
    save_file(tensors, str(path))


@pytest.mark.parametrize("prefix", ["", "bert."])
def test_missing_tensor_is_named(make_checkpoint: MakeCheckpoint, tmp_path: Path, prefix: str):
    broken = copy_dir(make_checkpoint(SPEC_ODD_HEADS, prefix=prefix), tmp_path / "ckpt")
    name = "encoder.layer.1.attention.self.layer_norm_k.weight"
    _rewrite_weights(broken, lambda t: t.pop(prefix + name))
    with pytest.raises(CheckpointError, match=name.replace(".", r"\.")) as info:
        load(broken)
    assert "model.safetensors" in str(info.value)


def test_misshaped_tensor_is_named_with_shapes(odd_heads_dir: Path, tmp_path: Path) -> None:
    broken = copy_dir(odd_heads_dir, tmp_path / "ckpt")
    name = "encoder.layer.0.mlp.up_gated_layer.weight"
    spec = SPEC_ODD_HEADS

    def edit(tensors: dict) -> None:
        tensors[name] = torch.zeros(spec.intermediate, spec.hidden)  # not [2 * I, H]

    _rewrite_weights(broken, edit)
    with pytest.raises(CheckpointError) as info:
        load(broken)
    message = str(info.value)
    assert name in message
    assert f"[{spec.intermediate}, {spec.hidden}]" in message
    assert f"[{2 * spec.intermediate}, {spec.hidden}]" in message


def test_config_that_disagrees_with_weights(odd_heads_dir: Path, tmp_path: Path) -> None:
    broken = copy_dir(odd_heads_dir, tmp_path / "ckpt")
    config = json.loads((broken / "config.json").read_text())
    config["intermediate_size"] = 64
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"mlp\.up_gated_layer\.weight"):
        load(broken)


def test_jina_bert_implementation_layout_gets_a_hint(odd_heads_dir: Path, tmp_path: Path):
    broken = copy_dir(odd_heads_dir, tmp_path / "ckpt")

    def edit(tensors: dict) -> None:
        for key in [k for k in tensors if "up_gated_layer" in k]:
            tensors[key.replace("up_gated_layer", "gated_layers")] = tensors.pop(key)

    _rewrite_weights(broken, edit)
    with pytest.raises(CheckpointError, match="jina-bert-implementation"):
        load(broken)


def test_corrupt_weights_file_is_named(odd_heads_dir: Path, tmp_path: Path) -> None:
    broken = copy_dir(odd_heads_dir, tmp_path / "ckpt")
    (broken / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{garbage")
    with pytest.raises(CheckpointError, match=r"model\.safetensors"):
        load(broken)


def test_corrupt_tokenizer_is_named(odd_heads_dir: Path, tmp_path: Path) -> None:
    broken = copy_dir(odd_heads_dir, tmp_path / "ckpt")
    (broken / "tokenizer.json").write_text("{}")
    with pytest.raises(CheckpointError, match=r"tokenizer\.json"):
        load(broken)


def test_a_tokenizer_with_ids_beyond_the_embeddings_fails_the_load(
    make_checkpoint: MakeCheckpoint,
) -> None:
    """Checked at load, so it never fails a batch that holds other users' requests: the
    tokenizer emits 400 ids, these weights have 300 embeddings."""
    small = make_checkpoint(dataclasses.replace(SPEC_ODD_HEADS, vocab=300))
    with pytest.raises(CheckpointError, match="does not belong to these weights"):
        load(small)


def test_float16_on_cpu_is_rejected(odd_heads_dir: Path) -> None:
    with pytest.raises(ValueError, match="float16"):
        load(odd_heads_dir, dtype=torch.float16)


# ---------------------------------------------------------------- through the registry


@pytest.mark.parametrize("prefix", ["", "bert."])
def test_registry_routes_upstream_layout_to_the_native_model(
    make_checkpoint: MakeCheckpoint, prefix: str
) -> None:
    from jina_openai.models.registry import load_embedder

    model_dir = make_checkpoint(SPEC_POW2_HEADS, prefix=prefix)
    embedder = load_embedder(model_dir, device="cpu", dtype="float32")
    assert embedder.architecture == "jina-bert-v2"
    assert embedder.dimension == SPEC_POW2_HEADS.hidden
    assert embedder.dtype == torch.float32
    np.testing.assert_array_equal(embed_texts(embedder, TEXTS), embed_texts(load(model_dir), TEXTS))

    custom = load_embedder(
        model_dir, model_id="code", device="cpu", dtype="bfloat16", max_input_tokens=128
    )
    assert (custom.model_id, custom.max_input_tokens, custom.dtype) == (
        "code",
        128,
        torch.bfloat16,
    )


def test_registry_reports_missing_tensors_as_model_load_errors(
    odd_heads_dir: Path, tmp_path: Path
) -> None:
    from jina_openai.models.registry import load_embedder

    broken = copy_dir(odd_heads_dir, tmp_path / "ckpt")
    _rewrite_weights(broken, lambda t: t.pop("encoder.layer.0.attention.self.query.bias"))
    with pytest.raises(ModelLoadError, match=r"encoder\.layer\.0\.attention\.self\.query\.bias"):
        load_embedder(broken)
