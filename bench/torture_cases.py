"""The attacks of `make torture`, one function per case (bench/torture.py runs and measures
them). Each returns what the attack got (`attack`: status -> count) and case-specific facts.
Everything goes to the loopback server in `ctx.base_url`; every wait is capped."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from bench.faulty_app import FAIL_MARKER, HANG_MARKER
from bench.loadgen import check_loopback
from bench.torture_probe import LogCursor, metric_total, probe, scrape, worker_pids

BODY_MARGIN = 64 * 1024  # "just under the limit"
SMALL_TEXT = "def add(a, b):\n    return a + b\n"
ATTACK_TIMEOUT_S = 300.0


@dataclass
class CaseContext:
    base_url: str
    pid: int  # the gunicorn master
    api_key: str
    max_body_bytes: int
    texts: list[str]  # code chunks
    log: LogCursor
    settings: dict[str, str]  # the server's JINA_OPENAI_* environment
    quick: bool
    idle_cap_s: float

    def setting(self, name: str, default: float) -> float:
        return float(self.settings.get(f"JINA_OPENAI_{name.upper()}", default))

    def client(self, timeout: float = ATTACK_TIMEOUT_S) -> httpx.AsyncClient:
        check_loopback(self.base_url)
        return httpx.AsyncClient(
            base_url=self.base_url,
            timeout=timeout,
            headers={"Authorization": f"Bearer {self.api_key}"},
            limits=httpx.Limits(max_connections=64),
        )


def encode(texts: list[str]) -> bytes:
    body = {"input": texts, "model": "bench", "encoding_format": "base64"}
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


def one_string_under(limit: int, make: Callable[[int], str]) -> bytes:
    """A one-input body of at most `limit` bytes, as close to it as `make(chars)` allows."""
    text = make(limit)
    excess = len(encode([text])) - limit
    if excess > 0:  # every character is at least one byte: one cut is enough
        text = text[: len(text) - excess]
    return encode([text])


def code_text(texts: list[str], chars: int, offset: int = 0) -> str:
    parts: list[str] = []
    size = 0
    index = offset
    while size < chars:
        part = texts[index % len(texts)]
        parts.append(part)
        size += len(part)
        index += 1
    return "".join(parts)[:chars]


def cjk_text(chars: int, seed: int) -> str:
    rng = random.Random(seed)
    return "".join(chr(rng.randint(0x4E00, 0x9FFF)) for _ in range(chars))


async def post(
    client: httpx.AsyncClient, body: bytes, *, hang_up_s: float | None = None
) -> dict[str, Any]:
    """POST a prepared embeddings body: status (or hung_up/timeout/transport), seconds, and
    the error code or the tokens embedded."""
    started = time.monotonic()
    outcome: dict[str, Any] = {}
    call = client.post("/v1/embeddings", content=body, headers={"Content-Type": "application/json"})
    try:
        response = await (call if hang_up_s is None else asyncio.wait_for(call, hang_up_s))
        outcome["status"] = str(response.status_code)
        payload = _json_or_none(response)
        if response.status_code == 200 and payload:
            outcome["tokens"] = payload["usage"]["total_tokens"]
        elif payload and isinstance(payload.get("error"), dict):
            outcome["code"] = payload["error"].get("code")
    except TimeoutError:
        outcome["status"] = "hung_up"
    except httpx.TimeoutException:
        outcome["status"] = "timeout"
    except httpx.HTTPError as exc:
        outcome["status"] = f"transport:{type(exc).__name__}"
    outcome["seconds"] = round(time.monotonic() - started, 3)
    return outcome


def _json_or_none(response: httpx.Response) -> dict[str, Any] | None:
    try:
        value = response.json()
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def statuses(outcomes: list[dict[str, Any]]) -> dict[str, int]:
    return dict(sorted(Counter(str(o["status"]) for o in outcomes).items()))


# --- 1-4: big bodies ----------------------------------------------------------------------------


def big_string(ctx: CaseContext) -> dict[str, Any]:
    """One code string just under the body limit."""
    body = one_string_under(ctx.max_body_bytes - BODY_MARGIN, lambda n: code_text(ctx.texts, n))

    async def attack() -> dict[str, Any]:
        async with ctx.client() as client:
            return await post(client, body)

    outcome = asyncio.run(attack())
    return {"attack": statuses([outcome]), "request": outcome, "body_bytes": len(body)}


def cjk_bodies(ctx: CaseContext) -> list[bytes]:
    limit = ctx.max_body_bytes - BODY_MARGIN
    return [one_string_under(limit, lambda n, s=seed: cjk_text(n // 3, s)) for seed in range(4)]


def cjk_four(ctx: CaseContext) -> dict[str, Any]:
    """Four CJK strings, each body just under the limit, at once."""
    bodies = cjk_bodies(ctx)

    async def attack() -> list[dict[str, Any]]:
        async with ctx.client() as client:
            return list(await asyncio.gather(*(post(client, body) for body in bodies)))

    outcomes = asyncio.run(attack())
    return {
        "attack": statuses(outcomes),
        "requests": outcomes,
        "body_bytes": [len(b) for b in bodies],
    }


def cjk_four_hang_up(ctx: CaseContext) -> dict[str, Any]:
    """The same four; the clients hang up after 0.1 s; then one one-line query."""
    bodies = cjk_bodies(ctx)

    async def attack() -> tuple[list[dict[str, Any]], dict[str, Any]]:
        async with ctx.client() as client:
            outcomes = await asyncio.gather(*(post(client, b, hang_up_s=0.1) for b in bodies))
            one_line = await post(client, encode([SMALL_TEXT]))
        return list(outcomes), one_line

    outcomes, one_line = asyncio.run(attack())
    return {"attack": statuses(outcomes), "requests": outcomes, "one_line_query": one_line}


def many_inputs(ctx: CaseContext) -> dict[str, Any]:
    """2048 inputs of 4 KB (or as many as fit under the limit) while small requests are sent."""
    limit = ctx.max_body_bytes - BODY_MARGIN
    inputs: list[str] = []
    size = len(encode([]))
    while len(inputs) < 2048:
        candidate = code_text(ctx.texts, 4000, offset=len(inputs) * 3)
        size += len(json.dumps(candidate, ensure_ascii=False).encode("utf-8")) + 2  # ", "
        if size > limit:
            break
        inputs.append(candidate)
    body = encode(inputs)

    async def attack() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        async with ctx.client() as client:

            async def small(delay: float) -> dict[str, Any]:
                await asyncio.sleep(delay)
                return await post(client, encode([SMALL_TEXT]))

            big = asyncio.create_task(post(client, body))
            smalls = await asyncio.gather(*(small(0.5 + k) for k in range(4)))
            return await big, list(smalls)

    big, smalls = asyncio.run(attack())
    return {
        "attack": statuses([big]),
        "inputs": len(inputs),
        "body_bytes": len(body),
        "big": big,
        "small": smalls,
        "small_statuses": statuses(smalls),
    }


# --- 5: idle sockets ----------------------------------------------------------------------------

PARTIAL_REQUEST = (
    b"POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nConte"
)


def idle_sockets(ctx: CaseContext) -> dict[str, Any]:
    """200 connections that send nothing and 50 that stall inside their headers: how long
    until the server closes each (capped), and /health meanwhile."""
    silent, partial = (20, 5) if ctx.quick else (200, 50)
    address = urlsplit(ctx.base_url)
    host, port = address.hostname or "127.0.0.1", int(address.port or 80)
    cap = ctx.idle_cap_s

    async def hold(payload: bytes) -> float | str:
        started = time.monotonic()
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 10)
        except (OSError, TimeoutError) as exc:
            return f"connect:{type(exc).__name__}"
        try:
            if payload:
                writer.write(payload)
                await writer.drain()
            while True:
                remaining = cap - (time.monotonic() - started)
                if remaining <= 0:
                    return "open"
                try:
                    if not await asyncio.wait_for(reader.read(65536), remaining):
                        return round(time.monotonic() - started, 2)  # closed by the server
                except TimeoutError:
                    return "open"
        except OSError:
            return round(time.monotonic() - started, 2)  # reset by the server
        finally:
            writer.close()

    async def health_probes(stop: asyncio.Event) -> list[tuple[str, float]]:
        results: list[tuple[str, float]] = []
        while not stop.is_set():
            results.append(await asyncio.to_thread(probe, ctx.base_url, "/health", 5.0))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
        return results

    async def attack() -> tuple[list[float | str], list[float | str], list[tuple[str, float]]]:
        stop = asyncio.Event()
        prober = asyncio.create_task(health_probes(stop))
        silent_tasks = [asyncio.create_task(hold(b"")) for _ in range(silent)]
        partial_tasks = [asyncio.create_task(hold(PARTIAL_REQUEST)) for _ in range(partial)]
        silent_done = list(await asyncio.gather(*silent_tasks))
        partial_done = list(await asyncio.gather(*partial_tasks))
        stop.set()
        return silent_done, partial_done, await prober

    silent_done, partial_done, health = asyncio.run(attack())
    return {
        "attack": {
            "silent": _socket_fates(silent_done),
            "partial": _socket_fates(partial_done),
        },
        "cap_s": cap,
        "silent": _close_times(silent_done),
        "partial": _close_times(partial_done),
        "health": _health_summary(health),
    }


def _socket_fates(results: list[float | str]) -> dict[str, int]:
    fates = Counter("closed" if isinstance(r, float) else r for r in results)
    return dict(sorted(fates.items()))


def _close_times(results: list[float | str]) -> dict[str, Any]:
    times = sorted(r for r in results if isinstance(r, float))
    return {
        "sockets": len(results),
        "closed": len(times),
        "still_open_at_cap": sum(1 for r in results if r == "open"),
        "connect_failed": sum(1 for r in results if isinstance(r, str) and r != "open"),
        "closed_after_s_min": times[0] if times else None,
        "closed_after_s_median": round(statistics.median(times), 2) if times else None,
        "closed_after_s_max": times[-1] if times else None,
    }


def _health_summary(results: list[tuple[str, float]]) -> dict[str, Any]:
    ok = sorted(seconds for status, seconds in results if status == "200")
    return {
        "probes": len(results),
        "statuses": dict(sorted(Counter(status for status, _ in results).items())),
        "latency_s_median": round(statistics.median(ok), 3) if ok else None,
        "latency_s_max": round(ok[-1], 3) if ok else None,
    }


# --- 6, 7: what the service logs ----------------------------------------------------------------


def aborted_upload(ctx: CaseContext) -> dict[str, Any]:
    """Content-Length 1 MB, 100 KB sent, connection closed: the logged status, /metrics 500s."""
    request_id = f"torture-abort-{int(time.time() * 1000)}"
    address = urlsplit(ctx.base_url)
    before = metric_total(scrape(ctx.base_url), "jina_openai_requests_total", status="500")
    head = (
        "POST /v1/embeddings HTTP/1.1\r\n"
        f"Host: {address.netloc}\r\n"
        f"Authorization: Bearer {ctx.api_key}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {1024 * 1024}\r\n"
        f"X-Request-ID: {request_id}\r\n\r\n"
    ).encode("ascii")

    async def attack() -> None:
        _, writer = await asyncio.open_connection(address.hostname, address.port)
        writer.write(head + b'{"input": ["' + b"a" * (100 * 1024))
        await writer.drain()
        await asyncio.sleep(0.2)
        writer.close()

    asyncio.run(attack())
    record = _wait_for_request(ctx.log, request_id)
    after = metric_total(scrape(ctx.base_url), "jina_openai_requests_total", status="500")
    logged = record.get("status") if record else None
    return {
        "attack": {f"logged {logged}" if record else "not logged": 1},
        "logged_status": logged,
        "logged_level": record.get("level") if record else None,
        "logged_error_code": record.get("error_code") if record else None,
        "metrics_500_added": after - before,
    }


def forwarded_for(ctx: CaseContext) -> dict[str, Any]:
    """`X-Forwarded-For: 203.0.113.66` from loopback: the `client` the service logs."""
    request_id = f"torture-xff-{int(time.time() * 1000)}"

    async def attack() -> str:
        async with ctx.client(timeout=30) as client:
            response = await client.get(
                "/v1/models",
                headers={"X-Forwarded-For": "203.0.113.66", "X-Request-ID": request_id},
            )
            return str(response.status_code)

    status = asyncio.run(attack())
    record = _wait_for_request(ctx.log, request_id)
    return {
        "attack": {status: 1},
        "sent_x_forwarded_for": "203.0.113.66",
        "logged_client": record.get("client") if record else None,
    }


def _wait_for_request(log: LogCursor, request_id: str, timeout_s: float = 10.0) -> dict | None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        record = log.read().request(request_id)
        if record is not None:
            return record
        time.sleep(0.25)
    return None


# --- 8: fault injection (bench/faulty_app.py) ---------------------------------------------------


@dataclass
class Watch:
    """/ready and the worker pids over time, from the start of a fault case."""

    ctx: CaseContext
    started: float

    def __post_init__(self) -> None:
        self.ready: list[tuple[float, str]] = []  # transitions only
        self.pids: list[tuple[float, list[int]]] = []  # changes only
        self.first_pids = worker_pids(self.ctx.pid)

    def poll(self) -> None:
        now = round(time.monotonic() - self.started, 2)
        status, _ = probe(self.ctx.base_url, "/ready", 2.0)
        if not self.ready or self.ready[-1][1] != status:
            self.ready.append((now, status))
        pids = worker_pids(self.ctx.pid)
        if (self.pids[-1][1] if self.pids else self.first_pids) != pids:
            self.pids.append((now, pids))

    def recovered(self) -> bool:
        """A new worker is serving and ready."""
        replaced = bool(self.pids) and not set(self.pids[-1][1]) & set(self.first_pids)
        return replaced and bool(self.pids[-1][1]) and self.ready[-1][1] == "200"

    def summary(self) -> dict[str, Any]:
        replaced_at = next(
            (t for t, pids in self.pids if pids and not set(pids) & set(self.first_pids)), None
        )
        ready_again = None
        if replaced_at is not None:
            ready_again = next((t for t, s in self.ready if t >= replaced_at and s == "200"), None)
        return {
            "ready_transitions": self.ready,
            "worker_pids_first": self.first_pids,
            "worker_pid_changes": self.pids,
            "worker_replaced_after_s": replaced_at,
            "ready_again_after_s": ready_again,
            "ready_at_end": self.ready[-1][1] if self.ready else None,
        }


async def _watch_until(watch: Watch, done: Callable[[], bool], cap_s: float) -> None:
    while time.monotonic() - watch.started < cap_s and not done():
        await asyncio.to_thread(watch.poll)
        await asyncio.sleep(0.5)


def hung_forward_pass(ctx: CaseContext) -> dict[str, Any]:
    """One input that makes `embed` block: what the request gets, /ready, the worker."""
    request_timeout = ctx.setting("request_timeout_s", 20)
    batch_timeout = ctx.setting("batch_timeout_s", 10)
    cap = 20.0 if ctx.quick else request_timeout + batch_timeout + 30
    body = encode([f"{SMALL_TEXT} {HANG_MARKER} "])

    async def attack() -> tuple[dict[str, Any], Watch]:
        watch = Watch(ctx, time.monotonic())
        async with ctx.client(timeout=cap) as client:
            task = asyncio.create_task(post(client, body))
            await _watch_until(watch, lambda: task.done() and watch.recovered(), cap)
            if task.done():
                outcome = task.result()
            else:
                task.cancel()
                outcome = {"status": "no answer within cap", "seconds": cap}
        watch.poll()
        return outcome, watch

    outcome, watch = asyncio.run(attack())
    summary = watch.summary()
    answered = str(outcome["status"]).isdigit()
    return {
        "attack": statuses([outcome]),
        "request": outcome,
        "cap_s": cap,
        **summary,
        "stuck": not answered and summary["ready_again_after_s"] is None,
    }


def failing_batches(ctx: CaseContext) -> dict[str, Any]:
    """Six requests in a row whose batch always fails."""
    count = 6
    cap = 20.0 if ctx.quick else 60.0
    body = encode([f"{SMALL_TEXT} {FAIL_MARKER} "])

    async def attack() -> tuple[list[dict[str, Any]], Watch]:
        watch = Watch(ctx, time.monotonic())
        outcomes: list[dict[str, Any]] = []
        async with ctx.client(timeout=30) as client:
            for _ in range(count):
                outcome = await post(client, body)
                await asyncio.to_thread(watch.poll)
                outcome["ready_after"] = watch.ready[-1][1]
                outcomes.append(outcome)
            changed = bool(watch.pids) or watch.ready[-1][1] != "200"
            if changed:  # the watchdog acted: wait for the replacement
                await _watch_until(watch, watch.recovered, cap)
        watch.poll()
        return outcomes, watch

    outcomes, watch = asyncio.run(attack())
    return {"attack": statuses(outcomes), "requests": outcomes, **watch.summary()}


CASES: dict[str, Callable[[CaseContext], dict[str, Any]]] = {
    "xff": forwarded_for,
    "abort": aborted_upload,
    "idle": idle_sockets,
    "idle_lowfd": idle_sockets,
    "big": big_string,
    "cjk": cjk_four,
    "cjk_hangup": cjk_four_hang_up,
    "many": many_inputs,
    "hang": hung_forward_pass,
    "fail": failing_batches,
}
