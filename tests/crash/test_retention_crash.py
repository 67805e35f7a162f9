"""A power cut in the middle of apply_retention leaves a contiguous log.

Retention unlinks the oldest segments one at a time, each removal made durable before the
next: whichever operation the machine stops at, the reopened log starts at one of the old
segment bases and holds every record above it.
"""

from __future__ import annotations

import random

from replog.errors import StorageIOError
from replog.storage.faultfs import FaultyFileSystem

from .harness import abandon, reopen

RECORDS = 80


def _fill(fs: FaultyFileSystem) -> tuple[list[int], list[bytes]]:
    log = reopen(fs, "always")
    values = [b"record-%03d-" % i + bytes(i % 40) for i in range(RECORDS)]
    for start in range(0, RECORDS, 7):
        log.append_batch(values[start : start + 7])
    bases = [info.base_offset for info in log.segments()]
    log.close()
    return bases, values


def test_a_power_cut_inside_apply_retention_leaves_a_contiguous_log() -> None:
    lowests: set[int] = set()
    for crash_point in range(200):
        fs = FaultyFileSystem()
        bases, values = _fill(fs)
        assert len(bases) >= 8
        log = reopen(fs, "always")
        fs.crash_after(crash_point)
        try:
            result = log.apply_retention(retention_ms=None, retention_bytes=0, keep_from=RECORDS)
        except StorageIOError:
            completed = False
        else:
            completed = True
            assert result.lowest_offset == bases[-1]
        fs.power_cut(random.Random(crash_point))
        abandon(log)
        log = reopen(fs, "always")
        context = f"crash after {crash_point} operations"
        assert log.lowest_offset in bases, context
        assert log.next_offset == RECORDS, context
        kept = [log.read(o).value for o in range(log.lowest_offset, RECORDS)]
        assert kept == values[log.lowest_offset :], context
        assert [i.base_offset for i in log.segments()] == bases[bases.index(log.lowest_offset) :]
        lowests.add(log.lowest_offset)
        log.close()
        if completed:
            break
    else:
        raise AssertionError("apply_retention never completed: raise the crash points")
    assert completed and log.lowest_offset == bases[-1]
    # The crashes hit every step: the log was seen starting at every old segment base.
    assert lowests == set(bases), (sorted(lowests), bases)
