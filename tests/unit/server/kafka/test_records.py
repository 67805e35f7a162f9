"""Kafka record batches v2: round trips for every codec, CRC and framing faults refused,
and batches that real Kafka client code (aiokafka's record builder) writes and reads."""

from __future__ import annotations

import struct

import google_crc32c
import pytest
from aiokafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
from hypothesis import given
from hypothesis import strategies as st

from replog.errors import CorruptBatchError, UnsupportedError
from replog.server.kafka.compression import Compression
from replog.server.kafka.records import (
    BatchHeader,
    KafkaRecord,
    RecordBatch,
    decode_batch,
    decode_batches,
    encode_batch,
)

CODECS = list(Compression)
_optional_bytes = st.one_of(st.none(), st.binary(max_size=300))
_records = st.lists(
    st.builds(
        KafkaRecord,
        value=_optional_bytes,
        key=_optional_bytes,
        headers=st.lists(st.tuples(st.text(max_size=20), _optional_bytes), max_size=4).map(tuple),
        timestamp_delta=st.integers(min_value=-(2**40), max_value=2**40),
    ),
    max_size=30,
).map(lambda records: [_at(index, record) for index, record in enumerate(records)])
_headers = st.builds(
    BatchHeader,
    base_offset=st.integers(min_value=0, max_value=2**62),
    base_timestamp=st.integers(min_value=0, max_value=2**45),
    max_timestamp=st.integers(min_value=0, max_value=2**45),
    attributes=st.sampled_from([0, 0x08]),
    producer_id=st.integers(min_value=-1, max_value=2**62),
    producer_epoch=st.integers(min_value=-1, max_value=2**15 - 1),
    base_sequence=st.integers(min_value=-1, max_value=2**31 - 1),
    partition_leader_epoch=st.integers(min_value=-1, max_value=2**31 - 1),
)


def _at(index: int, record: KafkaRecord) -> KafkaRecord:
    return KafkaRecord(record.value, record.key, record.headers, index, record.timestamp_delta)


def _sample(count: int = 3) -> list[KafkaRecord]:
    return [
        KafkaRecord(b"value-%d" % i, b"key-%d" % i, (("h", b"x"), ("n", None)), i, i * 10)
        for i in range(count)
    ]


@pytest.mark.parametrize("codec", CODECS, ids=lambda codec: codec.name.lower())
@given(header=_headers, records=_records)
def test_every_batch_decodes_to_what_was_encoded_with_each_codec(
    codec: Compression, header: BatchHeader, records: list[KafkaRecord]
) -> None:
    data = encode_batch(header, records, codec)
    batch, end = decode_batch(data)
    assert end == len(data)
    assert batch.records == tuple(records)
    assert batch.header.compression == codec
    assert batch.header.record_count == len(records)
    expected_last = records[-1].offset_delta if records else 0
    assert batch.header.last_offset_delta == expected_last
    for name in ("base_offset", "base_timestamp", "max_timestamp", "producer_id"):
        assert getattr(batch.header, name) == getattr(header, name)
    assert batch.header.log_append_time == header.log_append_time


@given(header=_headers, records=_records)
def test_an_uncompressed_batch_reencodes_to_the_same_bytes(
    header: BatchHeader, records: list[KafkaRecord]
) -> None:
    data = encode_batch(header, records)
    batch, _ = decode_batch(data)
    assert encode_batch(batch.header, batch.records) == data


@given(records=_records.filter(bool), data=st.data())
def test_a_batch_with_any_byte_changed_after_its_crc_is_refused(
    records: list[KafkaRecord], data: st.DataObject
) -> None:
    encoded = bytearray(encode_batch(BatchHeader(), records))
    position = data.draw(st.integers(min_value=21, max_value=len(encoded) - 1))
    encoded[position] ^= data.draw(st.integers(min_value=1, max_value=255))
    with pytest.raises(CorruptBatchError):
        decode_batch(bytes(encoded))


