"""Read-only inspection of a log directory, for ``replog log dump`` and ``replog log check``.

Like Kafka's ``kafka-dump-log``, this never opens the directory as a ``Log``: that takes the
directory lock and may repair (cut) a torn tail. It opens the segment files read-only and
parses them itself, so it works on a read-only copy and while a live server holds the log
open, and changes nothing. The formats are codec.py's frames and index.py's entries.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from replog.errors import CorruptRecordError, InvalidArgumentError
from replog.storage.codec import FRAME_HEADER as _FRAME
from replog.storage.codec import crc32c as _crc32c
from replog.storage.directory import SEGMENT_NAME as _SEGMENT_NAME
from replog.storage.index import ENTRY as _ENTRY
from replog.v1.record_pb2 import Record

__all__ = [
    "CheckReport",
    "Problem",
    "SegmentFiles",
    "check_log",
    "iter_records",
    "iter_stored",
    "list_segments",
]

_FRAME_BYTES = _FRAME.size
_ENTRY_BYTES = _ENTRY.size
_CHUNK_BYTES = 4 << 20
#: LogConfig caps max_record_bytes at 2**31; a longer length field is damage, not a frame.
_MAX_PAYLOAD_BYTES = 2**31


# -- the read-only reader ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SegmentFiles:
    """The files of one segment found in a log directory (either may be missing)."""

    base: int
    store_path: str | None
    index_path: str | None


def list_segments(directory: str) -> list[SegmentFiles]:
    """List the segments of ``directory`` by base offset, without opening or locking it.

    Raises InvalidArgumentError when ``directory`` is missing, not a directory or unreadable.
    """
    if not os.path.exists(directory):
        raise InvalidArgumentError(f"{directory}: no such directory")
    if not os.path.isdir(directory):
        raise InvalidArgumentError(f"{directory}: not a directory")
    try:
        names = os.listdir(directory)
    except OSError as exc:
        raise InvalidArgumentError(f"{directory}: cannot list: {exc.strerror}") from exc
    found: dict[int, dict[str, str]] = {}
    for name in names:
        match = _SEGMENT_NAME.match(name)
        if match:
            kinds = found.setdefault(int(match.group(1)), {})
            kinds[match.group(2)] = os.path.join(directory, name)
    return [
        SegmentFiles(base, kinds.get("store"), kinds.get("index"))
        for base, kinds in sorted(found.items())
    ]


@dataclass(slots=True)
class _Stop:
    """Why a frame scan ended: ``end``, ``torn``, ``zero_tail``, ``length`` or ``crc``."""

    reason: str = "end"
    position: int = 0
    detail: str = ""


class _StoreReader:
    """Reads frames from a store file opened ``O_RDONLY`` (up to its size when opened)."""

    def __init__(self, path: str, on_read: Callable[[int], None] | None = None) -> None:
        self.path = path
        try:
            self._fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise InvalidArgumentError(f"{path}: cannot open: {exc.strerror}") from exc
        self.size = os.fstat(self._fd).st_size
        self.stop = _Stop()
        self._on_read = on_read

    def __enter__(self) -> _StoreReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        os.close(self._fd)

    def _pread(self, size: int, position: int) -> bytes:
        data = os.pread(self._fd, size, position)
        if self._on_read is not None:
            self._on_read(len(data))
        return data

    def frame_at(self, position: int) -> bytes | None:
        """Return the CRC-valid payload of the frame at ``position``, or None."""
        header = os.pread(self._fd, _FRAME_BYTES, position)
        if len(header) < _FRAME_BYTES:
            return None
        length, crc = _FRAME.unpack(header)
        if not 0 < length <= min(_MAX_PAYLOAD_BYTES, self.size - position - _FRAME_BYTES):
            return None
        payload = os.pread(self._fd, length, position + _FRAME_BYTES)
        return payload if _crc32c(payload) == crc else None

    def frames(self, position: int = 0) -> Iterator[tuple[int, bytes]]:
        """Yield ``(position, payload)`` of each valid frame from ``position``.

        When the generator ends, ``self.stop`` says why: ``end`` (the file ended on a frame
        boundary), ``torn`` (it ends inside a frame), ``zero_tail`` (only zero bytes are
        left, as a crash can leave), ``length`` (an impossible length) or ``crc``.
        """
        end = self.size
        buffer = b""
        buffer_start = position
        while position < end:
            at = position - buffer_start
            if at + _FRAME_BYTES > len(buffer):
                buffer, buffer_start, at = self._pread(_CHUNK_BYTES, position), position, 0
                if len(buffer) < _FRAME_BYTES:
                    self.stop = _Stop("torn", position, "the store ends inside a frame header")
                    return
            length, crc = _FRAME.unpack_from(buffer, at)
            if length == 0 or length > _MAX_PAYLOAD_BYTES:
                if self._zeros_from(position):
                    self.stop = _Stop("zero_tail", position, f"{end - position} zero bytes")
                else:
                    self.stop = _Stop("length", position, f"impossible frame length {length}")
                return
            frame_end = position + _FRAME_BYTES + length
            if frame_end > end:
                self.stop = _Stop(
                    "torn", position, f"frame of {length} bytes runs past the end of the store"
                )
                return
            if at + _FRAME_BYTES + length > len(buffer):
                want = max(_CHUNK_BYTES, _FRAME_BYTES + length)
                buffer, buffer_start, at = self._pread(want, position), position, 0
            payload = buffer[at + _FRAME_BYTES : at + _FRAME_BYTES + length]
            if _crc32c(payload) != crc:
                self.stop = _Stop("crc", position, "CRC mismatch")
                return
            yield position, payload
            position = frame_end
        self.stop = _Stop("end", position)

    def _zeros_from(self, position: int) -> bool:
        while position < self.size:
            chunk = os.pread(self._fd, _CHUNK_BYTES, position)
            if not chunk or chunk.count(0) != len(chunk):
                return False
            position += len(chunk)
        return True


def _read_index(path: str | None) -> bytes:
    if path is None:
        return b""
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as exc:
        raise InvalidArgumentError(f"{path}: cannot read: {exc.strerror}") from exc


def _index_entry(path: str | None, relative: int) -> int | None:
    """Return the position index ``path`` gives for ``relative``, if its entry is well formed."""
    if path is None:
        return None
    try:
        with open(path, "rb") as file:
            file.seek(relative * _ENTRY_BYTES)
            raw = file.read(_ENTRY_BYTES)
    except OSError:
        return None
    if len(raw) < _ENTRY_BYTES:
        return None
    slot, position = _ENTRY.unpack(raw)
    return int(position) if slot == relative else None


def _record_offset(payload: bytes) -> int | None:
    try:
        return int(Record.FromString(payload).offset)
    except Exception:  # a CRC-valid payload that is not a Record: damage, whatever the parser says
        return None


def iter_records(directory: str, start: int | None = None) -> Iterator[tuple[Record, int]]:
    """Yield ``(record, store position)`` from offset ``start`` (the lowest when None); see
    ``iter_stored``."""
    for record, _, position in iter_stored(directory, start):
        yield record, position


def iter_stored(directory: str, start: int | None = None) -> Iterator[tuple[Record, bytes, int]]:
    """Yield ``(record, its stored payload, store position)`` from offset ``start`` (the
    lowest when None).

    Reads the segment files directly (no lock, no repair). A torn or zero tail of the last
    segment ends the iteration quietly (a writer may be mid-append, or it crashed).
    Raises InvalidArgumentError for a bad directory or an offset outside the log, and
    CorruptRecordError at the first frame that fails its checks.
    """
    segments = [s for s in list_segments(directory) if s.store_path is not None]
    if not segments:
        if start is not None and start != 0:
            raise InvalidArgumentError(f"offset {start} is out of range: the log is empty")
        return
    lowest = segments[0].base
    if start is None:
        start = lowest
    if start < lowest:
        raise InvalidArgumentError(f"offset {start} is below the lowest offset {lowest}")
    first = bisect.bisect_right([s.base for s in segments], start) - 1
    expected = segments[first].base
    for number, segment in enumerate(segments[first:], start=first):
        assert segment.store_path is not None
        if segment.base != expected and number != first:
            raise CorruptRecordError(expected, f"segment {segment.base} starts after a gap")
        expected = segment.base
        last = number == len(segments) - 1
        with _StoreReader(segment.store_path) as store:
            position = 0
            if start > expected:
                jump = _index_entry(segment.index_path, start - expected)
                if jump is not None:
                    payload = store.frame_at(jump)
                    if payload is not None and _record_offset(payload) == start:
                        position, expected = jump, start
            for frame_position, payload in store.frames(position):
                try:
                    record = Record.FromString(payload)
                except Exception as exc:
                    raise CorruptRecordError(
                        expected, f"payload at position {frame_position} does not parse"
                    ) from exc
                if record.offset != expected:
                    raise CorruptRecordError(
                        expected,
                        f"the frame at position {frame_position} of segment {segment.base} "
                        f"says offset {record.offset}",
                    )
                if expected >= start:
                    yield record, payload, frame_position
                expected += 1
            stop = store.stop
            if stop.reason != "end" and not (last and stop.reason in ("torn", "zero_tail")):
                raise CorruptRecordError(
                    expected,
                    f"{stop.detail} at position {stop.position} of segment {segment.base}",
                )
    if start > expected:
        raise InvalidArgumentError(
            f"offset {start} is out of range: valid offsets are {lowest}..{expected - 1}"
        )


# -- check ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding: where (segment base, offset, store position) and what."""

    segment: int
    offset: int | None
    position: int | None
    what: str


