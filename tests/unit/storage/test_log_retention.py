"""Log retention: time-based rolling (segment_ms), segments(), apply_retention."""

from __future__ import annotations

import errno
import itertools
import threading

import pytest

from replog.errors import (
    ConfigError,
    InvalidArgumentError,
    LogClosedError,
    OffsetOutOfRangeError,
    StorageIOError,
)
from replog.storage import Log, LogConfig, RetentionResult, SegmentInfo
from replog.storage.faultfs import FaultyFileSystem
from replog.storage.segment import Segment, segment_paths
from replog.storage.timestamps import SegmentTimes
from replog.v1.record_pb2 import Record

SMALL = LogConfig(max_store_bytes=512, max_index_bytes=120, max_record_bytes=200)
MINUTE = 60_000


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: int = 1_000_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def bases(log: Log) -> list[int]:
    return [info.base_offset for info in log.segments()]


@pytest.mark.parametrize("bad", [0, -1, 2**62 + 1, True, 1.5, "60000"])
def test_a_bad_segment_ms_is_a_config_error(bad: object) -> None:
    with pytest.raises(ConfigError, match="segment_ms"):
        LogConfig(segment_ms=bad)  # type: ignore[arg-type]


def test_segment_ms_defaults_to_none_and_takes_its_bounds() -> None:
    assert LogConfig().segment_ms is None
    assert LogConfig(segment_ms=1).segment_ms == 1
    assert LogConfig(segment_ms=2**62).segment_ms == 2**62


def test_an_append_rolls_first_once_the_first_record_is_segment_ms_old(log_dir: str) -> None:
    clock = Clock()
    with Log(log_dir, LogConfig(segment_ms=MINUTE), clock_ms=clock) as log:
        log.append(b"a")
        clock.now += MINUTE - 1
        log.append_batch([b"b", b"c"])
        assert log.segment_count == 1
        clock.now += 1  # the first record is now exactly segment_ms old
        assert log.append(b"d") == 3
        assert bases(log) == [0, 3]  # rolled before the write: "d" starts the new segment
        assert [log.read(o).value for o in range(4)] == [b"a", b"b", b"c", b"d"]
        clock.now += MINUTE - 1
        log.append(b"e")
        assert bases(log) == [0, 3]  # measured from "d", the new segment's first record


def test_without_segment_ms_segments_roll_by_size_only(log_dir: str) -> None:
    clock = Clock()
    with Log(log_dir, clock_ms=clock) as log:
        log.append(b"a")
        clock.now += 10**12
        log.append(b"b")
        assert log.segment_count == 1
        assert log.roll_if_due() is False


def test_roll_if_due_rolls_a_quiet_partition_and_never_an_empty_segment(log_dir: str) -> None:
    clock = Clock()
    with Log(log_dir, LogConfig(segment_ms=MINUTE), clock_ms=clock) as log:
        assert log.roll_if_due(clock.now + 10 * MINUTE) is False  # empty: nothing to seal
        log.append(b"a")
        assert log.roll_if_due() is False
        assert log.roll_if_due(clock.now + MINUTE - 1) is False
        assert log.roll_if_due(clock.now + MINUTE) is True
        infos = log.segments()
        assert [(i.base_offset, i.next_offset, i.sealed) for i in infos] == [
            (0, 1, True),
            (1, 1, False),
        ]
        assert log.roll_if_due(clock.now + 10 * MINUTE) is False  # the new one is empty
        assert log.append(b"b") == 1


def test_a_reopened_log_reads_the_first_timestamp_to_roll_by_time(log_dir: str) -> None:
    clock = Clock()
    config = LogConfig(segment_ms=MINUTE)
    with Log(log_dir, config, clock_ms=clock) as log:
        log.append_batch([b"a", b"b"])
    clock.now += MINUTE
    with Log(log_dir, config, clock_ms=clock) as log:
        assert log.roll_if_due() is True
        assert bases(log) == [0, 2]


def test_replicated_payloads_roll_by_their_own_timestamps(log_dir: str) -> None:
    clock = Clock()
    config = LogConfig(segment_ms=MINUTE)

    def payload(offset: int, stamp: int) -> bytes:
        return Record(value=b"x", offset=offset, timestamp_ms=stamp).SerializeToString()

    with Log(log_dir, config, clock_ms=clock) as log:
        # A control record (no timestamp) first: the roll goes by the first one with one.
        log.append_payloads([Record(offset=0, type=1).SerializeToString()])
        assert log.roll_if_due(clock.now + 100 * MINUTE) is False
        log.append_payloads([payload(1, clock.now - MINUTE), payload(2, clock.now)])
        assert log.roll_if_due() is True
        assert bases(log) == [0, 3]


