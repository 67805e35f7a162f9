"""A power cut after ``truncate_after`` (sync="never"): truncation zeroes index entries in
the map, and a power cut may keep some of those page writes and lose others, so the
index on disk can hold a valid entry *after* a zeroed one. Reopening must treat that as
damage (rebuild the index from the store) and never fail: it used to raise
``IndexError: index entry 2 names relative offset 0`` from segment recovery (found by the
key index's crash tests; 167 of 3,000 seeds)."""

from __future__ import annotations

import random

import pytest

from replog.storage import Log
from replog.storage.faultfs import FaultyFileSystem
from replog.v1.record_pb2 import Record
from tests.crash.harness import abandon, small_config


@pytest.mark.parametrize("seeds", [range(0, 400)], ids=["0-399"])
def test_a_power_cut_after_truncate_after_reopens_with_a_dense_prefix(seeds: range) -> None:
    failures = []
    for seed in seeds:
        rng = random.Random(seed)
        fs = FaultyFileSystem()
        log = Log("/log", small_config("never"), fs=fs)
        for _ in range(rng.randrange(1, 4)):
            log.append_batch([Record(key=b"k", value=b"v")] * rng.randrange(1, 6))
        fs.power_cut(rng)
        abandon(log)
        log = Log("/log", small_config("never"), fs=fs)
        log.truncate_after(min(0, log.next_offset - 1))
        log.append_batch([Record(value=b"after")])
        fs.power_cut(rng)
        abandon(log)
        try:
            reopened = Log("/log", small_config("never"), fs=fs)
        except Exception as exc:
            failures.append(f"seed {seed}: {type(exc).__name__}: {exc}")
            continue
        offsets = [
            reopened.read(o).offset for o in range(reopened.lowest_offset, reopened.next_offset)
        ]
        assert offsets == list(range(reopened.lowest_offset, reopened.next_offset)), seed
        assert reopened.next_offset <= 1 or reopened.read(0).value == b"v"
        reopened.close()
    assert not failures, f"{len(failures)} seeds failed to reopen: {failures[:3]}"
