"""Native JinaBERT v2 (jinaai/jina-embeddings-v2-base-code) in plain PyTorch.

Loads the upstream checkpoint directory as published - ``config.json`` (its ``auto_map`` is
ignored: no remote code is ever imported or run), ``model.safetensors`` (keys with or without the
``bert.`` prefix; pooler and MLM-head tensors are ignored) and ``tokenizer.json`` - with no
network access.

Architecture (post-norm BERT with qk-norm, symmetric ALiBi and GEGLU), per layer with input h::

    q = LN_q(h Wq + bq);  k = LN_k(h Wk + bk);  v = h Wv + bv
    ctx = softmax(q k^T / sqrt(d) - slope * |i - j|) v
    a = LN_out(ctx Wo + bo + h)
    m = layer_norm_1(a + h)
    u = m W_up;  g = u[:, :I] * gelu(u[:, I:])
    out = layer_norm_2(g W_down + b_down + m)

Embeddings are ``LN(word_emb[ids] + token_type_emb[0])`` (no position table), the sentence vector
is the mean of the last hidden states over the input's tokens, L2-normalised.

Inputs run *packed* (real tokens only, back to back) through the linear layers, and attention
runs per input through :class:`~jina_openai.models.alibi.PackedAlibiAttention`, so padding costs
nothing and a long input never materialises a full ``heads x n x n`` matrix.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - the conventional alias
from torch import nn

from jina_openai.models.alibi import (
    DEFAULT_ATTENTION_BLOCK_BYTES,
    PackedAlibiAttention,
    alibi_slopes,
)
from jina_openai.models.base import Embedder
from jina_openai.models.bounded_encoding import encode_bounded, id_limit
from jina_openai.models.converting_reader import FILE_DTYPES, read_converted
from jina_openai.models.device import dtype_name
from jina_openai.models.dtype_choice import fixed_choice
from jina_openai.models.errors import CheckpointError, MissingCheckpointFileError
from jina_openai.models.model_config import CONFIG_FILE

__all__ = [
    "ARCHITECTURE",
    "DEFAULT_MODEL_ID",
    "TOKENIZER_FILE",
    "WEIGHTS_FILE",
    "CheckpointError",
    "JinaBertConfig",
    "JinaBertEmbedder",
    "JinaBertModel",
    "MissingCheckpointFileError",
    "alibi_slopes",
    "is_jina_bert_config",
    "load_jina_bert_embedder",
    "load_jina_bert_model",
    "load_jina_bert_tokenizer",
]

logger = logging.getLogger(__name__)

DEFAULT_MODEL_ID = "jinaai/jina-embeddings-v2-base-code"
ARCHITECTURE = "jina-bert-v2"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_FILE = "tokenizer.json"
SPECIAL_TOKENS_FILE = "special_tokens_map.json"

_KEY_PREFIX = "bert."
_HALF_DTYPES = (torch.float16, torch.bfloat16)
# Rows of the packed batch that go through the MLP at once: bounds the [rows, 2 * intermediate]
# activation (2048 x 6144 fp32 = 48 MiB for the base model) whatever the input length.
DEFAULT_MLP_ROWS = 2048


# --------------------------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------------------------


def is_jina_bert_config(config: Mapping[str, Any]) -> bool:
    """Whether a ``config.json`` describes a JinaBERT (v2) model.

    Decided from the config alone: ALiBi position embeddings, a gated-linear-unit feed-forward
    type, a JinaBert architecture name, or an ``auto_map`` entry pointing at jina-bert code.
    """
    if not isinstance(config, Mapping):
        return False
    if str(config.get("position_embedding_type", "")).lower() == "alibi":
        return True
    if str(config.get("feed_forward_type", "")).lower() in {"geglu", "reglu", "glu"}:
        return True
    architectures = config.get("architectures") or []
    if isinstance(architectures, list) and any(
        str(name).lower().startswith("jinabert") for name in architectures
    ):
        return True
    auto_map = config.get("auto_map")
    if isinstance(auto_map, Mapping):
        for value in auto_map.values():
            refs = value if isinstance(value, list | tuple) else [value]
            if any(isinstance(ref, str) and "jina-bert" in ref.lower() for ref in refs):
                return True
    return False


@dataclass(frozen=True)
class JinaBertConfig:
    """The architecture fields of a JinaBERT v2 ``config.json`` (defaults: the base-code model)."""

    vocab_size: int = 61056
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    type_vocab_size: int = 2
    max_position_embeddings: int = 8192
    layer_norm_eps: float = 1e-12
    hidden_act: str = "gelu"
    feed_forward_type: str = "geglu"
    position_embedding_type: str = "alibi"

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> JinaBertConfig:
        """Validate and extract the fields this implementation needs; errors name config.json."""
        if not isinstance(config, Mapping):
            raise CheckpointError(f"{CONFIG_FILE}: expected a JSON object")
        required_ints = (
            "vocab_size",
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
        )
        optional_ints = ("type_vocab_size", "max_position_embeddings")
        values: dict[str, Any] = {}
        for name in required_ints + optional_ints:
            if name not in config:
                if name in required_ints:
                    raise CheckpointError(f"{CONFIG_FILE}: missing required field {name!r}")
                continue
            value = config[name]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise CheckpointError(
                    f"{CONFIG_FILE}: field {name!r} must be a positive integer, got {value!r}"
                )
            values[name] = value
        eps = config.get("layer_norm_eps", cls.layer_norm_eps)
        if isinstance(eps, bool) or not isinstance(eps, int | float) or not 0 < eps < 1:
            raise CheckpointError(f"{CONFIG_FILE}: layer_norm_eps must be in (0, 1), got {eps!r}")
        values["layer_norm_eps"] = float(eps)
        for name in ("hidden_act", "feed_forward_type", "position_embedding_type"):
            if name in config:
                values[name] = str(config[name]).lower()
        cfg = cls(**values)
        if cfg.hidden_size % cfg.num_attention_heads:
            raise CheckpointError(
                f"{CONFIG_FILE}: hidden_size {cfg.hidden_size} is not divisible by "
                f"num_attention_heads {cfg.num_attention_heads}"
            )
        if cfg.position_embedding_type != "alibi":
            raise CheckpointError(
                f"{CONFIG_FILE}: position_embedding_type {cfg.position_embedding_type!r} is not "
                "supported by the JinaBERT v2 implementation (expected 'alibi')"
            )
        if cfg.feed_forward_type != "geglu":
            raise CheckpointError(
                f"{CONFIG_FILE}: feed_forward_type {cfg.feed_forward_type!r} is not supported "
                "(expected 'geglu')"
            )
        if cfg.hidden_act not in _GELU_APPROXIMATION:
            raise CheckpointError(
                f"{CONFIG_FILE}: hidden_act {cfg.hidden_act!r} is not supported "
                f"(expected one of {sorted(_GELU_APPROXIMATION)})"
            )
        return cfg


_GELU_APPROXIMATION = {
    "gelu": "none",
    "gelu_new": "tanh",
    "gelu_pytorch_tanh": "tanh",
    "gelu_fast": "tanh",
}


# --------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------


class _LayerNorm(nn.LayerNorm):
    """LayerNorm that normalises half-precision activations in fp32."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if input.dtype in _HALF_DTYPES:
            return F.layer_norm(
                input.float(),
                self.normalized_shape,
                self.weight.float(),
                self.bias.float(),
                self.eps,
            ).to(input.dtype)
        return super().forward(input)


