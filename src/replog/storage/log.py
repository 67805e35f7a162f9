"""Log: the segments of one directory, as one append-only sequence of records."""

from __future__ import annotations

import bisect
import io
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType

from replog.errors import (
    ConfigError,
    CorruptRecordError,
    InvalidArgumentError,
    LogClosedError,
    OffsetOutOfRangeError,
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
from replog.storage.directory import discover_segments, lock_directory
from replog.storage.files import FileSystem, OsFileSystem
from replog.storage.reader import LogReader, decode_checked, decode_checked_batch
from replog.storage.segment import Segment
from replog.storage.sync import GroupCommit, IntervalSync
from replog.v1.record_pb2 import Record

__all__ = ["Log"]

log = logging.getLogger("replog.storage")


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class Log:
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
        self._closed = True
        self._failed: StorageIOError | None = None
        self._lock = lock_directory(self._fs, self.directory)
        try:
            self._segments = self._load_segments()
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
        self._closed = False
        self._interval_sync: IntervalSync | None = None
        if self.config.sync == "interval":
            self._interval_sync = IntervalSync(
                self._committer, lambda: self._next_offset, self.config.sync_interval_ms
            )

    # -- opening ------------------------------------------------------------------------------

    def _load_segments(self) -> list[Segment]:
        bases = discover_segments(self._fs, self.directory)
        if not bases:
            segments = [self._new_segment(self.config.initial_offset)]
            self._fs.sync_dir(self.directory)
            return segments
        nexts: list[int | None] = [*bases[1:], None]
        return [
            self._open_segment(base, sealed_next)
            for base, sealed_next in zip(bases, nexts, strict=True)
        ]

    def _open_segment(self, base: int, sealed_next_offset: int | None) -> Segment:
        config = self.config
        return Segment(
            self._fs,
            self.directory,
            base,
            max_store_bytes=config.max_store_bytes,
            max_index_bytes=config.max_index_bytes,
            max_record_bytes=config.max_record_bytes,
            sealed_next_offset=sealed_next_offset,
        )

    def _new_segment(self, base: int) -> Segment:
        segment = self._open_segment(base, None)
        if segment.next_offset != base:  # leftover files of a removed segment
            segment.truncate_after(base - 1)
        return segment

    # -- properties ----------------------------------------------------------------------------

    @property
    def lowest_offset(self) -> int:
        """The first readable offset (equal to ``next_offset`` while the log is empty)."""
        return self._segments[0].base_offset

    @property
    def next_offset(self) -> int:
        """The offset the next appended record gets (the log end offset)."""
        return self._next_offset

    @property
    def recovery_bytes_truncated(self) -> int:
        """Bytes the opening of this Log cut from a torn or corrupt tail (0 after a clean
        close): records there were lost, acknowledged ones too if the medium was damaged."""
        return sum(s.recovery.bytes_truncated for s in self._segments)

    @property
    def highest_offset(self) -> int | None:
        """The last record's offset, or None while the log is empty."""
        if self._next_offset == self.lowest_offset:
            return None
        return self._next_offset - 1

    @property
    def durable_offset(self) -> int:
        """Every offset below this is known to be fsynced."""
        return self._committer.durable_offset

    @property
    def segment_count(self) -> int:
        """How many segments the log has."""
        return len(self._segments)

    @property
    def size_bytes(self) -> int:
        """The bytes held in the segments' store files."""
        return sum(segment.store.size for segment in self._segments)

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
            payload = self._encoder.encode(value, offset, max(1, self._clock_ms()))
            if len(payload) > self._max_record_bytes:
                raise RecordTooLargeError(len(payload), self._max_record_bytes)
            self._write([payload])
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
            self._write(payloads)
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

    def _check_writable(self) -> None:
        if self._closed:
            raise LogClosedError("the log is closed")
        if self._failed is not None:
            raise self._failed
        if self._committer.error is not None:
            self._failed = self._committer.error
            raise self._failed

    def _write(self, payloads: list[bytes]) -> None:
        """Write payloads to the active segment(s), rolling as needed (holds the write lock)."""
        if self._next_offset + len(payloads) - 1 > MAX_OFFSET:
            raise InvalidArgumentError("the log has reached the largest 64-bit offset")
        segment = self._segments[-1]
        if len(payloads) == 1 and segment.room_for_one(len(payloads[0])):
            self._write_chunk(segment, payloads)
            return
        sizes = [len(payload) for payload in payloads]
        done = 0
        while done < len(payloads):
            segment = self._segments[-1]
            count = 0 if segment.is_full else segment.room_for(sizes[done:])
            if count == 0:
                self._roll()
                continue
            self._write_chunk(segment, payloads[done : done + count])
            done += count

    def _write_chunk(self, segment: Segment, payloads: list[bytes]) -> None:
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
        self._next_offset = segment.next_offset

    def _roll(self) -> Segment:
        """Seal the active segment (durable, index trimmed) and start a new one."""
        active = self._segments[-1]
        try:
            active.seal()
            segment = self._new_segment(active.next_offset)
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

    # -- reads -----------------------------------------------------------------------------

    def _segment_for(self, offset: int) -> Segment:
        if not isinstance(offset, int) or isinstance(offset, bool):
            raise InvalidArgumentError(f"offset must be an integer, got {type(offset).__name__}")
        if self._closed:
            raise LogClosedError("the log is closed")
        segments = self._segments
        lowest = segments[0].base_offset
        if not lowest <= offset < self._next_offset:
            raise OffsetOutOfRangeError(offset, lowest, self._next_offset)
        return segments[bisect.bisect_right(self._bases, offset) - 1]

    def read(self, offset: int) -> Record:
        """Return the record at ``offset``.

        Raises OffsetOutOfRangeError outside ``[lowest_offset, next_offset)`` and
        CorruptRecordError when the stored bytes fail their checks (never a wrong record).
        """
        segment = self._segment_for(offset)
        try:
            payload = segment.read_payload(offset)
        except (OSError, ValueError) as exc:  # a concurrent truncate closed the segment
            raise self._range_error_or(offset, exc) from exc
        return decode_checked(payload, offset)

    def read_payloads(
        self, offset: int, *, max_records: int = 1000, max_bytes: int = 1 << 20
    ) -> list[bytes]:
        """Return serialized records from ``offset``, CRC-checked but not decoded.

        Returns at least one record when ``offset < next_offset`` (even one over
        ``max_bytes``), an empty list at ``next_offset``, and stops at a segment's end.
        Raises OffsetOutOfRangeError below ``lowest_offset`` or past ``next_offset``.
        """
        if not isinstance(max_records, int) or max_records < 1 or max_bytes < 1:
            raise InvalidArgumentError("max_records and max_bytes must be positive")
        if is_offset(offset) and offset == self._next_offset and not self._closed:
            return []
        segment = self._segment_for(offset)
        count = min(max_records, self._next_offset - offset)
        try:
            return segment.read_payloads(offset, count, max_bytes)
        except (OSError, ValueError) as exc:
            raise self._range_error_or(offset, exc) from exc

    def read_batch(
        self, offset: int, *, max_records: int = 1000, max_bytes: int = 1 << 20
    ) -> list[Record]:
        """Like ``read_payloads`` but decoded into Records (with their offsets checked)."""
        payloads = self.read_payloads(offset, max_records=max_records, max_bytes=max_bytes)
        return decode_checked_batch(payloads, offset)

    def _range_error_or(self, offset: int, exc: Exception) -> Exception:
        if isinstance(exc, CorruptRecordError):
            return exc
        if self._closed:
            return LogClosedError("the log was closed during the read")
        lowest = self.lowest_offset
        if not lowest <= offset < self._next_offset:
            return OffsetOutOfRangeError(offset, lowest, self._next_offset)
        return exc

    def reader(self) -> io.RawIOBase:
        """Stream the raw frames of the whole log, oldest segment first (for snapshots)."""
        if self._closed:
            raise LogClosedError("the log is closed")
        with self._write_lock:
            spans = [(segment.store, segment.store.flushed_size) for segment in self._segments]
        return LogReader(spans)

    # -- truncation ---------------------------------------------------------------------------

    def truncate(self, lowest: int) -> None:
        """Remove every whole segment whose records are all below ``lowest``.

        Offsets stay as they are; ``lowest_offset`` becomes the base of the first remaining
        segment (at most ``lowest``). ``lowest`` may be ``next_offset``, which empties the log.
        """
        with self._sync_lock, self._write_lock:
            self._check_writable()
            # A bool is an int to isinstance, but truncate(True) is a caller's bug.
            if not is_offset(lowest) or not 0 <= lowest <= self._next_offset:
                raise InvalidArgumentError(
                    f"truncate needs an offset between 0 and {self._next_offset}, got {lowest!r}"
                )
            if self._segments[-1].next_offset <= lowest and self._segments[-1].index.entries:
                self._roll()
            doomed = [s for s in self._segments[:-1] if s.end_offset <= lowest]
            if not doomed:
                return
            self._segments = self._segments[len(doomed) :]
            self._bases = self._bases[len(doomed) :]
            for segment in doomed:
                segment.remove()
            self._fs.sync_dir(self.directory)

    def truncate_after(self, offset: int) -> None:
        """Remove every record after ``offset``; ``lowest_offset - 1`` empties the log.

        Raft uses it to drop a conflicting tail. The cut is durable when it returns.
        """
        with self._sync_lock, self._write_lock:
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

    def reset(self, next_offset: int) -> None:
        """Discard every record; the empty log continues at ``next_offset`` (snapshot install).
        The removal is durable when it returns."""
        with self._sync_lock, self._write_lock:
            self._check_writable()
            if not is_offset(next_offset) or not 0 <= next_offset <= MAX_OFFSET:
                raise InvalidArgumentError(f"reset needs an offset, got {next_offset!r}")
            try:
                for segment in reversed(self._segments):
                    segment.remove()
                self._fs.sync_dir(self.directory)
                segment = self._new_segment(next_offset)
                self._fs.sync_dir(self.directory)
            except OSError as exc:
                self._failed = StorageIOError(f"reset failed: {exc}")
                self._committer.fail(self._failed)
                raise self._failed from exc
            self._segments = [segment]
            self._bases = [next_offset]
            self._next_offset = next_offset
            self._committer.reset(next_offset)

    # -- closing ------------------------------------------------------------------------------

    def close(self) -> None:
        """Flush, fsync and close every segment and release the directory lock. Idempotent."""
        if self._closed:
            return
        if self._interval_sync is not None:
            self._interval_sync.stop()
        with self._sync_lock, self._write_lock:
            if self._closed:
                return
            self._closed = True
            try:
                if self._failed is None and self._committer.error is None:
                    self._segments[-1].sync()
            finally:
                for segment in self._segments:
                    segment.close()
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

    def __repr__(self) -> str:
        return (
            f"Log({self.directory!r}, lowest_offset={self.lowest_offset}, "
            f"next_offset={self._next_offset}, segments={len(self._segments)})"
        )
