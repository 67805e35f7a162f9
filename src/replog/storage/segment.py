"""Segment: one store file plus its index, covering a contiguous run of offsets."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

from replog.errors import CorruptRecordError
from replog.storage.codec import FRAME_HEADER, FRAME_HEADER_BYTES, decode_record, split_frames
from replog.storage.codec import encode_frames as _encode_frames
from replog.storage.files import FileSystem
from replog.storage.index import ENTRY_BYTES, Index
from replog.storage.store import Store, StoreCorruptionError
from replog.storage.timestamps import SegmentTimes

__all__ = ["Recovery", "Segment", "segment_paths"]

log = logging.getLogger("replog.storage")

STORE_SUFFIX = ".store"
INDEX_SUFFIX = ".index"


def segment_paths(directory: str, base_offset: int) -> tuple[str, str]:
    """Return the store and index paths of the segment starting at ``base_offset``.

    Names are zero-padded to 20 digits so that ``ls`` sorts them numerically (Kafka's rule).
    """
    stem = os.path.join(directory, f"{base_offset:020d}")
    return stem + STORE_SUFFIX, stem + INDEX_SUFFIX


@dataclass(frozen=True, slots=True)
class Recovery:
    """What opening a segment found: entries rebuilt and bytes cut from a torn tail."""

    entries_rebuilt: int = 0
    bytes_truncated: int = 0
    reason: str = ""


class Segment:
    """A store and an index named by the segment's base offset.

    The active (last) segment takes appends; sealed segments are read-only. On open the
    index is checked against the store and repaired from it; only an active segment has its
    torn or corrupt tail cut, since a sealed segment's records were all made durable when it
    was sealed. Not task-safe for writers; reads may run concurrently with one writer.
    """

    def __init__(
        self,
        fs: FileSystem,
        directory: str,
        base_offset: int,
        *,
        max_store_bytes: int,
        max_index_bytes: int,
        max_record_bytes: int,
        sealed_next_offset: int | None = None,
    ) -> None:
        self.base_offset = base_offset
        self.max_store_bytes = max_store_bytes
        self.max_record_bytes = max_record_bytes
        self._fs = fs
        self.store_path, self.index_path = segment_paths(directory, base_offset)
        self.store = Store(fs, self.store_path)
        sealed = sealed_next_offset is not None
        self.index = Index(fs, self.index_path, max_index_bytes, sealed=sealed)
        # For a sealed segment, where the next segment starts: offsets below it that the
        # index cannot reach were lost to corruption, not out of range.
        self.sealed_next_offset = sealed_next_offset
        self.recovery = self._recover_sealed() if sealed else self._recover_active()
        self.times = SegmentTimes(base_offset)

    # -- recovery -------------------------------------------------------------------------

    def _frame_ok(self, relative: int, store_size: int) -> bool:
        """Whether index entry ``relative`` points at a whole, valid frame of that offset."""
        try:
            position = self.index.position(relative)
            if position + FRAME_HEADER_BYTES > store_size:
                return False
            payload = self.store.read(position)
        except (IndexError, StoreCorruptionError):
            return False
        try:
            return decode_record(payload).offset == self.base_offset + relative
        except Exception:  # a payload that is not a Record is damage, whatever the parser says
            return False

    def _last_good_entry(self, candidates: int, store_size: int) -> int:
        """Return how many leading index entries are trustworthy (checking from the end)."""
        # Entries past the end of the store (a crash persisted the index, not the store).
        low, high = 0, candidates
        while low < high:
            middle = (low + high) // 2
            if self.index.position(middle) + FRAME_HEADER_BYTES <= store_size:
                low = middle + 1
            else:
                high = middle
        count = low
        while count > 0 and not self._frame_ok(count - 1, store_size):
            count -= 1
        return count

    def _scan_from(self, entries: int) -> tuple[list[int], int, str]:
        """Scan the store after entry ``entries - 1``; return new positions, end, stop reason."""
        if entries == 0:
            start = 0
        else:
            position = self.index.position(entries - 1)
            length = FRAME_HEADER.unpack(self.store.read_at(FRAME_HEADER_BYTES, position))[0]
            start = position + FRAME_HEADER_BYTES + length
        found = self.store.scan(start, self.max_record_bytes)
        positions: list[int] = []
        expected = self.base_offset + entries
        stop = found.stop
        for position, payload in zip(found.positions, found.payloads, strict=True):
            try:
                offset = decode_record(payload).offset
            except Exception:
                offset = -1
            if offset != expected:
                stop = "corrupt"
                break
            positions.append(position)
            expected += 1
        end = (
            found.end if len(positions) == len(found.positions) else found.positions[len(positions)]
        )
        return positions, end, stop

    def _recover_active(self) -> Recovery:
        store_size = self.store.size
        if not store_size and not self.index.file_bytes_on_open:
            # A new segment: nothing to recover, and nothing of its fresh (sparse) index is
            # read; reading it cost ~5 ms a segment, which thousands of partitions pay.
            return Recovery()
        # Every entry checked, not only a binary search's probes: the active segment is the
        # one a truncate zeroed entries of, which a power cut may have half kept.
        candidates = self.index.dense_prefix(self.index.structural_entries())
        good = self._last_good_entry(candidates, store_size)
        positions, end, stop = self._scan_from(good)
        self.index.truncate(good)
        room = self.index.capacity - good
        self.index.append_many(good, positions[:room])
        cut = store_size - end
        if len(positions) > room:  # only after max_index_bytes shrank between runs
            cut = store_size - positions[room]
        if cut:
            self.store.truncate(store_size - cut)
            log.warning(
                "segment %d: cut %d bytes of torn or corrupt tail (%s) after offset %d",
                self.base_offset,
                cut,
                stop,
                self.next_offset - 1,
            )
        rebuilt = self.index.entries - min(good, candidates)
        if rebuilt and self.index.existed:
            log.info("segment %d: rebuilt %d index entries", self.base_offset, rebuilt)
        return Recovery(rebuilt, cut, stop if cut else "")

    def _recover_sealed(self) -> Recovery:
        assert self.sealed_next_offset is not None
        expected = self.sealed_next_offset - self.base_offset
        store_size = self.store.size
        candidates = min(self.index.structural_entries(), expected)
        if candidates == expected and (
            expected == 0 or self.index.position(expected - 1) < store_size
        ):
            self.index.entries = expected
            return Recovery()
        # The index is short or damaged: rebuild it from the store, cutting nothing; a
        # record the scan cannot reach stays unreadable (CorruptRecordError), never wrong.
        good = self._last_good_entry(candidates, store_size)
        positions, _, stop = self._scan_from(good)
        positions = positions[: expected - good]
        self.index.unseal()
        self.index.truncate(good)
        self.index.append_many(good, positions)
        self.index.seal()
        if self.index.entries < expected:
            log.error(
                "segment %d: offsets %d..%d are unreadable (%s)",
                self.base_offset,
                self.next_offset,
                self.sealed_next_offset - 1,
                stop,
            )
        return Recovery(self.index.entries - min(good, candidates), 0, stop)

    # -- state ----------------------------------------------------------------------------

    @property
    def next_offset(self) -> int:
        """The offset after the last readable record of this segment."""
        return self.base_offset + self.index.entries

    @property
    def end_offset(self) -> int:
        """The offset after this segment's range (a sealed segment's next segment base)."""
        if self.sealed_next_offset is not None:
            return self.sealed_next_offset
        return self.next_offset

    @property
    def is_full(self) -> bool:
        """True when the store or the index has no room for another record."""
        return self.store.size >= self.max_store_bytes or self.index.is_full

    def room_for_one(self, size: int) -> bool:
        """Whether one more payload of ``size`` bytes fits."""
        return (
            not self.index.is_full
            and self.store.size + FRAME_HEADER_BYTES + size <= self.max_store_bytes
        ) or self.index.entries == 0

    def room_for(self, sizes: Sequence[int]) -> int:
        """How many of the leading payloads of ``sizes`` fit in this segment (at least one
        when the segment is empty, so that a record never waits forever for room)."""
        entries_left = self.index.max_bytes // ENTRY_BYTES - self.index.entries
        bytes_left = self.max_store_bytes - self.store.size
        if (
            len(sizes) <= entries_left
            and sum(sizes) + FRAME_HEADER_BYTES * len(sizes) <= bytes_left
        ):
            return len(sizes)
        count = 0
        for size in sizes:
            need = FRAME_HEADER_BYTES + size
            if count >= entries_left or need > bytes_left:
                break
            bytes_left -= need
            count += 1
        if count == 0 and self.index.entries == 0 and entries_left > 0 and sizes:
            return 1
        return count

    # -- appends and reads -----------------------------------------------------------------

    def append_payloads(self, payloads: Sequence[bytes]) -> None:
        """Buffer frames for ``payloads`` at this segment's next offsets and index them.

        The caller flushes the store; the entries are visible to readers only once the
        Log publishes its new next offset.
        """
        if len(payloads) == 1:
            self.index.append_one(self.store.append(payloads[0])[1])
            return
        frames, starts = _encode_frames(payloads)
        position = self.store.append_frames(frames)
        self.index.append_many(self.index.entries, [position + start for start in starts])

    def _span(self, relative: int) -> tuple[int, int]:
        """Return the position and total frame size of entry ``relative``."""
        position = self.index.position(relative)
        if relative + 1 < self.index.entries:
            return position, self.index.position(relative + 1) - position
        return position, self.store.flushed_size - position

    def _check_readable(self, offset: int) -> int:
        relative = offset - self.base_offset
        if relative >= self.index.entries:
            raise CorruptRecordError(offset, "its index entry could not be rebuilt from the store")
        return relative

    def read_payload(self, offset: int) -> bytes:
        """Return the CRC-checked payload of ``offset`` (base <= offset < end_offset)."""
        relative = self._check_readable(offset)
        try:
            position, size = self._span(relative)
            return self.store.read(position, size)
        except (IndexError, StoreCorruptionError) as exc:
            raise CorruptRecordError(offset, str(exc)) from exc

    def _end_of(self, relative: int) -> int:
        """The store position where entry ``relative - 1``'s frame ends."""
        if relative < self.index.entries:
            return self.index.position(relative)
        return self.store.flushed_size

    def read_frames(self, offset: int, max_records: int, max_bytes: int) -> tuple[bytes, int]:
        """Return the raw frames from ``offset`` and how many records they hold: at least
        one, then up to ``max_records`` while the frames stay within ``max_bytes``."""
        relative = self._check_readable(offset)
        count = min(max_records, self.index.entries - relative)
        try:
            first = self.index.position(relative)
            end = self._end_of(relative + count)
            if count > 1 and end - first > max_bytes:
                low, high = 1, count  # the most records whose frames fit, by binary search
                while low < high:
                    middle = (low + high + 1) // 2
                    if self._end_of(relative + middle) - first <= max_bytes:
                        low = middle
                    else:
                        high = middle - 1
                count = low
                end = self._end_of(relative + count)
        except IndexError as exc:
            raise CorruptRecordError(offset, str(exc)) from exc
        return self.store.read_at(end - first, first), count

    def read_payloads(self, offset: int, max_records: int, max_bytes: int) -> list[bytes]:
        """Like ``read_frames``, cut into CRC-checked payloads."""
        data, count = self.read_frames(offset, max_records, max_bytes)
        return split_frames(data, offset, count)

    # -- lifecycle ---------------------------------------------------------------------------

    def truncate_after(self, offset: int) -> None:
        """Drop every record after ``offset`` (``base_offset - 1`` empties the segment)."""
        keep = offset + 1 - self.base_offset
        size = 0 if keep == 0 else sum(self._span(keep - 1))
        if self.sealed_next_offset is not None:
            self.sealed_next_offset = None
            self.index.unseal()
        self.index.truncate(keep)
        self.index.sync()
        self.store.truncate(size)
        self.times = SegmentTimes(self.base_offset)  # it may have seen records now gone

    def seal(self) -> None:
        """Make the segment durable and read-only (its index is trimmed on close)."""
        self.store.sync()
        self.index.seal()
        self.sealed_next_offset = self.next_offset

    def sync(self) -> None:
        """fsync the store (the index is rebuilt from it after a crash)."""
        self.store.sync()

    def close(self) -> None:
        """Flush the store and close both files, trimming the index (a clean close)."""
        try:
            self.store.close()
        finally:
            self.index.close()

    def remove(self) -> None:
        """Close the segment and delete its files."""
        self.close()
        self._fs.remove(self.store_path)
        self._fs.remove(self.index_path)

    def unlink(self) -> None:
        """Delete the segment's files but keep them open: a reader that picked this segment
        just before its removal still reads it (``release`` closes the files later)."""
        self._fs.remove(self.store_path)
        self._fs.remove(self.index_path)

    def release(self) -> None:
        """Close the files of an unlinked segment (no flush, no trim: its names are gone and
        may already belong to a new segment)."""
        try:
            self.store.release()
        finally:
            self.index.release()
