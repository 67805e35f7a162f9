"""KeyIndex: each key's latest offset in a partition, over a real Log."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from replog.broker.key_index import KeyIndex
from replog.broker.key_index_file import CHECKPOINT_NAME
from replog.broker.key_source import LogKeySource, keys_of_payloads
from replog.errors import (
    ExpectedKeyOffsetError,
    InvalidArgumentError,
    LogClosedError,
    LogLockedError,
    StorageIOError,
)
from replog.storage import Log, LogConfig
from replog.storage.faultfs import FaultyFileSystem
from replog.v1.record_pb2 import Record


def one_hash(key: bytes) -> int:
    """Every key shares one hash: each lookup meets a collision."""
    return 7


def two_hashes(key: bytes) -> int:
    return len(key) % 2


@pytest.fixture
def log(tmp_path: Path) -> Iterator[Log]:
    with Log(tmp_path / "log", LogConfig(max_store_bytes=4096, max_record_bytes=1024)) as opened:
        yield opened


def append(log: Log, index: KeyIndex, keys: Sequence[bytes]) -> int:
    base = log.append_batch([Record(key=key, value=b"v") for key in keys])
    index.add_batch(base, keys)
    return base


def truth(log: Log) -> dict[bytes, int]:
    latest: dict[bytes, int] = {}
    for offset in range(log.lowest_offset, log.next_offset):
        key = log.read(offset).key
        if key:
            latest[key] = offset
    return latest


def assert_exact(index: KeyIndex, expected: dict[bytes, int], absent: Sequence[bytes]) -> None:
    assert {key: index.latest(key) for key in expected} == expected
    assert [index.latest(key) for key in absent] == [-1] * len(absent)


def test_a_key_without_records_is_minus_one_and_a_key_with_records_is_at_its_last(
    tmp_path: Path, log: Log
) -> None:
    with KeyIndex(tmp_path / "ki", LogKeySource(log)) as index:
        assert index.latest(b"a") == -1
        append(log, index, [b"a", b"b", b"a"])
        append(log, index, [b"c", b"", b"b"])
        assert_exact(index, {b"a": 2, b"b": 5, b"c": 3}, [b"d"])
        assert index.next_offset == 6


def test_expect_passes_the_latest_offset_and_refuses_any_other_with_the_actual_one(
    tmp_path: Path, log: Log
) -> None:
    with KeyIndex(tmp_path / "ki", LogKeySource(log)) as index:
        index.expect(b"order-1", -1)
        append(log, index, [b"order-1", b"order-1"])
        index.expect(b"order-1", 1)
        with pytest.raises(ExpectedKeyOffsetError) as refused:
            index.expect(b"order-1", 0)
        assert (refused.value.expected, refused.value.actual) == (0, 1)
        with pytest.raises(ExpectedKeyOffsetError) as refused:
            index.expect(b"order-2", 1)
        assert refused.value.actual == -1


def test_a_follower_indexes_the_payloads_it_appends(tmp_path: Path, log: Log) -> None:
    with Log(tmp_path / "leader") as leader:
        leader.append_batch([Record(key=b"a", value=b"1"), Record(value=b"2")])
        payloads = leader.read_payloads(0)
    with KeyIndex(tmp_path / "ki", LogKeySource(log)) as index:
        index.add_batch(log.append_payloads(payloads), keys_of_payloads(payloads))
        assert_exact(index, {b"a": 0}, [b"b"])
        assert index.next_offset == 2


def test_records_without_keys_advance_the_index_but_are_never_found(
    tmp_path: Path, log: Log
) -> None:
    with KeyIndex(tmp_path / "ki", LogKeySource(log)) as index:
        base = log.append_batch([b"x", b"y"])
        index.add_batch(base, [None, b""])
        assert index.next_offset == 2
        assert index.stats()["keys"] == 0


def test_a_batch_out_of_log_order_is_refused(tmp_path: Path, log: Log) -> None:
    with KeyIndex(tmp_path / "ki", LogKeySource(log)) as index:
        append(log, index, [b"a"])
        with pytest.raises(InvalidArgumentError):
            index.add_batch(5, [b"b"])
        with pytest.raises(InvalidArgumentError):
            index.add_batch(0, [b"b"])


def test_an_empty_key_cannot_be_looked_up(tmp_path: Path, log: Log) -> None:
    with KeyIndex(tmp_path / "ki", LogKeySource(log)) as index, pytest.raises(InvalidArgumentError):
        index.latest(b"")


@pytest.mark.parametrize("hash_key", [one_hash, two_hashes])
def test_keys_that_share_a_hash_each_keep_their_own_latest_offset(
    tmp_path: Path, log: Log, hash_key: object
) -> None:
    source = LogKeySource(log)
    with KeyIndex(tmp_path / "ki", source, hash_key=hash_key) as index:  # type: ignore[arg-type]
        append(log, index, [b"a", b"bb", b"ccc"])
        assert_exact(index, truth(log), [b"dd", b"e"])
        append(log, index, [b"bb", b"e"])  # after the collision was found: kept exactly
        append(log, index, [b"a"])
        assert_exact(index, truth(log), [b"dd", b"ffff"])
        assert index.stats()["shared_hashes"] >= 1
    with KeyIndex(tmp_path / "ki", source, hash_key=hash_key) as index:  # type: ignore[arg-type]
        assert not index.rebuilt
        assert_exact(index, truth(log), [b"dd", b"ffff"])


def test_a_truncation_inside_a_batch_keeps_the_records_before_the_cut(
    tmp_path: Path, log: Log
) -> None:
    with KeyIndex(tmp_path / "ki", LogKeySource(log), hash_key=two_hashes) as index:
        append(log, index, [b"a", b"b"])
        append(log, index, [b"a", b"c", b"b", b"a"])  # offsets 2..5
        log.truncate_after(3)
        index.truncate_after(3)
        assert index.next_offset == 4
        assert_exact(index, {b"a": 2, b"b": 1, b"c": 3}, [b"d"])
        append(log, index, [b"d"])
        assert_exact(index, {b"a": 2, b"b": 1, b"c": 3, b"d": 4}, [b"e"])


def test_a_truncation_beyond_the_journal_rebuilds_from_the_log(tmp_path: Path, log: Log) -> None:
    with KeyIndex(tmp_path / "ki", LogKeySource(log), journal_entries=4) as index:
        for i in range(10):
            append(log, index, [b"k%d" % i, b"k%d" % (i + 1)])
        log.truncate_after(3)
        index.truncate_after(3)
        assert index.rebuilt
        assert_exact(index, truth(log), [b"k5"])


def test_a_deep_truncation_reloads_the_checkpoint_and_keeps_retained_away_keys(
    tmp_path: Path, log: Log
) -> None:
    with KeyIndex(tmp_path / "ki", LogKeySource(log), journal_entries=4) as index:
        append(log, index, [b"old"])
        for i in range(300):
            append(log, index, [b"k%d" % i])
        index.checkpoint()  # before retention deletes the front
        log.truncate(250)
        assert log.lowest_offset > 0
        for i in range(10):
            append(log, index, [b"late-%d" % i, b"k1"])
        log.truncate_after(302)  # deeper than the 4-entry journal, above the checkpoint
        index.truncate_after(302)
        assert_exact(index, {b"old": 0, b"k1": 302, b"late-0": 301}, [b"late-1"])


def test_a_truncation_to_before_the_first_record_empties_the_index(
    tmp_path: Path, log: Log
) -> None:
    with KeyIndex(tmp_path / "ki", LogKeySource(log)) as index:
        append(log, index, [b"a", b"b"])
        log.truncate_after(-1)
        index.truncate_after(-1)
        assert_exact(index, {}, [b"a", b"b"])
        assert index.next_offset == 0


def test_reopening_uses_the_checkpoint_and_replays_what_came_after_it(
    tmp_path: Path, log: Log
) -> None:
    source = LogKeySource(log)
    index = KeyIndex(tmp_path / "ki", source)
    append(log, index, [b"a", b"b"])
    index.checkpoint()
    append(log, index, [b"b", b"c"])
    index.close(checkpoint=False)  # a crash: the checkpoint is two records behind
    log.append_batch([Record(key=b"a", value=b"late")])  # appended while the index was shut
    with KeyIndex(tmp_path / "ki", source) as reopened:
        assert not reopened.rebuilt
        assert_exact(reopened, {b"a": 4, b"b": 2, b"c": 3}, [b"d"])


def test_a_checkpoint_ahead_of_a_log_that_lost_its_tail_is_wound_back(
    tmp_path: Path, log: Log
) -> None:
    source = LogKeySource(log)
    with KeyIndex(tmp_path / "ki", source) as index:
        append(log, index, [b"a", b"b"])
        append(log, index, [b"a", b"c"])
    log.truncate_after(1)  # as if the unsynced tail was lost in a crash
    with KeyIndex(tmp_path / "ki", source) as reopened:
        assert not reopened.rebuilt
        assert_exact(reopened, {b"a": 0, b"b": 1}, [b"c"])


def test_records_that_replaced_a_cut_tail_are_not_mistaken_for_the_checkpointed_ones(
    tmp_path: Path, log: Log
) -> None:
    source = LogKeySource(log)
    index = KeyIndex(tmp_path / "ki", source)
    append(log, index, [b"a", b"b"])
    index.checkpoint()  # knows a at 0, b at 1
    log.truncate_after(-1)
    index.truncate_after(-1)
    append(log, index, [b"c", b""])  # the same offsets, other records
    index.close(checkpoint=False)  # a crash: the checkpoint on disk is the old one
    with KeyIndex(tmp_path / "ki", source) as reopened:
        assert_exact(reopened, {b"c": 0}, [b"a", b"b"])


def test_records_that_replaced_a_tail_lost_while_closed_are_not_mistaken_after_a_crash(
    tmp_path: Path, log: Log
) -> None:
    source = LogKeySource(log)
    index = KeyIndex(tmp_path / "ki", source)
    append(log, index, [b"a", b"b"])
    append(log, index, [b"c", b"d"])
    index.close()  # the checkpoint knows c at 2, d at 3
    log.truncate_after(1)  # the log lost its tail (unsynced, in a crash)
    index = KeyIndex(tmp_path / "ki", source)  # winds the checkpoint back to 1
    append(log, index, [b"e", b"f"])  # the same offsets, other records
    index.close(checkpoint=False)  # a crash: the checkpoint on disk still says c, d
    with KeyIndex(tmp_path / "ki", source) as reopened:
        assert_exact(reopened, {b"a": 0, b"b": 1, b"e": 2, b"f": 3}, [b"c", b"d"])


@pytest.mark.parametrize("damage", ["flip", "cut", "remove", "garbage"])
def test_a_damaged_or_missing_checkpoint_is_rebuilt_from_the_log(
    tmp_path: Path, log: Log, damage: str
) -> None:
    source = LogKeySource(log)
    with KeyIndex(tmp_path / "ki", source, hash_key=two_hashes) as index:
        for i in range(20):
            append(log, index, [b"k%d" % (i % 7), b"j%d" % i])
        expected = truth(log)
        assert_exact(index, expected, [b"zz"])
    path = tmp_path / "ki" / CHECKPOINT_NAME
    data = path.read_bytes()
    if damage == "flip":
        path.write_bytes(data[:100] + bytes([data[100] ^ 1]) + data[101:])
    elif damage == "cut":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "remove":
        path.unlink()
    else:
        path.write_bytes(b"not a checkpoint at all")
    with KeyIndex(tmp_path / "ki", source, hash_key=two_hashes) as rebuilt:
        assert rebuilt.rebuilt
        assert_exact(rebuilt, expected, [b"zz"])
    with KeyIndex(tmp_path / "ki", source, hash_key=two_hashes) as again:
        assert not again.rebuilt  # the rebuild wrote a good checkpoint


def test_a_checkpoint_made_with_another_hash_is_rebuilt_not_misread(
    tmp_path: Path, log: Log
) -> None:
    source = LogKeySource(log)
    with KeyIndex(tmp_path / "ki", source) as index:
        append(log, index, [b"a", b"b", b"ccc"])
    with KeyIndex(tmp_path / "ki", source, hash_key=two_hashes, hash_name="two") as other:
        assert other.rebuilt
        assert_exact(other, {b"a": 0, b"b": 1, b"ccc": 2}, [b"dd"])


def test_a_key_whose_latest_record_retention_removed_keeps_its_offset(
    tmp_path: Path, log: Log
) -> None:
    source = LogKeySource(log)
    with KeyIndex(tmp_path / "ki", source) as index:
        append(log, index, [b"old"])
        for i in range(200):
            append(log, index, [b"new-%d" % i])
        log.truncate(150)
        assert log.lowest_offset > 0
        assert index.latest(b"old") == 0  # the version never goes back to -1
        assert index.latest(b"new-199") == 200
        assert index.latest(b"never") == -1
    with KeyIndex(tmp_path / "ki", source) as reopened:
        assert reopened.latest(b"old") == 0


def test_records_the_log_lost_before_the_index_saw_them_are_reported_as_a_gap(
    tmp_path: Path, log: Log
) -> None:
    source = LogKeySource(log)
    with KeyIndex(tmp_path / "ki", source) as index:
        append(log, index, [b"a", b"b"])
    log.reset(100)  # a snapshot install while the index was closed
    log.append_batch([Record(key=b"b", value=b"v")])
    with KeyIndex(tmp_path / "ki", source) as reopened:
        assert reopened.gap == (2, 100)
        assert_exact(reopened, {b"a": 0, b"b": 100}, [b"c"])


def test_its_files_are_private(tmp_path: Path, log: Log) -> None:
    with KeyIndex(tmp_path / "ki", LogKeySource(log)) as index:
        append(log, index, [b"a"])
    assert stat.S_IMODE(os.stat(tmp_path / "ki").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(tmp_path / "ki" / CHECKPOINT_NAME).st_mode) == 0o600


def test_a_second_index_on_the_same_directory_is_refused(tmp_path: Path, log: Log) -> None:
    with KeyIndex(tmp_path / "ki", LogKeySource(log)), pytest.raises(LogLockedError):
        KeyIndex(tmp_path / "ki", LogKeySource(log))


def test_a_closed_index_refuses_further_use(tmp_path: Path, log: Log) -> None:
    index = KeyIndex(tmp_path / "ki", LogKeySource(log))
    index.close()
    index.close()
    with pytest.raises(LogClosedError):
        index.latest(b"a")
    with pytest.raises(LogClosedError):
        index.add_batch(0, [b"a"])


def test_a_disk_error_writing_a_checkpoint_keeps_the_old_one_and_the_index_usable() -> None:
    fs = FaultyFileSystem()
    with Log("/log", LogConfig(max_store_bytes=4096, max_record_bytes=1024), fs=fs) as log:
        index = KeyIndex("/ki", LogKeySource(log), fs=fs)
        append(log, index, [b"a"])
        index.checkpoint()
        append(log, index, [b"b"])
        fs.fail("write", errno.ENOSPC, path_contains="key-index.ckpt")
        with pytest.raises(StorageIOError):
            index.checkpoint()
        assert index.latest(b"b") == 1
        fs.heal()
        index.close(checkpoint=False)
        with KeyIndex("/ki", LogKeySource(log), fs=fs) as reopened:
            assert not reopened.rebuilt  # the old checkpoint, and a replay after it
            assert_exact(reopened, {b"a": 0, b"b": 1}, [b"c"])


def test_a_cut_that_cannot_be_recorded_stops_the_index_until_it_is_reopened() -> None:
    fs = FaultyFileSystem()
    with Log("/log", LogConfig(max_store_bytes=4096, max_record_bytes=1024), fs=fs) as log:
        index = KeyIndex("/ki", LogKeySource(log), fs=fs)
        append(log, index, [b"a", b"b"])
        index.checkpoint()
        log.truncate_after(0)
        fs.fail("write", errno.EIO, path_contains="key-index.cut")
        with pytest.raises(StorageIOError):
            index.truncate_after(0)
        with pytest.raises(StorageIOError):
            index.latest(b"a")
        index.close()  # writes no checkpoint of a state that no longer follows the log
        fs.heal()
        with KeyIndex("/ki", LogKeySource(log), fs=fs) as reopened:
            assert_exact(reopened, {b"a": 0}, [b"b"])
