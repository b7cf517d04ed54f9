"""The line in front of the queue: requests refused on waiting time wait here for room.

A request whose work does not fit the waiting-time bound (`max_queue_wait_s` of queued work at
the measured rate) is not refused at once: it takes a ticket and waits up to `patience_s` (half
the bound) for the queue to make room, then gets its 429. Roo Code keeps 10 batches in flight
per window; every 429 that its SDK's retries do not absorb doubles the window's global pause
(5 s up to 300 s), during which it sends nothing, so turning a burst of 429s into a short wait
keeps each window indexing. A request in line holds its body and text memory (bounded by
`max_held_bytes`) but no queue tokens and no slot; its answer comes within
`patience_s + max_queue_wait_s` (180 s by default, inside Roo's 300 s).

Only the ticket next in may enter the queue, so a request waits even when it would fit; when its
own patience runs out it gets one last try. Next in is the ticket of the client (API key, else
connection) with the fewest tokens queued, among equals the oldest: within one client the line
is first come first served, and a client that comes back from a pause (a Roo window after a 429)
goes ahead of those that already fill the queue instead of queueing behind them. First come
first served across clients would feed back: the window that got the 429 pauses, returns behind
everyone, waits out its patience, gets the next 429 and pauses longer, and finishes last by far.

Choosing the next ticket looks at every ticket; the choice is kept until a ticket joins or
leaves or `REFRESH_S` passes (queued tokens change as batches form), so requests polling in
line cost one look each, not one per ticket.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

REFRESH_S = 0.1


class WaitingLine:
    """Tickets and their clients. Used from the event loop only (no lock)."""

    def __init__(self, patience_s: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.patience_s = patience_s
        self._clock = clock
        self._tickets: dict[int, str] = {}  # ticket -> client, in arrival order
        self._numbers = itertools.count()
        self._next_in: int | None = None
        self._chosen_at = 0.0

    def __len__(self) -> int:
        return len(self._tickets)

    def join(self, client: str = "") -> int:
        ticket = next(self._numbers)
        self._tickets[ticket] = client
        self._next_in = None
        return ticket

    def is_next(self, ticket: int, queued_tokens: Callable[[str], int]) -> bool:
        """Whether `ticket` may enter the queue now; `queued_tokens(client)`: the tokens that
        client has queued and not yet batched."""
        now = self._clock()
        if self._next_in is None or now - self._chosen_at >= REFRESH_S:
            self._next_in = min(
                self._tickets,
                key=lambda number: (queued_tokens(self._tickets[number]), number),
                default=None,
            )
            self._chosen_at = now
        return self._next_in == ticket

    def leave(self, ticket: int) -> None:
        if self._tickets.pop(ticket, None) is not None:  # not in line: already left
            self._next_in = None
