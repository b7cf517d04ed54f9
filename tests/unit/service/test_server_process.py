"""A real server process (`jina-openai serve`, uvicorn) with the real model, used through the
official `openai` SDK and Roo Code-shaped requests; gunicorn with uvicorn workers."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
from jina_openai.models.base import Embedder

from .conftest import (
    MINILM_ID,
    TEST_API_KEY,
    ServerProcess,
    free_port,
    reference_vectors,
    server_process,
    stdlib_texts,
)

AUTH = {"Authorization": f"Bearer {TEST_API_KEY}"}


def sdk(
    server: ServerProcess,
    *,
    captured: list[httpx.Request] | None = None,
    api_key: str = TEST_API_KEY,
) -> openai.OpenAI:
    hooks = {"request": [captured.append]} if captured is not None else {}
    return openai.OpenAI(
        base_url=f"{server.base_url}/v1",
        api_key=api_key,
        max_retries=0,
        http_client=httpx.Client(event_hooks=hooks, timeout=60),
    )


def test_openai_sdk_default_base64(minilm_server: ServerProcess, minilm_embedder: Embedder) -> None:
    texts = ["def main():\n    print('hi')", "the quick brown fox", stdlib_texts(1)[0]]
    captured: list[httpx.Request] = []
    result = sdk(minilm_server, captured=captured).embeddings.create(model=MINILM_ID, input=texts)
    sent = json.loads(captured[0].content)
    assert sent.get("encoding_format") == "base64"  # the SDK's default since 2025
    vectors = np.array([item.embedding for item in result.data], dtype=np.float32)
    assert vectors.shape == (3, 384)
    reference = reference_vectors(minilm_embedder, texts)
    assert np.sum(vectors * reference, axis=1).min() >= 0.9999
    assert result.model == MINILM_ID
    assert result.usage.prompt_tokens == result.usage.total_tokens > 0


def test_openai_sdk_float_and_dimensions(minilm_server: ServerProcess) -> None:
    client = sdk(minilm_server)
    result = client.embeddings.create(model=MINILM_ID, input="hello", encoding_format="float")
    vector = np.asarray(result.data[0].embedding)
    assert vector.shape == (384,)
    assert np.isclose(np.linalg.norm(vector), 1.0, atol=1e-5)
    short = client.embeddings.create(model=MINILM_ID, input=["hello"], dimensions=64)
    assert len(short.data[0].embedding) == 64


def test_openai_sdk_errors(minilm_server: ServerProcess) -> None:
    with pytest.raises(openai.AuthenticationError):
        sdk(minilm_server, api_key="wrong").embeddings.create(model=MINILM_ID, input="x")
    with pytest.raises(openai.NotFoundError) as missing:
        sdk(minilm_server).embeddings.create(model="nope", input="x")
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as empty:
        sdk(minilm_server).embeddings.create(model=MINILM_ID, input=[""])
    assert empty.value.param == "input[0]"
    models = sdk(minilm_server).models.list()
    assert [model.id for model in models.data] == [MINILM_ID]


def test_roo_code_shaped_requests(minilm_server: ServerProcess) -> None:
    headers = {"api-key": TEST_API_KEY, **AUTH, "content-type": "application/json"}
    check = httpx.post(
        f"{minilm_server.base_url}/v1/embeddings",
        headers=headers,
        timeout=60,
        json={"input": ["test"], "model": MINILM_ID, "encoding_format": "base64"},
    )
    assert check.status_code == 200
    chunks = stdlib_texts(60, chars=500)
    response = httpx.post(
        f"{minilm_server.base_url}/v1/embeddings",
        headers=headers,
        timeout=120,
        json={"input": chunks, "model": MINILM_ID, "encoding_format": "base64"},
    )
    assert response.status_code == 200
    data = response.json()["data"]
    assert [item["index"] for item in data] == list(range(60))
    vectors = np.stack([np.frombuffer(base64.b64decode(item["embedding"]), "<f4") for item in data])
    assert vectors.shape == (60, 384)
    assert np.isfinite(vectors).all()
    assert len({row.tobytes() for row in vectors}) == 60
    assert response.json()["usage"]["prompt_tokens"] <= 60 * 256


def test_concurrent_http_clients(minilm_server: ServerProcess, minilm_embedder: Embedder) -> None:
    texts = stdlib_texts(32, chars=100)
    reference = reference_vectors(minilm_embedder, texts)

    async def run() -> list[np.ndarray]:
        async with httpx.AsyncClient(
            base_url=minilm_server.base_url, headers=AUTH, timeout=120
        ) as client:

            async def one(start: int) -> np.ndarray:
                response = await client.post(
                    "/v1/embeddings", json={"input": texts[start : start + 2], "model": MINILM_ID}
                )
                assert response.status_code == 200, response.text
                return np.array([item["embedding"] for item in response.json()["data"]])

            return await asyncio.gather(*(one(start) for start in range(0, 32, 2)))

    for position, vectors in enumerate(asyncio.run(run())):
        expected = reference[position * 2 : position * 2 + 2]
        assert np.sum(vectors * expected, axis=1).min() >= 0.9999


def test_a_client_that_hangs_up_has_its_queued_inputs_dropped(
    minilm_server: ServerProcess,
) -> None:
    def dropped() -> float:
        metrics = httpx.get(f"{minilm_server.base_url}/metrics").text
        line = next(
            row
            for row in metrics.splitlines()
            if row.startswith("jina_openai_dropped_inputs_total")
        )
        return float(line.split()[-1])

    before = dropped()
    # Texts no other test sent (the server's embedding cache would answer those at once). The
    # blocker keeps the model busy for seconds, so that the doomed request is tokenized and
    # queued before its client hangs up (1 s after sending it), and still queued then.
    unique = [f"# hang-up {i}\n{text}" for i, text in enumerate(stdlib_texts(64, chars=1000))]
    blocker = json.dumps({"input": [f"# blocker {text}" for text in unique], "model": MINILM_ID})
    doomed = json.dumps({"input": unique[:60], "model": MINILM_ID}).encode()
    with httpx.Client(base_url=minilm_server.base_url, headers=AUTH, timeout=120) as client:
        worker = threading.Thread(
            target=client.post, args=("/v1/embeddings",), kwargs={"content": blocker}
        )
        worker.start()
        time.sleep(0.3)
        with socket.create_connection(
            ("127.0.0.1", int(minilm_server.base_url.rsplit(":", 1)[1]))
        ) as raw:
            raw.sendall(
                b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
                + f"authorization: Bearer {TEST_API_KEY}\r\n".encode()
                + f"content-length: {len(doomed)}\r\n\r\n".encode()
                + doomed
            )
            time.sleep(1.0)
        worker.join(120)
    deadline = time.monotonic() + 10
    while dropped() <= before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert dropped() > before


def test_serve_exits_with_status_3_when_the_model_cannot_load(tmp_path: Path) -> None:
    port = free_port()
    args = [
        sys.executable,
        "-m",
        "jina_openai.cli",
        "serve",
        "--model",
        str(tmp_path / "none"),
        "--port",
        str(port),
        "--log-format",
        "text",
    ]
    with server_process(args, env={}, port=port, log_path=tmp_path / "log", wait=False) as server:
        assert server.process.wait(60) == 3
        assert "does not exist" in server.log()


def gunicorn_args(app: str) -> list[str]:
    """gunicorn as the unit runs it: the service's configuration module, uvicorn workers."""
    return [sys.executable, "-m", "gunicorn", "-c", "python:jina_openai.gunicorn_conf", app]


