"""Which queued inputs form the next batch: the scheduling policy, as a pure function.

A batch costs `longest input x number of inputs` padded tokens and must stay within
`max_tokens` (one input is always allowed, however long) and `max_inputs`. The policy:

1. The oldest request's shortest pending input goes in first: every batch makes progress on the
   oldest request, so nothing starves.
2. The rest of the budget goes to the requests of the client served least so far (`served`:
   tokens batched per client, kept by the scheduler), and among equals to those with the
   fewest pending tokens first (ties: arrival order). Two workspaces indexing at once share the
   model evenly whatever their number of requests in flight; a one-input search query that
   arrives behind hundreds of indexing chunks rides in the very next batch, and equal-sized
   requests finish one after another instead of all at the end.
3. Small requests (at most `SMALL_REQUEST_INPUTS` pending inputs: searches) take a batch of
   their own while they wait: besides rule 1's one input of the oldest request, such a batch
   holds only small requests. A query then waits for the running batch and one short forward
   pass, not for a full batch of indexing chunks; big requests still advance by rule 1, and
   small requests cost about as much per input alone as batched (on CPU).
4. Inside a request, inputs no longer than the batch's current longest come first, longest of
   them first (they cost no extra padding and leave short inputs to batch with short ones);
   then longer inputs in ascending length while they still fit.

`select_query_batch` is the query lane: small requests only, no input of the oldest big
request. The inference thread asks for it between the layers of a running batch, so a query
that arrives while a batch runs waits for one layer of it, not all of them.

Each request's pending inputs are kept sorted by length, so every step is a bisect or a walk.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol


class QueuedRequest(Protocol):
    seq: int
    client: str  # whose request (API key, else connection): the unit of fairness
    pending_tokens: int
    pending_lengths: list[int]  # ascending
    pending_indices: list[int]  # input index of each pending length


SMALL_REQUEST_INPUTS = 4


@dataclass(frozen=True)
class Selection:
    request: QueuedRequest
    position: int  # position in the request's pending lists at selection time
    length: int
    index: int


class _BatchBuilder:
    def __init__(self, max_tokens: int, max_inputs: int) -> None:
        self.max_tokens = max_tokens
        self.max_inputs = max_inputs
        self.count = 0
        self.longest = 0
        self.chosen: list[Selection] = []

    @property
    def full(self) -> bool:
        if self.count == 0:
            return False
        return self.count >= self.max_inputs or (self.count + 1) * self.longest > self.max_tokens

    def fits(self, length: int) -> bool:
        if self.count == 0:
            return True
        if self.count >= self.max_inputs:
            return False
        return (self.count + 1) * max(self.longest, length) <= self.max_tokens

    def add(self, request: QueuedRequest, position: int) -> None:
        length = request.pending_lengths[position]
        self.chosen.append(Selection(request, position, length, request.pending_indices[position]))
        self.count += 1
        self.longest = max(self.longest, length)


def select_batch(
    requests_in_arrival_order: Sequence[QueuedRequest],
    *,
    max_tokens: int,
    max_inputs: int,
    served: Mapping[str, int] | None = None,
) -> list[Selection]:
    """Choose the next batch; does not modify the requests."""
    order = _fair_order(served or {})
    waiting = [request for request in requests_in_arrival_order if request.pending_lengths]
    if not waiting:
        return []
    builder = _BatchBuilder(max_tokens, max_inputs)
    oldest = waiting[0]
    builder.add(oldest, 0)
    taken_from_oldest = 1
    small = [r for r in waiting if len(r.pending_lengths) <= SMALL_REQUEST_INPUTS]
    # The lane opens for small requests other than the oldest (which rule 1 already serves).
    candidates = small if small and small != [oldest] else waiting
    for request in sorted(candidates, key=order):
        if builder.full:
            break
        skip = taken_from_oldest if request is oldest else 0
        _take_from(builder, request, skip_shortest=skip)
    return builder.chosen


def _fair_order(served: Mapping[str, int]) -> Callable[[QueuedRequest], tuple[int, int, int]]:
    """Sort key: the least served client first, then the fewest pending tokens, then arrival."""

    def key(request: QueuedRequest) -> tuple[int, int, int]:
        return (served.get(request.client, 0), request.pending_tokens, request.seq)

    return key


def _take_from(builder: _BatchBuilder, request: QueuedRequest, *, skip_shortest: int) -> None:
    lengths = request.pending_lengths
    split = max(bisect_right(lengths, builder.longest), skip_shortest)
    # No extra padding: inputs no longer than the current longest, longest first.
    for position in range(split - 1, skip_shortest - 1, -1):
        if not builder.fits(lengths[position]):
            return
        builder.add(request, position)
    # Longer inputs raise the padded length: shortest first, while they fit.
    for position in range(split, len(lengths)):
        if not builder.fits(lengths[position]):
            return
        builder.add(request, position)


def select_query_batch(
    requests_in_arrival_order: Sequence[QueuedRequest],
    *,
    max_tokens: int,
    max_inputs: int,
    served: Mapping[str, int] | None = None,
) -> list[Selection]:
    """The query lane's batch: small requests only (in `select_batch`'s order), or none."""
    small = [
        request
        for request in requests_in_arrival_order
        if 0 < len(request.pending_lengths) <= SMALL_REQUEST_INPUTS
    ]
    builder = _BatchBuilder(max_tokens, max_inputs)
    for request in sorted(small, key=_fair_order(served or {})):
        if builder.full:
            break
        _take_from(builder, request, skip_shortest=0)
    return builder.chosen
