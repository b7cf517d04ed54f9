"""What `make torture` observes of the running service besides RSS (bench/rss.py): its log,
its workers, its CPU time, its metrics, and whether it is idle and ready again."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

BOOTING_WORKER = "Booting worker with pid"


@dataclass
class LogSlice:
    """The server log's lines between two `LogCursor` marks, summarised while read (a log
    flood can be millions of lines)."""

    lines: int = 0
    bytes: int = 0
    booted_workers: int = 0
    access: list[dict[str, Any]] = field(default_factory=list)  # jina_openai.access records
    other_messages: Counter[str] = field(default_factory=Counter)  # non-access lines

    def top_messages(self, count: int = 3) -> list[dict[str, Any]]:
        return [{"lines": n, "text": text} for text, n in self.other_messages.most_common(count)]

    def request(self, request_id: str) -> dict[str, Any] | None:
        return next((r for r in self.access if r.get("request_id") == request_id), None)


@dataclass
class LogCursor:
    path: Path
    offset: int = 0

    def mark(self) -> None:
        self.offset = self.path.stat().st_size if self.path.exists() else 0

    def read(self, *, keep_access: int = 2000) -> LogSlice:
        """Everything logged since the last mark (the mark stays where it is)."""
        result = LogSlice()
        if not self.path.exists():
            return result
        with self.path.open("rb") as log:
            log.seek(self.offset)
            for raw in log:
                result.lines += 1
                result.bytes += len(raw)
                line = raw.decode("utf-8", errors="replace").rstrip("\n")
                if BOOTING_WORKER in line:
                    result.booted_workers += 1
                record = _json(line)
                if record is not None and record.get("logger") == "jina_openai.access":
                    if len(result.access) < keep_access or "torture" in str(
                        record.get("request_id", "")
                    ):
                        result.access.append(record)
                    continue
                text = str(record.get("message", line)) if record is not None else line
                result.other_messages[text[:160]] += 1
        return result


def _json(line: str) -> dict[str, Any] | None:
    if not line.startswith("{"):
        return None
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def worker_pids(master_pid: int) -> list[int]:
    try:
        return sorted(p.pid for p in psutil.Process(master_pid).children(recursive=False))
    except psutil.NoSuchProcess:
        return []


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of `pid`, its reaped children and its live descendants."""
    try:
        root = psutil.Process(pid)
        times = root.cpu_times()
        total = times.user + times.system + times.children_user + times.children_system
        for child in root.children(recursive=True):
            try:
                child_times = child.cpu_times()
                total += child_times.user + child_times.system
            except psutil.NoSuchProcess:
                continue
    except psutil.NoSuchProcess:
        return 0.0
    return total


def metric_total(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` in Prometheus text whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        metric, _, label_text = head.partition("{")
        if metric != name:
            continue
        if all(f'{key}="{val}"' in label_text for key, val in labels.items()):
            total += float(value)
    return total


def scrape(base_url: str) -> str:
    try:
        return httpx.get(f"{base_url}/metrics", timeout=10).text
    except httpx.HTTPError:
        return ""


def probe(base_url: str, path: str, timeout_s: float = 5.0) -> tuple[str, float]:
    """(status or "timeout"/"transport:...", seconds) of one GET."""
    started = time.monotonic()
    try:
        status = str(httpx.get(f"{base_url}{path}", timeout=timeout_s).status_code)
    except httpx.TimeoutException:
        status = "timeout"
    except httpx.HTTPError as exc:
        status = f"transport:{type(exc).__name__}"
    return status, time.monotonic() - started


# Busy: more than this share of the usable cores. The query stream alone keeps a forward pass
# of 256 tokens going several times a second (measured: 0.3-0.6 of a core on 2 cores);
# abandoned work (tokenizing for a client that left, a batch) uses all of them.
IDLE_CPU_SHARE = 0.6


def wait_idle(
    base_url: str, pid: int, timeout_s: float, *, cpu_share: float | None = IDLE_CPU_SHARE
) -> float | None:
    """Seconds until /ready answers 200, nothing is queued or admitted and (unless
    `cpu_share` is None) the service uses less than that share of the cores over a second
    (work of abandoned requests counts); None when it is not idle within `timeout_s`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        cpu_before = tree_cpu_s(pid)
        time.sleep(1.0)
        cores = len(os.sched_getaffinity(0))
        busy = cpu_share is not None and tree_cpu_s(pid) - cpu_before >= cpu_share * cores
        status, _ = probe(base_url, "/ready")
        if status == "200" and not busy:
            metrics = scrape(base_url)
            queued = metric_total(metrics, "jina_openai_queue_requests")
            admitted = metric_total(metrics, "jina_openai_admitted_tokens")
            if metrics and queued == 0 and admitted == 0:
                return time.monotonic() - started
    return None
