"""Retention: which of a log's oldest segments may go, by age and by size (as Kafka decides).

Pure: no I/O, no clock. ``Log.apply_retention`` feeds it ``Log.segments()`` and deletes what
it answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from replog.errors import InvalidArgumentError

__all__ = ["RetentionResult", "SegmentInfo", "check_retention_limits", "segments_to_delete"]

_MAX_LIMIT = 2**63 - 1


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """One segment of a log: offsets ``[base_offset, next_offset)``, the bytes of its store,
    its largest record timestamp (None when not known: no record carries one, or one cannot
    be read) and whether it is sealed (every segment but the last, the active one)."""

    base_offset: int
    next_offset: int
    size_bytes: int
    max_timestamp_ms: int | None
    sealed: bool


@dataclass(frozen=True, slots=True)
class RetentionResult:
    """What a retention pass removed (segments, and the bytes of their store files, as
    ``Log.size_bytes`` counts them) and the log's first offset after it."""

    segments_deleted: int
    bytes_deleted: int
    lowest_offset: int


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_retention_limits(
    *, retention_ms: object, retention_bytes: object, keep_from: object
) -> None:
    """Raise InvalidArgumentError unless each limit is None, -1 or 0..2**63-1 and
    ``keep_from`` is an offset."""
    for name, value in (("retention_ms", retention_ms), ("retention_bytes", retention_bytes)):
        if value is None:
            continue
        if not _is_int(value) or not -1 <= value <= _MAX_LIMIT:  # type: ignore[operator]
            raise InvalidArgumentError(
                f"{name} must be None, -1 (no limit) or between 0 and {_MAX_LIMIT}, got {value!r}"
            )
    if not _is_int(keep_from) or keep_from < 0:  # type: ignore[operator]
        raise InvalidArgumentError(f"keep_from must be an offset, got {keep_from!r}")


def segments_to_delete(
    segments: Sequence[SegmentInfo],
    *,
    now_ms: int,
    retention_ms: int | None,
    retention_bytes: int | None,
    keep_from: int,
) -> int:
    """How many segments from the front of ``segments`` (oldest first) retention deletes.

    A segment goes when its largest timestamp is older than ``now_ms - retention_ms``, or
    when the log (every segment, the active one too) minus it still holds at least
    ``retention_bytes``, counting what goes before it as gone. Only a prefix of sealed
    segments goes, never the last (active) one, and never one with an offset at or above
    ``keep_from`` (the first offset that must stay, e.g. the commit index). A limit of None
    or -1 is no limit. Raises InvalidArgumentError for a limit of the wrong type or range.
    """
    check_retention_limits(
        retention_ms=retention_ms, retention_bytes=retention_bytes, keep_from=keep_from
    )
    if not _is_int(now_ms):
        raise InvalidArgumentError(f"now_ms must be an integer, got {now_ms!r}")
    by_time = retention_ms is not None and retention_ms != -1
    by_size = retention_bytes is not None and retention_bytes != -1
    if not (by_time or by_size):
        return 0
    too_old = now_ms - retention_ms if retention_ms is not None else 0
    remaining = sum(segment.size_bytes for segment in segments)
    count = 0
    for segment in segments[:-1]:
        if not segment.sealed or segment.next_offset > keep_from:
            break
        stamp = segment.max_timestamp_ms
        expired = by_time and stamp is not None and stamp < too_old
        # Kafka's rule (UnifiedLog.deleteRetentionSizeBreachedSegments): delete while the
        # size left after the deletion is still at least the limit.
        oversized = by_size and remaining - segment.size_bytes >= (retention_bytes or 0)
        if not (expired or oversized):
            break
        remaining -= segment.size_bytes
        count += 1
    return count
