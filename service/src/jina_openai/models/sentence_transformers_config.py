"""What a sentence-transformers model directory says about pooling and sequence length.

Read without importing sentence-transformers: `modules.json` names the Pooling module's folder
(usually `1_Pooling/`), whose `config.json` has the pooling flags; `sentence_bert_config.json`
has `max_seq_length`. A plain Hugging Face directory has none of them: mean pooling, no limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from jina_openai.models.errors import ModelLoadError
from jina_openai.models.model_config import read_json

PoolingMode = Literal["mean", "cls"]

_POOLING_MODULE = "sentence_transformers.models.Pooling"
_UNSUPPORTED_FLAGS = (
    "pooling_mode_max_tokens",
    "pooling_mode_mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens",
    "pooling_mode_lasttoken",
)


@dataclass(frozen=True)
class SentenceTransformersConfig:
    pooling: PoolingMode
    max_seq_length: int | None  # special tokens included, as sentence-transformers counts


def read_sentence_transformers_config(model_dir: Path) -> SentenceTransformersConfig:
    return SentenceTransformersConfig(
        pooling=_read_pooling(model_dir), max_seq_length=_read_max_seq_length(model_dir)
    )


def _pooling_config_path(model_dir: Path) -> Path | None:
    modules_path = model_dir / "modules.json"
    if modules_path.is_file():
        modules = read_json(modules_path)
        if not isinstance(modules, list):
            raise ModelLoadError(f"{modules_path} must hold a JSON array of modules")
        for module in modules:
            if isinstance(module, dict) and module.get("type") == _POOLING_MODULE:
                return model_dir / str(module.get("path", "")) / "config.json"
        return None
    default = model_dir / "1_Pooling" / "config.json"
    return default if default.is_file() else None


def _read_pooling(model_dir: Path) -> PoolingMode:
    path = _pooling_config_path(model_dir)
    if path is None:
        return "mean"
    config = read_json(path)
    if not isinstance(config, dict):
        raise ModelLoadError(f"{path} must hold a JSON object")
    for flag in _UNSUPPORTED_FLAGS:
        if config.get(flag):
            raise ModelLoadError(f"{path}: {flag} is not supported (mean and CLS pooling are)")
    mean = bool(config.get("pooling_mode_mean_tokens"))
    cls = bool(config.get("pooling_mode_cls_token"))
    if mean and cls:
        raise ModelLoadError(f"{path}: combined mean+CLS pooling is not supported")
    return "cls" if cls else "mean"


def _read_max_seq_length(model_dir: Path) -> int | None:
    path = model_dir / "sentence_bert_config.json"
    if not path.is_file():
        return None
    config = read_json(path)
    value = config.get("max_seq_length") if isinstance(config, dict) else None
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 2:
        raise ModelLoadError(f"{path}: max_seq_length must be an integer >= 2, got {value!r}")
    return value
