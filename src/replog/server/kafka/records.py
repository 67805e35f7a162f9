"""Kafka record batches (magic v2): decode and encode, CRC-32C checked, every codec.

Pure: bytes in, values out. A batch is decoded once (one CRC, one decompression, one
pass over its records) and encoded once; nothing re-encodes a record on its own.
Layout (Kafka's): baseOffset i64, batchLength i32, partitionLeaderEpoch i32, magic i8,
crc u32, attributes i16, lastOffsetDelta i32, baseTimestamp i64, maxTimestamp i64,
producerId i64, producerEpoch i16, baseSequence i32, records i32, then the records,
each a varint length, attributes i8, timestampDelta varlong, offsetDelta varint, key,
value and headers (varint-length byte strings, -1 = null)."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

import google_crc32c
from kio.serial.errors import BufferUnderflow
from kio.serial.readers import read_signed_varint, read_signed_varlong

from replog.errors import CorruptBatchError, UnsupportedError
from replog.server.kafka.compression import Compression, compress, decompress

__all__ = [
    "BATCH_OVERHEAD",
    "BatchHeader",
    "KafkaRecord",
    "RecordBatch",
    "decode_batch",
    "decode_batches",
    "encode_batch",
    "frame_batch",
    "read_batch",
    "read_batches",
    "zigzag",
]

_HEADER = struct.Struct(">qiibIhiqqqhii")
BATCH_OVERHEAD = _HEADER.size
"""Bytes of a batch before its first record (61)."""
_LENGTH_END = 12  # baseOffset + batchLength: batchLength counts the bytes after it
_CRC_START = 21  # the CRC covers attributes to the end of the batch
_MAGIC = 2
_MAGIC_AT = 16  # after baseOffset, batchLength, partitionLeaderEpoch (v0/v1: offset, size, crc)
_CODEC_MASK = 0x07
_LOG_APPEND_TIME = 0x08
_TRANSACTIONAL = 0x10
_CONTROL = 0x20


@dataclass(frozen=True, slots=True)
class KafkaRecord:
    """One record of a batch, its offset and timestamp relative to the batch's bases."""

    value: bytes | None
    key: bytes | None = None
    headers: tuple[tuple[str, bytes | None], ...] = ()
    offset_delta: int = 0
    timestamp_delta: int = 0


@dataclass(frozen=True, slots=True)
class BatchHeader:
    """A batch's fixed fields (record count and last offset delta come from its records)."""

    base_offset: int = 0
    base_timestamp: int = 0
    max_timestamp: int = 0
    attributes: int = 0
    producer_id: int = -1
    producer_epoch: int = -1
    base_sequence: int = -1
    partition_leader_epoch: int = -1
    last_offset_delta: int = 0
    record_count: int = 0

    @property
    def compression(self) -> int:
        """The codec number in bits 0-2 of the attributes."""
        return self.attributes & _CODEC_MASK

    @property
    def log_append_time(self) -> bool:
        """Whether the timestamps are the broker's append time (else the producer's)."""
        return bool(self.attributes & _LOG_APPEND_TIME)

    @property
    def transactional(self) -> bool:
        """Whether the batch belongs to a transaction."""
        return bool(self.attributes & _TRANSACTIONAL)

    @property
    def control(self) -> bool:
        """Whether the batch holds control records (transaction markers)."""
        return bool(self.attributes & _CONTROL)


@dataclass(frozen=True, slots=True)
class RecordBatch:
    """A decoded batch: its header and its records, in order."""

    header: BatchHeader
    records: tuple[KafkaRecord, ...] = field(default=())


def decode_batches(data: bytes) -> list[RecordBatch]:
    """Every batch of a produce request's records field, which must hold whole batches.

    Raises CorruptBatchError for a truncated or corrupt batch, UnsupportedError for a
    message format older than v2 or an unknown compression codec."""
    batches: list[RecordBatch] = []
    position = 0
    while position < len(data):
        batch, position = decode_batch(data, position)
        batches.append(batch)
    return batches


