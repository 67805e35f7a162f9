"""Log: appends, reads, rotation, reopen and truncation, on the real disk."""

from __future__ import annotations

import contextlib
import glob
import os
from pathlib import Path

import pytest

from replog.errors import InvalidArgumentError, LogClosedError, OffsetOutOfRangeError
from replog.storage import Log, LogConfig
from replog.storage.codec import FRAME_HEADER_BYTES
from replog.storage.faultfs import FaultyFileSystem
from replog.v1.record_pb2 import Record

SMALL = LogConfig(max_store_bytes=512, max_index_bytes=120, max_record_bytes=200)


def values(count: int, start: int = 0) -> list[bytes]:
    return [f"value-{i}".encode() for i in range(start, start + count)]


def read_all(log: Log) -> list[bytes]:
    return [log.read(o).value for o in range(log.lowest_offset, log.next_offset)]


def test_an_empty_log_has_no_highest_offset_and_a_one_record_log_has_zero(log_dir: str) -> None:
    with Log(log_dir) as log:
        assert (log.lowest_offset, log.next_offset, log.highest_offset) == (0, 0, None)
        assert log.append(b"a") == 0
        assert (log.lowest_offset, log.next_offset, log.highest_offset) == (0, 1, 0)


def test_a_new_log_starts_at_its_initial_offset_and_keeps_it_after_reopen(log_dir: str) -> None:
    config = LogConfig(initial_offset=1000)
    with Log(log_dir, config) as log:
        assert (log.lowest_offset, log.highest_offset) == (1000, None)
        assert log.append(b"a") == 1000
    with Log(log_dir, LogConfig()) as log:
        assert (log.lowest_offset, log.next_offset) == (1000, 1001)
        assert log.read(1000).value == b"a"


def test_key_and_headers_are_kept_and_the_timestamp_comes_from_the_clock(log_dir: str) -> None:
    with Log(log_dir, clock_ms=lambda: 4242) as log:
        offset = log.append(b"v", key=b"k", headers=[("h", b"x")])
        record = log.read(offset)
    assert (record.value, record.key, record.timestamp_ms) == (b"v", b"k", 4242)
    assert [(h.key, h.value) for h in record.headers] == [("h", b"x")]


def test_appends_roll_into_new_segments_and_every_record_reads_back(log_dir: str) -> None:
    with Log(log_dir, SMALL) as log:
        for value in values(60):
            log.append(value)
        assert log.segment_count > 3
        assert read_all(log) == values(60)
    assert len(glob.glob(os.path.join(log_dir, "*.store"))) > 3


def test_a_batch_spanning_several_segments_gets_contiguous_offsets(log_dir: str) -> None:
    with Log(log_dir, SMALL) as log:
        assert log.append_batch(values(25)) == 0
        assert log.append_batch(values(25, 25)) == 25
        assert log.segment_count > 2
        assert read_all(log) == values(50)


def test_reopen_restores_offsets_segments_and_records(log_dir: str) -> None:
    with Log(log_dir, SMALL) as log:
        log.append_batch(values(40))
        segments = log.segment_count
    with Log(log_dir, SMALL) as log:
        assert (log.lowest_offset, log.next_offset, log.segment_count) == (0, 40, segments)
        assert read_all(log) == values(40)
        assert log.append(b"more") == 40
    with Log(log_dir, SMALL) as log:
        assert read_all(log) == [*values(40), b"more"]


def test_truncate_drops_whole_segments_only(log_dir: str) -> None:
    with Log(log_dir, SMALL) as log:
        log.append_batch(values(40))
        second_base = log._segments[1].base_offset
        log.truncate(second_base + 1)
        assert log.lowest_offset == second_base
        assert read_all(log) == values(40)[second_base:]
    with Log(log_dir, SMALL) as log:
        assert log.lowest_offset == second_base


def test_truncate_to_next_offset_empties_the_log_and_offsets_continue(log_dir: str) -> None:
    with Log(log_dir, SMALL) as log:
        log.append_batch(values(30))
        log.truncate(30)
        assert (log.lowest_offset, log.next_offset, log.highest_offset) == (30, 30, None)
        assert log.append(b"x") == 30
    with Log(log_dir, SMALL) as log:
        assert (log.lowest_offset, log.next_offset) == (30, 31)


def test_truncate_after_across_segments_then_append_again(log_dir: str) -> None:
    with Log(log_dir, SMALL) as log:
        log.append_batch(values(50))
        log.truncate_after(12)
        assert (log.next_offset, log.highest_offset) == (13, 12)
        assert log.append_batch(values(5, 100)) == 13
        expected = values(13) + values(5, 100)
        assert read_all(log) == expected
    with Log(log_dir, SMALL) as log:
        assert read_all(log) == expected


def test_truncate_after_lowest_minus_one_empties_the_log(log_dir: str) -> None:
    with Log(log_dir, SMALL) as log:
        log.append_batch(values(40))
        base = log._segments[1].base_offset
        log.truncate(base)
        log.truncate_after(base - 1)
        assert (log.lowest_offset, log.next_offset, log.highest_offset) == (base, base, None)
        assert log.append(b"again") == base
    with Log(log_dir, SMALL) as log:
        assert read_all(log) == [b"again"]


