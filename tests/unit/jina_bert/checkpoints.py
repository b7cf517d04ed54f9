"""Tiny random JinaBERT v2 checkpoints in the upstream (jina-embeddings-v2-base-code) layout.

Everything here is written from the published layout (see shared/reference/jina-bert-v2.md), not
from the implementation under test: tensor names, shapes and config fields are spelled out.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

# The real config.json's auto_map: points at remote code that must never be used.
UPSTREAM_AUTO_MAP = {
    "AutoConfig": "jinaai/jina-bert-v2-qk-post-norm--configuration_bert.JinaBertConfig",
    "AutoModel": "jinaai/jina-bert-v2-qk-post-norm--modeling_bert.JinaBertModel",
    "AutoModelForMaskedLM": "jinaai/jina-bert-v2-qk-post-norm--modeling_bert.JinaBertForMaskedLM",
    "AutoModelForSequenceClassification": (
        "jinaai/jina-bert-v2-qk-post-norm--modeling_bert.JinaBertForSequenceClassification"
    ),
}

SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # ids 0..4, RoBERTa style

CORPUS = [
    "def add(a, b):\n    return a + b\n",
    "function greet(name) { return `Hello, ${name}!`; }",
    "class Stack:\n    def __init__(self):\n        self.items = []\n",
    "for (int i = 0; i < n; ++i) { sum += values[i]; }",
    "SELECT id, name FROM users WHERE active = 1 ORDER BY name;",
    'fn main() { println!("hello world"); }',
    "The quick brown fox jumps over the lazy dog. Embeddings for code search.",
    "import numpy as np\nx = np.arange(10).reshape(2, 5)\n",
]


@dataclass(frozen=True)
class TinySpec:
    hidden: int = 24
    layers: int = 2
    heads: int = 3
    intermediate: int = 40
    vocab: int = 512
    max_positions: int = 8192


# Head counts that are (4) and are not (3) powers of two.
SPEC_ODD_HEADS = TinySpec(hidden=24, layers=2, heads=3, intermediate=40)
SPEC_POW2_HEADS = TinySpec(hidden=32, layers=2, heads=4, intermediate=48)

MakeCheckpoint = Callable[..., Path]  # the `make_checkpoint` fixture's type


def upstream_config(spec: TinySpec) -> dict:
    """A config.json with the real model's fields and auto_map, at tiny sizes."""
    return {
        "_name_or_path": "jinaai/jina-bert-v2-qk-post-norm",
        "architectures": ["JinaBertForMaskedLM"],
        "attention_probs_dropout_prob": 0.0,
        "attn_implementation": None,
        "auto_map": UPSTREAM_AUTO_MAP,
        "classifier_dropout": None,
        "emb_pooler": "mean",
        "feed_forward_type": "geglu",
        "gradient_checkpointing": False,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": spec.hidden,
        "initializer_range": 0.02,
        "intermediate_size": spec.intermediate,
        "layer_norm_eps": 1e-12,
        "max_position_embeddings": spec.max_positions,
        "model_max_length": spec.max_positions,
        "model_type": "bert",
        "num_attention_heads": spec.heads,
        "num_hidden_layers": spec.layers,
        "pad_token_id": 0,
        "position_embedding_type": "alibi",
        "torch_dtype": "float32",
        "transformers_version": "4.39.1",
        "type_vocab_size": 2,
        "use_cache": True,
        "vocab_size": spec.vocab,
    }


def encoder_shapes(spec: TinySpec) -> dict[str, tuple[int, ...]]:
    """Names (without the `bert.` prefix) and shapes of every tensor the encoder uses."""
    h, i = spec.hidden, spec.intermediate
    shapes: dict[str, tuple[int, ...]] = {
        "embeddings.word_embeddings.weight": (spec.vocab, h),
        "embeddings.token_type_embeddings.weight": (2, h),
        "embeddings.LayerNorm.weight": (h,),
        "embeddings.LayerNorm.bias": (h,),
    }
    for n in range(spec.layers):
        p = f"encoder.layer.{n}."
        for lin in ("query", "key", "value"):
            shapes[f"{p}attention.self.{lin}.weight"] = (h, h)
            shapes[f"{p}attention.self.{lin}.bias"] = (h,)
        for ln in ("layer_norm_q", "layer_norm_k"):
            shapes[f"{p}attention.self.{ln}.weight"] = (h,)
            shapes[f"{p}attention.self.{ln}.bias"] = (h,)
        shapes[f"{p}attention.output.dense.weight"] = (h, h)
        shapes[f"{p}attention.output.dense.bias"] = (h,)
        shapes[f"{p}attention.output.LayerNorm.weight"] = (h,)
        shapes[f"{p}attention.output.LayerNorm.bias"] = (h,)
        for ln in ("layer_norm_1", "layer_norm_2"):
            shapes[f"{p}{ln}.weight"] = (h,)
            shapes[f"{p}{ln}.bias"] = (h,)
        shapes[f"{p}mlp.up_gated_layer.weight"] = (2 * i, h)
        shapes[f"{p}mlp.down_layer.weight"] = (h, i)
        shapes[f"{p}mlp.down_layer.bias"] = (h,)
    return shapes


