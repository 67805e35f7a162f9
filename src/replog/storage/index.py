"""Index: a segment's memory-mapped table from relative offset to store position.

Entries are 12 bytes, ``(u32 offset relative to the segment's base, u64 store position)``,
big-endian, one per record in offset order, so entry ``i`` describes relative offset ``i``.
While its segment is active the file is pre-sized (and its blocks reserved) ahead of its
entries, growing by doubling from ``_FIRST_MAP_BYTES`` up to ``max_index_bytes`` (a
partition that holds a few records reserves 48 KiB, not 12 MiB: thousands of partitions
on one disk), and it is trimmed to its entries when the segment is sealed or closed
cleanly. Only the active segment's index is mapped; a sealed one is read with pread, which
keeps resident memory flat however many segments a log has. The index is derived data: the
Segment checks it against the store on open and rebuilds it from the store when it does not
match.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from replog.storage.files import FileHandle, FileSystem, MappedFile

__all__ = ["ENTRY_BYTES", "Index"]

ENTRY = struct.Struct(">IQ")
ENTRY_BYTES = ENTRY.size
_FIRST_MAP_BYTES = ENTRY_BYTES * 4096


_CHECK_ENTRIES = 1 << 16


class Index:
    """A fixed-entry offset index over a memory map.

    ``entries`` is the number of valid entries; it is set by the owner after verification
    (``structural_entries()`` gives the candidate count read from the file).
    Not task-safe for writers; reads of entries below ``entries`` may run concurrently.
    """

    def __init__(self, fs: FileSystem, path: str, max_bytes: int, *, sealed: bool) -> None:
        self.path = path
        self._fs = fs
        self.max_bytes = max_bytes
        existed = fs.exists(path)
        self.file_bytes_on_open = fs.file_size(path) if existed else 0
        self.existed = existed
        self.entries = 0
        # The active index is memory-mapped; a sealed one is read with pread, so a large
        # log's resident memory does not grow with its number of segments.
        self._map: MappedFile | None = None
        self._file: FileHandle | None = None
        self._mapped_bytes = 0
        if sealed and existed:
            self._use_file()
        else:
            self._remap(max(min(max_bytes, _FIRST_MAP_BYTES), self.file_bytes_on_open))

    @property
    def max_entries(self) -> int:
        """How many entries the mapped file holds now."""
        return self._mapped_bytes // ENTRY_BYTES

    @property
    def capacity(self) -> int:
        """How many entries the index may hold (the mapped file grows up to this)."""
        return max(self.max_bytes, self._mapped_bytes) // ENTRY_BYTES

    def _make_room(self, entries: int) -> None:
        """Grow the mapped file (doubling, at most to ``capacity``) to hold ``entries``."""
        if entries <= self.max_entries:
            return
        if entries > self.capacity:
            raise ValueError("index append past its end")
        size = min(self.capacity, max(entries, 2 * self.max_entries)) * ENTRY_BYTES
        # The old map is dropped, not closed: a concurrent reader may still hold it (it
        # reads only entries below ``entries``, the same bytes of the same file).
        self._map = self._fs.map(self.path, size)
        self._mapped_bytes = size

    @property
    def is_full(self) -> bool:
        """True when no entry can be added."""
        return self.entries >= self.max_bytes // ENTRY_BYTES

    def _use_file(self) -> None:
        """Read entries with pread from now on and let go of the map."""
        if self._file is None:
            self._file = self._fs.open(self.path)
        self._mapped_bytes = self._file.size() // ENTRY_BYTES * ENTRY_BYTES
        # Dropped, not closed: a concurrent reader may still hold it; it is unmapped when
        # the last reference goes.
        self._map = None

    def _read(self, start: int, size: int) -> bytes | bytearray:
        mapped = self._map
        if mapped is not None:
            return mapped.buffer[start : start + size]
        file = self._file
        if file is None:  # closed: a reader raced the segment's removal
            raise ValueError(f"the index {self.path} is closed")
        return file.pread(size, start)

    def _remap(self, size: int) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None
        if self._file is not None:
            self._file.close()
            self._file = None
        size -= size % ENTRY_BYTES
        self._mapped_bytes = size
        if size == 0:
            # An empty file cannot be mapped; an index with no entries needs no map.
            self._fs.resize(self.path, 0)
            return
        self._map = self._fs.map(self.path, size)

    def structural_entries(self) -> int:
        """Count the leading entries whose relative offset equals their slot number.

        A crash leaves a zero-filled tail in a pre-sized index; entry ``i >= 1`` of zeros
        says relative offset 0, so it fails the test. Entries are dense, so the valid
        prefix is found by binary search.
        """
        low, high = 0, self.max_entries
        while low < high:
            middle = (low + high) // 2
            if self._relative(middle) == middle:
                low = middle + 1
            else:
                high = middle
        return low

    def dense_prefix(self, limit: int) -> int:
        """Count the leading entries, of the first ``limit``, whose relative offset equals
        their slot, checking every one. ``structural_entries`` assumes the valid entries
        are one prefix; a power cut after ``truncate`` (which zeroes entries in the map) may
        keep a valid entry behind a zeroed one, and only this check sees it."""
        checked = 0
        while checked < limit:
            count = min(_CHECK_ENTRIES, limit - checked)
            raw = self._read(checked * ENTRY_BYTES, count * ENTRY_BYTES)
            relatives = struct.unpack(f">{'IQ' * count}", raw)[0::2]
            if relatives != tuple(range(checked, checked + count)):
                return checked + next(i for i, r in enumerate(relatives) if r != checked + i)
            checked += count
        return checked

    def _relative(self, slot: int) -> int:
        relative: int = ENTRY.unpack(self._read(slot * ENTRY_BYTES, ENTRY_BYTES))[0]
        return relative

    def position(self, relative: int) -> int:
        """Return the store position of entry ``relative`` (< ``entries``)."""
        slot, position = ENTRY.unpack(self._read(relative * ENTRY_BYTES, ENTRY_BYTES))
        if slot != relative:
            raise IndexError(f"index entry {relative} names relative offset {slot}")
        result: int = position
        return result

    def positions(self, first: int, count: int) -> list[int]:
        """Return the store positions of ``count`` entries from ``first``."""
        raw = self._read(first * ENTRY_BYTES, count * ENTRY_BYTES)
        values = struct.unpack(f">{'IQ' * count}", raw)
        # Pair check at both ends of the run: entries are dense, so a misplaced run shows there.
        if count and (values[0] != first or values[-2] != first + count - 1):
            raise IndexError(f"index entries {first}..{first + count - 1} are out of place")
        return list(values[1::2])

    def append_one(self, position: int) -> None:
        """Write the next entry, for the record at store ``position``."""
        self._make_room(self.entries + 1)
        assert self._map is not None
        ENTRY.pack_into(self._map.buffer, self.entries * ENTRY_BYTES, self.entries, position)
        self.entries += 1

    def append_many(self, first_relative: int, positions: Sequence[int]) -> None:
        """Write entries for ``positions`` from relative offset ``first_relative``."""
        count = len(positions)
        if first_relative != self.entries:
            raise ValueError("index append out of order")
        self._make_room(self.entries + count)
        assert self._map is not None
        flat: list[int] = []
        for i, position in enumerate(positions):
            flat.append(first_relative + i)
            flat.append(position)
        start = self.entries * ENTRY_BYTES
        self._map.buffer[start : start + count * ENTRY_BYTES] = struct.pack(
            f">{'IQ' * count}", *flat
        )
        self.entries += count

    def truncate(self, entries: int) -> None:
        """Forget entries from ``entries`` on (their bytes are zeroed)."""
        if entries < self.entries and self._map is not None:
            start = entries * ENTRY_BYTES
            end = self.entries * ENTRY_BYTES
            self._map.buffer[start:end] = bytes(end - start)
        self.entries = entries

    def sync(self) -> None:
        """Make the entries durable (msync)."""
        if self._map is not None:
            self._map.flush()

    def seal(self) -> None:
        """Make the entries durable, trim the file to them (giving back its preallocated
        blocks) and switch to reading them with pread (no more appends)."""
        self.sync()
        # The file is opened before the map goes: a concurrent reader always finds one.
        if self._file is None:
            self._file = self._fs.open(self.path)
        # The map is dropped, not closed (a concurrent reader may hold it); it only reads
        # entries below ``entries``, which stay inside the trimmed file.
        self._map = None
        self._fs.resize(self.path, self.entries * ENTRY_BYTES)
        self._use_file()

    def unseal(self) -> None:
        """Map the file again (grown ahead of its entries) so the segment can take appends."""
        first = min(self.max_bytes, _FIRST_MAP_BYTES)
        self._remap(max(first, min(self.max_bytes, 2 * self.entries * ENTRY_BYTES)))

    def release(self) -> None:
        """Close the file or map without touching the path (the segment's files are gone)."""
        if self._map is not None:
            self._map.close()
            self._map = None
        if self._file is not None:
            self._file.close()
            self._file = None

    def close(self) -> None:
        """Trim the file to its entries and unmap it; a trimmed index marks a clean close."""
        self.sync()
        self.release()
        if self._fs.exists(self.path):
            self._fs.resize(self.path, self.entries * ENTRY_BYTES)