def _maps(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc")
def test_gunicorn_with_uvicorn_workers(tiny_model_dir: Path, tmp_path: Path) -> None:
    port = free_port()
    env = {
        "JINA_OPENAI_MODEL_DIR": str(tiny_model_dir),
        "JINA_OPENAI_PORT": str(port),
        "JINA_OPENAI_API_KEYS": TEST_API_KEY,
        "JINA_OPENAI_TORCH_THREADS": "1",
        "JINA_OPENAI_GRACEFUL_TIMEOUT": "10",
    }
    args = gunicorn_args("jina_openai.asgi:create_app()")
    with server_process(args, env=env, port=port, log_path=tmp_path / "log") as server:
        response = httpx.post(
            f"{server.base_url}/v1/embeddings", headers=AUTH, json={"input": ["x"]}, timeout=30
        )
        assert response.status_code == 200
        master = server.process.pid
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        assert len(children) == 1  # one worker by default
        assert "libtorch" not in _maps(master)  # no model, torch or CUDA in the master
        assert "libtorch" in _maps(int(children[0]))
        assert server.stop() == 0
    assert '"event": "request"' in server.log()  # the worker logs JSON request lines


def test_gunicorn_stops_when_the_model_cannot_load(tmp_path: Path) -> None:
    port = free_port()
    env = {"JINA_OPENAI_MODEL_DIR": str(tmp_path / "none"), "JINA_OPENAI_PORT": str(port)}
    args = gunicorn_args("jina_openai.asgi:create_app()")
    with server_process(args, env=env, port=port, log_path=tmp_path / "log", wait=False) as server:
        assert server.process.wait(60) == 3  # the arbiter halts instead of respawning forever
        assert "does not exist" in server.log()


def _children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _wait_for_new_ready_worker(server: ServerProcess, old: list[int]) -> list[int]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        children = _children(server.process.pid)
        if children and children != old:
            try:
                if httpx.get(f"{server.base_url}/ready", timeout=2).status_code == 200:
                    return children
            except httpx.TransportError:
                pass
        time.sleep(0.1)
    raise AssertionError(f"no new ready worker:\n{server.log()}")


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc")
def test_a_hung_or_broken_model_gets_its_worker_replaced(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    from bench.faulty_app import FAIL_MARKER, HANG_MARKER

    port = free_port()
    env = {
        "JINA_OPENAI_MODEL_DIR": str(tiny_model_dir),
        "JINA_OPENAI_PORT": str(port),
        "JINA_OPENAI_TORCH_THREADS": "1",
        "JINA_OPENAI_BATCH_TIMEOUT_S": "1",
        "JINA_OPENAI_MAX_CONSECUTIVE_FAILED_BATCHES": "3",
        "JINA_OPENAI_WARMUP": "false",
    }
    args = gunicorn_args("bench.faulty_app:create_app()")
    url = f"http://127.0.0.1:{port}/v1/embeddings"
    with server_process(args, env=env, port=port, log_path=tmp_path / "log") as server:
        first = _children(server.process.pid)
        hung = httpx.post(url, json={"input": [f"x {HANG_MARKER} y"]}, timeout=60)
        assert hung.status_code == 503  # failed by the watchdog, before the worker exits
        assert hung.json()["error"]["code"] == "model_not_ready"
        second = _wait_for_new_ready_worker(server, first)
        for _ in range(3):
            failed = httpx.post(url, json={"input": [FAIL_MARKER]}, timeout=60)
            assert failed.status_code == 500
        _wait_for_new_ready_worker(server, second)
        assert httpx.post(url, json={"input": ["fine"]}, timeout=60).status_code == 200
        assert server.process.poll() is None  # the master, and so the service, stayed up
    log = server.log()
    assert "the inference thread is hung" in log
    assert "3 batches in a row failed" in log