def test_segments_describe_offsets_sizes_and_largest_timestamps(log_dir: str) -> None:
    clock = Clock(5000)
    with Log(log_dir, SMALL, clock_ms=clock) as log:
        for i in range(30):
            clock.now = 5000 + i
            log.append(b"value-%02d" % i)
        infos = log.segments()
        assert len(infos) >= 3
        assert infos[0].base_offset == 0 and infos[-1].next_offset == 30
        assert all(a.next_offset == b.base_offset for a, b in itertools.pairwise(infos))
        assert [i.sealed for i in infos] == [True] * (len(infos) - 1) + [False]
        assert sum(i.size_bytes for i in infos) == log.size_bytes
        assert [i.max_timestamp_ms for i in infos] == [5000 + i.next_offset - 1 for i in infos]
        assert isinstance(infos[0], SegmentInfo)
        with pytest.raises(AttributeError):
            infos[0].sealed = False  # type: ignore[misc]
    with Log(log_dir, SMALL, clock_ms=clock) as log:  # learnt again from the records
        assert log.segments() == infos


def test_a_segment_of_records_without_timestamps_has_none(log_dir: str) -> None:
    with Log(log_dir, SMALL) as log:
        log.append_payloads([Record(offset=o, type=1).SerializeToString() for o in range(3)])
        assert log.segments()[-1].max_timestamp_ms is None


def test_an_unreadable_record_leaves_the_largest_timestamp_unknown(
    fault_fs: FaultyFileSystem,
) -> None:
    with Log("/log", SMALL, fs=fault_fs) as log:
        log.append_batch([b"record-%02d" % i for i in range(30)])
        second = log.segments()[1].base_offset
    store, _ = segment_paths("/log", 0)
    data = bytearray(fault_fs.read_bytes(store))
    data[-3] ^= 0xFF  # the last record of the first (sealed) segment
    fault_fs.write_bytes(store, bytes(data))
    with Log("/log", SMALL, fs=fault_fs) as log:
        infos = log.segments()
        assert infos[0].max_timestamp_ms is None
        assert infos[1].base_offset == second and infos[1].max_timestamp_ms is not None
        result = log.apply_retention(retention_ms=0, retention_bytes=None, keep_from=10**6)
        assert result.segments_deleted == 0  # kept by time: its age is unknown
        result = log.apply_retention(retention_ms=None, retention_bytes=0, keep_from=second)
        assert result.segments_deleted == 1  # but size may delete it


def test_truncate_after_forgets_the_timestamps_of_the_records_it_cut(log_dir: str) -> None:
    clock = Clock(100)
    with Log(log_dir, clock_ms=clock) as log:
        log.append(b"a")
        clock.now = 900
        log.append(b"b")
        assert log.segments()[-1].max_timestamp_ms == 900
        log.truncate_after(0)
        assert log.segments()[-1].max_timestamp_ms == 100


def _old_and_new(log: Log, clock: Clock) -> int:
    """Three segments of old records, then new ones; return the first new offset."""
    while log.segment_count < 4:
        log.append(b"old-%03d" % log.next_offset)
    log.truncate_after(log.segments()[-1].base_offset - 1)  # end the old ones on a boundary
    first_new = log.next_offset
    clock.now += 10 * MINUTE
    log.append_batch([b"new-%03d" % i for i in range(5)])
    return first_new


def test_time_retention_deletes_old_segments_and_reads_below_are_out_of_range(
    log_dir: str,
) -> None:
    clock = Clock()
    with Log(log_dir, SMALL, clock_ms=clock) as log:
        first_new = _old_and_new(log, clock)
        before = log.segments()
        result = log.apply_retention(retention_ms=MINUTE, retention_bytes=None, keep_from=10**6)
        old = [i for i in before if i.next_offset <= first_new]
        assert result == RetentionResult(len(old), sum(i.size_bytes for i in old), first_new)
        assert log.lowest_offset == first_new
        with pytest.raises(OffsetOutOfRangeError) as caught:
            log.read(first_new - 1)
        assert (caught.value.lowest, caught.value.next_offset) == (first_new, first_new + 5)
        assert f"valid offsets are {first_new}..{first_new + 4}" in str(caught.value)
        with pytest.raises(OffsetOutOfRangeError):
            log.read_payloads(0)
        assert [r.value for r in log.read_batch(first_new)] == [b"new-%03d" % i for i in range(5)]
        again = log.apply_retention(retention_ms=MINUTE, retention_bytes=None, keep_from=10**6)
        assert again == RetentionResult(0, 0, first_new)
    with Log(log_dir, SMALL, clock_ms=clock) as log:
        assert log.lowest_offset == first_new and log.next_offset == first_new + 5


def test_retention_never_deletes_at_or_above_keep_from(log_dir: str) -> None:
    clock = Clock()
    with Log(log_dir, SMALL, clock_ms=clock) as log:
        _old_and_new(log, clock)
        infos = log.segments()
        keep_from = infos[1].next_offset  # the first two may go, not the third
        result = log.apply_retention(retention_ms=0, retention_bytes=0, keep_from=keep_from - 1)
        assert result.segments_deleted == 1 and log.lowest_offset == infos[1].base_offset
        result = log.apply_retention(retention_ms=0, retention_bytes=0, keep_from=keep_from)
        assert result.segments_deleted == 1 and log.lowest_offset == infos[2].base_offset


