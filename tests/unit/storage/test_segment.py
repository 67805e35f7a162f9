"""Segment: lifecycle, room, fullness, recovery of its index and torn tail."""

from __future__ import annotations

import pytest

from replog.errors import CorruptRecordError
from replog.storage.codec import decode_record, encode_records
from replog.storage.faultfs import FaultyFileSystem
from replog.storage.index import ENTRY_BYTES
from replog.storage.segment import Segment, segment_paths

D = "/d"


def make(fs: FaultyFileSystem, base: int = 100, *, sealed_next: int | None = None) -> Segment:
    return Segment(
        fs,
        D,
        base,
        max_store_bytes=400,
        max_index_bytes=4 * ENTRY_BYTES,
        max_record_bytes=200,
        sealed_next_offset=sealed_next,
    )


def payloads(first: int, count: int, size: int = 10) -> list[bytes]:
    return encode_records([b"v" * size] * count, first, 1, 200)


def append(segment: Segment, batch: list[bytes]) -> None:
    """Append and flush, as the Log does before it publishes records to readers."""
    segment.append_payloads(batch)
    segment.store.flush()


@pytest.fixture
def fs(fault_fs: FaultyFileSystem) -> FaultyFileSystem:
    fault_fs.makedirs(D)
    return fault_fs


def test_segment_files_are_named_by_the_zero_padded_base_offset() -> None:
    assert segment_paths("/x", 42) == (
        "/x/00000000000000000042.store",
        "/x/00000000000000000042.index",
    )


def test_a_new_segment_is_empty_at_its_base(fs: FaultyFileSystem) -> None:
    segment = make(fs)
    assert (segment.next_offset, segment.end_offset, segment.is_full) == (100, 100, False)
    assert segment.recovery.bytes_truncated == 0


def test_appended_records_read_back_by_offset(fs: FaultyFileSystem) -> None:
    segment = make(fs)
    append(segment, payloads(100, 3))
    assert segment.next_offset == 103
    assert [decode_record(segment.read_payload(o)).offset for o in (100, 101, 102)] == [
        100,
        101,
        102,
    ]


def test_the_index_fills_before_the_store_and_makes_the_segment_full(
    fs: FaultyFileSystem,
) -> None:
    segment = make(fs)
    assert segment.room_for([10] * 6) == 4
    append(segment, payloads(100, 4))
    assert segment.is_full
    assert segment.room_for([10]) == 0


def test_room_for_counts_store_bytes_and_lets_one_oversized_record_into_an_empty_segment(
    fs: FaultyFileSystem,
) -> None:
    segment = make(fs)
    assert segment.room_for([150, 150, 150]) == 2
    assert segment.room_for([150, 150, 10]) == 3
    assert segment.room_for([500]) == 1
    append(segment, payloads(100, 1))
    assert segment.room_for([500]) == 0


def test_the_store_size_makes_the_segment_full(fs: FaultyFileSystem) -> None:
    segment = make(fs)
    append(segment, payloads(100, 2, 190))
    assert segment.store.size >= 400
    assert segment.is_full


def test_seal_then_reopen_as_sealed_reads_every_record(fs: FaultyFileSystem) -> None:
    segment = make(fs)
    append(segment, payloads(100, 3))
    segment.seal()
    assert segment.sealed_next_offset == 103
    segment.close()
    reopened = make(fs, sealed_next=103)
    assert reopened.recovery.entries_rebuilt == 0
    assert reopened.end_offset == 103
    assert decode_record(reopened.read_payload(102)).offset == 102


def test_a_sealed_segment_missing_its_index_rebuilds_it(fs: FaultyFileSystem) -> None:
    segment = make(fs)
    append(segment, payloads(100, 3))
    segment.seal()
    segment.close()
    fs.remove(segment.index_path)
    reopened = make(fs, sealed_next=103)
    # A zero-filled slot 0 looks like (relative 0, position 0), so it counts as found.
    assert reopened.recovery.entries_rebuilt >= 2
    assert [decode_record(reopened.read_payload(o)).offset for o in (100, 101, 102)] == [
        100,
        101,
        102,
    ]


def test_a_sealed_segment_short_of_records_raises_corrupt_for_the_missing_ones(
    fs: FaultyFileSystem,
) -> None:
    segment = make(fs)
    append(segment, payloads(100, 2))
    segment.close()
    reopened = make(fs, sealed_next=103)
    assert reopened.next_offset == 102
    with pytest.raises(CorruptRecordError) as info:
        reopened.read_payload(102)
    assert info.value.offset == 102


def test_reopening_an_active_segment_cuts_a_torn_tail(fs: FaultyFileSystem) -> None:
    segment = make(fs)
    append(segment, payloads(100, 3))
    segment.close()
    data = fs.read_bytes(segment.store_path)
    fs.write_bytes(segment.store_path, data[:-3])
    fs.remove(segment.index_path)
    reopened = make(fs)
    assert reopened.next_offset == 102
    assert reopened.recovery.bytes_truncated > 0
    assert reopened.recovery.reason == "torn"


def test_truncate_after_the_base_minus_one_empties_the_segment(fs: FaultyFileSystem) -> None:
    segment = make(fs)
    append(segment, payloads(100, 3))
    segment.truncate_after(99)
    assert (segment.next_offset, segment.store.size) == (100, 0)
    append(segment, payloads(100, 1))
    assert decode_record(segment.read_payload(100)).offset == 100


def test_truncate_after_unseals_a_sealed_segment(fs: FaultyFileSystem) -> None:
    segment = make(fs)
    append(segment, payloads(100, 3))
    segment.seal()
    segment.truncate_after(100)
    assert segment.sealed_next_offset is None
    append(segment, payloads(101, 1))
    assert segment.next_offset == 102


def test_remove_deletes_both_files(fs: FaultyFileSystem) -> None:
    segment = make(fs)
    segment.remove()
    assert not fs.exists(segment.store_path)
    assert not fs.exists(segment.index_path)
