"""A replica whose key index was rebuilt from a log whose front is gone (a snapshot of a
leader whose retention deleted records) refuses per-key conditions as unavailable rather
than answer -1 for a key it may have forgotten (found in review: it answered -1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from replog.cluster.group_keys import GroupKeys
from replog.errors import UnavailableError
from replog.storage import Log
from replog.v1.record_pb2 import Record


class _Store:
    def __init__(self, directory: Path, log: Log) -> None:
        self.directory = directory
        self.log = log

    def last_index(self) -> int:
        return self.log.next_offset - 1

    def entries(self, lo: int, hi: int, max_bytes: int) -> list:
        return []


def test_a_follower_that_installed_a_snapshot_of_a_retained_log_refuses_per_key_conditions(
    tmp_path: Path,
) -> None:
    log = Log(tmp_path / "log")
    try:
        log.append_batch([Record(key=b"other", value=b"x")])
        keys = GroupKeys(_Store(tmp_path, log))
        keys.open(log.next_offset)
        # A snapshot install: the leader's retention had deleted offsets below 6 (where key
        # "gone" had its only record); the new log holds the leader's records from 6 on.
        log.reset(6)
        log.append_batch([Record(key=b"kept", value=b"y") for _ in range(5)])
        keys.reopen(log.next_offset)
        with pytest.raises(UnavailableError):
            latest = keys.latest(term=2, applied_end=log.next_offset)
            print("answered: gone ->", latest(b"gone"))
        keys.close()
    finally:
        log.close()
