"""The narrow storage contract between the Raft core and a log, and an in-memory version.

The core only *reads* through :class:`RaftStorage`; the driver *writes* (what a ``Ready`` says
to persist) through :class:`RaftLogStore`. The contract is shaped so replog's on-disk ``Log`` can
back it: dense indexes from a first index, suffix replacement on append (``truncate_after``),
front truncation (retention) and a small hard-state record beside it.

Indexes start at 1; index ``first_index() - 1`` is the "snapshot point" whose term is still
known (0 for an empty log that was never compacted).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import accumulate
from operator import itemgetter
from typing import Protocol

from replog.raft.errors import CompactedError
from replog.raft.messages import CONTINUES, Entry, HardState, Membership, SnapshotMeta

_data_of = itemgetter(3)


class RaftStorage(Protocol):
    """What the core reads. Every method is cheap and never blocks on the network."""

    def initial_state(self) -> HardState:
        """Return the last saved hard state (zero values for a new node)."""
        ...

    def first_index(self) -> int:
        """Return the index of the first retained entry (``last_index() + 1`` if empty)."""
        ...

    def last_index(self) -> int:
        """Return the index of the last stored entry (``first_index() - 1`` if empty)."""
        ...

    def term(self, index: int) -> int | None:
        """Return the term at ``index`` for ``first_index()-1 <= index <= last_index()``.

        Return ``None`` outside that range (compacted away or not yet written).
        """
        ...

    def entries(self, lo: int, hi: int, max_bytes: int) -> list[Entry]:
        """Return entries ``[lo, hi)`` whose payloads total at most ``max_bytes``.

        At least one entry is returned when ``lo < hi`` even if it alone exceeds ``max_bytes``.
        Raise :class:`CompactedError` if ``lo < first_index()``.
        """
        ...

    def continued_run_start(self, index: int) -> int:
        """Return the first index of the run of entries flagged ``CONTINUES`` that ends at
        ``index``, or ``index + 1`` if the entry at ``index`` is not flagged (or absent)."""
        ...


class RaftLogStore(RaftStorage, Protocol):
    """What the driver writes when it performs a ``Ready``."""

    def append(self, entries: Sequence[Entry]) -> None:
        """Durably store ``entries``, first dropping any stored entry at or after
        ``entries[0].index`` (``truncate_after(entries[0].index - 1)``)."""
        ...

    def save_hard_state(self, state: HardState) -> None:
        """Durably replace the hard state."""
        ...

    def apply_snapshot(self, meta: SnapshotMeta) -> None:
        """Discard the whole log; the next entry will be ``meta.index + 1``."""
        ...

    def compact(self, index: int) -> None:
        """Drop entries before ``index`` (front truncation); only applied entries may go."""
        ...


ENTRY_OVERHEAD_BYTES = 16
"""What an entry costs in a message besides its payload (term, index, kind, framing)."""


def data_bytes(entries: Iterable[Entry]) -> int:
    """Return the bytes of the entries' data alone."""
    return sum(map(len, map(_data_of, entries)))


def entry_bytes(entries: Sequence[Entry]) -> int:
    """Return the size ``entries`` count for against ``max_msg_bytes``."""
    return data_bytes(entries) + ENTRY_OVERHEAD_BYTES * len(entries)


def limit_by_bytes(entries: list[Entry], max_bytes: int) -> list[Entry]:
    """Return the longest non-empty prefix of ``entries`` that fits in ``max_bytes``."""
    if len(entries) <= 1 or entry_bytes(entries) <= max_bytes:
        return entries
    sizes = accumulate(map(len, map(_data_of, entries)))
    for count, size in enumerate(sizes, 1):
        if size + ENTRY_OVERHEAD_BYTES * count > max_bytes:
            return entries[: max(count - 1, 1)]
    return entries


class MemoryRaftStorage:
    """An in-memory :class:`RaftLogStore`: what it holds counts as durable.

    The simulation crashes a node by dropping its ``Raft`` object and keeping this store, which
    loses exactly what had not been persisted yet.
    """

    def __init__(self, config: Membership | None = None) -> None:
        """Create an empty log; ``config`` bootstraps the membership of a brand-new cluster."""
        self._state = HardState(config=config or Membership())
        self._snap_index = 0
        self._snap_term = 0
        self._entries: list[Entry] = []

    def initial_state(self) -> HardState:
        """Return the saved hard state."""
        return self._state

    def first_index(self) -> int:
        """Return the first retained index."""
        return self._snap_index + 1

    def last_index(self) -> int:
        """Return the last stored index."""
        return self._snap_index + len(self._entries)

    def term(self, index: int) -> int | None:
        """Return the term at ``index``, or ``None`` if unavailable."""
        offset = index - self._snap_index
        if offset == 0:
            return self._snap_term
        if 0 < offset <= len(self._entries):
            return self._entries[offset - 1].term
        return None

    def entries(self, lo: int, hi: int, max_bytes: int) -> list[Entry]:
        """Return entries ``[lo, hi)`` limited by ``max_bytes`` (at least one)."""
        if lo <= self._snap_index:
            raise CompactedError(f"index {lo} is compacted (first is {self._snap_index + 1})")
        base = self._snap_index + 1
        return limit_by_bytes(self._entries[lo - base : hi - base], max_bytes)

    def continued_run_start(self, index: int) -> int:
        """Return where the run of CONTINUES entries ending at ``index`` starts."""
        base = self._snap_index + 1
        pos = index - base
        if not 0 <= pos < len(self._entries):
            return index + 1
        while pos >= 0 and self._entries[pos].kind & CONTINUES:
            pos -= 1
        return base + pos + 1

    def append(self, entries: Sequence[Entry]) -> None:
        """Store ``entries``, replacing any suffix from ``entries[0].index``."""
        if not entries:
            return
        first = entries[0].index
        if first <= self._snap_index:
            raise CompactedError(f"cannot overwrite compacted index {first}")
        if first > self.last_index() + 1:
            raise ValueError(f"gap: appending {first} after {self.last_index()}")
        del self._entries[first - self._snap_index - 1 :]
        self._entries.extend(entries)

    def save_hard_state(self, state: HardState) -> None:
        """Replace the hard state."""
        self._state = state

    def apply_snapshot(self, meta: SnapshotMeta) -> None:
        """Discard the log; it restarts after ``meta.index``."""
        self._snap_index = meta.index
        self._snap_term = meta.term
        self._entries = []

    def compact(self, index: int) -> None:
        """Drop entries before ``index`` (``index - 1`` becomes the snapshot point)."""
        if index <= self.first_index():
            return
        if index > self.last_index() + 1:
            raise ValueError(f"cannot compact past the last index {self.last_index()}")
        point = index - 1
        term = self.term(point)
        assert term is not None
        del self._entries[: point - self._snap_index]
        self._snap_index = point
        self._snap_term = term