def test_size_retention_keeps_at_least_retention_bytes(log_dir: str) -> None:
    with Log(log_dir, SMALL) as log:
        log.append_batch([b"record-%03d" % i for i in range(100)])
        total = log.size_bytes
        limit = total // 2
        result = log.apply_retention(retention_ms=None, retention_bytes=limit, keep_from=100)
        assert result.segments_deleted > 0
        assert log.size_bytes >= limit
        assert log.size_bytes + result.bytes_deleted == total
        first = log.segments()[0]
        assert log.size_bytes - first.size_bytes < limit  # one more would break the limit
        assert log.read(log.lowest_offset).value == b"record-%03d" % log.lowest_offset


@pytest.mark.parametrize(
    "kwargs",
    [
        {"retention_ms": -2, "retention_bytes": None, "keep_from": 10},
        {"retention_ms": None, "retention_bytes": "1", "keep_from": 10},
        {"retention_ms": None, "retention_bytes": 0, "keep_from": -1},
        {"retention_ms": 0, "retention_bytes": None, "keep_from": 10, "now_ms": "now"},
    ],
)
def test_a_bad_retention_argument_changes_nothing(log_dir: str, kwargs: dict[str, object]) -> None:
    with Log(log_dir, SMALL) as log:
        log.append_batch([b"record-%03d" % i for i in range(60)])
        before = log.segments()
        with pytest.raises(InvalidArgumentError):
            log.apply_retention(**kwargs)  # type: ignore[arg-type]
        assert log.segments() == before


def test_a_closed_log_refuses_retention_calls(log_dir: str) -> None:
    log = Log(log_dir, LogConfig(segment_ms=1))
    log.close()
    with pytest.raises(LogClosedError):
        log.segments()
    with pytest.raises(LogClosedError):
        log.roll_if_due()
    with pytest.raises(LogClosedError):
        log.apply_retention(retention_ms=0, retention_bytes=0, keep_from=0)


def test_a_failed_removal_fails_the_log_and_reopening_finds_a_contiguous_log(
    fault_fs: FaultyFileSystem,
) -> None:
    with Log("/log", SMALL, fs=fault_fs) as log:
        log.append_batch([b"record-%03d" % i for i in range(60)])
        fault_fs.fail("remove", errno.EIO, after=2, times=1)  # the second segment's store
        with pytest.raises(StorageIOError):
            log.apply_retention(retention_ms=None, retention_bytes=0, keep_from=60)
        with pytest.raises(StorageIOError):
            log.append(b"more")
    with Log("/log", SMALL, fs=fault_fs) as log:
        lowest = log.lowest_offset
        assert 0 < lowest < 60
        values = [log.read(o).value for o in range(lowest, 60)]
        assert values == [b"record-%03d" % i for i in range(lowest, 60)]


def test_time_retention_reads_only_the_segments_it_may_delete_and_the_first_it_keeps(
    log_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    with Log(log_dir, SMALL, clock_ms=clock) as log:
        while log.segment_count < 3:
            log.append(b"old")
        clock.now += 10 * MINUTE
        while log.segment_count < 12:
            log.append(b"new")
        infos = log.segments()
    learnt: list[int] = []
    real_learn = SegmentTimes.learn

    def spy(self: SegmentTimes, segment: Segment, end: int, **kwargs: bool) -> None:
        learnt.append(segment.base_offset)
        real_learn(self, segment, end, **kwargs)

    monkeypatch.setattr(SegmentTimes, "learn", spy)
    with Log(log_dir, SMALL, clock_ms=clock) as log:  # reopened: nothing known yet
        result = log.apply_retention(retention_ms=MINUTE, retention_bytes=None, keep_from=10**6)
        assert result.segments_deleted == 2
        assert learnt == [infos[0].base_offset, infos[1].base_offset, infos[2].base_offset]


def test_appends_go_on_while_retention_removes_files(
    log_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Log(log_dir, SMALL) as log:
        log.append_batch([b"record-%03d" % i for i in range(60)])
        appended: list[int] = []
        real_unlink = Segment.unlink

        def unlink_while_appending(segment: Segment) -> None:
            thread = threading.Thread(target=lambda: appended.append(log.append(b"during")))
            thread.start()
            thread.join(timeout=10)  # would time out if the unlink held the write lock
            real_unlink(segment)

        monkeypatch.setattr(Segment, "unlink", unlink_while_appending)
        result = log.apply_retention(retention_ms=None, retention_bytes=0, keep_from=60)
        assert len(appended) == result.segments_deleted > 0
        assert appended == list(range(60, 60 + len(appended)))
