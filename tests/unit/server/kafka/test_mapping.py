"""Kafka records map to replog records (value, key, headers, timestamp) and back."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from replog.server.kafka.compression import Compression
from replog.server.kafka.mapping import batch_to_records, records_to_batch
from replog.server.kafka.records import BatchHeader, KafkaRecord, RecordBatch, decode_batch
from replog.v1.record_pb2 import Header, Record

_replog_records = st.lists(
    st.tuples(
        st.binary(max_size=100),
        st.binary(max_size=20),
        st.lists(st.tuples(st.text(max_size=10), st.binary(max_size=20)), max_size=3),
        st.integers(min_value=1, max_value=3),
        st.integers(min_value=0, max_value=2**41),
    ),
    min_size=1,
    max_size=20,
)


def _build(rows: list[tuple[bytes, bytes, list[tuple[str, bytes]], int, int]]) -> list[Record]:
    records, offset = [], 1000
    for value, key, headers, gap, timestamp in rows:
        offset += gap
        records.append(
            Record(
                value=value,
                key=key,
                offset=offset,
                timestamp_ms=timestamp,
                headers=[Header(key=k, value=v) for k, v in headers],
            )
        )
    return records


@given(rows=_replog_records, codec=st.sampled_from(list(Compression)))
def test_replog_records_read_back_from_their_kafka_batch_unchanged(
    rows: list[tuple[bytes, bytes, list[tuple[str, bytes]], int, int]], codec: Compression
) -> None:
    records = _build(rows)
    batch, _ = decode_batch(records_to_batch(records, codec))
    assert batch.header.base_offset == records[0].offset
    offsets = [batch.header.base_offset + r.offset_delta for r in batch.records]
    assert offsets == [record.offset for record in records]
    back = batch_to_records(batch)
    for original, mapped in zip(records, back, strict=True):
        assert mapped.value == original.value
        assert mapped.key == original.key
        assert mapped.timestamp_ms == original.timestamp_ms
        assert list(mapped.headers) == list(original.headers)


def test_a_kafka_record_becomes_a_replog_record_with_its_create_time() -> None:
    batch = RecordBatch(
        BatchHeader(base_timestamp=1_700_000_000_000, max_timestamp=1_700_000_000_005),
        (
            KafkaRecord(b"v", b"k", (("trace", b"1"),), 0, 0),
            KafkaRecord(None, None, (("empty", None),), 1, 5),
        ),
    )
    first, second = batch_to_records(batch)
    assert (first.value, first.key, first.timestamp_ms) == (b"v", b"k", 1_700_000_000_000)
    assert [(h.key, h.value) for h in first.headers] == [("trace", b"1")]
    assert (second.value, second.key, second.timestamp_ms) == (b"", b"", 1_700_000_000_005)
    assert [(h.key, h.value) for h in second.headers] == [("empty", b"")]


def test_a_log_append_time_batch_gives_every_record_the_batch_max_timestamp() -> None:
    batch = RecordBatch(
        BatchHeader(base_timestamp=10, max_timestamp=99, attributes=0x08),
        (KafkaRecord(b"a", None, (), 0, 0), KafkaRecord(b"b", None, (), 1, 3)),
    )
    assert [record.timestamp_ms for record in batch_to_records(batch)] == [99, 99]


def test_an_empty_replog_key_reads_as_a_null_kafka_key() -> None:
    batch, _ = decode_batch(records_to_batch([Record(value=b"v", offset=5, timestamp_ms=1)]))
    assert batch.records[0].key is None
    assert batch.records[0].value == b"v"
