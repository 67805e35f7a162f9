"""Injected disk errors (ENOSPC, EIO) on write, fsync and segment roll.

The rule checked: the append that meets the error raises StorageIOError and is not
acknowledged; every later append raises StorageIOError too; earlier records stay readable;
after close and reopen on a healthy disk the log holds every acknowledged record, followed
at most by a prefix of the failed batch made of whole records (a torn frame is never
returned), and the log takes appends again.
"""

from __future__ import annotations

import errno
from typing import Any

import pytest

from replog.errors import StorageIOError
from replog.storage import Log
from replog.storage.faultfs import FaultyFileSystem

from .harness import DIRECTORY, small_config

ERRORS = [errno.ENOSPC, errno.EIO]


def fill(log: Log, count: int) -> list[bytes]:
    values = [b"acked-%03d" % i for i in range(count)]
    for value in values:
        log.append(value)
    return values


def check_failure_and_recovery(fs: FaultyFileSystem, log: Log, acked: list[bytes]) -> None:
    failed_batch = [b"failed-%d-" % i + bytes(30) for i in range(6)]
    with pytest.raises(StorageIOError):
        log.append_batch(failed_batch)
    for call in (lambda: log.append(b"later"), lambda: log.append_batch([b"a", b"b"])):
        with pytest.raises(StorageIOError):
            call()
    assert [log.read(o).value for o in range(len(acked))] == acked
    log.close()
    fs.heal()
    with Log(DIRECTORY, small_config("always"), fs=fs) as reopened:
        values = [reopened.read(o).value for o in range(reopened.next_offset)]
        assert values[: len(acked)] == acked
        extra = values[len(acked) :]
        assert extra == failed_batch[: len(extra)]
        assert reopened.append(b"healthy again") == len(values)


@pytest.mark.parametrize("error", ERRORS)
@pytest.mark.parametrize("partial", [False, True])
def test_a_failed_write_fails_that_append_and_every_later_one(error: int, partial: bool) -> None:
    fs = FaultyFileSystem()
    log = Log(DIRECTORY, small_config("always"), fs=fs)
    acked = fill(log, 3)
    fs.fail("write", error, partial=partial)
    check_failure_and_recovery(fs, log, acked)


@pytest.mark.parametrize("error", ERRORS)
def test_a_failed_fsync_fails_that_append_and_every_later_one(error: int) -> None:
    fs = FaultyFileSystem()
    log = Log(DIRECTORY, small_config("always"), fs=fs)
    acked = fill(log, 3)
    fs.fail("sync", error, times=1)  # even once: the kernel may have dropped the pages
    check_failure_and_recovery(fs, log, acked)


@pytest.mark.parametrize(
    ("op", "kwargs"),
    [
        ("sync_dir", {}),
        ("open", {"path_contains": ".store"}),
        ("map", {}),
        ("sync", {"times": 1}),
    ],
)
@pytest.mark.parametrize("error", ERRORS)
def test_a_failure_while_rolling_to_a_new_segment_stops_appends(
    op: Any, kwargs: dict[str, Any], error: int
) -> None:
    fs = FaultyFileSystem()
    log = Log(DIRECTORY, small_config("never"), fs=fs)
    acked = fill(log, 3)
    segments = log.segment_count
    fs.fail(op, error, **kwargs)
    with pytest.raises(StorageIOError):
        while log.segment_count == segments:  # append until the roll
            acked.append(b"acked-%03d" % len(acked))
            log.append(acked[-1])
    acked.pop()  # the append that met the roll failed
    check_failure_and_recovery(fs, log, acked)


def test_a_failed_background_fsync_stops_appends_under_the_interval_policy() -> None:
    fs = FaultyFileSystem()
    config = small_config("interval")
    log = Log(DIRECTORY, config, fs=fs)
    fs.fail("sync", errno.EIO)
    log.append(b"written, never durable")
    with pytest.raises(StorageIOError):
        log.sync()
    with pytest.raises(StorageIOError):
        log.append(b"refused")
    log.close()
