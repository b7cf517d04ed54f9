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

# Roo Code hardcodes the dimension of these ids instead of reading its setting (its
# src/shared/embeddingModels.ts, EMBEDDING_MODEL_PROFILES): serving a model under one of them
# silently breaks its Qdrant collections (see the Roo Code section of service/README.md).
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
        default="auto",
        description="auto = float16 on CUDA; on CPU bfloat16 where the CPU has native bf16 and "
        "a startup self-check finds it faster at cosine >= 0.999, else float32.",
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
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Addresses whose X-Forwarded-For / X-Forwarded-Proto headers are believed "
        "(a reverse proxy in front of the service). Empty: nobody's; every ssh-tunnel client "
        "comes from loopback, so loopback is not trusted by default.",
    )

    # --- connections (the HTTP server's own bounds; see http_server.py) -----------------------
    header_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="A connection must deliver its request line and headers within this many "
        "seconds of opening (or of its previous response), else it is closed.",
    )
    body_timeout_s: float = Field(
        default=30.0, gt=0, description="The whole request body must arrive within this (408)."
    )
    max_connections: int = Field(
        default=1024,
        ge=1,
        description="Open connections per worker; a new one replaces the longest idle one, or "
        "gets 503 when all have requests in flight. Lowered to fit RLIMIT_NOFILE less 128.",
    )

    # --- request limits ----------------------------------------------------------------------
    max_body_bytes: int = Field(
        default=2 * 1024 * 1024,
        ge=1024,
        description="Request body limit (413). Roo Code's largest request, 200 chunks of "
        "~1150 characters, is ~0.3 MB of JSON (1.4 MB even if every character were escaped).",
    )
    max_inputs_per_request: int = Field(
        default=2048, ge=1, description="Items in `input` (OpenAI's own limit; Roo sends <= 200)."
    )
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
        "Default: derived from memory_budget_mb, at most 1048576.",
    )
    max_queued_requests: int = Field(default=1024, ge=1)
    max_queue_wait_s: float = Field(
        default=120.0,
        ge=0,
        description="Admission by waiting time: a request is queued when the work ahead of it "
        "and its own take at most this long at the measured throughput, else it waits in line "
        "up to half as long for room (engine/waiting_line.py), then 429 + Retry-After "
        "(searches, which fit one batch, are exempt). 1.5x this is still inside the 300 s "
        "after which Roo Code's client gives up. 0: only max_queued_tokens bounds the queue.",
    )
    request_timeout_s: float = Field(
        default=270.0,
        ge=0,
        description="A request not answered this many seconds after admission is dropped and "
        "gets 503 + Retry-After (below the 300 s after which Roo Code's client gives up); 0: none.",
    )

    # --- engine faults -----------------------------------------------------------------------
    batch_timeout_s: float = Field(
        default=120.0,
        ge=0,
        description="Watchdog: a forward pass running longer means a hung model; the worker "
        "turns unready and exits so that gunicorn replaces it. 0: no watchdog.",
    )
    max_consecutive_failed_batches: int = Field(
        default=5,
        ge=0,
        description="This many failing batches in a row mean a broken model: the worker turns "
        "unready and exits. 0: never.",
    )

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

    # --- embedding cache (engine/embedding_cache.py) -----------------------------------------
    cache_memory_mb: int = Field(
        default=64,
        ge=0,
        description="In-memory cache of computed vectors (MiB, inside memory_budget_mb): a chunk "
        "embedded once is answered from it (768-dim: ~3.3 KB a vector, ~20k in 64 MiB). 0: off.",
    )
    cache_path: Path | None = Field(
        default=None,
        description="sqlite file of the persistent cache tier, shared by the workers and kept "
        "across restarts (e.g. /var/lib/jina-embeddings/embedding-cache.sqlite3). None: off.",
    )
    cache_disk_mb: int = Field(
        default=1024,
        ge=1,
        description="Size cap of the persistent cache file (MiB); least recently used vectors "
        "are evicted beyond it.",
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

    @field_validator("model_aliases", "api_keys", "trusted_proxies", mode="before")
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
