"""The undo journal of a key index: what each recent batch replaced, to forget a log suffix.

Pure (no I/O). For each batch with keys it keeps the batch's offsets range and, per key
hash it stored, the offset that hash had before. ``truncate_after`` pops whole batches
from the end and restores those offsets; a batch cut in its middle is undone whole and
its kept records are read again from the log by the caller (a batch stores each key's
last offset only, so its first half cannot be told apart otherwise). The journal keeps
about ``max_entries`` entries (24 bytes each); the oldest batches go first, and ``floor``
says how far back a truncation can still be undone.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from typing import Protocol, TypeAlias

__all__ = ["JournalArrays", "KeyJournal"]

#: The journal as stored: entry hashes and previous offsets, batch bases, ends and starts.
JournalArrays: TypeAlias = "tuple[array[int], array[int], array[int], array[int], array[int]]"


class _Restorable(Protocol):
    def restore(self, h: int, offset: int) -> None: ...


class KeyJournal:
    """The last batches' replaced offsets, oldest first."""

    __slots__ = ("_bases", "_ends", "_hashes", "_previous", "_starts", "floor", "max_entries")

    def __init__(self, floor: int, max_entries: int, arrays: JournalArrays | None = None) -> None:
        #: ``truncate_after(x)`` can be undone exactly for every ``x >= floor``.
        self.floor = floor
        self.max_entries = max_entries
        if arrays is None:
            arrays = (array("Q"), array("q"), array("q"), array("q"), array("q"))
        self._hashes, self._previous, self._bases, self._ends, self._starts = arrays
        if len(self._hashes) != len(self._previous) or not (
            len(self._bases) == len(self._ends) == len(self._starts)
        ):
            raise ValueError("a key journal's arrays differ in length")

    def arrays(self) -> JournalArrays:
        """The journal's arrays (live, not copies), for a checkpoint."""
        return self._hashes, self._previous, self._bases, self._ends, self._starts

    @property
    def entries(self) -> int:
        """How many (hash, previous offset) entries the journal holds."""
        return len(self._hashes)

    def record(self, base: int, end: int, hashes: Sequence[int], previous: Sequence[int]) -> None:
        """Remember that the batch at offsets ``[base, end)`` replaced ``previous`` (-1: none)
        for ``hashes``; drops the oldest batches when the journal is over its size."""
        self._bases.append(base)
        self._ends.append(end)
        self._starts.append(len(self._hashes))
        self._hashes.extend(hashes)
        self._previous.extend(previous)
        if len(self._hashes) > self.max_entries:
            self._drop_oldest(self.max_entries // 2)

    def _drop_oldest(self, keep_entries: int) -> None:
        total = len(self._hashes)
        batches = 0
        while batches < len(self._bases) and total - self._starts[batches] > keep_entries:
            batches += 1
        if batches == 0:
            return
        self.floor = self._ends[batches - 1] - 1
        cut = self._starts[batches] if batches < len(self._bases) else total
        del self._hashes[:cut], self._previous[:cut]
        del self._bases[:batches], self._ends[:batches], self._starts[:batches]
        for i in range(len(self._starts)):
            self._starts[i] -= cut

    def undo_after(self, offset: int, table: _Restorable) -> int | None:
        """Undo in ``table`` every batch holding an offset after ``offset`` (needs ``offset >=
        floor``); return the base of a batch undone although it began at or before ``offset``
        (its records up to ``offset`` must be added again), else None."""
        if offset < self.floor:
            raise ValueError(f"the journal reaches back to {self.floor}, not {offset}")
        again = None
        while self._bases and self._ends[-1] - 1 > offset:
            base = self._bases.pop()
            self._ends.pop()
            start = self._starts.pop()
            for i in range(len(self._hashes) - 1, start - 1, -1):
                table.restore(self._hashes[i], self._previous[i])
            del self._hashes[start:], self._previous[start:]
            if base <= offset:
                again = base
        return again

    def clear(self, floor: int) -> None:
        """Forget every batch; truncations below ``floor`` can no longer be undone."""
        self.floor = floor
        for part in self.arrays():
            del part[:]