@dataclass(slots=True)
class CheckReport:
    """What ``check_log`` found. ``problems`` are corruption; ``notes`` are not."""

    segments: int = 0
    records: int = 0
    store_bytes: int = 0
    index_bytes: int = 0
    first_offset: int | None = None
    next_offset: int | None = None
    problems: list[Problem] = field(default_factory=list)
    notes: list[Problem] = field(default_factory=list)


def check_log(directory: str, on_read: Callable[[int], None] | None = None) -> CheckReport:
    """Verify every frame, offset and index entry of ``directory`` without changing it.

    ``on_read`` is called with the byte count of each chunk read (for a progress bar).
    Raises InvalidArgumentError when the directory cannot be read at all.
    """
    report = CheckReport()
    segments = list_segments(directory)
    expected: int | None = None
    stores = [s for s in segments if s.store_path is not None]
    for segment in segments:
        if segment.store_path is None:
            report.notes.append(
                Problem(segment.base, None, None, "index without a store (deleted on next open)")
            )
            continue
        report.segments += 1
        if expected is not None and segment.base != expected:
            gap = "missing" if segment.base > expected else "overlapping"
            report.problems.append(
                Problem(
                    segment.base,
                    expected,
                    None,
                    f"offsets are not contiguous: the previous segment ends at {expected - 1}, "
                    f"this one is named {segment.base} ({gap} records)",
                )
            )
        last = segment is stores[-1]
        expected = _check_segment(segment, last, report, on_read)
        if report.first_offset is None:
            report.first_offset = segment.base
    report.next_offset = expected
    return report