def decode_batch(data: bytes, position: int = 0) -> tuple[RecordBatch, int]:
    """The batch that starts at ``position`` of ``data`` and the position after it.

    Raises CorruptBatchError when the batch is truncated, fails its CRC-32C, does not
    decompress or its records do not fill it exactly; UnsupportedError for an older
    message format (magic 0 or 1, whose messages can be shorter than a v2 header) or a
    compression codec Kafka does not define (5-7)."""
    header, body, end = read_batch(data, position)
    return RecordBatch(header, _decode_records(body, header.record_count)), end


def read_batches(data: bytes) -> list[tuple[BatchHeader, bytes]]:
    """Every batch of a produce request's records field as its header and its records'
    bytes (decompressed), CRC-checked; the errors of ``decode_batches`` but those of the
    records themselves (a caller decodes those)."""
    batches: list[tuple[BatchHeader, bytes]] = []
    position = 0
    while position < len(data):
        header, body, position = read_batch(data, position)
        batches.append((header, body))
    return batches


def read_batch(data: bytes, position: int = 0) -> tuple[BatchHeader, bytes, int]:
    """The header and records' bytes (decompressed) of the batch at ``position`` of
    ``data``, CRC-checked, and the position after it; the errors of ``decode_batch`` but
    those of the records themselves."""
    if len(data) - position > _MAGIC_AT and data[position + _MAGIC_AT] != _MAGIC:
        magic = struct.unpack_from(">b", data, position + _MAGIC_AT)[0]
        raise UnsupportedError(f"record batch magic {magic}; only v2 batches are served")
    if len(data) - position < BATCH_OVERHEAD:
        raise CorruptBatchError("record batch is shorter than its header")
    fields = _HEADER.unpack_from(data, position)
    (base_offset, length, leader_epoch, _, crc, attributes, last_delta) = fields[:7]
    (base_ts, max_ts, producer_id, producer_epoch, base_sequence, count) = fields[7:]
    end = position + _LENGTH_END + length
    if length < BATCH_OVERHEAD - _LENGTH_END or end > len(data):
        raise CorruptBatchError(f"record batch length {length} does not fit the data")
    view = memoryview(data)[position:end]
    if google_crc32c.value(bytes(view[_CRC_START:])) != crc:
        raise CorruptBatchError("record batch fails its CRC-32C")
    header = BatchHeader(
        base_offset, base_ts, max_ts, attributes, producer_id, producer_epoch,
        base_sequence, leader_epoch, last_delta, count,
    )  # fmt: skip
    body = decompress(attributes & _CODEC_MASK, bytes(view[BATCH_OVERHEAD:]))
    if count < 0:
        raise CorruptBatchError(f"record batch claims {count} records")
    return header, body, end


def _decode_records(body: bytes, count: int) -> tuple[KafkaRecord, ...]:
    if count < 0:
        raise CorruptBatchError(f"record batch claims {count} records")
    records: list[KafkaRecord] = []
    position = 0
    try:
        for _ in range(count):
            record, position = _decode_record(body, position)
            records.append(record)
    except (BufferUnderflow, ValueError, IndexError, UnicodeDecodeError) as exc:
        raise CorruptBatchError(f"record {len(records)} does not decode: {exc}") from None
    if position != len(body):
        raise CorruptBatchError(f"{len(body) - position} bytes after the batch's records")
    return tuple(records)


