"""EncodedRecords: the stored bytes are exactly those the Record path stores."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replog.broker.admission import keys_of
from replog.broker.producer_records import stamp
from replog.errors import RecordTooLargeError
from replog.storage import Log
from replog.storage.codec import encode_records
from replog.storage.encoded import EncodedRecords
from replog.v1.record_pb2 import Header, Record

_names = st.text(max_size=6)
_bytes = st.binary(max_size=300)
_records = st.lists(
    st.builds(
        lambda value, key, headers: Record(
            value=value, key=key, headers=[Header(key=k, value=v) for k, v in headers]
        ),
        _bytes,
        st.binary(max_size=20),
        st.lists(st.tuples(_names, st.binary(max_size=8)), max_size=3),
    ),
    min_size=1,
    max_size=40,
)
_offsets = st.sampled_from([0, 1, 100, 127, 128, 129, 250, 16_383, 16_384, 2**35 - 7, 2**63])


@settings(max_examples=150, deadline=None)
@given(
    records=_records,
    first=_offsets,
    timestamp=st.sampled_from([0, 1, 1_700_000_000_000]),
    term=st.sampled_from([0, 1, 300]),
    record_type=st.sampled_from([0, 2]),
)
def test_encoded_records_store_the_bytes_the_record_path_stores(
    records: list[Record], first: int, timestamp: int, term: int, record_type: int
) -> None:
    encoded = EncodedRecords.from_records(records)
    expected = encode_records(
        records, first, timestamp, 1 << 20, term=term, record_type=record_type
    )
    got = encode_records(encoded, first, timestamp, 1 << 20, term=term, record_type=record_type)
    assert got == expected
    assert list(encoded) == records
    assert keys_of(encoded) == keys_of(records)


@settings(max_examples=60, deadline=None)
@given(
    records=_records,
    producer=st.tuples(st.integers(1, 2**63 - 1), st.integers(0, 5), st.integers(0, 2**31 - 1)),
    first=_offsets,
)
def test_a_stamped_batch_stores_the_producer_fields_as_a_stamped_record_does(
    records: list[Record], producer: tuple[int, int, int], first: int
) -> None:
    stamped = stamp(EncodedRecords.from_records(records), *producer)
    assert isinstance(stamped, EncodedRecords)
    expected = encode_records(stamp(records, *producer), first, 7, 1 << 20)
    assert encode_records(stamped, first, 7, 1 << 20) == expected


def test_concatenated_batches_store_each_batch_as_it_would_alone() -> None:
    a = EncodedRecords([b"a", b""])
    b = EncodedRecords.from_records([Record(value=b"b", key=b"k")]).stamped(9, 1, 5)
    c = EncodedRecords([b"c"])
    joined = EncodedRecords.concat([a, b, c])
    expected = [*a, *b, *c]
    assert list(joined) == expected
    assert joined.keys() == [b"", b"", b"k", b""]
    assert encode_records(joined, 126, 5, 1 << 20) == encode_records(expected, 126, 5, 1 << 20)


def test_a_record_over_the_limit_is_refused_and_nothing_is_appended(tmp_path: Path) -> None:
    with Log(tmp_path) as log:
        with pytest.raises(RecordTooLargeError):
            log.append_batch(EncodedRecords([b"ok", b"x" * 2_000_000]))
        assert log.next_offset == 0
        assert log.append_batch(EncodedRecords([b"a", b"b"], [b"", b"2\x01k"], [b"", b"k"])) == 0
        assert [r.key for r in log.read_batch(0, max_records=2)] == [b"", b"k"]


def test_raft_measures_prepared_records_without_making_a_message_of_each() -> None:
    from replog.raft.records import values_bytes

    class Counted(EncodedRecords):
        __slots__ = ()

        def __getitem__(self, index):  # type: ignore[no-untyped-def, override]
            raise AssertionError("a record was materialised to be measured")

    encoded = Counted([b"abc", b"de"], [b"", b"2\x01k"], [b"", b"k"])
    assert values_bytes(encoded) == encoded.byte_size() == 8
    assert (
        values_bytes([b"abc", Record(value=b"de", key=b"k")])
        == 3 + Record(value=b"de", key=b"k").ByteSize()
    )