@given(records=_records, cut=st.integers(min_value=1, max_value=200))
def test_a_truncated_batch_is_refused(records: list[KafkaRecord], cut: int) -> None:
    encoded = encode_batch(BatchHeader(), records)
    with pytest.raises(CorruptBatchError):
        decode_batches(encoded[: max(0, len(encoded) - cut)] or b"\x00")


def test_a_batch_whose_crc_field_is_wrong_is_refused() -> None:
    encoded = bytearray(encode_batch(BatchHeader(), _sample()))
    encoded[17] ^= 0x01
    with pytest.raises(CorruptBatchError, match="CRC"):
        decode_batch(bytes(encoded))


def test_a_batch_of_an_older_message_format_is_unsupported() -> None:
    encoded = bytearray(encode_batch(BatchHeader(), _sample()))
    encoded[16] = 1
    with pytest.raises(UnsupportedError, match="magic"):
        decode_batch(bytes(encoded))


def test_a_compressed_payload_that_does_not_decompress_is_refused() -> None:
    body = b"this is not gzip"
    rest = struct.pack(">hiqqqhii", 1, 0, 0, 0, -1, -1, -1, 1) + body
    prefix = struct.pack(">qiibI", 0, 49 + len(body), -1, 2, google_crc32c.value(rest))
    with pytest.raises(CorruptBatchError, match="gzip"):
        decode_batch(prefix + rest)


def test_a_produce_payload_of_several_batches_decodes_to_each_in_order() -> None:
    first = encode_batch(BatchHeader(base_offset=0), _sample(2), Compression.GZIP)
    second = encode_batch(BatchHeader(base_offset=2), _sample(3), Compression.ZSTD)
    batches = decode_batches(first + second)
    assert [len(batch.records) for batch in batches] == [2, 3]
    assert [batch.header.base_offset for batch in batches] == [0, 2]


@pytest.mark.parametrize("codec", CODECS, ids=lambda codec: codec.name.lower())
def test_a_batch_built_by_aiokafka_decodes_with_its_records_intact(codec: Compression) -> None:
    builder = DefaultRecordBatchBuilder(
        magic=2, compression_type=int(codec), is_transactional=False,
        producer_id=7, producer_epoch=1, base_sequence=5, batch_size=1 << 20,
    )  # fmt: skip
    for i in range(5):
        builder.append(i, 1_700_000_000_000 + i, b"k%d" % i, b"v" * 200, [("h", b"%d" % i)])
    data = bytes(builder.build())
    batch, end = decode_batch(data)
    assert end == len(data)
    assert batch.header.compression == codec
    assert (batch.header.producer_id, batch.header.producer_epoch) == (7, 1)
    assert batch.header.base_sequence == 5
    assert [r.key for r in batch.records] == [b"k%d" % i for i in range(5)]
    assert [batch.header.base_timestamp + r.timestamp_delta for r in batch.records] == [
        1_700_000_000_000 + i for i in range(5)
    ]
    assert batch.records[3].headers == (("h", b"3"),)


@pytest.mark.parametrize("codec", CODECS, ids=lambda codec: codec.name.lower())
def test_a_batch_replog_encodes_is_read_by_aiokafka(codec: Compression) -> None:
    header = BatchHeader(base_offset=10, base_timestamp=1000, max_timestamp=1002)
    data = encode_batch(header, _sample(3), codec)
    read = DefaultRecordBatch(data)
    assert read.validate_crc()
    rows = [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in read]
    assert rows == [
        (10 + i, 1000 + i * 10, b"key-%d" % i, b"value-%d" % i, [("h", b"x"), ("n", None)])
        for i in range(3)
    ]


def test_an_empty_batch_round_trips() -> None:
    batch, _ = decode_batch(encode_batch(BatchHeader(base_offset=4), []))
    assert batch == RecordBatch(BatchHeader(base_offset=4), ())
