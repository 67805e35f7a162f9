"""The Broker applies each topic's retention and rolls quiet partitions by age."""

from __future__ import annotations

from pathlib import Path

import pytest

from replog.broker import Broker
from replog.errors import OffsetOutOfRangeError
from replog.storage import Log

SMALL = {"segment_bytes": "1024", "max_record_bytes": "512"}


class Clock:
    def __init__(self, now_ms: int = 1_000_000) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


def fill(broker: Broker, topic: str, partition: int, count: int) -> None:
    for i in range(count):
        broker.append(topic, b"%05d" % i + b"x" * 90, partition=partition)


def test_time_retention_deletes_old_sealed_segments_and_keeps_young_ones(tmp_path: Path) -> None:
    clock = Clock()
    with Broker(tmp_path, clock_ms=clock) as broker:
        broker.create_topic("t", 2, {**SMALL, "retention_ms": "60000"})
        fill(broker, "t", 0, 40)
        clock.now_ms += 120_000
        fill(broker, "t", 0, 40)  # young records, in new segments
        events = broker.apply_retention()
        log_ = broker.log("t", 0)
        assert [(e.topic, e.partition) for e in events] == [("t", 0)]
        assert events[0].lowest_offset == log_.lowest_offset
        assert 0 < log_.lowest_offset <= 40  # every old segment whose records are all old
        for offset in range(40, 80):
            assert log_.read(offset).value.startswith(b"%05d" % (offset - 40))
        with pytest.raises(OffsetOutOfRangeError):
            log_.read(0)
        assert broker.describe_topic("t").partitions[0].lowest_offset == log_.lowest_offset


def test_size_retention_keeps_at_least_the_limit_per_partition(tmp_path: Path) -> None:
    with Broker(tmp_path) as broker:
        broker.create_topic("t", 1, {**SMALL, "retention_bytes": "3000"})
        fill(broker, "t", 0, 200)
        before = broker.log("t", 0).size_bytes
        events = broker.apply_retention()
        after = broker.log("t", 0).size_bytes
        assert events and after < before
        assert after >= 3000


def test_retention_never_deletes_at_or_after_keep_from(tmp_path: Path) -> None:
    clock = Clock()
    with Broker(tmp_path, clock_ms=clock) as broker:
        broker.create_topic("t", 1, {**SMALL, "retention_ms": "1"})
        fill(broker, "t", 0, 100)
        clock.now_ms += 10_000
        broker.apply_retention(keep_from=lambda topic, p, log_: 15)
        assert broker.log("t", 0).lowest_offset <= 15
        broker.log("t", 0).read(15)


def test_a_topic_without_limits_keeps_everything(tmp_path: Path) -> None:
    clock = Clock()
    with Broker(tmp_path, clock_ms=clock) as broker:
        broker.create_topic("t", 1, SMALL)
        fill(broker, "t", 0, 100)
        clock.now_ms += 10**9
        assert broker.apply_retention() == []
        assert broker.log("t", 0).lowest_offset == 0


def test_segment_ms_rolls_a_quiet_partition_so_time_retention_empties_it(tmp_path: Path) -> None:
    clock = Clock()
    with Broker(tmp_path, clock_ms=clock) as broker:
        broker.create_topic("t", 1, {"retention_ms": "1000", "segment_ms": "5000"})
        fill(broker, "t", 0, 3)  # all in the active segment
        clock.now_ms += 2000
        assert broker.apply_retention() == []  # the active segment is never deleted
        clock.now_ms += 5000
        events = broker.apply_retention()  # rolled, then the sealed old segment went
        assert events and events[0].lowest_offset == 3
        log_ = broker.log("t", 0)
        assert (log_.lowest_offset, log_.next_offset) == (3, 3)
        assert broker.append("t", b"after", partition=0) == (0, 3)


def test_retention_survives_a_reopen(tmp_path: Path) -> None:
    clock = Clock()
    with Broker(tmp_path, clock_ms=clock) as broker:
        broker.create_topic("t", 1, {**SMALL, "retention_ms": "1000"})
        fill(broker, "t", 0, 50)
        clock.now_ms += 5000
        fill(broker, "t", 0, 1)
        broker.apply_retention()
        lowest = broker.log("t", 0).lowest_offset
    assert lowest > 0
    with Log(tmp_path / "topics" / "t" / "0") as log_:
        assert log_.lowest_offset == lowest and log_.next_offset == 51
