"""Power cuts under a partition's log and its key index, on the FaultyFileSystem.

Each case appends keyed batches (feeding the index), cuts the log's tail now and then and
checkpoints the index, freezes the disk at a random operation or not, cuts the power
(tearing unsynced writes at random), reopens both on the same disk and checks that every
key's answer is the offset of its last record in the recovered log. Failures name the seed.
"""

from __future__ import annotations

import contextlib
import os
import random

import pytest

from replog.broker.key_index import KeyIndex
from replog.broker.key_source import LogKeySource
from replog.errors import ReplogError
from replog.storage import Log
from replog.storage.faultfs import FaultyFileSystem
from replog.v1.record_pb2 import Record

from .harness import DIRECTORY, abandon, small_config

SEEDS = range(int(os.environ.get("REPLOG_POWER_SEEDS", "100")) // 2)
KEYS = [b"a", b"b", b"cc", b"ddd", b"e", b""]
INDEX_DIRECTORY = "/key-index"


def two_buckets(key: bytes) -> int:
    return key[-1] % 2


def open_both(fs: FaultyFileSystem, rng: random.Random, seed: int) -> tuple[Log, KeyIndex]:
    log = Log(DIRECTORY, small_config(rng.choice(["always", "never"])), fs=fs)
    hash_key = two_buckets if seed % 2 else None
    journal = rng.choice([4, 1000])
    index = KeyIndex(
        INDEX_DIRECTORY, LogKeySource(log), fs=fs, hash_key=hash_key, journal_entries=journal
    )
    return log, index


def check(log: Log, index: KeyIndex, context: str) -> None:
    latest: dict[bytes, int] = {}
    for offset in range(log.lowest_offset, log.next_offset):
        key = log.read(offset).key
        if key:
            latest[key] = offset
    assert index.next_offset == log.next_offset, context
    answers = {key: index.latest(key) for key in KEYS if key}
    assert answers == {key: latest.get(key, -1) for key in KEYS if key}, context


def workload(log: Log, index: KeyIndex, rng: random.Random) -> None:
    for _ in range(rng.randrange(5, 40)):
        roll = rng.random()
        if roll < 0.7:
            keys = [rng.choice(KEYS) for _ in range(rng.randrange(1, 6))]
            base = log.append_batch([Record(key=key, value=b"v") for key in keys])
            index.add_batch(base, keys)
        elif roll < 0.85:
            cut = rng.randrange(log.lowest_offset - 1, log.next_offset)
            log.truncate_after(cut)
            index.truncate_after(cut)
        else:
            log.sync()  # the owner's rule: the log is durable up to what a checkpoint holds
            index.checkpoint()


def power_loss_case(seed: int) -> None:
    rng = random.Random(seed)
    fs = FaultyFileSystem()
    for round_ in range(3):
        log, index = open_both(fs, rng, seed)
        check(log, index, f"seed={seed} round={round_}")
        if rng.random() < 0.5:
            fs.crash_after(rng.randrange(1, 80))
        with contextlib.suppress(ReplogError, OSError):
            workload(log, index, rng)
        fs.power_cut(rng)
        with contextlib.suppress(ReplogError, OSError, ValueError):
            index.close(checkpoint=False)
        abandon(log)
    log, index = open_both(fs, rng, seed)
    check(log, index, f"seed={seed} final")
    index.close()
    log.close()


@pytest.mark.parametrize("seed", SEEDS)
def test_a_power_cut_leaves_the_key_index_agreeing_with_the_recovered_log(seed: int) -> None:
    power_loss_case(seed)