def _check_segment(
    segment: SegmentFiles,
    last: bool,
    report: CheckReport,
    on_read: Callable[[int], None] | None,
) -> int:
    """Check one segment, adding to ``report``; return the offset after its last record."""
    assert segment.store_path is not None
    base = segment.base
    # Store first, then index: a live writer fills the index before the store, so this
    # order can only see the index ahead of the store, never behind it.
    positions: list[int | None] = []
    index_raw: bytes | None = None
    with _StoreReader(segment.store_path, on_read) as store:
        report.store_bytes += store.size
        resume = 0
        while True:
            for position, payload in store.frames(resume):
                offset = base + len(positions)
                found = _record_offset(payload)
                if found != offset:
                    says = "does not parse" if found is None else f"says offset {found}"
                    report.problems.append(
                        Problem(base, offset, position, f"record {says}, expected {offset}")
                    )
                positions.append(position)
            stop = store.stop
            if stop.reason == "end":
                break
            if index_raw is None:
                index_raw = _read_index(segment.index_path)
            clean = not _presized(index_raw, len(positions))
            offset = base + len(positions)
            if stop.reason in ("torn", "zero_tail") and last and not clean:
                report.notes.append(
                    Problem(
                        base,
                        offset,
                        stop.position,
                        f"torn tail: {stop.detail} (a write in progress or a crash; "
                        "the next open cuts it)",
                    )
                )
                break
            report.problems.append(Problem(base, offset, stop.position, stop.detail))
            # Resynchronise at the next record through the index, when it knows where.
            relative = len(positions) + 1
            jump = _entry_position(index_raw, relative)
            if jump is None or jump <= stop.position or store.frame_at(jump) is None:
                report.problems.append(
                    Problem(
                        base,
                        offset,
                        stop.position,
                        f"the remaining {store.size - stop.position} bytes of the segment "
                        "cannot be read",
                    )
                )
                break
            positions.append(None)
            resume = jump
    if index_raw is None:
        index_raw = _read_index(segment.index_path)
    report.index_bytes += len(index_raw)
    report.records += sum(1 for p in positions if p is not None)
    if segment.index_path is None:
        report.notes.append(Problem(base, None, None, "index missing (rebuilt on next open)"))
    else:
        _check_index(base, index_raw, positions, last, report)
    return base + len(positions)


