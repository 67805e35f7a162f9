"""SegmentTimes: the first and the largest record timestamp of one segment, learnt lazily.

Opening a log reads no record for this (a log with thousands of segments opens as fast as
before): the active segment learns timestamps as records are appended, and a segment whose
records were not seen being appended (a sealed one after a restart, or replicated payloads)
is scanned once, when asked, from where its knowledge ends. A sealed segment never changes,
so once scanned it is never read for this again.

A timestamp of 0 is "none": records the Raft log store writes for its own entries (no-op,
configuration) carry none. A segment with a record that cannot be read has no known largest
timestamp, so time-based retention never deletes it (size-based retention still may).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from replog.storage.codec import decode_records

if TYPE_CHECKING:
    from replog.storage.segment import Segment

__all__ = ["SegmentTimes"]

_SCAN_RECORDS = 1000
_SCAN_BYTES = 1 << 20


class SegmentTimes:
    """What is known of one segment's timestamps: over offsets ``[base, covered)``, the
    first non-zero timestamp and the largest; ``unreadable`` once a record failed to read.

    Task-safe: the appender notes records under the Log's write lock while another thread
    may scan; a scan runs without the lock and merges what it found.
    """

    __slots__ = ("_lock", "covered", "first_ms", "largest_ms", "unreadable")

    def __init__(self, base_offset: int) -> None:
        self._lock = threading.Lock()
        self.covered = base_offset
        self.first_ms: int | None = None
        self.largest_ms: int | None = None
        self.unreadable = False

    def note(self, first_offset: int, count: int, timestamp_ms: int) -> None:
        """Record that ``count`` records from ``first_offset`` carry ``timestamp_ms`` (>= 1)."""
        with self._lock:  # on every append: _merge inlined
            if first_offset != self.covered:
                return  # a gap (records appended unnoted): a later scan fills it
            self.covered = first_offset + count
            if self.first_ms is None:
                self.first_ms = timestamp_ms
            if self.largest_ms is None or timestamp_ms > self.largest_ms:
                self.largest_ms = timestamp_ms

    def _merge(self, end: int, first_ms: int | None, largest_ms: int | None) -> None:
        """Fold in what is known of ``[start, end)`` for a ``start <= covered`` (holds the lock).

        Both parts start at or before ``covered``, so the first non-zero timestamp of their
        union is the one already known, or else the new part's.
        """
        self.covered = max(self.covered, end)
        if self.first_ms is None and first_ms:
            self.first_ms = first_ms
        if largest_ms and (self.largest_ms is None or largest_ms > self.largest_ms):
            self.largest_ms = largest_ms

    def learn(self, segment: Segment, end: int, *, first_only: bool = False) -> None:
        """Scan the records of ``segment`` from ``covered`` up to offset ``end`` (with
        ``first_only``, only until a first timestamp is known).

        Records the index cannot reach (below a sealed segment's end) or that fail their
        checks mark the segment unreadable; a segment closed under the scan (removed by a
        concurrent truncation) leaves everything as it was.
        """
        offset = self.covered
        readable_end = min(end, segment.next_offset)
        first_ms: int | None = None
        largest = 0
        unreadable = readable_end < end
        try:
            while offset < readable_end:
                count = min(_SCAN_RECORDS, readable_end - offset)
                payloads = segment.read_payloads(offset, count, _SCAN_BYTES)
                for record in decode_records(payloads):
                    stamp = record.timestamp_ms
                    if stamp and first_ms is None:
                        first_ms = stamp
                    largest = max(largest, stamp)
                offset += len(payloads)
                if first_only and (first_ms or self.first_ms):
                    break
        except (OSError, ValueError):
            return  # closed or removed under us: nothing learnt
        except Exception:
            unreadable = True
        with self._lock:  # ``covered`` only grows, so it is still >= start
            self._merge(offset, first_ms, largest or None)
            if unreadable:
                self.unreadable = True
                self.covered = max(self.covered, end)

    def known(self, end: int) -> bool:
        """Whether scanning up to ``end`` would learn nothing more."""
        with self._lock:
            return self.unreadable or self.covered >= end

    def largest_known(self, end: int) -> int | None:
        """The largest timestamp over ``[base, end)``, or None when it is not known (not
        scanned that far, no record with a timestamp, or a record unreadable)."""
        with self._lock:
            if self.unreadable or self.covered < end:
                return None
            return self.largest_ms
