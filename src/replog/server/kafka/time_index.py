"""ListOffsets by timestamp: the earliest offset whose record's timestamp is at or after
the one asked for, as Kafka answers it, whatever order the stored timestamps are in.

replog stamps each record with its leader's wall clock when it is appended, and a clock
can step back (an NTP correction, a new leader whose clock is behind), so timestamps along
a partition are not sorted and a binary search over the records can miss the answer.
Kafka's answer is its time index: the largest timestamp so far at sparse positions. This
is the same idea at the edge: per partition, the largest timestamp of each block of about
``BLOCK_RECORDS`` records, learnt once by reading forward from where it was last learnt
(at most ``READ_RECORDS`` records a read, yielding to the event loop between reads). A
lookup binary-searches the running maximum of the blocks for the first block that holds
a timestamp at or after the target and decodes that one block only.

The index lives in memory for ``max_partitions`` partitions (the least recently asked are
forgotten); a restart learns it again on the first lookup by time."""

from __future__ import annotations

import asyncio
import bisect
import itertools
from collections import OrderedDict
from dataclasses import dataclass, field

from replog.api.backend import LogBackend
from replog.storage.codec import decode_records

__all__ = ["BLOCK_RECORDS", "TimeIndexes"]

BLOCK_RECORDS = 1000
"""Records per block of the index: a lookup decodes about this many (at most twice)."""
READ_RECORDS = 1000
_READ_BYTES = 8 << 20


@dataclass(slots=True)
class _Blocks:
    """What is known of one partition's timestamps below ``covered``: block ``i`` starts
    at ``starts[i]`` (ends where the next starts, the last at ``covered``), its largest
    timestamp is ``largest[i]`` and ``running[i]`` is the largest of blocks ``0..i``."""

    backend: LogBackend
    covered: int
    starts: list[int] = field(default_factory=list)
    largest: list[int] = field(default_factory=list)
    running: list[int] = field(default_factory=list)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def end(self, block: int) -> int:
        """The offset after block ``block``."""
        return self.starts[block + 1] if block + 1 < len(self.starts) else self.covered

    def note(self, start: int, end: int, largest: int) -> None:
        """Records ``[start, end)`` (``start == covered``) have ``largest`` as their largest
        timestamp: they grow the last block while it is short, else start one."""
        if self.starts and self.covered - self.starts[-1] < BLOCK_RECORDS:
            self.largest[-1] = max(self.largest[-1], largest)
            self.running[-1] = max(self.running[-1], largest)
        else:
            self.starts.append(start)
            self.largest.append(largest)
            self.running.append(max(largest, self.running[-1] if self.running else largest))
        self.covered = end

    def forget_below(self, lowest: int) -> None:
        """Drop the blocks wholly below ``lowest`` (deleted by retention)."""
        gone = bisect.bisect_right(self.starts, lowest) - 1
        if gone <= 0:
            return
        del self.starts[:gone], self.largest[:gone]
        self.running = list(itertools.accumulate(self.largest, max))


class TimeIndexes:
    """The timestamp index of each partition asked by time (see the module docstring)."""

    def __init__(self, max_partitions: int = 1024) -> None:
        """At most ``max_partitions`` partitions are indexed at once."""
        self._max_partitions = max_partitions
        self._indexes: OrderedDict[tuple[str, int], _Blocks] = OrderedDict()

    async def offset_for(
        self, topic: str, partition: int, backend: LogBackend, timestamp: int
    ) -> tuple[int, int]:
        """The (timestamp, offset) of the earliest readable record of ``backend`` whose
        timestamp is at or after ``timestamp``; (-1, -1) when none is.

        Raises what the backend's reads raise (ReplogError)."""
        blocks = self._blocks(topic, partition, backend)
        async with blocks.lock:
            lowest = backend.lowest_offset
            await _learn(blocks, lowest, backend.high_watermark)
            blocks.forget_below(lowest)
            block = bisect.bisect_left(blocks.running, timestamp)
            for candidate in range(block, len(blocks.starts)):
                if blocks.largest[candidate] < timestamp:
                    continue
                start = max(blocks.starts[candidate], lowest)
                found = _first_at_or_after(backend, start, blocks.end(candidate), timestamp)
                if found is not None:
                    return found
                # Only the first block can miss: its largest was a record retention deleted.
        return -1, -1

    def _blocks(self, topic: str, partition: int, backend: LogBackend) -> _Blocks:
        key = (topic, partition)
        blocks = self._indexes.get(key)
        if blocks is None or blocks.backend is not backend:  # new, or deleted and made again
            blocks = _Blocks(backend, backend.lowest_offset)
            self._indexes[key] = blocks
        self._indexes.move_to_end(key)
        while len(self._indexes) > self._max_partitions:
            self._indexes.popitem(last=False)
        return blocks


async def _learn(blocks: _Blocks, lowest: int, high: int) -> None:
    """Read ``blocks``' partition from what it covers to ``high`` into its blocks."""
    if high < blocks.covered or lowest > blocks.covered:  # rewritten, or deleted past it
        blocks.starts, blocks.largest, blocks.running = [], [], []
        blocks.covered = lowest
    while blocks.covered < high:
        start = blocks.covered
        payloads, next_offset = blocks.backend.read_from(start, READ_RECORDS, _READ_BYTES)
        end = max(next_offset, start + 1)
        if payloads:
            blocks.note(start, end, max(r.timestamp_ms for r in decode_records(payloads)))
        else:
            blocks.covered = end
        await asyncio.sleep(0)  # a long first read must not stall every connection


def _first_at_or_after(
    backend: LogBackend, start: int, end: int, timestamp: int
) -> tuple[int, int] | None:
    offset = start
    while offset < end:
        payloads, next_offset = backend.read_from(
            offset, min(READ_RECORDS, end - offset), _READ_BYTES
        )
        for record in decode_records(payloads):
            if record.offset >= end:
                return None
            if record.timestamp_ms >= timestamp:
                return record.timestamp_ms, record.offset
        offset = max(next_offset, offset + 1)
    return None
