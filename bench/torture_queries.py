"""The steady stream of Roo-Code-shaped search queries that `make torture` keeps running.

Open loop: one query every 1/rate seconds, each in its own task, whatever the server does (a
stalled server shows as queries that wait, not as a stream that stops). A query is one code
chunk with `encoding_format: base64`; it gives up after `timeout_s` (status "timeout").
`base_url` may change while it runs (the harness restarts a dead server on a new port).
Loopback only.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field

import httpx

from bench.loadgen import check_loopback


@dataclass(frozen=True)
class Query:
    started: float  # time.monotonic()
    latency_s: float
    status: str  # "200", "429", "timeout", "transport:ConnectError", ...


@dataclass
class QueryStream:
    base_url: str
    texts: list[str]
    api_key: str
    rate_per_s: float = 3.0
    timeout_s: float = 30.0
    done: list[Query] = field(default_factory=list)
    _in_flight: dict[int, float] = field(default_factory=dict)  # id -> started
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> QueryStream:
        check_loopback(self.base_url)
        self._thread = threading.Thread(target=self._run, name="torture-queries", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.timeout_s + 10)

    def set_base_url(self, base_url: str) -> None:
        check_loopback(base_url)
        self.base_url = base_url

    def between(self, start: float, end: float) -> list[Query]:
        """The queries started in [start, end], once all of them have finished."""
        deadline = time.monotonic() + self.timeout_s + 5
        while time.monotonic() < deadline:
            with self._lock:
                pending = [t for t in self._in_flight.values() if start <= t <= end]
            if not pending:
                break
            time.sleep(0.2)
        with self._lock:
            return [q for q in self.done if start <= q.started <= end]

    def _run(self) -> None:
        asyncio.run(self._loop())

    async def _loop(self) -> None:
        limits = httpx.Limits(max_connections=500, max_keepalive_connections=8)
        headers = {"Authorization": f"Bearer {self.api_key}"}
        async with httpx.AsyncClient(timeout=self.timeout_s, limits=limits, headers=headers) as c:
            tasks: set[asyncio.Task[None]] = set()
            number = 0
            while not self._stop.is_set():
                task = asyncio.create_task(self._one(c, number))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                number += 1
                await asyncio.sleep(1.0 / self.rate_per_s)
            if tasks:
                await asyncio.wait(tasks, timeout=self.timeout_s + 5)

    async def _one(self, client: httpx.AsyncClient, number: int) -> None:
        text = self.texts[number % len(self.texts)]
        body = {"input": [text], "model": "bench", "encoding_format": "base64"}
        started = time.monotonic()
        with self._lock:
            self._in_flight[number] = started
        try:
            response = await client.post(f"{self.base_url}/v1/embeddings", json=body)
            status = str(response.status_code)
        except httpx.TimeoutException:
            status = "timeout"
        except httpx.HTTPError as exc:
            status = f"transport:{type(exc).__name__}"
        query = Query(started, time.monotonic() - started, status)
        with self._lock:
            del self._in_flight[number]
            self.done.append(query)
