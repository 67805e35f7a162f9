"""A compact map from 64-bit key hashes to offsets: open addressing in ``array``s.

Pure (no I/O). 16 bytes a slot (the hash, the offset) in 64 shards, each its own table
with linear probing that doubles past 3/4 full, so a resize copies one shard at a time
(a single table would briefly need its old and its new arrays: 1.5x the memory). Hash 0
marks an empty slot, so callers never pass 0. An offset of -1 in a used slot means "no
record" (an insert undone by a truncation); the slot is kept, as removing a slot from a
linear-probing table would need the cluster behind it re-placed.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Sequence
from typing import TypeAlias

__all__ = ["SHARD_BITS", "KeyTable", "Shard"]

SHARD_BITS = 6
_SHARDS = 1 << SHARD_BITS
_SHARD_MASK = _SHARDS - 1
_MIN_SLOTS = 1 << 8
_EMPTY_HASHES = array("Q", [0])
_NO_OFFSETS = array("q", [-1])

#: One shard as stored: its hashes and offsets (equal lengths, a power of two) and the
#: number of used slots.
Shard: TypeAlias = "tuple[array[int], array[int], int]"


def _limit(slots: int) -> int:
    return slots * 3 // 4


def _slots_for(keys: int) -> int:
    slots = _MIN_SLOTS
    while _limit(slots) < keys:
        slots *= 2
    return slots


class KeyTable:
    """Hash -> offset for millions of keys in 16 bytes a slot (about 27 a key at 10M)."""

    __slots__ = ("_counts", "_limits", "_shards")

    def __init__(self, capacity_hint: int = 0, shards: Sequence[Shard] | None = None) -> None:
        if shards is None:
            slots = _slots_for(capacity_hint // _SHARDS + 1)
            shards = [(_EMPTY_HASHES * slots, _NO_OFFSETS * slots, 0) for _ in range(_SHARDS)]
        if len(shards) != _SHARDS:
            raise ValueError(f"a key table has {_SHARDS} shards, got {len(shards)}")
        for hashes, offsets, count in shards:
            size = len(hashes)
            if size < 1 or size & (size - 1) or len(offsets) != size or not 0 <= count < size:
                raise ValueError("a key table shard has a wrong size or count")
        # Per shard (hashes, offsets, mask): one tuple, so a probe indexes one list.
        self._shards = [(hashes, offsets, len(hashes) - 1) for hashes, offsets, _ in shards]
        self._counts = [count for _, _, count in shards]
        self._limits = [_limit(len(hashes)) for hashes, _, _ in shards]

    @property
    def used_slots(self) -> int:
        """How many slots hold a hash (keys seen, counting keys that share a hash once)."""
        return sum(self._counts)

    @property
    def slots(self) -> int:
        """How many slots the shards hold in all (16 bytes each)."""
        return sum(mask + 1 for _, _, mask in self._shards)

    def shards(self) -> Iterator[Shard]:
        """Each shard's arrays (live, not copies) and used-slot count, for a checkpoint."""
        for (hashes, offsets, _), count in zip(self._shards, self._counts, strict=True):
            yield hashes, offsets, count

    def get(self, h: int) -> int:
        """The offset stored for hash ``h``; -1 if none."""
        hashes, offsets, mask = self._shards[h & _SHARD_MASK]
        i = (h >> SHARD_BITS) & mask
        found = hashes[i]
        while found != h:
            if found == 0:
                return -1
            i = (i + 1) & mask
            found = hashes[i]
        return offsets[i]

    def put_many(self, hashes: Sequence[int], offsets: Sequence[int]) -> list[int]:
        """Store each ``offsets[i]`` for ``hashes[i]``, in order; return the offsets they
        replaced (-1 where there was none)."""
        previous: list[int] = []
        keep = previous.append
        shards, counts, limits = self._shards, self._counts, self._limits
        for h, offset in zip(hashes, offsets, strict=True):
            table, values, mask = shards[h & _SHARD_MASK]
            i = (h >> SHARD_BITS) & mask
            found = table[i]
            while found != h:
                if not found:
                    table[i] = h
                    values[i] = offset
                    keep(-1)
                    s = h & _SHARD_MASK
                    counts[s] += 1
                    if counts[s] > limits[s]:
                        self._grow(s)
                    break
                i = (i + 1) & mask
                found = table[i]
            else:
                keep(values[i])
                values[i] = offset
        return previous

    def restore(self, h: int, offset: int) -> None:
        """Set the offset of a hash already in the table (undoing a ``put_many``)."""
        hashes, offsets, mask = self._shards[h & _SHARD_MASK]
        i = (h >> SHARD_BITS) & mask
        while hashes[i] != h:
            if hashes[i] == 0:
                raise KeyError(h)
            i = (i + 1) & mask
        offsets[i] = offset

    def _grow(self, s: int) -> None:
        old_hashes, old_offsets, _ = self._shards[s]
        size = len(old_hashes) * 2
        mask = size - 1
        hashes = _EMPTY_HASHES * size
        offsets = _NO_OFFSETS * size
        for h, offset in zip(old_hashes, old_offsets, strict=True):
            if h:
                i = (h >> SHARD_BITS) & mask
                while hashes[i]:
                    i = (i + 1) & mask
                hashes[i] = h
                offsets[i] = offset
        self._shards[s] = (hashes, offsets, mask)
        self._limits[s] = _limit(size)