def _decode_record(body: bytes, position: int) -> tuple[KafkaRecord, int]:
    length, size = read_signed_varint(body, position)
    position += size
    end = position + length
    if length < 0 or end > len(body):
        raise CorruptBatchError(f"record length {length} does not fit the batch")
    position += 1  # record attributes: unused
    timestamp_delta, size = read_signed_varlong(body, position)
    position += size
    offset_delta, size = read_signed_varint(body, position)
    position += size
    key, position = _read_bytes(body, position, end)
    value, position = _read_bytes(body, position, end)
    header_count, size = read_signed_varint(body, position)
    position += size
    headers: list[tuple[str, bytes | None]] = []
    for _ in range(header_count):
        name, position = _read_bytes(body, position, end)
        if name is None:
            raise CorruptBatchError("a record header has a null key")
        header_value, position = _read_bytes(body, position, end)
        headers.append((name.decode(), header_value))
    if position != end:
        raise CorruptBatchError("a record's fields do not fill its length")
    return KafkaRecord(value, key, tuple(headers), offset_delta, timestamp_delta), end


def _read_bytes(body: bytes, position: int, end: int) -> tuple[bytes | None, int]:
    length, size = read_signed_varint(body, position)
    position += size
    if length == -1:
        return None, position
    if length < 0 or position + length > end:
        raise CorruptBatchError(f"a record field of length {length} does not fit its record")
    return body[position : position + length], position + length


def encode_batch(
    header: BatchHeader, records: Sequence[KafkaRecord], compression: int | None = None
) -> bytes:
    """The batch of ``records`` with ``header``'s fields, compressed with ``compression``
    (default: the codec in ``header.attributes``); the record count comes from ``records``,
    the last offset delta from the last record or, when larger, from ``header`` (a batch
    that also covers skipped offsets after its records)."""
    last_delta = records[-1].offset_delta if records else 0
    body = b"".join(_encode_record(record) for record in records)
    return frame_batch(header, body, len(records), last_delta, compression)


def frame_batch(
    header: BatchHeader,
    body: bytes,
    count: int,
    last_delta: int,
    compression: int | None = None,
) -> bytes:
    """The batch of ``count`` records already encoded in ``body`` (the last at offset
    delta ``last_delta``), as ``encode_batch`` frames it."""
    codec = header.compression if compression is None else compression
    attributes = (header.attributes & ~_CODEC_MASK) | codec
    body = compress(Compression(codec), body)
    last_delta = max(header.last_offset_delta, last_delta)
    rest = struct.pack(
        ">hiqqqhii", attributes, last_delta, header.base_timestamp, header.max_timestamp,
        header.producer_id, header.producer_epoch, header.base_sequence, count,
    )  # fmt: skip
    crc = google_crc32c.value(rest + body)
    length = BATCH_OVERHEAD - _LENGTH_END + len(body)
    prefix = struct.pack(
        ">qiibI", header.base_offset, length, header.partition_leader_epoch, _MAGIC, crc
    )
    return prefix + rest + body


def _encode_record(record: KafkaRecord) -> bytes:
    parts = [
        b"\x00",
        _varint(record.timestamp_delta),
        _varint(record.offset_delta),
        *_bytes_field(record.key),
        *_bytes_field(record.value),
        _varint(len(record.headers)),
    ]
    for name, value in record.headers:
        parts.extend(_bytes_field(name.encode()))
        parts.extend(_bytes_field(value))
    body = b"".join(parts)
    return _varint(len(body)) + body


def _bytes_field(value: bytes | None) -> tuple[bytes, ...]:
    if value is None:
        return (b"\x01",)  # zigzag(-1)
    return (_varint(len(value)), value)


_ZIGZAG = [b""] * (1 << 14)


def zigzag(value: int) -> bytes:
    """``value`` zigzag-encoded as a varint, from a table for the small non-negative
    values most fields hold (offset deltas, lengths)."""
    if 0 <= value < len(_ZIGZAG):
        return _ZIGZAG[value]
    return _varint(value)


def _varint(value: int) -> bytes:
    """``value`` zigzag-encoded as a variable-length integer (Kafka's varint/varlong)."""
    unsigned = (value << 1) ^ (value >> 63)
    out = bytearray()
    while unsigned > 0x7F:
        out.append((unsigned & 0x7F) | 0x80)
        unsigned >>= 7
    out.append(unsigned)
    return bytes(out)


_ZIGZAG[:] = [_varint(n) for n in range(len(_ZIGZAG))]
