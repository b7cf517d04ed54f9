"""The line in front of the queue: requests refused on waiting time wait here for room.

A request whose work does not fit the waiting-time bound (`max_queue_wait_s` of queued work at
the measured rate) is not refused at once: it takes a ticket and waits, first come first served,
up to `patience_s` (half the bound) for the queue to make room, then gets its 429. Roo Code
keeps 10 batches in flight per window; every 429 that its SDK's retries do not absorb doubles
the window's global pause (5 s up to 300 s), during which it sends nothing, so turning a burst
of 429s into a short wait keeps each window indexing. A request in line holds its body and text
memory (bounded by `max_held_bytes`) but no queue tokens and no slot; its answer comes within
`patience_s + max_queue_wait_s` (180 s by default, inside Roo's 300 s).

Only the head of the line may enter the queue, so a request that arrives behind others waits
even when it would fit; when its own patience runs out it gets one last try.
"""

from __future__ import annotations

import contextlib
import itertools
from collections import deque


class WaitingLine:
    """Tickets in arrival order. Used from the event loop only (no lock)."""

    def __init__(self, patience_s: float) -> None:
        self.patience_s = patience_s
        self._tickets: deque[int] = deque()
        self._numbers = itertools.count()

    def __len__(self) -> int:
        return len(self._tickets)

    def join(self) -> int:
        ticket = next(self._numbers)
        self._tickets.append(ticket)
        return ticket

    def is_first(self, ticket: int) -> bool:
        return bool(self._tickets) and self._tickets[0] == ticket

    def leave(self, ticket: int) -> None:
        with contextlib.suppress(ValueError):  # not in line (already left)
            self._tickets.remove(ticket)