class JinaBertEmbeddings(nn.Module):
    def __init__(self, config: JinaBertConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = _LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        # Token type 0 for every token; no position embeddings (ALiBi instead).
        hidden = self.word_embeddings(input_ids) + self.token_type_embeddings.weight[0]
        return self.LayerNorm(hidden)


class JinaBertSelfAttention(nn.Module):
    def __init__(self, config: JinaBertConfig) -> None:
        super().__init__()
        size = config.hidden_size
        self.query = nn.Linear(size, size)
        self.key = nn.Linear(size, size)
        self.value = nn.Linear(size, size)
        self.layer_norm_q = _LayerNorm(size, eps=config.layer_norm_eps)
        self.layer_norm_k = _LayerNorm(size, eps=config.layer_norm_eps)

    def forward(self, hidden: torch.Tensor, attention: PackedAlibiAttention) -> torch.Tensor:
        q = self.layer_norm_q(self.query(hidden))
        k = self.layer_norm_k(self.key(hidden))
        v = self.value(hidden)
        return attention(q, k, v)


class JinaBertSelfOutput(nn.Module):
    def __init__(self, config: JinaBertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = _LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, context: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(context) + residual)


class JinaBertAttention(nn.Module):
    def __init__(self, config: JinaBertConfig) -> None:
        super().__init__()
        self.self = JinaBertSelfAttention(config)
        self.output = JinaBertSelfOutput(config)

    def forward(self, hidden: torch.Tensor, attention: PackedAlibiAttention) -> torch.Tensor:
        return self.output(self.self(hidden, attention), hidden)


class JinaBertGLUMLP(nn.Module):
    """GEGLU feed-forward: first half of the up projection is the value, second the gate."""

    def __init__(self, config: JinaBertConfig) -> None:
        super().__init__()
        self.intermediate_size = config.intermediate_size
        self.approximate = _GELU_APPROXIMATION[config.hidden_act]
        self.up_gated_layer = nn.Linear(
            config.hidden_size, 2 * config.intermediate_size, bias=False
        )
        self.down_layer = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        up = self.up_gated_layer(hidden)
        non_gated, gated = up.split(self.intermediate_size, dim=-1)
        product = F.gelu(gated, approximate=self.approximate)
        product.mul_(non_gated)
        del up, non_gated, gated
        return self.down_layer(product)


class JinaBertLayer(nn.Module):
    def __init__(self, config: JinaBertConfig, *, mlp_rows: int = DEFAULT_MLP_ROWS) -> None:
        super().__init__()
        self.mlp_rows = mlp_rows
        self.attention = JinaBertAttention(config)
        self.layer_norm_1 = _LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = JinaBertGLUMLP(config)
        self.layer_norm_2 = _LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def _feed_forward(self, attended: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        mixed = self.layer_norm_1(attended + hidden)
        return self.layer_norm_2(self.mlp(mixed) + mixed)

    def forward(self, hidden: torch.Tensor, attention: PackedAlibiAttention) -> torch.Tensor:
        attended = self.attention(hidden, attention)
        rows = hidden.shape[0]
        if rows <= self.mlp_rows:
            return self._feed_forward(attended, hidden)
        out = torch.empty_like(hidden)
        for start in range(0, rows, self.mlp_rows):
            stop = min(rows, start + self.mlp_rows)
            out[start:stop] = self._feed_forward(attended[start:stop], hidden[start:stop])
        return out


class JinaBertEncoder(nn.Module):
    def __init__(self, config: JinaBertConfig, *, mlp_rows: int = DEFAULT_MLP_ROWS) -> None:
        super().__init__()
        self.layer = nn.ModuleList(
            JinaBertLayer(config, mlp_rows=mlp_rows) for _ in range(config.num_hidden_layers)
        )


class JinaBertModel(nn.Module):
    """The JinaBERT v2 encoder (no pooler, no MLM head); parameter names match the checkpoint.

    ``forward(input_ids, attention_mask)`` takes a padded batch and returns the last hidden
    state ``[batch, seq, hidden]`` (zeros at padded positions). ``encode_packed`` is the same
    computation on packed inputs, which is what the embedder uses.
    """

    def __init__(
        self,
        config: JinaBertConfig,
        *,
        attention_block_bytes: int = DEFAULT_ATTENTION_BLOCK_BYTES,
        mlp_rows: int = DEFAULT_MLP_ROWS,
    ) -> None:
        super().__init__()
        if attention_block_bytes < 1 or mlp_rows < 1:
            raise ValueError("attention_block_bytes and mlp_rows must be positive")
        self.config = config
        self.attention_block_bytes = attention_block_bytes
        self.slopes = alibi_slopes(config.num_attention_heads)
        self.embeddings = JinaBertEmbeddings(config)
        self.encoder = JinaBertEncoder(config, mlp_rows=mlp_rows)

    def encode_packed(
        self,
        input_ids: torch.Tensor,
        lengths: Sequence[int],
        between_layers: Callable[[], None] | None = None,
    ) -> torch.Tensor:
        """Last hidden states of packed inputs.

        ``input_ids``: 1-D, the inputs' token ids back to back; ``lengths``: their token counts
        (each >= 1, summing to ``len(input_ids)``). Returns ``[len(input_ids), hidden]``.
        ``between_layers`` is called after every layer but the last (the engine's query lane).
        """
        if input_ids.dim() != 1:
            raise ValueError(f"input_ids must be 1-D (packed), got shape {tuple(input_ids.shape)}")
        lengths = [int(n) for n in lengths]
        if not lengths or min(lengths) < 1 or sum(lengths) != input_ids.shape[0]:
            raise ValueError(
                f"{len(lengths)} lengths (sum {sum(lengths)}, min {min(lengths, default=0)}) "
                f"must be positive and sum to the {input_ids.shape[0]} packed tokens"
            )
        weight = self.embeddings.word_embeddings.weight
        attention = PackedAlibiAttention(
            self.slopes,
            lengths,
            device=weight.device,
            dtype=weight.dtype,
            block_bytes=self.attention_block_bytes,
        )
        hidden = self.embeddings(input_ids.to(weight.device))
        last = len(self.encoder.layer) - 1
        for position, layer in enumerate(self.encoder.layer):
            hidden = layer(hidden, attention)
            if between_layers is not None and position < last:
                between_layers()
        return hidden

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Padded ``[batch, seq]`` ids and mask -> last hidden state ``[batch, seq, hidden]``.

        Each row's mask must select one contiguous run of tokens (right or left padding).
        """
        if input_ids.dim() != 2 or attention_mask.shape != input_ids.shape:
            raise ValueError(
                "input_ids and attention_mask must both be [batch, seq], got "
                f"{tuple(input_ids.shape)} and {tuple(attention_mask.shape)}"
            )
        mask = attention_mask.to(torch.bool)
        batch, seq = mask.shape
        lengths = mask.sum(dim=1)
        index = torch.arange(seq, device=mask.device).expand(batch, seq)
        first = torch.where(mask, index, seq).amin(dim=1)
        last = torch.where(mask, index, -1).amax(dim=1)
        if bool((lengths < 1).any()) or bool((last - first + 1 != lengths).any()):
            raise ValueError("each attention_mask row must select one non-empty contiguous run")
        packed = self.encode_packed(input_ids[mask], lengths.tolist())
        out = packed.new_zeros(batch, seq, packed.shape[-1])
        out[mask.to(packed.device)] = packed
        return out


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def _require_file(model_dir: Path, name: str) -> Path:
    path = model_dir / name
    if not path.is_file():
        raise MissingCheckpointFileError(f"{path}: missing {name} in the model directory")
    return path


def _check_device_dtype(device: torch.device, dtype: torch.dtype) -> None:
    allowed = {
        "cpu": (torch.float32, torch.bfloat16),
        "cuda": (torch.float32, torch.float16, torch.bfloat16),
    }.get(device.type, (torch.float32, torch.float16, torch.bfloat16))
    if dtype not in allowed:
        names = ", ".join(dtype_name(d) for d in allowed)
        raise CheckpointError(
            f"dtype {dtype_name(dtype)} is not supported on {device.type} (use one of: {names})"
        )


def _describe_missing(missing: list[str], keys: Iterable[str], path: Path) -> str:
    shown = ", ".join(missing[:5]) + (f" (and {len(missing) - 5} more)" if len(missing) > 5 else "")
    message = (
        f"{path}: missing tensor(s) {shown} "
        f"(looked for each name with and without the {_KEY_PREFIX!r} prefix)"
    )
    if any(key.endswith("mlp.gated_layers.weight") for key in keys):
        message += (
            "; this checkpoint has the jina-bert-implementation layout (mlp.gated_layers, "
            "e.g. jina-embeddings-v2-base-en), which this qk-post-norm implementation does not "
            "support"
        )
    return message


def load_jina_bert_model(
    model_dir: Path,
    config: JinaBertConfig,
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    attention_block_bytes: int = DEFAULT_ATTENTION_BLOCK_BYTES,
    mlp_rows: int = DEFAULT_MLP_ROWS,
) -> JinaBertModel:
    """Build the encoder and fill it from ``model_dir/model.safetensors`` (strict, shape-checked).

    The module is created on the meta device and its parameters are assigned from the file one
    by one, so no random initialisation and no second copy of the weights is ever made. On CPU
    with the file's dtype, safetensors maps the file (copy-on-write) instead of copying it: the
    weights are shared page cache across worker processes, and the file must be replaced by
    rename (as ``fetch_model`` does), never rewritten in place while a process serves it.
    Tensors of another dtype are read and converted one at a time (models/converting_reader.py).
    """
    from safetensors import SafetensorError, safe_open  # heavy-ish; imported on use

    device = torch.device(device)
    path = _require_file(Path(model_dir), WEIGHTS_FILE)
    with torch.device("meta"):
        model = JinaBertModel(
            config, attention_block_bytes=attention_block_bytes, mlp_rows=mlp_rows
        )
    expected = {name: tuple(p.shape) for name, p in model.named_parameters()}
    state: dict[str, torch.Tensor] = {}
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            keys = set(handle.keys())
            resolved: dict[str, str] = {}
            missing: list[str] = []
            for name in expected:
                if name in keys:
                    resolved[name] = name
                elif _KEY_PREFIX + name in keys:
                    resolved[name] = _KEY_PREFIX + name
                else:
                    missing.append(name)
            if missing:
                raise CheckpointError(_describe_missing(missing, keys, path))
            for name, key in resolved.items():
                shape = tuple(handle.get_slice(key).get_shape())
                if shape != expected[name]:
                    raise CheckpointError(
                        f"{path}: tensor {key} has shape {list(shape)}, expected "
                        f"{list(expected[name])} for this config.json"
                    )
            converted: dict[str, str] = {}
            for name, key in resolved.items():
                file_dtype = handle.get_slice(key).get_dtype()
                if file_dtype not in FILE_DTYPES:
                    raise CheckpointError(f"{path}: tensor {key} has dtype {file_dtype}")
                if FILE_DTYPES[file_dtype] != dtype:
                    converted[name] = key
                    continue
                tensor = handle.get_tensor(key)  # mapped, not copied, on CPU
                state[name] = tensor.to(device=device)
                del tensor
        # Another dtype: read and convert one tensor at a time, never the whole file mapped.
        for name, tensor in read_converted(path, converted, dtype=dtype, device=device):
            state[name] = tensor
    except (SafetensorError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot read {WEIGHTS_FILE}: {exc}") from exc
    model.load_state_dict(state, strict=True, assign=True)
    del state
    model.requires_grad_(False)
    model.eval()
    return model


def _special_token(model_dir: Path, role: str, default: str) -> str:
    """The ``cls_token``/``sep_token`` string from special_tokens_map.json, if present."""
    path = model_dir / SPECIAL_TOKENS_FILE
    if not path.is_file():
        return default
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: cannot read {SPECIAL_TOKENS_FILE}: {exc}") from exc
    value = data.get(role) if isinstance(data, dict) else None
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) and value else default


def load_jina_bert_tokenizer(model_dir: Path) -> tuple[Any, int, int]:
    """``tokenizer.json`` with truncation and padding off, plus the ``<s>`` and ``</s>`` ids."""
    from tokenizers import Tokenizer

    model_dir = Path(model_dir)
    path = _require_file(model_dir, TOKENIZER_FILE)
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises a bare Exception on malformed files
        raise CheckpointError(f"{path}: cannot load {TOKENIZER_FILE}: {exc}") from exc
    tokenizer.no_truncation()
    tokenizer.no_padding()
    ids = []
    for role, default in (("cls_token", "<s>"), ("sep_token", "</s>")):
        token = _special_token(model_dir, role, default)
        token_id = tokenizer.token_to_id(token)
        if token_id is None:
            raise CheckpointError(f"{path}: special token {token!r} ({role}) is not in the vocab")
        ids.append(int(token_id))
    return tokenizer, ids[0], ids[1]


class JinaBertEmbedder:
    """:class:`~jina_openai.models.base.Embedder` for a loaded JinaBERT v2 model."""

    architecture = ARCHITECTURE

    def __init__(
        self,
        *,
        model: JinaBertModel,
        tokenizer: Any,
        cls_id: int,
        sep_id: int,
        model_id: str = DEFAULT_MODEL_ID,
        max_input_tokens: int | None = None,
    ) -> None:
        config = model.config
        weight = model.embeddings.word_embeddings.weight
        max_tokens = (
            config.max_position_embeddings if max_input_tokens is None else max_input_tokens
        )
        if max_tokens < 3:
            raise ValueError(f"max_input_tokens must be at least 3, got {max_tokens}")
        if max_tokens > config.max_position_embeddings:
            logger.warning(
                "max_input_tokens %d exceeds the model's max_position_embeddings %d "
                "(ALiBi extrapolates, quality beyond that length is untested)",
                max_tokens,
                config.max_position_embeddings,
            )
        for token_id in (cls_id, sep_id):
            if not 0 <= token_id < config.vocab_size:
                raise CheckpointError(
                    f"{TOKENIZER_FILE}: special token id {token_id} is outside the model "
                    f"vocabulary of {config.vocab_size} ({CONFIG_FILE} vocab_size)"
                )
        # Checked here, once: a tokenizer that can emit ids the embedding matrix lacks would
        # otherwise fail some batch later, with other users' requests in it.
        tokenizer_ids = id_limit(tokenizer)
        if tokenizer_ids > config.vocab_size:
            raise CheckpointError(
                f"{TOKENIZER_FILE} produces ids up to {tokenizer_ids - 1}, but the model has "
                f"{config.vocab_size} embeddings ({CONFIG_FILE} vocab_size): the tokenizer does "
                "not belong to these weights"
            )
        self._model = model
        self._tokenizer = tokenizer
        self._cls_id = cls_id
        self._sep_id = sep_id
        self.model_id = model_id
        self.dimension = config.hidden_size
        self.max_input_tokens = int(max_tokens)
        self.vocab_size = config.vocab_size
        self.device = weight.device
        self.dtype = weight.dtype
        self.dtype_choice = fixed_choice(self.dtype, dtype_name(self.dtype), self.device)
        self.parameter_count = parameter_count(model)

    @property
    def model(self) -> JinaBertModel:
        return self._model

    def tokenize(self, texts: list[str], limit: int | None = None) -> list[list[int]]:
        return encode_bounded(self._tokenizer, texts, limit)

    def prepare(self, ids: list[int]) -> list[int]:
        return [self._cls_id, *ids[: self.max_input_tokens - 2], self._sep_id]

    def embed(
        self, batch: list[list[int]], between_layers: Callable[[], None] | None = None
    ) -> np.ndarray:
        if not batch:
            return np.zeros((0, self.dimension), dtype=np.float32)
        lengths = [len(ids) for ids in batch]
        if min(lengths) < 1:
            raise ValueError("cannot embed an empty input (prepare() adds <s> and </s>)")
        flat = [token for ids in batch for token in ids]
        with torch.inference_mode():
            input_ids = torch.tensor(flat, dtype=torch.long)
            low, high = int(input_ids.min()), int(input_ids.max())
            if low < 0 or high >= self.vocab_size:
                raise ValueError(
                    f"token ids must be in [0, {self.vocab_size}), got range [{low}, {high}]"
                )
            hidden = self._model.encode_packed(input_ids.to(self.device), lengths, between_layers)
            counts = torch.tensor(lengths, device=self.device)
            segment = torch.repeat_interleave(torch.arange(len(batch), device=self.device), counts)
            pooled = hidden.new_zeros(len(batch), self.dimension, dtype=torch.float32)
            pooled.index_add_(0, segment, hidden.float())
            del hidden
            pooled = F.normalize(pooled / counts[:, None].float(), dim=-1)
            return pooled.cpu().numpy().astype(np.float32, copy=True)


def load_jina_bert_embedder(
    model_dir: Path,
    config: dict,
    *,
    model_id: str | None = None,
    device: torch.device,
    dtype: torch.dtype,
    max_input_tokens: int | None = None,
) -> Embedder:
    """Load a JinaBERT v2 checkpoint directory (config already read) as an :class:`Embedder`."""
    model_dir = Path(model_dir)
    device = torch.device(device)
    cfg = JinaBertConfig.from_dict(config)
    _check_device_dtype(device, dtype)
    tokenizer, cls_id, sep_id = load_jina_bert_tokenizer(model_dir)
    tokenizer_vocab = tokenizer.get_vocab_size(with_added_tokens=True)
    if tokenizer_vocab > cfg.vocab_size:
        logger.warning(
            "%s has %d tokens but %s vocab_size is %d; ids beyond it will be rejected",
            model_dir / TOKENIZER_FILE,
            tokenizer_vocab,
            CONFIG_FILE,
            cfg.vocab_size,
        )
    model = load_jina_bert_model(model_dir, cfg, device=device, dtype=dtype)
    embedder = JinaBertEmbedder(
        model=model,
        tokenizer=tokenizer,
        cls_id=cls_id,
        sep_id=sep_id,
        model_id=model_id or DEFAULT_MODEL_ID,
        max_input_tokens=max_input_tokens,
    )
    logger.info(
        "loaded %s (%s, %d parameters, %d dims, max %d tokens) on %s as %s",
        model_dir,
        ARCHITECTURE,
        embedder.parameter_count,
        embedder.dimension,
        embedder.max_input_tokens,
        embedder.device,
        dtype_name(embedder.dtype),
    )
    return embedder
