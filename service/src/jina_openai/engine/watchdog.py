"""A watchdog on the inference thread: a batch that runs far too long means a hung model.

A forward pass cannot be interrupted from outside (torch releases no hook for it), and
gunicorn's own heartbeat only watches the event loop, which stays responsive while the inference
thread hangs. So a separate thread checks, every `interval_s`, since when the running batch has
been running; past `timeout_s` it calls `on_hung(seconds)` once and stops. The engine then
refuses work (/ready turns 503) and its owner ends the process, which gunicorn and systemd
replace.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Watchdog:
    def __init__(
        self,
        *,
        timeout_s: float,
        busy_since: Callable[[], float | None],
        on_hung: Callable[[float], None],
        interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeout_s = timeout_s
        self._busy_since = busy_since
        self._on_hung = on_hung
        self._interval_s = min(interval_s, timeout_s / 2)
        self._clock = clock
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="jina-openai-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()

    def _run(self) -> None:
        while not self._stopped.wait(self._interval_s):
            since = self._busy_since()
            if since is None:
                continue
            running = self._clock() - since
            if running > self.timeout_s:
                self._on_hung(running)
                return
