"""Log: the segments of one directory, as one append-only sequence of records."""

from __future__ import annotations

import bisect
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType

from replog.errors import (
    ConfigError,
    InvalidArgumentError,
    LogClosedError,
    RecordTooLargeError,
    StorageIOError,
)
from replog.storage.codec import (
    RecordInput,
    ValueEncoder,
    encode_records,
    make_record,
    serialize_placed_records,
)
from replog.storage.config import MAX_OFFSET, LogConfig, is_offset
from replog.storage.directory import load_segments, lock_directory, new_segment
from replog.storage.files import FileSystem, OsFileSystem
from replog.storage.listener import LogListener
from replog.storage.log_reads import LogReads, describe_segment
from replog.storage.retention import (
    RetentionResult,
    check_retention_limits,
    segments_to_delete,
)
from replog.storage.segment import Segment
from replog.storage.sync import GroupCommit, IntervalSync
from replog.v1.record_pb2 import Record

__all__ = ["Log", "LogListener"]

log = logging.getLogger("replog.storage")

# How long the files of a segment removed from the front stay open (unlinked) for a reader
# that picked the segment just before its removal; Kafka waits file.delete.delay.ms.
_RETIRED_GRACE_S = 10.0


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class Log(LogReads):
    """A durable, segmented, append-only log of records with dense 64-bit offsets.

    Opening a directory takes an exclusive lock on it (a second opener, in any process,
    gets LogLockedError), discovers its segments and recovers the last one after a crash.
    One writer at a time and any number of concurrent readers are safe (threads); appends
    are serialised, and with ``sync="always"`` concurrent appends share fsyncs.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        config: LogConfig | None = None,
        *,
        fs: FileSystem | None = None,
        clock_ms: Callable[[], int] = _wall_clock_ms,
    ) -> None:
        if config is not None and not isinstance(config, LogConfig):
            raise ConfigError(f"config must be a LogConfig, got {type(config).__name__}")
        self.config = config or LogConfig()
        self.directory = os.fspath(directory)
        self._fs: FileSystem = fs or OsFileSystem()
        self._clock_ms = clock_ms
        self._write_lock = threading.Lock()
        self._sync_lock = threading.Lock()
        # Serialises everything that removes segment files (taken before the other two).
        self._retention_lock = threading.Lock()
        self._retired: list[tuple[float, list[Segment]]] = []
        self._closed = True
        self._failed: StorageIOError | None = None
        self._lock = lock_directory(self._fs, self.directory)
        try:
            self._segments = load_segments(self._fs, self.directory, self.config)
        except BaseException:
            self._lock.release()
            raise
        self._bases = [segment.base_offset for segment in self._segments]
        self._next_offset = self._segments[-1].next_offset
        self._committer = GroupCommit(self._sync_active, self._next_offset)
        self._encoder = ValueEncoder()
        # Read on every append: plain attributes, not lookups through the config.
        self._max_record_bytes = self.config.max_record_bytes
        self._sync_always = self.config.sync == "always"
        self._segment_ms = self.config.segment_ms
        self._listeners: list[LogListener] = []
        self._closed = False
        self._interval_sync: IntervalSync | None = None
        if self.config.sync == "interval":
            self._interval_sync = IntervalSync(
                self._committer, lambda: self._next_offset, self.config.sync_interval_ms
            )

    # -- appends ------------------------------------------------------------------------------

    def append(
        self,
        value: bytes,
        *,
        key: bytes | None = None,
        headers: Iterable[tuple[str, bytes]] | dict[str, bytes] | None = None,
    ) -> int:
        """Append one record and return its offset, once durable per the sync policy.

        Raises InvalidArgumentError for a value, key or header of the wrong type,
        RecordTooLargeError, StorageIOError, LogClosedError; on error nothing is appended.
        """
        if key is not None or headers is not None or type(value) is not bytes:
            return self.append_batch((make_record(value, key=key, headers=headers),))
        # The common case, kept lean: one reused message, no batch bookkeeping.
        with self._write_lock:
            if self._closed or self._failed is not None or self._committer.error is not None:
                self._check_writable()
            offset = self._next_offset
            stamp = max(1, self._clock_ms())
            payload = self._encoder.encode(value, offset, stamp)
            if len(payload) > self._max_record_bytes:
                raise RecordTooLargeError(len(payload), self._max_record_bytes)
            self._write([payload], stamp)
        if self._sync_always:
            self._committer.wait_durable(offset + 1)
        return offset

    def append_batch(self, values: Sequence[RecordInput]) -> int:
        """Append records at contiguous offsets with one write; return the first offset.

        Each value is bytes or a Record (its value, key and headers are kept; its offset and
        timestamp are assigned). The call returns once the whole batch is durable per the
        sync policy. If any value is invalid, nothing is appended.
        """
        if type(values) not in (list, tuple) and (
            isinstance(values, bytes | bytearray | str) or not isinstance(values, Sequence)
        ):
            raise InvalidArgumentError("append_batch takes a sequence of values")
        if not values:
            raise InvalidArgumentError("append_batch needs at least one value")
        with self._write_lock:
            self._check_writable()
            base = self._next_offset
            timestamp_ms = max(1, self._clock_ms())
            payloads = encode_records(values, base, timestamp_ms, self.config.max_record_bytes)
            self._write(payloads, timestamp_ms)
            end = self._next_offset
        if self.config.sync == "always":
            self._committer.wait_durable(end)
        return base

    def append_records(self, records: Sequence[Record]) -> int:
        """Append records whose offsets are already set (replication), keeping every field.

        The first record's offset must equal ``next_offset`` and the rest follow it;
        returns the first offset once durable per the sync policy.
        """
        with self._write_lock:
            self._check_writable()
            base = self._next_offset
            payloads = serialize_placed_records(records, base, self.config.max_record_bytes)
            self._write(payloads)
            end = self._next_offset
        if self.config.sync == "always":
            self._committer.wait_durable(end)
        return base

    def append_payloads(self, payloads: Sequence[bytes]) -> int:
        """Append serialized Records byte for byte (replication); return the first offset once
        durable. Each payload's ``offset`` must be where it lands (reads check it). Raises
        RecordTooLargeError, InvalidArgumentError (empty), StorageIOError, LogClosedError."""
        if not payloads:
            raise InvalidArgumentError("append_payloads needs at least one payload")
        limit = self.config.max_record_bytes
        for payload in payloads:
            if len(payload) > limit:
                raise RecordTooLargeError(len(payload), limit)
        with self._write_lock:
            self._check_writable()
            base = self._next_offset
            self._write(list(payloads))
            end = self._next_offset
        if self.config.sync == "always":
            self._committer.wait_durable(end)
        return base

    def add_listener(self, listener: LogListener) -> None:
        """Tell ``listener`` of every later append, truncation and reset (add it first)."""
        self._listeners.append(listener)

    def _check_writable(self) -> None:
        if self._closed:
            raise LogClosedError("the log is closed")
        if self._failed is not None:
            raise self._failed
        if self._committer.error is not None:
            self._failed = self._committer.error
            raise self._failed

    def _write(self, payloads: list[bytes], stamp: int | None = None) -> None:
        """Write payloads to the active segment(s), rolling as needed (holds the write lock).

        ``stamp`` is every payload's timestamp when the log assigned it (None: replicated
        payloads, each with its own)."""
        if self._next_offset + len(payloads) - 1 > MAX_OFFSET:
            raise InvalidArgumentError("the log has reached the largest 64-bit offset")
        if self._segment_ms is not None and self._roll_due(stamp or self._clock_ms()):
            self._roll()  # before the write, as Kafka rolls: the new records start the segment
        first = self._next_offset
        segment = self._segments[-1]
        if len(payloads) == 1 and segment.room_for_one(len(payloads[0])):
            self._write_chunk(segment, payloads, stamp)
        else:
            self._write_chunks(payloads, stamp)
        for listener in self._listeners:
            listener.appended(first, payloads)

    def _write_chunks(self, payloads: list[bytes], stamp: int | None) -> None:
        """Write payloads across as many segments as they need, rolling full ones."""
        sizes = [len(payload) for payload in payloads]
        done = 0
        while done < len(payloads):
            segment = self._segments[-1]
            count = 0 if segment.is_full else segment.room_for(sizes[done:])
            if count == 0:
                self._roll()
                continue
            self._write_chunk(segment, payloads[done : done + count], stamp)
            done += count

    def _write_chunk(self, segment: Segment, payloads: list[bytes], stamp: int | None) -> None:
        """Append payloads that fit in ``segment`` with one write, then publish them."""
        entries_before = segment.index.entries
        try:
            segment.append_payloads(payloads)
            segment.store.flush()
        except OSError as exc:
            segment.index.truncate(entries_before)
            self._failed = StorageIOError(f"write to {segment.store_path} failed: {exc}")
            self._committer.fail(self._failed)
            raise self._failed from exc
        if stamp is not None:
            segment.times.note(self._next_offset, len(payloads), stamp)
        self._next_offset = segment.next_offset

    def _roll_due(self, now_ms: int) -> bool:
        """Whether the active segment's first record is ``segment_ms`` old (write lock held)."""
        active = self._segments[-1]
        if self._segment_ms is None or active.index.entries == 0:
            return False
        times = active.times
        if times.first_ms is None:  # not seen appended (reopened, or replicated payloads)
            times.learn(active, self._next_offset, first_only=True)
        first = times.first_ms
        return first is not None and now_ms - first >= self._segment_ms

    def roll_if_due(self, now_ms: int | None = None) -> bool:
        """Roll the active segment if ``segment_ms`` says it is due, so that a partition
        that takes no appends still rolls; return whether it rolled. ``now_ms`` defaults
        to the log's clock. An empty active segment never rolls."""
        if now_ms is not None and not is_offset(now_ms):
            raise InvalidArgumentError(f"now_ms must be an integer, got {now_ms!r}")
        with self._write_lock:
            self._check_writable()
            if not self._roll_due(self._clock_ms() if now_ms is None else now_ms):
                return False
            self._roll()
            return True

    def _roll(self) -> Segment:
        """Seal the active segment (durable, index trimmed) and start a new one."""
        active = self._segments[-1]
        try:
            active.seal()
            segment = new_segment(self._fs, self.directory, self.config, active.next_offset)
            self._fs.sync_dir(self.directory)
        except OSError as exc:
            self._failed = StorageIOError(f"rolling segment {active.base_offset} failed: {exc}")
            self._committer.fail(self._failed)
            raise self._failed from exc
        self._segments = [*self._segments, segment]
        self._bases = [*self._bases, segment.base_offset]
        return segment

    def _sync_active(self) -> int:
        """fsync the active store; return the offset everything below which is durable.

        Sealed segments were fsynced when sealed, so the active one is all that can be dirty.
        """
        with self._sync_lock:
            with self._write_lock:
                segment = self._segments[-1]
                covered = self._next_offset
                if self._closed:  # close() synced everything it could
                    return covered
            segment.store.fsync()
            return covered

    def sync(self) -> None:
        """Make every record appended so far durable now, whatever the sync policy."""
        if self._closed:
            raise LogClosedError("the log is closed")
        self._committer.wait_durable(self._next_offset)

    # -- retention ----------------------------------------------------------------------------

    def apply_retention(
        self,
        *,
        retention_ms: int | None,
        retention_bytes: int | None,
        keep_from: int,
        now_ms: int | None = None,
    ) -> RetentionResult:
        """Delete the oldest segments that ``retention_ms`` / ``retention_bytes`` let go
        (see ``retention.segments_to_delete``), never one holding an offset at or above
        ``keep_from``; ``now_ms`` defaults to the log's clock.

        Reading below the new ``lowest_offset`` raises OffsetOutOfRangeError. Safe while
        other threads append and read. Raises InvalidArgumentError for a bad limit
        (nothing changes) and StorageIOError if a removal fails.
        """
        check_retention_limits(
            retention_ms=retention_ms, retention_bytes=retention_bytes, keep_from=keep_from
        )
        if now_ms is not None and not is_offset(now_ms):
            raise InvalidArgumentError(f"now_ms must be an integer, got {now_ms!r}")
        now = self._clock_ms() if now_ms is None else now_ms
        limits = {"retention_ms": retention_ms, "retention_bytes": retention_bytes}
        with self._retention_lock:
            if retention_ms is not None and retention_ms != -1:
                self._learn_front(now, keep_from, limits)
            with self._sync_lock, self._write_lock:
                self._check_writable()
                infos = [describe_segment(*state) for state in self._segment_states()]
                count = segments_to_delete(infos, now_ms=now, keep_from=keep_from, **limits)
                doomed = self._drop_front(count)
            self._unlink(doomed)
            freed = sum(info.size_bytes for info in infos[:count])
            return RetentionResult(count, freed, self.lowest_offset)

    def _learn_front(self, now: int, keep_from: int, limits: dict[str, int | None]) -> None:
        """Learn the largest timestamps of the oldest segments, without the write lock, as
        far as retention could go: up to the first segment it keeps once that is known."""
        if self._closed:
            raise LogClosedError("the log is closed")
        with self._write_lock:
            states = self._segment_states()
        infos = [describe_segment(*state) for state in states]
        while True:
            kept = segments_to_delete(infos, now_ms=now, keep_from=keep_from, **limits)
            segment, end, _, sealed = states[kept]
            if not sealed or end > keep_from or segment.times.known(end):
                return  # the first segment kept is kept whatever its timestamp
            segment.times.learn(segment, end)
            infos[kept] = describe_segment(*states[kept])

    # -- truncation ---------------------------------------------------------------------------

    def truncate(self, lowest: int) -> None:
        """Remove every whole segment whose records are all below ``lowest``.

        Offsets stay as they are; ``lowest_offset`` becomes the base of the first remaining
        segment (at most ``lowest``). ``lowest`` may be ``next_offset``, which empties the log.
        """
        with self._retention_lock:
            with self._sync_lock, self._write_lock:
                doomed = self._drop_front(self._truncation_count(lowest))
            self._unlink(doomed)

    def _truncation_count(self, lowest: int) -> int:
        """How many segments ``truncate(lowest)`` removes (rolling first if all must go)."""
        self._check_writable()
        # A bool is an int to isinstance, but truncate(True) is a caller's bug.
        if not is_offset(lowest) or not 0 <= lowest <= self._next_offset:
            raise InvalidArgumentError(
                f"truncate needs an offset between 0 and {self._next_offset}, got {lowest!r}"
            )
        if self._segments[-1].next_offset <= lowest and self._segments[-1].index.entries:
            self._roll()
        return len([s for s in self._segments[:-1] if s.end_offset <= lowest])

    def _drop_front(self, count: int) -> list[Segment]:
        """Take the ``count`` oldest (sealed) segments out of the log and return them (both
        locks held): readers see them gone before ``_unlink`` removes their files."""
        doomed = self._segments[:count]
        self._segments = self._segments[count:]
        self._bases = self._bases[count:]
        return doomed

    def _unlink(self, doomed: list[Segment]) -> None:
        """Remove the files of segments taken from the front (the retention lock held, not
        the write lock: appends go on), oldest first, each removal made durable before the
        next one's, so a crash at any point leaves a contiguous log starting at one of the
        segment bases. The files stay open for a while (``_RETIRED_GRACE_S``) for readers
        that picked a segment just before it went."""
        self._release_retired(time.monotonic() - _RETIRED_GRACE_S)
        if not doomed:
            return
        self._retired.append((time.monotonic(), doomed))
        try:
            for segment in doomed:
                segment.unlink()
                self._fs.sync_dir(self.directory)
        except OSError as exc:
            # Files of removed segments may be left: the log must be reopened (which finds
            # them again, contiguous with the rest) before it may change further.
            self._failed = StorageIOError(f"removing old segments failed: {exc}")
            self._committer.fail(self._failed)
            raise self._failed from exc

    def _release_retired(self, before: float) -> None:
        """Close the files of segments removed before the monotonic time ``before``."""
        while self._retired and self._retired[0][0] <= before:
            for segment in self._retired.pop(0)[1]:
                segment.release()

    def truncate_after(self, offset: int) -> None:
        """Remove every record after ``offset``; ``lowest_offset - 1`` empties the log.

        Raft uses it to drop a conflicting tail. The cut is durable when it returns.
        """
        with self._retention_lock, self._sync_lock, self._write_lock:
            self._check_writable()
            lowest = self.lowest_offset
            if not is_offset(offset) or not lowest - 1 <= offset < self._next_offset:
                raise InvalidArgumentError(
                    f"truncate_after needs an offset between {lowest - 1} and "
                    f"{self._next_offset - 1}, got {offset!r}"
                )
            keep = max(1, bisect.bisect_right(self._bases, offset))
            doomed = self._segments[keep:]
            self._segments = self._segments[:keep]
            self._bases = self._bases[:keep]
            try:
                # Fix: make the removals durable BEFORE cutting the kept segment (and count a
                # failed removal as a failed truncate). Before, a crash after the cut but
                # before sync_dir brought removed segments back behind the cut segment,
                # leaving unreadable offsets (a hole) in the middle of the log.
                for segment in reversed(doomed):
                    segment.remove()
                if doomed:
                    self._fs.sync_dir(self.directory)
                self._segments[-1].truncate_after(offset)
                self._fs.sync_dir(self.directory)
            except OSError as exc:
                self._failed = StorageIOError(f"truncate failed: {exc}")
                self._committer.fail(self._failed)
                raise self._failed from exc
            self._next_offset = self._segments[-1].next_offset
            self._committer.reset(self._next_offset)
            for listener in self._listeners:
                listener.truncated_after(offset)

    def reset(self, next_offset: int) -> None:
        """Discard every record; the empty log continues at ``next_offset`` (snapshot install).
        The removal is durable when it returns."""
        with self._retention_lock, self._sync_lock, self._write_lock:
            self._check_writable()
            if not is_offset(next_offset) or not 0 <= next_offset <= MAX_OFFSET:
                raise InvalidArgumentError(f"reset needs an offset, got {next_offset!r}")
            try:
                for segment in reversed(self._segments):
                    segment.remove()
                self._fs.sync_dir(self.directory)
                segment = new_segment(self._fs, self.directory, self.config, next_offset)
                self._fs.sync_dir(self.directory)
            except OSError as exc:
                self._failed = StorageIOError(f"reset failed: {exc}")
                self._committer.fail(self._failed)
                raise self._failed from exc
            self._segments = [segment]
            self._bases = [next_offset]
            self._next_offset = next_offset
            self._committer.reset(next_offset)
            for listener in self._listeners:
                listener.was_reset(next_offset)

    # -- closing ------------------------------------------------------------------------------

    def close(self) -> None:
        """Flush, fsync and close every segment and release the directory lock. Idempotent."""
        if self._closed:
            return
        for listener in self._listeners:
            listener.closing()
        if self._interval_sync is not None:
            self._interval_sync.stop()
        with self._retention_lock, self._sync_lock, self._write_lock:
            if self._closed:
                return
            self._closed = True
            try:
                if self._failed is None and self._committer.error is None:
                    self._segments[-1].sync()
            finally:
                for segment in self._segments:
                    segment.close()
                self._release_retired(float("inf"))
                self._lock.release()

    def __enter__(self) -> Log:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
