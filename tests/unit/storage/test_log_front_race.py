"""Reads racing the removal of the oldest segments get the record or OffsetOutOfRangeError.

A reader that picked a segment just before it was removed must not see another error
(a closed file, a wrong segment, a CRC mismatch from a reused file descriptor).
"""

from __future__ import annotations

import threading
import time
from collections import Counter

from replog.errors import OffsetOutOfRangeError
from replog.storage import Log, LogConfig
from replog.v1.record_pb2 import Record

SMALL = LogConfig(max_store_bytes=256, max_index_bytes=120, max_record_bytes=100, sync="never")


def _values(first: int, count: int) -> list[bytes]:
    return [b"v%06d" % i for i in range(first, first + count)]


def _read_oldest_in_a_loop(log: Log, stop: threading.Event, seen: Counter[str]) -> None:
    """Read the oldest offset again and again until it is gone, then the new oldest: every
    removal of a segment races a read of its first record."""
    offset = log.lowest_offset
    while not stop.is_set():
        for read in (log.read, log.read_payloads, log.read_batch):
            try:
                result = read(offset)
            except OffsetOutOfRangeError:
                seen["out of range"] += 1
                offset = log.lowest_offset
                continue
            except Exception as exc:  # anything else is the bug this test is about
                seen[f"{type(exc).__name__}: {exc}"] += 1
                continue
            first = result if isinstance(result, Record) else result[0]
            if isinstance(first, bytes):
                first = Record.FromString(first)
            seen[
                "ok" if (first.offset, first.value) == (offset, b"v%06d" % offset) else "wrong"
            ] += 1


def test_a_read_racing_truncate_of_the_oldest_segment_gets_only_out_of_range(
    log_dir: str,
) -> None:
    with Log(log_dir, SMALL) as log:
        log.append_batch([b"v%06d" % i for i in range(20)])
        stop = threading.Event()
        seen: Counter[str] = Counter()
        readers = [
            threading.Thread(target=_read_oldest_in_a_loop, args=(log, stop, seen))
            for _ in range(2)
        ]
        for thread in readers:
            thread.start()
        try:
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline:
                log.append_batch(
                    [b"v%06d" % i for i in range(log.next_offset, log.next_offset + 8)]
                )
                log.truncate(log.next_offset - 4)
        finally:
            stop.set()
            for thread in readers:
                thread.join(timeout=10)
        unexpected = {k: v for k, v in seen.items() if k not in ("ok", "out of range")}
        assert not unexpected, unexpected
        assert seen["ok"] > 0 and seen["out of range"] > 0, seen


def test_a_read_of_the_newest_record_racing_a_roll_gets_the_record(log_dir: str) -> None:
    # Regression: sealing dropped the active index's map before opening its file, and a
    # reader in between failed an internal assertion (a consumer tailing the log).
    with Log(log_dir, SMALL) as log:
        log.append(b"v000000")
        stop = threading.Event()
        seen: Counter[str] = Counter()

        def tail() -> None:
            while not stop.is_set():
                offset = log.next_offset - 1
                try:
                    record = log.read(offset)
                except Exception as exc:
                    seen[f"{type(exc).__name__}: {exc}"] += 1
                    continue
                seen["ok" if record.value == b"v%06d" % offset else "wrong"] += 1

        reader = threading.Thread(target=tail)
        reader.start()
        try:
            while log.next_offset < 1000:
                log.append(b"v%06d" % log.next_offset)
        finally:
            stop.set()
            reader.join(timeout=10)
        assert log.segment_count > 30
        assert set(seen) == {"ok"}, seen


def test_a_read_racing_retention_of_the_oldest_segment_gets_only_out_of_range(
    log_dir: str,
) -> None:
    with Log(log_dir, SMALL) as log:
        log.append_batch(_values(0, 20))
        stop = threading.Event()
        seen: Counter[str] = Counter()
        readers = [
            threading.Thread(target=_read_oldest_in_a_loop, args=(log, stop, seen))
            for _ in range(2)
        ]
        for thread in readers:
            thread.start()
        deleted = 0
        try:
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline:
                log.append_batch(_values(log.next_offset, 8))
                result = log.apply_retention(
                    retention_ms=None, retention_bytes=200, keep_from=log.next_offset
                )
                deleted += result.segments_deleted
        finally:
            stop.set()
            for thread in readers:
                thread.join(timeout=10)
        unexpected = {k: v for k, v in seen.items() if k not in ("ok", "out of range")}
        assert not unexpected, unexpected
        assert deleted > 10 and seen["ok"] > 0 and seen["out of range"] > 0, (deleted, seen)
