"""The read side of a Log: its properties, reads and the description of its segments.

A mixin of ``Log`` (it only reads the state the Log's writers keep).
"""

from __future__ import annotations

import bisect
import io
import threading

from replog.errors import (
    CorruptRecordError,
    InvalidArgumentError,
    LogClosedError,
    OffsetOutOfRangeError,
)
from replog.storage.config import is_offset
from replog.storage.reader import LogReader, decode_checked, decode_checked_batch
from replog.storage.retention import SegmentInfo
from replog.storage.segment import Segment
from replog.storage.sync import GroupCommit
from replog.v1.record_pb2 import Record

__all__ = ["LogReads"]


def _base_of(segment: Segment) -> int:
    return segment.base_offset


def _holds(segments: list[Segment], i: int, offset: int) -> bool:
    """Whether ``segments[i]`` is the segment of ``offset`` in ``segments``."""
    last = len(segments) - 1
    if not 0 <= i <= last or segments[i].base_offset > offset:
        return False
    return i == last or offset < segments[i + 1].base_offset


def describe_segment(segment: Segment, end: int, size: int, sealed: bool) -> SegmentInfo:
    """The SegmentInfo of ``segment`` ending at ``end``, with the timestamp known so far."""
    return SegmentInfo(segment.base_offset, end, size, segment.times.largest_known(end), sealed)


class LogReads:
    """Properties and reads of a ``Log`` (see there); safe from any thread."""

    # Kept by Log: replaced, never mutated in place, so a reader's snapshot stays whole.
    directory: str
    _segments: list[Segment]
    _bases: list[int]
    _next_offset: int
    _closed: bool
    _write_lock: threading.Lock
    _committer: GroupCommit

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
        # ``_segments`` and ``_bases`` are replaced one after the other: check that the
        # bases found a segment of this list that holds the offset.
        i = bisect.bisect_right(self._bases, offset) - 1
        if _holds(segments, i, offset):
            return segments[i]
        return segments[bisect.bisect_right(segments, offset, key=_base_of) - 1]

    def read(self, offset: int) -> Record:
        """Return the record at ``offset``.

        Raises OffsetOutOfRangeError outside ``[lowest_offset, next_offset)`` and
        CorruptRecordError when the stored bytes fail their checks (never a wrong record).
        """
        segment = self._segment_for(offset)
        try:
            payload = segment.read_payload(offset)
            return decode_checked(payload, offset)
        except (OSError, ValueError, CorruptRecordError) as exc:  # a truncation raced it?
            self._raise_range_error(offset, exc)
            raise

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
        except (OSError, ValueError, CorruptRecordError) as exc:
            self._raise_range_error(offset, exc)
            raise

    def read_batch(
        self, offset: int, *, max_records: int = 1000, max_bytes: int = 1 << 20
    ) -> list[Record]:
        """Like ``read_payloads`` but decoded into Records (with their offsets checked)."""
        payloads = self.read_payloads(offset, max_records=max_records, max_bytes=max_bytes)
        return decode_checked_batch(payloads, offset)

    def _raise_range_error(self, offset: int, exc: Exception) -> None:
        """Raise, for a read that failed with ``exc``, OffsetOutOfRangeError if a truncation
        removed the offset meanwhile (whatever its segment's closing made the read see) or
        LogClosedError; return if neither happened (``exc`` is the error)."""
        if self._closed:
            raise LogClosedError("the log was closed during the read") from exc
        lowest = self.lowest_offset
        if not lowest <= offset < self._next_offset:
            raise OffsetOutOfRangeError(offset, lowest, self._next_offset) from exc

    def reader(self) -> io.RawIOBase:
        """Stream the raw frames of the whole log, oldest segment first (for snapshots)."""
        if self._closed:
            raise LogClosedError("the log is closed")
        with self._write_lock:
            spans = [(segment.store, segment.store.flushed_size) for segment in self._segments]
        return LogReader(spans)

    # -- segments ---------------------------------------------------------------------------

    def segments(self) -> list[SegmentInfo]:
        """Describe every segment, oldest first (the last is the active one).

        A sealed segment's largest timestamp is read from its records the first time it is
        asked for (then kept: sealed segments never change), so this may read the disk.
        """
        if self._closed:
            raise LogClosedError("the log is closed")
        with self._write_lock:
            states = self._segment_states()
        for segment, end, _, _ in states:
            if segment.times.largest_known(end) is None:
                segment.times.learn(segment, end)
        return [describe_segment(*state) for state in states]

    def _segment_states(self) -> list[tuple[Segment, int, int, bool]]:
        """Each segment with its end offset, size and whether it is sealed (write lock held)."""
        last = self._segments[-1]
        states = [(s, s.end_offset, s.store.size, True) for s in self._segments[:-1]]
        return [*states, (last, self._next_offset, last.store.size, False)]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.directory!r}, lowest_offset={self.lowest_offset}, "
            f"next_offset={self._next_offset}, segments={len(self._segments)})"
        )
