"""A local model directory -> a loaded `Embedder`.

The native jina-bert-v2 implementation claims the configs it recognises; every other directory is
loaded as a Hugging Face BERT-family encoder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from jina_openai.models.base import Embedder
from jina_openai.models.device import resolve_device, resolve_dtype
from jina_openai.models.dtype_choice import choose_cpu_dtype, fixed_choice, native_bf16_flags
from jina_openai.models.errors import ModelLoadError
from jina_openai.models.model_config import read_model_config


def load_embedder(
    model_dir: Path,
    *,
    model_id: str | None = None,
    device: str = "cpu",
    dtype: str = "auto",
    max_input_tokens: int | None = None,
) -> Embedder:
    """Load the model in `model_dir` on `device` ("cpu", "cuda", "cuda:N", "auto") as `dtype`
    ("auto", "float32", "float16", "bfloat16"; `auto` on CPU: models/dtype_choice.py), with the
    choice recorded as `embedder.dtype_choice`. Raises ModelLoadError naming the faulty file."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelLoadError(f"model directory {model_dir} does not exist")
    config = read_model_config(model_dir)
    torch_device = resolve_device(device)

    def load(torch_dtype: torch.dtype) -> Embedder:
        return _load(model_dir, config, model_id, torch_device, torch_dtype, max_input_tokens)

    if dtype == "auto" and torch_device.type == "cpu":
        embedder, choice = choose_cpu_dtype(load, flags=native_bf16_flags())
    else:
        torch_dtype = resolve_dtype(dtype, torch_device)
        embedder, choice = load(torch_dtype), fixed_choice(torch_dtype, dtype, torch_device)
    embedder.dtype_choice = choice
    return embedder


def _load(
    model_dir: Path,
    config: dict[str, Any],
    model_id: str | None,
    device: torch.device,
    dtype: torch.dtype,
    max_input_tokens: int | None,
) -> Embedder:
    from jina_openai.models import jina_bert

    if jina_bert.is_jina_bert_config(config):
        return jina_bert.load_jina_bert_embedder(
            model_dir,
            config,
            model_id=model_id,
            device=device,
            dtype=dtype,
            max_input_tokens=max_input_tokens,
        )

    from jina_openai.models.hf_encoder import load_hf_encoder

    return load_hf_encoder(
        model_dir,
        config,
        model_id=model_id,
        device=device,
        dtype=dtype,
        max_input_tokens=max_input_tokens,
    )
