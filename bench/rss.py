"""Resident memory of a process tree (a gunicorn master and its workers), sampled in a thread."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import psutil


def tree_rss_mb(pid: int) -> float:
    """RSS of `pid` plus all its descendants, in MB (10^6 bytes); 0 when it is gone."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total / 1e6


@dataclass
class RssSampler:
    """Samples `tree_rss_mb(pid)` every `interval_s` until stopped; `samples` are (t, MB)."""

    pid: int
    interval_s: float = 1.0
    samples: list[tuple[float, float]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> RssSampler:
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while True:
            self.samples.append((time.monotonic() - self._started, tree_rss_mb(self.pid)))
            if self._stop.wait(self.interval_s):
                return

    @property
    def peak_mb(self) -> float:
        return max((mb for _, mb in self.samples), default=0.0)

    @property
    def last_mb(self) -> float:
        return self.samples[-1][1] if self.samples else 0.0
