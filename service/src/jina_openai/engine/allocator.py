"""Giving freed heap memory back to the system: glibc's `malloc_trim(0)`, at most every N s.

glibc keeps the memory of freed forward-pass activations in its arenas; RSS then stays at the
high-water mark of the largest batches. The inference thread calls `MallocTrimmer.batch_done()`
after each batch (trims when the interval has passed since the last trim) and `idle()` when
the queue stays empty for one interval (trims once after work); a request that held megabytes
(a large body, its texts and their tokenization) calls `trim_now()` when it ends. An interval
of 0 disables it; so does a libc without `malloc_trim` (musl, macOS).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
import time
from collections.abc import Callable


def load_malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        function = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_size_t]
    function.restype = ctypes.c_int
    return function  # type: ignore[no-any-return]


class MallocTrimmer:
    def __init__(
        self,
        interval_s: float,
        *,
        trim: Callable[[int], int] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval_s = interval_s
        self._trim = trim if trim is not None else (load_malloc_trim() if interval_s > 0 else None)
        self._clock = clock
        self._last = clock()
        self._dirty = False
        self._lock = threading.Lock()
        self.trims = 0

    @property
    def enabled(self) -> bool:
        return self.interval_s > 0 and self._trim is not None

    def idle_timeout(self) -> float | None:
        """How long the inference thread may wait for work before calling `idle()`."""
        return self.interval_s if self.enabled and self._dirty else None

    def batch_done(self) -> None:
        self._dirty = True
        if self.enabled and self._clock() - self._last >= self.interval_s:
            self._run()

    def idle(self) -> None:
        if self.enabled and self._dirty:
            self._run()

    def trim_now(self) -> None:
        """From any thread, e.g. after a large request has freed its memory."""
        if self.enabled:
            self._run()

    def _run(self) -> None:
        assert self._trim is not None
        with self._lock:
            self._trim(0)
            self.trims += 1
            self._last = self._clock()
            self._dirty = False
