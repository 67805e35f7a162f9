"""The key index of one partition: each key's latest offset, for per-key conditional appends.

``latest(key)`` answers "where is this key's latest record?" (-1: it has none), exactly,
for millions of keys in little memory (see docs/architecture.md, "Key index"):

- The table maps a 64-bit hash of the key to the newest offset of any record whose key has
  that hash (``KeyTable``: 16 bytes a slot). Adding a batch never reads the log.
- A lookup checks the one record the table points at through ``KeySource.key_at``: the
  same key, and that offset is the answer; no slot, and the key has no record. Another key
  means two keys share the hash: their bucket is *resolved* once, by scanning the log for
  every key with that hash, into a small exact map (key -> offset) that every later batch
  keeps up to date. So two keys sharing a hash never make an answer wrong, only slower.
- Retention removes the front of the log; a key's latest offset stays known after its
  record is gone (event-sourcing versions never go back to -1). Such an answer cannot be
  checked against the record any more; it is wrong only if the key shares its 64-bit hash
  with a key whose records retention had all removed (see the architecture notes).
- The index is derived from the log: it survives restarts as a checkpoint (the whole
  table as of an offset) plus a replay of the log after it, and is rebuilt from the log
  when the checkpoint is missing, damaged or made with another hash function.
- ``truncate_after`` forgets a suffix (a Raft follower's log losing uncommitted entries)
  through an undo journal of the last batches; deeper cuts reload the checkpoint (when it
  is older than the cut) or rebuild from the log.

The owner feeds every appended batch, in log order and after the log append, on every
replica: the index never reads ahead of the log, and identical logs give identical
indexes (the hash is fixed, not seeded).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from hashlib import blake2b
from types import TracebackType

from replog.broker.key_index_file import (
    Checkpoint,
    CheckpointDamagedError,
    clear_cut,
    read_checkpoint,
    read_cut,
    write_checkpoint,
    write_cut,
)
from replog.broker.key_journal import KeyJournal
from replog.broker.key_source import KeySource
from replog.broker.key_table import KeyTable
from replog.errors import (
    ExpectedKeyOffsetError,
    InvalidArgumentError,
    LogClosedError,
    LogLockedError,
    StorageIOError,
)
from replog.storage.files import FileSystem, OsFileSystem

__all__ = ["DEFAULT_JOURNAL_ENTRIES", "KeyIndex", "hash_key_blake2b"]

log = logging.getLogger("replog.broker")

#: Batches' replaced offsets kept for ``truncate_after`` (24 bytes each).
DEFAULT_JOURNAL_ENTRIES = 1 << 16
_MASK64 = (1 << 64) - 1
_DEFAULT_IDENTITY = b"blake2b-64"


def hash_key_blake2b(key: bytes) -> int:
    """The key index's hash: 64 bits of BLAKE2b, never 0 (0 marks an empty slot)."""
    return int.from_bytes(blake2b(key, digest_size=8).digest(), "little") or 1


