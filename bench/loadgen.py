"""Closed-loop HTTP load: groups of clients, each sending one request after the other.

Every load is bounded twice: by a duration and by a request count (whichever comes first); a
client finishes its in-flight request after the deadline. Requests carry `encoding_format:
base64` like Roo Code and the OpenAI SDKs. A 429 is counted (with its latency) and the client
waits the `Retry-After` it was given (capped at the time left) before its next request.
Only loopback URLs are accepted.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

REQUEST_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class ClientGroup:
    """`clients` closed-loop clients sending `min_inputs`..`max_inputs` chunks per request."""

    name: str
    clients: int
    min_inputs: int
    max_inputs: int


@dataclass
class GroupResult:
    name: str
    clients: int
    requests: int = 0  # answered 200
    inputs: int = 0
    tokens: int = 0  # usage.total_tokens of the 200s
    latencies_s: list[float] = field(default_factory=list)
    rejected_latencies_s: list[float] = field(default_factory=list)  # 429s
    statuses: dict[str, int] = field(default_factory=dict)  # "200", "429", "transport", ...
    elapsed_s: float = 0.0
    unfinished: int = 0  # requests abandoned at the deadline (hang_up_at_deadline)

    def summary(self) -> dict[str, object]:
        lat = sorted(self.latencies_s)
        rej = sorted(self.rejected_latencies_s)
        return {
            "clients": self.clients,
            "requests": self.requests,
            "inputs": self.inputs,
            "tokens": self.tokens,
            "elapsed_s": round(self.elapsed_s, 2),
            "inputs_per_s": round(self.inputs / self.elapsed_s, 2) if self.elapsed_s else 0.0,
            "tokens_per_s": round(self.tokens / self.elapsed_s, 1) if self.elapsed_s else 0.0,
            "p50_s": round(statistics.median(lat), 4) if lat else None,
            "p99_s": round(percentile(lat, 0.99), 4) if lat else None,
            "max_s": round(lat[-1], 4) if lat else None,
            "rejected_p99_s": round(percentile(rej, 0.99), 4) if rej else None,
            "rejected_max_s": round(rej[-1], 4) if rej else None,
            "statuses": dict(sorted(self.statuses.items())),
            "unfinished_at_deadline": self.unfinished,
        }


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = max(0, min(len(sorted_values) - 1, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[rank]


def check_loopback(base_url: str) -> None:
    host = urlsplit(base_url).hostname or ""
    if not (host == "localhost" or host == "::1" or host.startswith("127.")):
        raise ValueError(f"benchmarks only send traffic to loopback, not to {host!r}")


async def run_load(
    base_url: str,
    texts: list[str],
    groups: list[ClientGroup],
    *,
    seconds: float,
    max_requests: int,
    api_key: str,
    seed: int = 0,
    on_response: Callable[[], None] | None = None,
    sizes: Callable[[random.Random], int] | None = None,
    hang_up_at_deadline: bool = False,
) -> dict[str, GroupResult]:
    """Run all groups at once for `seconds` or `max_requests` requests in total; `sizes`
    draws the number of chunks per request (default: uniform over the group's range)."""
    check_loopback(base_url)
    results = {group.name: GroupResult(group.name, group.clients) for group in groups}
    total_clients = sum(group.clients for group in groups)
    sent = itertools.count()
    started = time.perf_counter()
    deadline = started + seconds
    limits = httpx.Limits(max_connections=total_clients + 4, max_keepalive_connections=None)
    async with httpx.AsyncClient(
        base_url=base_url,
        timeout=REQUEST_TIMEOUT_S,
        limits=limits,
        headers={"Authorization": f"Bearer {api_key}"},
    ) as client:

        async def run_client(group: ClientGroup, number: int) -> None:
            rng = random.Random(f"{seed}-{group.name}-{number}")
            result = results[group.name]
            offset = rng.randrange(len(texts))
            while time.perf_counter() < deadline and next(sent) < max_requests:
                if sizes is not None:
                    size = sizes(rng)
                else:
                    size = rng.randint(group.min_inputs, group.max_inputs)
                batch = [texts[(offset + k) % len(texts)] for k in range(size)]
                offset += size
                body = {"input": batch, "model": "bench", "encoding_format": "base64"}
                request_started = time.perf_counter()
                try:
                    call = client.post("/v1/embeddings", json=body)
                    if hang_up_at_deadline:
                        remaining = max(0.05, deadline - request_started)
                        response = await asyncio.wait_for(call, timeout=remaining)
                    else:
                        response = await call
                except TimeoutError:  # hung up at the deadline: the server drops the work
                    result.unfinished += 1
                    break
                except httpx.HTTPError as exc:
                    key = f"transport:{type(exc).__name__}"
                    result.statuses[key] = result.statuses.get(key, 0) + 1
                    await asyncio.sleep(min(1.0, max(0.0, deadline - time.perf_counter())))
                    continue
                latency = time.perf_counter() - request_started
                status = str(response.status_code)
                result.statuses[status] = result.statuses.get(status, 0) + 1
                if response.status_code == 200:
                    payload = response.json()
                    if len(payload["data"]) != size:
                        raise RuntimeError(f"{size} inputs, {len(payload['data'])} vectors")
                    result.requests += 1
                    result.inputs += size
                    result.tokens += int(payload["usage"]["total_tokens"])
                    result.latencies_s.append(latency)
                    if on_response is not None:
                        on_response()
                elif response.status_code in (429, 503):
                    if response.status_code == 429:
                        result.rejected_latencies_s.append(latency)
                    wait = float(response.headers.get("retry-after", "1"))
                    await asyncio.sleep(min(wait, max(0.0, deadline - time.perf_counter())))

        async def run_group(group: ClientGroup) -> None:
            await asyncio.gather(*(run_client(group, n) for n in range(group.clients)))
            results[group.name].elapsed_s = time.perf_counter() - started

        await asyncio.gather(*(run_group(group) for group in groups))
    return results
