"""A partition group's key index on one node (topics with ``key_index=true``): each key's
latest committed offset, fed on every replica by what it applies, plus the leader's
pending keys, for ``expected_key_offset``.

Every replica feeds the index the records it applies (committed, in log order), so no
Raft truncation ever reaches it and identical logs give identical indexes. The leader
answers from its pending keys first: the keyed records it proposed that are not applied
yet, rebuilt from its log at the first proposal of each term (as the producer overlay is).
A snapshot that replaced the log rebuilds the index from the new log; when the log lost
records the index never saw (``KeyIndex.gap``: a replica that installed a snapshot of a log
whose front retention had deleted), per-key conditions are refused as unavailable, never
answered from an index that may have forgotten a key.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Protocol

from replog.broker.key_index import KeyIndex
from replog.broker.key_source import LogKeySource, keys_of_payloads
from replog.errors import UnavailableError
from replog.raft.messages import CONTINUES, Entry, EntryKind
from replog.storage import Log

__all__ = ["KEY_INDEX_DIR", "GroupKeys"]

KEY_INDEX_DIR = "key-index"
_READ_BYTES = 64 << 20
_FIRST_INDEX = 1  # a Raft log's first entry

log = logging.getLogger("replog.cluster")


class _Store(Protocol):
    @property
    def directory(self) -> Path | None: ...

    @property
    def log(self) -> Log: ...

    def last_index(self) -> int: ...

    def entries(self, lo: int, hi: int, max_bytes: int) -> list[Entry]: ...


class _AppliedSource(LogKeySource):
    """The log as far as it is applied: the index never reads ahead of the commit."""

    __slots__ = ("end",)

    def __init__(self, log_: Log, end: int) -> None:
        super().__init__(log_)
        self.end = end

    @property
    def next_offset(self) -> int:
        """The applied end (the log may hold uncommitted entries beyond)."""
        return self.end

    def keys(self, start: int, end: int) -> Iterator[tuple[int, list[bytes]]]:
        """The keys of ``[start, end)``, never past the applied end."""
        return super().keys(start, min(end, self.end))


def _keys(entries: Sequence[Entry]) -> list[bytes]:
    data = [e.data if e.kind & ~CONTINUES == EntryKind.DATA else b"" for e in entries]
    return [k if d else b"" for k, d in zip(keys_of_payloads(data), data, strict=True)]


class GroupKeys:
    """The key index of one partition group on this node (see the module docstring)."""

    def __init__(self, store: _Store) -> None:
        self._store = store
        assert store.directory is not None
        self._directory = store.directory / KEY_INDEX_DIR
        self._index: KeyIndex | None = None
        self._source: _AppliedSource | None = None
        self._pending: dict[bytes, int] = {}
        self._pending_term = 0
        self._failed: BaseException | None = None
        self._forgetful = False

    def open(self, applied_end: int) -> None:
        """Open (or rebuild) the index of the records below ``applied_end`` (blocking). An
        index rebuilt from a log whose first records are gone (retention on this replica,
        or on the leader whose snapshot it installed) may have forgotten keys: it refuses
        per-key conditions rather than answer -1 for them."""
        self._source = _AppliedSource(self._store.log, applied_end)
        self._index = KeyIndex(self._directory, self._source)
        if self._index.rebuilt and self._store.log.lowest_offset > _FIRST_INDEX:
            self._forgetful = True

    def reopen(self, applied_end: int) -> None:
        """The log was replaced (a snapshot): rebuild the index from it."""
        self.close(checkpoint=False)
        shutil.rmtree(self._directory, ignore_errors=True)
        self._failed = None
        self.open(applied_end)

    def applied(self, entries: Sequence[Entry]) -> None:
        """Feed committed entries (in order) to the index."""
        if self._index is None or self._source is None or self._failed is not None:
            return
        self._source.end = entries[-1].index + 1
        try:
            self._index.add_batch(entries[0].index, _keys(entries))
        except Exception as exc:  # the log stands; per-key conditions stop being answered
            self._failed = exc
            log.error(
                "key index of %s failed; per-key conditions refused: %s", self._directory, exc
            )
        applied = entries[-1].index
        if self._pending:
            self._pending = {k: o for k, o in self._pending.items() if o > applied}

    def latest(self, term: int, applied_end: int) -> Callable[[bytes], int]:
        """How the leader of ``term`` learns a key's latest offset, its pending proposals
        included; raises UnavailableError when the index cannot answer exactly."""
        index = self._index
        if index is None or self._failed is not None or index.gap is not None or self._forgetful:
            raise UnavailableError(
                "this partition's key index cannot answer now (see the server's log)",
                certainly_not_applied=True,
            )
        self._current(term, applied_end)
        pending = self._pending

        def latest(key: bytes) -> int:
            found = pending.get(key)
            return found if found is not None else index.latest(key)

        return latest

    def _current(self, term: int, applied_end: int) -> None:
        """Make the pending keys the ones of ``term``'s leader: rebuilt from the log at the
        term's first keyed proposal (when all the log's earlier entries are stored), then
        kept by ``note_pending``."""
        if self._pending_term != term:
            self._pending_from_log(applied_end)
            self._pending_term = term

    def _pending_from_log(self, applied_end: int) -> dict[bytes, int]:
        self._pending = {}
        lo, hi = applied_end, self._store.last_index() + 1
        while lo < hi:
            entries = self._store.entries(lo, hi, _READ_BYTES)
            if not entries:
                break
            self._note(entries[0].index, _keys(entries))
            lo = entries[-1].index + 1
        return self._pending

    def note_pending(self, term: int, applied_end: int, first: int, keys: Sequence[bytes]) -> None:
        """The leader of ``term`` proposed records with ``keys`` from offset ``first``."""
        self._current(term, applied_end)
        self._note(first, keys)

    def _note(self, first: int, keys: Sequence[bytes]) -> None:
        for i, key in enumerate(keys):
            if key:
                self._pending[key] = first + i

    def drop_pending(self) -> None:
        """A proposal failed: rebuild the pending keys from the log next time."""
        self._pending_term = 0
        self._pending = {}

    def checkpoint(self) -> None:
        """Checkpoint the index (before retention deletes records; blocking)."""
        if self._index is not None and self._failed is None:
            self._index.checkpoint()

    def close(self, *, checkpoint: bool = True) -> None:
        """Close the index (a checkpoint first unless told not to)."""
        if self._index is not None:
            self._index.close(checkpoint=checkpoint and self._failed is None)
            self._index = None
