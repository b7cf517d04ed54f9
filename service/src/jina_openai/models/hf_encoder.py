"""Hugging Face BERT-family encoders (bert, roberta, ...) loaded through transformers.

Local files only, `trust_remote_code=False`. Pooling comes from the sentence-transformers config
when present (mean by default, CLS supported); every vector is L2-normalised.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from jina_openai.models.device import dtype_name
from jina_openai.models.dtype_choice import fixed_choice
from jina_openai.models.errors import ModelLoadError
from jina_openai.models.sentence_transformers_config import (
    PoolingMode,
    read_sentence_transformers_config,
)
from jina_openai.models.text_tokenizer import TextTokenizer, load_text_tokenizer

# model_type -> offset of the first real position (RoBERTa-style models start after pad_id + 1).
SUPPORTED_MODEL_TYPES = {
    "bert": False,
    "distilbert": False,
    "electra": False,
    "mpnet": True,
    "roberta": True,
    "xlm-roberta": True,
    "camembert": True,
}
_WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


class HFEncoderEmbedder:
    """An `Embedder` (see models/base.py) around a transformers encoder model."""

    def __init__(
        self,
        *,
        model: torch.nn.Module,
        tokenizer: TextTokenizer,
        model_id: str,
        pooling: PoolingMode,
        max_input_tokens: int,
        pad_token_id: int,
        architecture: str,
    ) -> None:
        self._model = model
        self._tokenizer = tokenizer
        self._pad_token_id = pad_token_id
        self._takes_token_types = "token_type_ids" in inspect.signature(model.forward).parameters
        embeddings = model.get_input_embeddings()
        assert isinstance(embeddings, torch.nn.Embedding)
        self.model_id = model_id
        self.dimension = int(embeddings.embedding_dim)
        self.max_input_tokens = max_input_tokens
        self.vocab_size = int(embeddings.num_embeddings)
        first_parameter = next(model.parameters())
        self.device = first_parameter.device
        self.dtype = first_parameter.dtype
        self.dtype_choice = fixed_choice(self.dtype, dtype_name(self.dtype), self.device)
        self.architecture = architecture
        self.parameter_count = sum(parameter.numel() for parameter in model.parameters())
        self.pooling: PoolingMode = pooling  # shown by /info
        self._between_layers: Callable[[], None] | None = None  # set for one embed call
        layers = _encoder_layers(model)
        for layer in layers[:-1]:
            layer.register_forward_hook(self._after_layer)

    def _after_layer(self, module: torch.nn.Module, args: Any, output: Any) -> None:
        """Forward hook of every encoder layer but the last: the query lane's turn. Cleared
        while it runs, so that a nested `embed` (a query's forward pass) runs straight through."""
        between_layers = self._between_layers
        if between_layers is None:
            return
        self._between_layers = None
        try:
            between_layers()
        finally:
            self._between_layers = between_layers

    def tokenize(self, texts: list[str], limit: int | None = None) -> list[list[int]]:
        return self._tokenizer.encode(texts, limit)

    def prepare(self, ids: list[int]) -> list[int]:
        return self._tokenizer.wrap(ids, self.max_input_tokens)

    def embed(
        self, batch: list[list[int]], between_layers: Callable[[], None] | None = None
    ) -> np.ndarray:
        if not batch:
            return np.zeros((0, self.dimension), dtype=np.float32)
        longest = max(len(ids) for ids in batch)
        input_ids = np.full((len(batch), longest), self._pad_token_id, dtype=np.int64)
        attention = np.zeros((len(batch), longest), dtype=np.int64)
        for row, ids in enumerate(batch):
            input_ids[row, : len(ids)] = ids
            attention[row, : len(ids)] = 1
        with torch.inference_mode():
            ids_t = torch.from_numpy(input_ids).to(self.device)
            mask_t = torch.from_numpy(attention).to(self.device)
            kwargs: dict[str, Any] = {"input_ids": ids_t, "attention_mask": mask_t}
            if self._takes_token_types:
                kwargs["token_type_ids"] = torch.zeros_like(ids_t)
            self._between_layers = between_layers
            try:
                hidden = self._model(**kwargs)[0].float()
            finally:
                self._between_layers = None
            if self.pooling == "cls":
                pooled = hidden[:, 0]
            else:
                weights = mask_t.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
            vectors = torch.nn.functional.normalize(pooled, p=2.0, dim=-1)
            return np.ascontiguousarray(vectors.cpu().numpy(), dtype=np.float32)


def load_hf_encoder(
    model_dir: Path,
    config: dict[str, Any],
    *,
    model_id: str | None,
    device: torch.device,
    dtype: torch.dtype,
    max_input_tokens: int | None,
) -> HFEncoderEmbedder:
    model_type = config.get("model_type")
    config_path = model_dir / "config.json"
    if model_type not in SUPPORTED_MODEL_TYPES:
        supported = ", ".join(sorted(SUPPORTED_MODEL_TYPES))
        raise ModelLoadError(
            f"{config_path}: model_type {model_type!r} is not supported (supported: {supported})"
        )
    position_type = config.get("position_embedding_type", "absolute")
    if position_type not in (None, "absolute"):
        raise ModelLoadError(
            f"{config_path}: position_embedding_type {position_type!r} is not supported"
        )
    if not any((model_dir / name).is_file() for name in _WEIGHT_FILES):
        raise ModelLoadError(f"{model_dir / 'model.safetensors'} is missing (no weights found)")
    tokenizer = load_text_tokenizer(model_dir)
    st_config = read_sentence_transformers_config(model_dir)
    pad_token_id = config.get("pad_token_id")
    pad_token_id = pad_token_id if isinstance(pad_token_id, int) else 0
    limit = _position_limit(config, config_path, model_type, pad_token_id)
    if st_config.max_seq_length is not None:
        limit = min(limit, st_config.max_seq_length)
    if max_input_tokens is not None:
        if max_input_tokens > limit:
            raise ModelLoadError(
                f"max_input_tokens={max_input_tokens} exceeds this model's limit of {limit} tokens "
                f"(from {config_path} / sentence_bert_config.json)"
            )
        limit = max_input_tokens
    if limit <= tokenizer.special_token_count:
        raise ModelLoadError(f"max_input_tokens={limit} leaves no room for content tokens")
    model = _load_model(model_dir, device=device, dtype=dtype)
    embedding_rows = int(model.get_input_embeddings().num_embeddings)
    if tokenizer.id_limit > embedding_rows:
        # Checked here, once: otherwise some batch fails later, with other users' requests.
        raise ModelLoadError(
            f"{model_dir}: the tokenizer produces ids up to {tokenizer.id_limit - 1}, but the "
            f"model has {embedding_rows} embeddings ({config_path} vocab_size): the tokenizer "
            "does not belong to these weights"
        )
    return HFEncoderEmbedder(
        model=model,
        tokenizer=tokenizer,
        model_id=model_id or model_dir.resolve().name,
        pooling=st_config.pooling,
        max_input_tokens=limit,
        pad_token_id=pad_token_id,
        architecture=str(model_type),
    )


def _encoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The encoder's layers: the ModuleList holding `num_hidden_layers` modules (bert, roberta,
    mpnet, electra: encoder.layer; distilbert: transformer.layer). Empty when not found: then
    `between_layers` is never called and queries wait for the running batch."""
    count = getattr(model.config, "num_hidden_layers", None) or getattr(
        model.config, "n_layers", None
    )
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == count:
            return list(module)
    return []


def _position_limit(
    config: dict[str, Any], config_path: Path, model_type: str, pad_token_id: int
) -> int:
    positions = config.get("max_position_embeddings")
    if not isinstance(positions, int) or positions < 2:
        raise ModelLoadError(f"{config_path}: max_position_embeddings is missing or invalid")
    if SUPPORTED_MODEL_TYPES[model_type]:
        positions -= pad_token_id + 1
    return positions


def _load_model(model_dir: Path, *, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    from transformers import AutoModel
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    try:
        model = AutoModel.from_pretrained(
            str(model_dir),
            local_files_only=True,
            trust_remote_code=False,
            dtype=dtype,
            attn_implementation="sdpa",
        )
    except Exception as exc:
        raise ModelLoadError(
            f"{model_dir}: transformers could not load the model ({dtype_name(dtype)}): {exc}"
        ) from exc
    model.eval()
    model.requires_grad_(False)
    return model.to(device)
