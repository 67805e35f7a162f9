"""The one-pass paths agree with the record-by-record ones they replaced: a produced Kafka
batch is stored, through ``encoded_records`` (no message per record), as exactly the bytes
``batch_to_records`` gives, and refused exactly when that path refuses it; a fetched batch
(``records_to_batch``, written straight from the records' fields) is the bytes that
encoding each record as a ``KafkaRecord`` gives."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replog.errors import CorruptBatchError
from replog.server.kafka.mapping import batch_to_records, encoded_records, records_to_batch
from replog.server.kafka.records import (
    BatchHeader,
    KafkaRecord,
    RecordBatch,
    _decode_records,
    decode_batch,
    encode_batch,
    read_batch,
)
from replog.storage.codec import encode_records
from replog.v1.record_pb2 import Header, Record

_kafka_records = st.lists(
    st.builds(
        KafkaRecord,
        value=st.none() | st.binary(max_size=200),
        key=st.none() | st.binary(max_size=20),
        headers=st.lists(
            st.tuples(st.text(max_size=6), st.none() | st.binary(max_size=8)), max_size=3
        ).map(tuple),
        offset_delta=st.integers(0, 1000),
        timestamp_delta=st.integers(-5, 2**40),
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=150, deadline=None)
@given(records=_kafka_records, codec=st.sampled_from([0, 1, 3]))
def test_encoded_records_store_what_batch_to_records_stores(
    records: list[KafkaRecord], codec: int
) -> None:
    data = encode_batch(BatchHeader(base_timestamp=1_000), records, codec)
    header, body, _ = read_batch(data)
    encoded = encoded_records(body, header.record_count)
    expected = batch_to_records(decode_batch(data)[0])
    assert encode_records(encoded, 300, 5, 1 << 20) == encode_records(expected, 300, 5, 1 << 20)


@settings(max_examples=200, deadline=None)
@given(records=_kafka_records, data=st.data())
def test_a_damaged_batch_is_refused_exactly_when_the_record_path_refuses_it(
    records: list[KafkaRecord], data: st.DataObject
) -> None:
    header, body, _ = read_batch(encode_batch(BatchHeader(), records, 0))
    damaged = bytearray(body)
    at = data.draw(st.integers(0, len(body) - 1))
    damaged[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(damaged)))
    count = header.record_count + data.draw(st.sampled_from([0, 0, 1, -1]))
    damaged_body = bytes(damaged[:cut] if data.draw(st.booleans()) else damaged)
    try:
        expected = batch_to_records(RecordBatch(header, decode_records_of(damaged_body, count)))
    except CorruptBatchError:
        with pytest.raises(CorruptBatchError):
            encoded_records(damaged_body, count)
        return
    got = encoded_records(damaged_body, count)
    assert encode_records(got, 0, 5, 1 << 20) == encode_records(expected, 0, 5, 1 << 20)


def decode_records_of(body: bytes, count: int) -> tuple[KafkaRecord, ...]:
    """The record-by-record decoder the produce path used before."""
    return _decode_records(body, count)


_replog_records = st.lists(
    st.tuples(
        st.binary(max_size=200),
        st.binary(max_size=20),
        st.lists(st.tuples(st.text(max_size=6), st.binary(max_size=8)), max_size=3),
        st.integers(1, 3),
        st.sampled_from([0, 1, 1_700_000_000_000, 1_700_000_000_003]),
    ),
    max_size=30,
)


@settings(max_examples=150, deadline=None)
@given(rows=_replog_records, start_gap=st.integers(0, 2), end_gap=st.integers(0, 2))
def test_a_fetched_batch_is_the_bytes_record_by_record_encoding_gives(
    rows: list[tuple[bytes, bytes, list[tuple[str, bytes]], int, int]],
    start_gap: int,
    end_gap: int,
) -> None:
    records, offset = [], 20_000
    for value, key, headers, gap, timestamp in rows:
        offset += gap
        headers_ = [Header(key=k, value=v) for k, v in headers]
        records.append(
            Record(value=value, key=key, offset=offset, timestamp_ms=timestamp, headers=headers_)
        )
    start = (records[0].offset if records else 20_000) - start_gap
    end = offset + 1 + end_gap
    got = records_to_batch(records, log_append_time=True, start=start, next_offset=end)
    assert got == _record_by_record(records, start, end)


def _record_by_record(records: list[Record], start: int, end: int) -> bytes:
    """The fetch encoding before it was written straight from the fields."""
    base_timestamp = records[0].timestamp_ms if records else 0
    kafka_records = [
        KafkaRecord(
            value=record.value,
            key=record.key or None,
            headers=tuple((header.key, header.value) for header in record.headers),
            offset_delta=record.offset - start,
            timestamp_delta=record.timestamp_ms - base_timestamp,
        )
        for record in records
    ]
    header = BatchHeader(
        base_offset=start,
        base_timestamp=base_timestamp,
        max_timestamp=max((record.timestamp_ms for record in records), default=0),
        attributes=0x08,
        last_offset_delta=max(0, end - start - 1),
    )
    return encode_batch(header, kafka_records, 0)