def _zero_tail_start(raw: bytes) -> int:
    """The first entry slot from which every entry is all zero bytes (entry 0 excepted)."""
    nonzero = len(raw.rstrip(b"\0"))
    return max(1, -(-nonzero // _ENTRY_BYTES)) if raw else 0


def _presized(raw: bytes, records: int) -> bool:
    """Whether an index is still pre-sized (not cleanly closed): it has more slots than the
    store has records, the extra ones zero. A clean close trims the index to its entries."""
    slots = len(raw) // _ENTRY_BYTES
    return slots > records and _zero_tail_start(raw) < slots


def _entry_position(raw: bytes, relative: int) -> int | None:
    if (relative + 1) * _ENTRY_BYTES > len(raw):
        return None
    slot, position = _ENTRY.unpack_from(raw, relative * _ENTRY_BYTES)
    return int(position) if slot == relative else None


def _check_index(
    base: int, raw: bytes, positions: list[int | None], last: bool, report: CheckReport
) -> None:
    records = len(positions)
    slots = len(raw) // _ENTRY_BYTES
    if len(raw) % _ENTRY_BYTES:
        report.problems.append(
            Problem(base, None, None, f"index size {len(raw)} is not a multiple of 12 bytes")
        )
    presized = _presized(raw, records)
    written = min(_zero_tail_start(raw), slots) if presized else slots
    if presized:
        report.notes.append(
            Problem(
                base,
                None,
                None,
                f"index not cleanly closed: {written} entries, then {slots - written} "
                "pre-sized zero slots" + ("" if last else " (in a sealed segment)"),
            )
        )
    elif slots != records:
        report.problems.append(
            Problem(
                base,
                base + min(slots, records),
                None,
                f"index has {slots} entries but the store has {records} records",
            )
        )
    _compare_entries(base, raw, positions, min(written, records), report)
    if presized and written > records:
        report.notes.append(
            Problem(
                base,
                base + records,
                None,
                f"index is {written - records} entries ahead of the store "
                "(a write in progress or a crash; rebuilt on next open)",
            )
        )
    elif presized and written < records:
        report.notes.append(
            Problem(
                base,
                base + written,
                None,
                f"index covers {written} of {records} records (rebuilt on next open)",
            )
        )


def _compare_entries(
    base: int, raw: bytes, positions: list[int | None], count: int, report: CheckReport
) -> None:
    """Check entries ``0..count-1`` against the frames found; report runs of mismatches."""
    run_start: int | None = None
    first_bad = ""

    def close_run(end: int) -> None:
        assert run_start is not None
        if end == run_start + 1:
            span = f"entry {run_start} disagrees"
        else:
            span = f"entries {run_start}..{end - 1} disagree"
        what = f"index {span} with the store: {first_bad}"
        report.problems.append(Problem(base, base + run_start, None, what))

    unpack_from = _ENTRY.unpack_from
    for i in range(count):
        expected = positions[i]
        slot, position = unpack_from(raw, i * _ENTRY_BYTES)
        bad = slot != i or (expected is not None and position != expected)
        if bad and run_start is None:
            run_start = i
            first_bad = f"entry {i} says ({slot}, {position}), the frame is at {expected}"
        elif not bad and run_start is not None:
            close_run(i)
            run_start = None
    if run_start is not None:
        close_run(count)