def head_shapes(spec: TinySpec) -> dict[str, tuple[int, ...]]:
    """Pooler and MLM-head tensors the published checkpoint may carry (unused by the encoder)."""
    h = spec.hidden
    return {
        "pooler.dense.weight": (h, h),
        "pooler.dense.bias": (h,),
        "cls.predictions.bias": (spec.vocab,),
        "cls.predictions.transform.dense.weight": (h, h),
        "cls.predictions.transform.dense.bias": (h,),
        "cls.predictions.transform.LayerNorm.weight": (h,),
        "cls.predictions.transform.LayerNorm.bias": (h,),
        "cls.predictions.decoder.weight": (spec.vocab, h),
    }


def random_state(spec: TinySpec, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random encoder weights with scales that keep attention and ALiBi both meaningful."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in encoder_shapes(spec).items():
        is_norm = "LayerNorm" in name or ".layer_norm_" in name
        if is_norm and name.endswith("weight"):
            tensor = 1.0 + 0.2 * torch.randn(shape, generator=gen)
        elif name.endswith("bias"):
            tensor = 0.1 * torch.randn(shape, generator=gen)
        elif "embeddings" in name:
            tensor = torch.randn(shape, generator=gen)
        else:
            tensor = torch.randn(shape, generator=gen) / shape[-1] ** 0.5
            if "attention.self.value" in name or "attention.output.dense" in name:
                tensor = 3.0 * tensor  # make attention (and so ALiBi) visible in the output
        state[name] = tensor.float().contiguous()
    return state


def train_tokenizer(path: Path, vocab_size: int = 400) -> Path:
    """A small byte-level BPE with <s>=0, <pad>=1, </s>=2, trained now and saved as JSON."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(CORPUS * 4, trainer)
    tokenizer.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    # The published tokenizer.json carries truncation/padding; the loader must switch them off.
    tokenizer.enable_truncation(max_length=512)
    tokenizer.enable_padding(pad_id=1, pad_token="<pad>")
    tokenizer.save(str(path))
    assert [tokenizer.token_to_id(t) for t in SPECIALS[:3]] == [0, 1, 2]
    return path


def write_checkpoint(
    dest: Path,
    spec: TinySpec,
    tokenizer_json: Path,
    *,
    prefix: str = "",
    extra_heads: bool = True,
    seed: int = 0,
    state: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write config.json, model.safetensors, tokenizer.json (+ tokenizer side files) to `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "config.json").write_text(json.dumps(upstream_config(spec), indent=2))
    state = random_state(spec, seed) if state is None else state
    tensors = {prefix + name: t for name, t in state.items()}
    if extra_heads:
        gen = torch.Generator().manual_seed(seed + 1)
        for name, shape in head_shapes(spec).items():
            key = (prefix + name) if name.startswith("pooler") else name
            tensors[key] = torch.randn(shape, generator=gen)
    save_file(tensors, str(dest / "model.safetensors"), metadata={"format": "pt"})
    shutil.copyfile(tokenizer_json, dest / "tokenizer.json")
    (dest / "tokenizer_config.json").write_text(
        json.dumps({"model_max_length": spec.max_positions, "tokenizer_class": "RobertaTokenizer"})
    )
    (dest / "special_tokens_map.json").write_text(
        json.dumps(
            {
                "bos_token": "<s>",
                "cls_token": "<s>",
                "eos_token": "</s>",
                "sep_token": "</s>",
                "pad_token": "<pad>",
                "unk_token": "<unk>",
                "mask_token": "<mask>",
            }
        )
    )
    return dest


def load_state(path: Path) -> dict[str, torch.Tensor]:
    """The encoder tensors of a written checkpoint, names without the `bert.` prefix."""
    from safetensors.torch import load_file

    raw = load_file(str(path / "model.safetensors"))
    return {k.removeprefix("bert."): v for k, v in raw.items()}
