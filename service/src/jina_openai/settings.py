"""Every setting of the service, read from `JINA_OPENAI_*` environment variables.

One class, used by the app factory, the CLI (flags map onto fields), gunicorn's config module and
the tests. It imports nothing heavy (no torch): gunicorn's master process reads it too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Roo Code hardcodes the dimension of these ids instead of reading its setting: serving a model
# under one of them silently breaks its Qdrant collections (see docs/roo-code-client reference).
RESERVED_MODEL_IDS = frozenset(
    {
        "text-embedding-3-small",
        "text-embedding-3-large",
        "text-embedding-ada-002",
        "nomic-embed-code",
    }
)

DEVICE_PATTERN = r"^(auto|cpu|cuda(:[0-9]+)?)$"


def _split_list(value: Any) -> Any:
    """Accept a JSON array or a comma-separated string where a list is expected."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    """Configuration of one service process (environment prefix `JINA_OPENAI_`)."""

    model_config = SettingsConfigDict(
        env_prefix="JINA_OPENAI_",
        extra="ignore",
        validate_default=True,
        protected_namespaces=(),
    )

    # --- model -------------------------------------------------------------------------------
    model_dir: Path = Field(description="Local model directory (config.json, weights, tokenizer).")
    model_id: str | None = Field(
        default=None, description="Id the model is served under; default: the embedder's own id."
    )
    model_aliases: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Other ids accepted in the `model` request field."
    )
    device: str = Field(
        default="cpu", pattern=DEVICE_PATTERN, description="cpu, cuda, cuda:N, auto"
    )
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        default="auto", description="auto = float32 on CPU, float16 on CUDA."
    )
    torch_threads: int | None = Field(
        default=None, ge=1, description="torch intra-op threads; default: usable CPU cores."
    )
    tokenizer_threads: int = Field(default=2, ge=1, le=64, description="Tokenization thread pool.")
    warmup: bool = Field(default=True, description="Run warmup batches before reporting ready.")

    # --- network and auth --------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = Field(default=4000, ge=0, le=65535)
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Accepted API keys (comma-separated in the environment). Empty = open service.",
    )
    open_health_endpoints: bool = Field(
        default=True, description="Serve /health, /ready and /metrics without an API key."
    )

    # --- request limits ----------------------------------------------------------------------
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    max_inputs_per_request: int = Field(default=2048, ge=1)
    max_input_tokens: int | None = Field(
        default=None,
        ge=2,
        description="Per-input token limit (special tokens included); "
        "default and upper bound: the model's maximum.",
    )
    truncate_inputs: bool = Field(
        default=True,
        description="Truncate over-long inputs (true) or reject them with 400 (false).",
    )

    # --- engine budgets (token bounds; a memory budget can derive these) ----------------------
    max_batch_tokens: int | None = Field(
        default=None,
        ge=16,
        description="Padded tokens (longest input x inputs) per forward pass; "
        "default 4096 on CPU, 16384 on CUDA (from the GPU memory when it can be read).",
    )
    max_batch_inputs: int = Field(default=256, ge=1)
    max_queued_tokens: int | None = Field(
        default=None,
        ge=16,
        description="Admitted, unfinished tokens; above it requests get 429 + Retry-After. "
        "Default: derived from memory_budget_mb, at most 262144.",
    )
    max_queued_requests: int = Field(default=1024, ge=1)

    # --- memory ------------------------------------------------------------------------------
    memory_budget_mb: int | None = Field(
        default=None,
        ge=128,
        description="Resident memory (MiB) the process must stay under (e.g. systemd MemoryHigh); "
        "max_batch_tokens and max_queued_tokens are derived from it unless set. "
        "None: their fixed defaults.",
    )
    malloc_trim_interval_s: float = Field(
        default=1.0,
        ge=0,
        description="Return freed heap memory to the system (glibc malloc_trim) at most this "
        "often while batches run, and once when idle; 0 disables it.",
    )

    # --- logging -----------------------------------------------------------------------------
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    log_format: Literal["json", "text"] = "json"

    # --- production server (gunicorn) --------------------------------------------------------
    workers: int = Field(default=1, ge=1, description="gunicorn workers; one per device.")
    max_requests: int = Field(
        default=10_000, ge=0, description="Recycle a worker after N requests."
    )
    max_requests_jitter: int = Field(default=1_000, ge=0)
    graceful_timeout: int = Field(default=30, ge=1, description="Seconds to finish in-flight work.")
    worker_timeout: int = Field(default=120, ge=1, description="gunicorn worker heartbeat timeout.")
    keepalive: int = Field(default=5, ge=0)

    @field_validator("model_aliases", "api_keys", mode="before")
    @classmethod
    def _parse_list(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("model_aliases")
    @classmethod
    def _aliases_not_reserved(cls, value: list[str]) -> list[str]:
        for alias in value:
            _check_not_reserved(alias)
        return value

    @field_validator("model_id")
    @classmethod
    def _model_id_not_reserved(cls, value: str | None) -> str | None:
        if value is not None:
            _check_not_reserved(value)
        return value

    @model_validator(mode="after")
    def _no_empty_keys(self) -> Settings:
        if any(not key.get_secret_value() for key in self.api_keys):
            raise ValueError("api_keys must not contain empty keys")
        return self

    def api_key_values(self) -> list[str]:
        return [key.get_secret_value() for key in self.api_keys]


def _check_not_reserved(model_id: str) -> None:
    if model_id in RESERVED_MODEL_IDS:
        raise ValueError(
            f"{model_id!r} is one of Roo Code's built-in model ids, whose dimension it hardcodes; "
            "serve the model under another id"
        )
