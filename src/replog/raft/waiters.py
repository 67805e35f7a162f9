"""Produce requests waiting for their entries to be applied, and how each one ends.

Theory of operation: a request is one proposal, one atomic batch of entries ``first..last``
proposed in ``term`` (the core commits a proposal whole or not at all). An applied entry whose
term is the one the batch was proposed in is the batch's own entry (Log Matching: same index
and term, same entry). So a batch is written once its last entry is applied with its term,
and certainly not written once its first entry is applied with another term; if the entry is
gone (compacted) before it could be looked at, the outcome is unknown.

The queue is ordered by first index. Usually requests arrive in index order; after a lost and
regained leadership new entries may sit below older waiters' entries, and are merged in.
Pure: futures are anything with ``done``/``set_result``/``set_exception`` (asyncio's).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from replog.errors import UnavailableError
from replog.raft.messages import Entry

__all__ = ["IndexWaiters", "ProduceWaiters", "Settle", "VoteGate", "Waiter"]


class Settle(Protocol):
    """The side of a future a waiter settles (``asyncio.Future[int]`` is one)."""

    def done(self) -> bool:
        """Whether the future already has an outcome."""
        ...

    def set_result(self, result: int, /) -> None:
        """Give the first offset of the written batch."""
        ...

    def set_exception(self, exception: BaseException, /) -> None:
        """Give the reason the batch was not written, or is of unknown outcome."""
        ...


@dataclass(slots=True)
class Waiter:
    """A produce request waiting for its entries ``first..last`` (proposed in ``term``)."""

    first: int
    last: int
    term: int
    future: Settle
    early: bool = False
    """Answer once the leader holds the entries durably (acks=leader), before the commit."""


class ProduceWaiters:
    """The waiting produce requests of one node, settled as entries are applied."""

    def __init__(self) -> None:
        """Start with none."""
        self._queue: deque[Waiter] = deque()
        self._early: deque[Waiter] = deque()

    def __len__(self) -> int:
        """How many requests wait."""
        return len(self._queue)

    def add(self, waiters: Sequence[Waiter]) -> None:
        """Queue the waiters of one proposal (in index order), keeping the queue ordered."""
        queue = self._queue
        if not waiters:
            return
        self._early.extend(w for w in waiters if w.early)
        if not queue or queue[-1].first <= waiters[0].first:
            queue.extend(waiters)
            return
        merged = sorted([*queue, *waiters], key=_first_of)  # stable: FIFO among equals
        queue.clear()
        queue.extend(merged)

    def persisted(self, last: int, term: int) -> None:
        """The leader of ``term`` holds its log up to ``last`` durably: answer the early
        requests whose entries are all there (the rest are settled as entries apply)."""
        early = self._early
        while early and (early[0].last <= last or early[0].future.done()):
            w = early.popleft()
            if w.term == term and not w.future.done():
                w.future.set_result(w.first)

    def fail_all(self, exc: BaseException) -> None:
        """End every waiting request with ``exc`` (the node stopped or failed)."""
        for w in self._queue:
            _fail(w.future, exc)
        self._queue.clear()
        self._early.clear()

    def resolve(
        self,
        entries: Sequence[Entry],
        stored_term: Callable[[int], int | None],
        not_written: Callable[[], BaseException],
    ) -> None:
        """Settle the requests whose entries ``entries`` (just applied, in order) decide.

        ``stored_term(index)`` gives the term of an applied entry no longer in hand (None
        once compacted); ``not_written()`` makes the error of a batch another term replaced.
        """
        lo, hi = entries[0].index, entries[-1].index
        queue = self._queue
        while queue and queue[0].first <= hi:
            w = queue[0]
            index = w.last if w.last <= hi else w.first
            term = entries[index - lo].term if index >= lo else stored_term(index)
            if term is None:
                _fail(w.future, UnavailableError("the record's outcome is unknown"))
            elif term != w.term:
                _fail(w.future, not_written())
            elif index == w.last:
                if not w.future.done():
                    w.future.set_result(w.first)
            else:
                return  # its own batch, partly applied here: the rest is committed too
            queue.popleft()


def _first_of(waiter: Waiter) -> int:
    return waiter.first


def _fail(future: Settle, exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


class IndexWaiters:
    """Callers waiting until the high watermark passes an index (``wait_applied``)."""

    def __init__(self) -> None:
        """Start with none."""
        self._waiting: list[tuple[int, Settle]] = []

    def add(self, index: int, future: Settle) -> None:
        """Settle ``future`` (with 0) once the watermark passes ``index``."""
        self._waiting.append((index, future))

    def release(self, watermark: int) -> None:
        """Settle every waiter whose index is below ``watermark``."""
        if not self._waiting:
            return
        keep = []
        for index, future in self._waiting:
            if index < watermark:
                if not future.done():
                    future.set_result(0)
            else:
                keep.append((index, future))
        self._waiting = keep

    def fail_all(self, exc: BaseException) -> None:
        """End every waiter with ``exc``."""
        for _, future in self._waiting:
            _fail(future, exc)
        self._waiting = []


class VoteGate:
    """The reasons this node must not vote nor campaign now; it may once there are none.

    Each part that needs the node silent (a fresh join not yet confirmed, committed entries
    lost to media damage and not yet replicated again) holds its own reason, so one of them
    lifting its reason never re-enables a vote another must still keep off.
    """

    def __init__(self, apply: Callable[[bool], None]) -> None:
        """``apply(voting)`` sets whether the core may vote."""
        self._apply = apply
        self._reasons: set[str] = set()

    def block(self, reason: str) -> None:
        """Keep the node from voting for ``reason``."""
        self._reasons.add(reason)
        self._apply(False)

    def lift(self, reason: str) -> None:
        """Drop ``reason``; the node votes again if no other reason holds."""
        self._reasons.discard(reason)
        self._apply(not self._reasons)

    def blocked_by(self, reason: str) -> bool:
        """Whether ``reason`` holds."""
        return reason in self._reasons