def test_reader_streams_exactly_the_concatenated_store_files(log_dir: str) -> None:
    with Log(log_dir, SMALL) as log:
        log.append_batch(values(45))
        with log.reader() as reader:
            streamed = reader.read()
        on_disk = b"".join(
            Path(path).read_bytes() for path in sorted(glob.glob(os.path.join(log_dir, "*.store")))
        )
    assert streamed == on_disk
    assert len(streamed) > 512


@pytest.mark.parametrize("offset", [-1, 10, 11, 10**6])
def test_an_out_of_range_read_names_the_valid_range(log_dir: str, offset: int) -> None:
    with Log(log_dir) as log:
        log.append_batch(values(10))
        with pytest.raises(OffsetOutOfRangeError) as info:
            log.read(offset)
    assert (info.value.offset, info.value.lowest, info.value.next_offset) == (offset, 0, 10)
    assert "0..9" in str(info.value)


def test_a_read_of_an_empty_log_says_it_is_empty(log_dir: str) -> None:
    with Log(log_dir) as log, pytest.raises(OffsetOutOfRangeError, match="empty"):
        log.read(0)


def test_a_read_below_a_truncated_front_is_out_of_range(log_dir: str) -> None:
    with Log(log_dir, SMALL) as log:
        log.append_batch(values(40))
        log.truncate(30)
        with pytest.raises(OffsetOutOfRangeError) as info:
            log.read(0)
        assert info.value.lowest == log.lowest_offset > 0


def test_read_batch_honours_max_records(log_dir: str) -> None:
    with Log(log_dir) as log:
        log.append_batch(values(10))
        assert [r.offset for r in log.read_batch(2, max_records=3)] == [2, 3, 4]
        assert [r.offset for r in log.read_batch(8, max_records=5)] == [8, 9]


def test_read_payloads_honours_max_bytes_but_returns_at_least_one(log_dir: str) -> None:
    with Log(log_dir) as log:
        log.append_batch([b"x" * 100] * 5)
        frames = [FRAME_HEADER_BYTES + len(p) for p in log.read_payloads(0)]
        assert len(frames) == 5
        assert len(log.read_payloads(0, max_bytes=1)) == 1
        assert len(log.read_payloads(0, max_bytes=sum(frames[:2]))) == 2
        assert len(log.read_payloads(0, max_bytes=sum(frames[:3]) - 1)) == 2


def test_read_batch_at_next_offset_is_empty_and_past_it_is_out_of_range(log_dir: str) -> None:
    with Log(log_dir) as log:
        assert log.read_batch(0) == []
        log.append(b"a")
        assert log.read_batch(1) == []
        with pytest.raises(OffsetOutOfRangeError):
            log.read_batch(2)


def test_read_batch_stops_at_a_segment_end(log_dir: str) -> None:
    with Log(log_dir, SMALL) as log:
        log.append_batch(values(30))
        first_end = log._segments[0].end_offset
        batch = log.read_batch(0, max_records=1000)
        assert [r.offset for r in batch] == list(range(first_end))


def test_append_records_keeps_every_field_of_replicated_records(log_dir: str) -> None:
    with Log(log_dir) as log:
        log.append(b"first")
        records = [
            Record(offset=1, value=b"a", term=7, timestamp_ms=5, key=b"k"),
            Record(offset=2, value=b"b", term=7, timestamp_ms=6),
        ]
        assert log.append_records(records) == 1
        assert log.read_batch(1) == records
        with pytest.raises(InvalidArgumentError):
            log.append_records([Record(offset=9, value=b"gap", timestamp_ms=1)])
        assert log.next_offset == 3


def test_a_replicated_record_that_serializes_to_nothing_is_not_lost_after_a_power_cut(
    fault_fs: FaultyFileSystem,
) -> None:
    # Offset 0 with every field at its default serializes to zero bytes, and a zero-length
    # frame is what the store scan takes for the zero-filled tail of a crash. Once the
    # index is lost, recovery would cut it and every acknowledged record after it.
    log = Log("/log", fs=fault_fs)
    try:
        log.append_records([Record(offset=0)])
    except InvalidArgumentError:
        assert log.next_offset == 0
        log.close()
        return
    log.append(b"after")  # acknowledged: sync="always"
    fault_fs.power_cut()
    with contextlib.suppress(OSError):  # the process "died": its handles are dead
        log.close()
    with Log("/log", fs=fault_fs) as log:
        assert log.next_offset == 2
        assert log.read(1).value == b"after"


def test_a_closed_log_refuses_every_call(log_dir: str) -> None:
    log = Log(log_dir)
    log.append(b"a")
    log.close()
    log.close()  # idempotent
    for call in (
        lambda: log.append(b"b"),
        lambda: log.read(0),
        lambda: log.read_batch(0),
        lambda: log.truncate(0),
        lambda: log.truncate_after(0),
        log.sync,
        log.reader,
    ):
        with pytest.raises(LogClosedError):
            call()


def test_opening_a_new_log_reads_nothing_of_its_presized_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each read of a fresh sparse index faults a page in: a topic of 1,000 partitions took
    # 22 s and 541 MiB to create while every new segment searched its zeros for entries.
    from replog.storage.index import Index

    reads: list[int] = []
    original = Index._read

    def counting(self: Index, start: int, size: int) -> bytes | bytearray:
        reads.append(start)
        return original(self, start, size)

    monkeypatch.setattr(Index, "_read", counting)
    with Log(tmp_path / "new") as log:
        assert reads == []
        log.append(b"x")
    with Log(tmp_path / "new") as log:  # an existing segment is still recovered as before
        assert log.read(0).value == b"x"
