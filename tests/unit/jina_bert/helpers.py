"""Shared helpers for the JinaBERT tests: load through the public loader, embed, copy."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from jina_openai.models.jina_bert import JinaBertEmbedder, load_jina_bert_embedder
from jina_openai.models.model_config import read_model_config

CPU = torch.device("cpu")


def load(
    model_dir: Path,
    *,
    dtype: torch.dtype = torch.float32,
    model_id: str | None = None,
    max_input_tokens: int | None = None,
) -> Any:  # a JinaBertEmbedder, typed loosely so tests can reach .model
    embedder = load_jina_bert_embedder(
        model_dir,
        read_model_config(model_dir),
        model_id=model_id,
        device=CPU,
        dtype=dtype,
        max_input_tokens=max_input_tokens,
    )
    assert isinstance(embedder, JinaBertEmbedder)
    return embedder


def embed_texts(embedder: Any, texts: list[str]) -> np.ndarray:
    return embedder.embed([embedder.prepare(ids) for ids in embedder.tokenize(texts)])


def copy_dir(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    return dest
