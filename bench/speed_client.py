"""The HTTP side of `make bench-speed`: a Roo-shaped index of a corpus, and queries meanwhile.

`index_corpus` sends the corpus the way Roo Code's indexer does: batches of 60 chunks, 10
requests in flight, `encoding_format: base64`; a 429 or 503 is retried after its Retry-After
(Roo retries too). It returns every vector in corpus order, so that runs can be compared
vector by vector. `QueryLoop` sends one-chunk queries, one after the other with a pause
between them, until it is stopped. Loopback only.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from dataclasses import dataclass, field

import httpx
import numpy as np

from bench.loadgen import check_loopback, percentile

REQUEST_TIMEOUT_S = 600.0
ROO_BATCH = 60
ROO_IN_FLIGHT = 10


@dataclass
class IndexResult:
    vectors: np.ndarray
    elapsed_s: float
    requests: int
    tokens: int
    retried: dict[str, int]  # status -> how many answers were retried
    retry_wait_s: float  # Retry-After seconds slept, summed over the clients

    def summary(self) -> dict[str, float | int]:
        inputs = len(self.vectors)
        return {
            "inputs": inputs,
            "elapsed_s": round(self.elapsed_s, 3),
            "inputs_per_s": round(inputs / self.elapsed_s, 2) if self.elapsed_s else 0.0,
            "requests": self.requests,
            "retries": sum(self.retried.values()),
            "retried": dict(sorted(self.retried.items())),
            "retry_wait_s": round(self.retry_wait_s, 1),
            "tokens": self.tokens,
        }


def decode(payload: dict[str, object]) -> np.ndarray:
    rows = payload["data"]
    assert isinstance(rows, list)
    ordered = sorted(rows, key=lambda row: int(row["index"]))
    return np.stack([np.frombuffer(base64.b64decode(row["embedding"]), "<f4") for row in ordered])


def client(base_url: str, api_key: str, connections: int) -> httpx.AsyncClient:
    check_loopback(base_url)
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=REQUEST_TIMEOUT_S,
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=None),
        headers={"Authorization": f"Bearer {api_key}"},
    )


@dataclass
class Retries:
    statuses: dict[str, int] = field(default_factory=dict)
    wait_s: float = 0.0


async def embed_once(
    http: httpx.AsyncClient, texts: list[str], retries: Retries | None = None
) -> tuple[np.ndarray, int]:
    """Vectors and token count of one request, retried after Retry-After on 429/503."""
    body = {"input": texts, "model": "bench", "encoding_format": "base64"}
    while True:
        response = await http.post("/v1/embeddings", json=body)
        if response.status_code in (429, 503):
            wait = float(response.headers.get("retry-after", "1"))
            if retries is not None:
                status = str(response.status_code)
                retries.statuses[status] = retries.statuses.get(status, 0) + 1
                retries.wait_s += wait
            await asyncio.sleep(wait)
            continue
        response.raise_for_status()
        payload = response.json()
        vectors = decode(payload)
        if len(vectors) != len(texts):
            raise RuntimeError(f"{len(texts)} inputs, {len(vectors)} vectors")
        return vectors, int(payload["usage"]["total_tokens"])


async def index_corpus(
    base_url: str,
    texts: list[str],
    *,
    api_key: str,
    batch: int = ROO_BATCH,
    in_flight: int = ROO_IN_FLIGHT,
) -> IndexResult:
    """Embed all `texts` in batches of `batch`, `in_flight` requests at a time."""
    batches = [texts[start : start + batch] for start in range(0, len(texts), batch)]
    results: list[np.ndarray | None] = [None] * len(batches)
    tokens = [0]
    retries = Retries()
    next_batch = iter(range(len(batches)))
    async with client(base_url, api_key, in_flight + 2) as http:

        async def sender() -> None:
            for number in next_batch:
                vectors, count = await embed_once(http, batches[number], retries)
                results[number] = vectors
                tokens[0] += count

        started = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(min(in_flight, len(batches)))))
        elapsed = time.perf_counter() - started
    vectors = np.concatenate([r for r in results if r is not None])
    return IndexResult(vectors, elapsed, len(batches), tokens[0], retries.statuses, retries.wait_s)


async def embed_each(base_url: str, texts: list[str], *, api_key: str) -> np.ndarray:
    """One request per text, one after the other (Roo Code's search): the vectors."""
    async with client(base_url, api_key, 2) as http:
        rows = [(await embed_once(http, [text]))[0][0] for text in texts]
    return np.stack(rows)


@dataclass
class QueryLoop:
    """One client sending `texts` round-robin as one-chunk queries, `pause_s` apart."""

    base_url: str
    texts: list[str]
    api_key: str
    pause_s: float
    latencies_s: list[float] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        body = {"model": "bench", "encoding_format": "base64"}
        async with client(self.base_url, self.api_key, 2) as http:
            number = 0
            while not self._stop.is_set():
                text = self.texts[number % len(self.texts)]
                number += 1
                started = time.perf_counter()
                response = await http.post("/v1/embeddings", json={**body, "input": [text]})
                status = str(response.status_code)
                self.statuses[status] = self.statuses.get(status, 0) + 1
                if response.status_code == 200:
                    self.latencies_s.append(time.perf_counter() - started)
                if self.pause_s:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), timeout=self.pause_s)

    def summary(self) -> dict[str, object]:
        lat = sorted(self.latencies_s)
        return {
            "queries": len(lat),
            "pause_s": self.pause_s,
            "p50_s": round(percentile(lat, 0.5), 4) if lat else None,
            "p99_s": round(percentile(lat, 0.99), 4) if lat else None,
            "max_s": round(lat[-1], 4) if lat else None,
            "latencies_s": lat,
            "statuses": dict(sorted(self.statuses.items())),
        }


async def index_while_querying(
    base_url: str, texts: list[str], queries: list[str], *, api_key: str, pause_s: float
) -> tuple[IndexResult, dict[str, object]]:
    """`index_corpus` with a `QueryLoop` running from its start to its end."""
    loop = QueryLoop(base_url, queries, api_key, pause_s)
    task = asyncio.create_task(loop.run())
    try:
        result = await index_corpus(base_url, texts, api_key=api_key)
    finally:
        loop.stop()
        await task
    return result, loop.summary()
