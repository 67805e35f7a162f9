"""A partition group's producer state on one node: the applied state on every replica, and
the leader's overlay of the batches it proposed that are not applied yet.

Every replica feeds the records it applies (committed, in log order) to the state, so every
replica holds the same one; it is rebuilt from the log (and its checkpoint) when the node
starts, and again after a snapshot replaced the log. The leader checks proposals against
the overlay, which also holds what its log has beyond the commit index: built from the log
at the first proposal of each term (a new leader commits its whole log, entries of earlier
terms included), kept as it proposes, pruned as entries apply, dropped when a proposal fails.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import Executor
from pathlib import Path
from typing import Protocol

from google.protobuf.message import DecodeError

from replog.broker.producer_log import PartitionProducers
from replog.broker.producer_records import producer_fields
from replog.broker.producer_state import BatchMeta, Overlay
from replog.cluster.group_keys import GroupKeys
from replog.errors import ReplogError
from replog.raft.errors import RaftError
from replog.raft.messages import CONTINUES, Entry, EntryKind

__all__ = ["GroupProducers"]

log = logging.getLogger("replog.cluster")
_OVERLAY_READ_BYTES = 64 << 20


class GroupStore(Protocol):
    """What the producer state needs of a group's Raft storage."""

    @property
    def directory(self) -> Path | None:
        """Where checkpoints go (None: none are kept)."""
        ...

    def first_index(self) -> int:
        """The first index held."""
        ...

    def last_index(self) -> int:
        """The last index held."""
        ...

    def entries(self, lo: int, hi: int, max_bytes: int) -> list[Entry]:
        """Entries ``[lo, hi)`` within ``max_bytes`` (at least one)."""
        ...


class GroupProducers:
    """The producer state of one partition group on this node."""

    def __init__(self, store: GroupStore, executor: Executor, *, key_index: bool = False) -> None:
        """``executor`` runs the blocking work (the node's persist thread); ``key_index``:
        also keep the partition's key index (``GroupKeys``)."""
        self._store = store
        self._executor = executor
        self.keys = GroupKeys(store) if key_index and store.directory is not None else None  # type: ignore[arg-type]
        self.producers = PartitionProducers(store.directory)
        self._overlay: Overlay | None = None
        self._overlay_term = 0

    async def start(self, applied_end: int) -> None:
        """Rebuild the applied state before the node applies anything."""
        if self._store.directory is None:  # in memory (a simulation): no I/O to wait for
            self.rebuild(applied_end)
            return
        await asyncio.get_running_loop().run_in_executor(self._executor, self.rebuild, applied_end)

    def rebuild(self, applied_end: int, *, replaced: bool = False) -> None:
        """Rebuild the applied state of the entries below ``applied_end`` (blocking I/O;
        ``replaced``: a snapshot replaced the log)."""
        store = self._store
        if self.keys is not None and replaced:
            self.keys.reopen(applied_end)
        elif self.keys is not None:
            self.keys.open(applied_end)

        def read(index: int, n: int) -> list[bytes]:
            entries = store.entries(index, index + n, _OVERLAY_READ_BYTES)
            return [e.data if e.kind & ~CONTINUES == EntryKind.DATA else b"" for e in entries]

        try:
            self.producers.rebuild(
                read, store.first_index(), min(applied_end, store.last_index() + 1)
            )
        except (ReplogError, RaftError) as exc:  # unreadable: produces fail on it anyway
            log.error("producer state of %s not rebuilt: %s", store.directory, exc)
        self._overlay = None

    def applied(self, entries: Sequence[Entry]) -> None:
        """Feed committed entries (in order) to the applied state."""
        if self.keys is not None:
            self.keys.applied(entries)
        note = self._note
        for entry in entries:
            if entry.kind & ~CONTINUES == EntryKind.DATA:
                note(entry)
        if self._overlay is not None:
            self._overlay.prune(entries[-1].index)

    def _note(self, entry: Entry) -> None:
        try:
            fields = producer_fields(entry.data)
        except DecodeError:  # not a Record: not a producer's
            return
        if fields is not None:
            batch = BatchMeta(fields.sequence, fields.records, entry.index, fields.term)
            self.producers.states.record(
                fields.producer_id, fields.epoch, batch, fields.timestamp_ms
            )

    def overlay(self, term: int, applied_end: int) -> Overlay:
        """The leader's view for a proposal in ``term``: built from the log's entries from
        ``applied_end`` on at the first proposal of the term."""
        if self._overlay is not None and self._overlay_term == term:
            return self._overlay
        overlay = Overlay(self.producers.states)
        lo, hi = applied_end, self._store.last_index() + 1
        while lo < hi:
            entries = self._store.entries(lo, hi, _OVERLAY_READ_BYTES)
            if not entries:
                break
            for entry in entries:
                self._note_pending(overlay, entry)
            lo = entries[-1].index + 1
        self._overlay, self._overlay_term = overlay, term
        return overlay

    @staticmethod
    def _note_pending(overlay: Overlay, entry: Entry) -> None:
        if entry.kind & ~CONTINUES != EntryKind.DATA:
            return
        try:
            fields = producer_fields(entry.data)
        except DecodeError:
            return
        if fields is not None:
            batch = BatchMeta(fields.sequence, fields.records, entry.index, entry.term)
            overlay.record(fields.producer_id, fields.epoch, batch, fields.timestamp_ms)

    def drop_overlay(self) -> None:
        """Forget the overlay (a proposal failed; it is built again from the log)."""
        self._overlay = None
        if self.keys is not None:
            self.keys.drop_pending()

    def maybe_checkpoint(self, applied_end: int) -> None:
        """Write a checkpoint in the background when enough was applied since the last."""
        self.producers.covered = applied_end
        if self._store.directory is not None and self.producers.due():
            data = self.producers.snapshot()
            asyncio.get_running_loop().run_in_executor(self._executor, self._write, data)

    async def before_retention(self, applied_end: int) -> int:
        """Checkpoint the producer state and the key index before retention deletes
        records; return the offset they cover records below (retention keeps the rest)."""
        loop = asyncio.get_running_loop()
        if self.keys is not None:
            await loop.run_in_executor(self._executor, self.keys.checkpoint)
        self.producers.covered = applied_end
        if self._store.directory is None or not len(self.producers.states):
            return applied_end
        data = self.producers.snapshot()
        await loop.run_in_executor(self._executor, self._write, data)
        return applied_end

    async def checkpoint(self, applied_end: int) -> None:
        """Write a checkpoint of the applied state now (on stopping), and close the key
        index."""
        if self.keys is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, self.keys.close)
        self.producers.covered = applied_end
        if self._store.directory is None:
            return
        data = self.producers.snapshot()
        await asyncio.get_running_loop().run_in_executor(self._executor, self._write, data)

    def _write(self, data: bytes) -> None:
        try:
            self.producers.write(data)
        except OSError as exc:  # the log is fine; the next start replays more of it
            log.warning("producer-state checkpoint failed: %s", exc)