class KeyIndex:
    """Key -> offset of its latest record, for one partition, on disk in ``directory``.

    Opening loads the checkpoint and replays the log after it (or rebuilds from the log).
    Thread-safe; the owner serialises ``add_batch`` with its log appends. ``hash_key``
    replaces the hash (tests use tiny ones so that keys collide); ``hash_name`` names it in
    the checkpoint, so a checkpoint made with another hash is rebuilt, never misread.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        source: KeySource,
        *,
        hash_key: Callable[[bytes], int] | None = None,
        hash_name: str = "custom",
        journal_entries: int = DEFAULT_JOURNAL_ENTRIES,
        capacity_hint: int = 0,
        fs: FileSystem | None = None,
    ) -> None:
        if journal_entries < 1 or capacity_hint < 0:
            raise InvalidArgumentError("journal_entries must be positive, capacity_hint >= 0")
        self.directory = os.fspath(directory)
        self._source = source
        self._fs: FileSystem = fs or OsFileSystem()
        if hash_key is None:
            self._hash: Callable[[bytes], int] = hash_key_blake2b
            self._identity = _DEFAULT_IDENTITY
        else:
            custom = hash_key
            self._hash = lambda key: (custom(key) & _MASK64) or 1
            self._identity = b"custom:" + hash_name.encode()
        self._journal_entries = journal_entries
        self._capacity_hint = capacity_hint
        self._mutex = threading.Lock()
        self._fs.makedirs(self.directory)
        try:
            self._lock = self._fs.lock(os.path.join(self.directory, ".lock"))
        except BlockingIOError as exc:
            raise LogLockedError(f"{self.directory} is open in another key index") from exc
        self._closed = False
        self._failed: StorageIOError | None = None
        #: Whether the index was built from the log alone (a new one, or no usable checkpoint).
        self.rebuilt = False
        #: Offsets ``[a, b)`` removed from the log before the index saw them (a log reset
        #: or retention while the index was closed): their keys' answers may be stale.
        self.gap: tuple[int, int] | None = None
        # The lowest offset truncate_after cut to below the checkpoint's (None: no such cut),
        # and the next offset of the checkpoint on disk (-1: none).
        self._cut: int | None = None
        self._checkpoint_next = -1
        self._reset(source.lowest_offset)
        try:
            self._open()
        except BaseException:
            self._lock.release()
            raise

    # -- state --------------------------------------------------------------------------------

    def _reset(self, start: int) -> None:
        self._table = KeyTable(self._capacity_hint)
        self._journal = KeyJournal(start - 1, self._journal_entries)
        self._exact: dict[bytes, int] = {}
        self._collided: set[int] = set()
        self._next = start

    def _adopt(self, state: Checkpoint) -> None:
        self._table = KeyTable(shards=state.shards)
        self._journal = KeyJournal(state.journal_floor, self._journal_entries, state.journal)
        self._exact = state.exact
        self._collided = state.collided
        self._next = state.next_offset

    def _open(self) -> None:
        try:
            state = read_checkpoint(self._fs, self.directory)
            cut = read_cut(self._fs, self.directory)
            if state is not None and state.identity != self._identity:
                log.warning("%s: key index made with another hash; rebuilding", self.directory)
                state = None
            if state is not None:
                self._adopt(state)
        except (CheckpointDamagedError, ValueError) as exc:
            log.warning("%s: key index checkpoint unusable (%s); rebuilding", self.directory, exc)
            state = None
            self._reset(self._source.lowest_offset)
        if state is None:
            self.rebuilt = True
        else:
            self._checkpoint_next = state.next_offset
            if cut is not None and cut < self._next - 1:
                # What the checkpoint holds past the cut is not the log's (the log may since
                # have lost even more, in a crash: wind back to whichever is lower).
                self._cut = cut
                self._truncate(min(cut, self._source.next_offset - 1))
            self._reconcile()
        self._replay(self._next, self._source.next_offset)
        if self.rebuilt:
            self._write_checkpoint()

    def _reconcile(self) -> None:
        """Line the adopted checkpoint up with the log it belongs to."""
        lowest, end = self._source.lowest_offset, self._source.next_offset
        if self._next > end:  # the log lost a tail the checkpoint had seen
            # Like a cut: the log will put other records at those offsets, which the
            # checkpoint on disk must not be taken for after another crash.
            self._mark_cut(end - 1)
            if end - 1 >= self._journal.floor:
                self._truncate(end - 1)
            else:
                self._rebuild(end)
        elif self._next < lowest:
            log.warning(
                "%s: the log lost offsets %d..%d before the key index saw them",
                self.directory,
                self._next,
                lowest - 1,
            )
            self.gap = (self._next, lowest)
            self._journal.clear(lowest - 1)
            self._next = lowest

    def _rebuild(self, end: int) -> None:
        """Index the log up to ``end`` afresh: from the checkpoint on disk when it is not past
        ``end`` (it remembers keys whose records retention removed), else from the log."""
        if self._cut is None and 0 <= self._checkpoint_next <= end:
            try:
                state = read_checkpoint(self._fs, self.directory)
            except CheckpointDamagedError:
                state = None
            usable = state is not None and state.identity == self._identity
            if state is not None and usable and self._source.lowest_offset <= state.next_offset:
                self._adopt(state)
                self._replay(self._next, end)
                return
        self.rebuilt = True
        self._reset(self._source.lowest_offset)
        self._replay(self._next, end)

    def _replay(self, start: int, end: int) -> None:
        for base, keys in self._source.keys(start, end):
            self._add(base, keys)

    # -- updates ------------------------------------------------------------------------------

    @property
    def next_offset(self) -> int:
        """The offset the next batch must start at (every record below it is indexed)."""
        return self._next

    def add_batch(self, base_offset: int, keys: Sequence[bytes | None]) -> None:
        """Index the records at ``base_offset, base_offset + 1, ...`` whose keys are ``keys``
        (b"" or None: a record without a key), right after they were appended to the log.

        Raises InvalidArgumentError unless ``base_offset`` is ``next_offset`` (batches come
        in log order, without gaps), LogClosedError after ``close``.
        """
        with self._mutex:
            self._check_open()
            if base_offset != self._next:
                raise InvalidArgumentError(
                    f"the key index expects offset {self._next} next, got {base_offset}"
                )
            self._add(base_offset, keys)

    def _add(self, base: int, keys: Sequence[bytes | None]) -> None:
        end = base + len(keys)
        latest = dict(zip(keys, range(base, end), strict=True))  # each key's last offset
        latest.pop(b"", None)
        latest.pop(None, None)
        if latest:
            named: list[bytes] = list(latest)  # type: ignore[arg-type]
            offsets = list(latest.values())
            hashes = list(map(self._hash, named))
            self._journal.record(base, end, hashes, self._table.put_many(hashes, offsets))
            if self._collided:
                collided, exact = self._collided, self._exact
                for key, h, offset in zip(named, hashes, offsets, strict=True):
                    if h in collided:
                        exact[key] = offset
        self._next = end

    def truncate_after(self, offset: int) -> None:
        """Forget every record after ``offset`` (call it right after the log's own
        ``truncate_after``). A cut beyond the undo journal reloads the checkpoint when that
        is older than the cut, else rebuilds from the log. Raises StorageIOError when the
        cut cannot be recorded (the index then refuses every call until reopened)."""
        with self._mutex:
            self._check_open()
            if not isinstance(offset, int) or offset < -1:
                raise InvalidArgumentError(f"truncate_after needs an offset, got {offset!r}")
            if offset < self._next - 1:
                if offset < self._checkpoint_next - 1:
                    self._mark_cut(offset)
                self._truncate(offset)

    def _mark_cut(self, offset: int) -> None:
        """Make a cut durable before the log can grow past it again: the checkpoint may hold
        records after ``offset`` that the log is about to replace with others."""
        self._cut = offset if self._cut is None else min(self._cut, offset)
        try:
            write_cut(self._fs, self.directory, self._cut)
        except OSError as exc:
            # The index can no longer follow the log: refuse further use until reopened.
            self._failed = StorageIOError(f"key index: recording a cut failed: {exc}")
            raise self._failed from exc

    def _truncate(self, offset: int) -> None:
        if offset < self._journal.floor:
            self._rebuild(offset + 1)
            return
        again = self._journal.undo_after(offset, self._table)
        self._next = offset + 1
        if again is not None and again < self._source.lowest_offset:
            self._rebuild(offset + 1)  # retention took the cut batch's first records
            return
        if again is not None:  # a batch cut in its middle: add its kept records again
            self._next = again
            self._replay(again, offset + 1)
        if self._collided:
            for key in [key for key, at in self._exact.items() if at > offset]:
                del self._exact[key]
            self._resolve(set(self._collided))

    # -- lookups ------------------------------------------------------------------------------

    def latest(self, key: bytes) -> int:
        """The offset of ``key``'s latest record in the partition; -1 if it has none.

        May read one record of the log (and, the first time two keys are found to share a
        hash, scan it). Raises InvalidArgumentError for an empty or non-bytes key.
        """
        if not isinstance(key, bytes) or not key:
            raise InvalidArgumentError("the key index looks up non-empty bytes keys")
        with self._mutex:
            self._check_open()
            h = self._hash(key)
            if h in self._collided:
                return self._exact.get(key, -1)
            offset = self._table.get(h)
            if offset < 0:
                return -1
            found = self._source.key_at(offset)
            if found is None or found == key:  # None: retention removed it, still its version
                return offset
            self._resolve({h})
            return self._exact.get(key, -1)

    def expect(self, key: bytes, expected_offset: int) -> None:
        """Check a conditional append: raise ExpectedKeyOffsetError (with the actual offset)
        unless ``key``'s latest record is at ``expected_offset`` (-1: it has none)."""
        actual = self.latest(key)
        if actual != expected_offset:
            raise ExpectedKeyOffsetError(expected_offset, actual)

    def _resolve(self, hashes: set[int]) -> None:
        """Learn every key in the log whose hash is in ``hashes``, exactly."""
        found: dict[bytes, int] = {}
        wanted, hash_key = hashes, self._hash
        for base, keys in self._source.keys(self._source.lowest_offset, self._next):
            for i, key in enumerate(keys):
                if key and hash_key(key) in wanted:
                    found[key] = base + i
        for key, offset in found.items():
            self._exact[key] = max(offset, self._exact.get(key, -1))
        self._collided |= hashes
        log.info("%s: key index resolved %d shared hash(es)", self.directory, len(hashes))

    # -- durability ---------------------------------------------------------------------------

    def checkpoint(self) -> None:
        """Write the whole index durably, as of ``next_offset`` (the next open replays the
        log from there). Sync the log first, and checkpoint before retention deletes the
        log's front. Blocks the index for about 0.5 s per 10 million keys."""
        with self._mutex:
            self._check_open()
            self._write_checkpoint()

    def _write_checkpoint(self) -> None:
        state = Checkpoint(
            self._next,
            self._identity,
            list(self._table.shards()),
            self._journal.floor,
            self._journal.arrays(),
            self._exact,
            self._collided,
        )
        try:
            write_checkpoint(self._fs, self.directory, state)
            clear_cut(self._fs, self.directory)  # the new checkpoint has no records past a cut
        except OSError as exc:  # the old checkpoint (or none) stays; the index is intact
            raise StorageIOError(f"key index: writing the checkpoint failed: {exc}") from exc
        self._cut = None
        self._checkpoint_next = self._next

    def stats(self) -> dict[str, int]:
        """Sizes: keys (hashes held), slots (16 bytes each), journal entries, shared hashes."""
        with self._mutex:
            return {
                "keys": self._table.used_slots,
                "slots": self._table.slots,
                "journal_entries": self._journal.entries,
                "shared_hashes": len(self._collided),
                "exact_keys": len(self._exact),
            }

    def _check_open(self) -> None:
        if self._closed:
            raise LogClosedError("the key index is closed")
        if self._failed is not None:
            raise self._failed

    def close(self, *, checkpoint: bool = True) -> None:
        """Write a checkpoint (unless told not to) and release the directory. Idempotent."""
        with self._mutex:
            if self._closed:
                return
            self._closed = True
            try:
                if checkpoint and self._failed is None:
                    self._write_checkpoint()
            finally:
                self._lock.release()

    def __enter__(self) -> KeyIndex:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
