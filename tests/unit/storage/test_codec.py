"""Record <-> frame bytes: round trips, limits and the frame scanner."""

from __future__ import annotations

import pytest

from replog.errors import InvalidArgumentError, RecordTooLargeError
from replog.storage.codec import (
    FRAME_HEADER,
    FRAME_HEADER_BYTES,
    decode_record,
    encode_frames,
    encode_records,
    make_record,
    scan_frames,
)
from replog.v1.record_pb2 import Record


def test_a_value_round_trips_with_its_offset_and_timestamp() -> None:
    (payload,) = encode_records([b"hello"], 7, 123, 1000)
    record = decode_record(payload)
    assert (record.value, record.offset, record.timestamp_ms) == (b"hello", 7, 123)


def test_a_record_keeps_its_key_and_headers_but_gets_the_assigned_offset() -> None:
    source = make_record(b"v", key=b"k", headers={"h1": b"a", "h2": b""})
    source.offset = 99
    payloads = encode_records([b"first", source], 10, 5, 1000, term=3)
    record = decode_record(payloads[1])
    assert record.key == b"k"
    assert [(h.key, h.value) for h in record.headers] == [("h1", b"a"), ("h2", b"")]
    assert (record.offset, record.timestamp_ms, record.term) == (11, 5, 3)
    assert source.offset == 99  # the caller's record is not modified


def test_bytearray_and_memoryview_values_are_accepted_as_bytes() -> None:
    payloads = encode_records([bytearray(b"ab"), memoryview(b"cd")], 0, 1, 1000)
    assert [decode_record(p).value for p in payloads] == [b"ab", b"cd"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"value": "text"},
        {"value": b"v", "key": "k"},
        {"value": b"v", "headers": [("h", "not bytes")]},
        {"value": b"v", "headers": [(1, b"x")]},
    ],
)
def test_make_record_rejects_wrong_types(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidArgumentError):
        make_record(**kwargs)  # type: ignore[arg-type]


def test_a_record_over_the_limit_is_refused_with_its_size() -> None:
    with pytest.raises(RecordTooLargeError) as info:
        encode_records([b"x" * 100], 0, 1, 50)
    assert info.value.limit == 50
    assert info.value.size > 100


def test_a_batch_with_one_bad_value_encodes_nothing() -> None:
    with pytest.raises(InvalidArgumentError):
        encode_records([b"ok", 5], 0, 1, 1000)


def test_frames_scan_back_into_the_same_payloads_and_positions() -> None:
    payloads = encode_records([b"a", b"bb" * 30, b"c"], 0, 1, 1000)
    data, starts = encode_frames(payloads)
    scan = scan_frames(data, 100, 1000)
    assert scan.payloads == payloads
    assert scan.positions == [100 + s for s in starts]
    assert (scan.end, scan.stop) == (100 + len(data), "end")


def test_a_scan_stops_at_a_torn_frame_and_at_a_corrupt_one() -> None:
    payloads = encode_records([b"a", b"b"], 0, 1, 1000)
    data, starts = encode_frames(payloads)
    torn = scan_frames(data[:-1], 0, 1000)
    assert (torn.payloads, torn.end, torn.stop) == (payloads[:1], starts[1], "torn")
    flipped = bytearray(data)
    flipped[-1] ^= 0xFF
    corrupt = scan_frames(bytes(flipped), 0, 1000)
    assert (corrupt.payloads, corrupt.stop) == (payloads[:1], "corrupt")


def test_a_zero_filled_tail_is_not_a_frame() -> None:
    (payload,) = encode_records([b"a"], 0, 1, 1000)
    data, _ = encode_frames([payload])
    scan = scan_frames(data + bytes(FRAME_HEADER_BYTES + 4), 0, 1000)
    assert (scan.payloads, scan.end, scan.stop) == ([payload], len(data), "corrupt")


def test_an_impossible_length_is_corrupt_not_a_huge_read() -> None:
    scan = scan_frames(FRAME_HEADER.pack(2**40, 0) + b"x" * 10, 0, 1000)
    assert (scan.payloads, scan.stop) == ([], "corrupt")


def test_records_compare_equal_after_a_round_trip() -> None:
    record = Record(value=b"v", key=b"k", offset=3, timestamp_ms=9)
    assert decode_record(record.SerializeToString()) == record
