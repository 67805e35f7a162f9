"""Protobuf bytes on the hot paths, handled without building more messages than needed.

A ``repeated Record records = 1`` field is each record's bytes behind a tag and a length,
so a ConsumeBatchResponse is built by concatenating the serialized records the Log returns,
and a ProduceBatchRequest whose records hold only values is recognised by its length alone
(see ``produce_batch_values``).
"""

from __future__ import annotations

from google.protobuf.message import DecodeError

from replog.errors import InvalidArgumentError
from replog.storage.codec import records_batch_bytes
from replog.v1.log_pb2 import ProduceBatchRequest
from replog.v1.record_pb2 import Record

__all__ = [
    "encode_batch_response",
    "encode_consume_response",
    "produce_batch_values",
    "record_value",
    "varint",
]

_SMALL = [bytes((0x0A, n)) for n in range(128)]


def varint(value: int) -> bytes:
    """The protobuf base-128 varint encoding of a non-negative integer."""
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field1(payload: bytes) -> bytes:
    n = len(payload)
    return _SMALL[n] if n < 128 else b"\x0a" + varint(n)


def encode_consume_response(payload: bytes) -> bytes:
    """A serialized ConsumeResponse holding one serialized Record."""
    return _field1(payload) + payload


def encode_batch_response(payloads: list[bytes], high_watermark: int, next_offset: int) -> bytes:
    """A serialized ConsumeBatchResponse: serialized Records, the high watermark and the
    offset the next read starts at.

    Its field 1 is the ``records`` field of a RecordBatch too, so the storage codec's
    prefix-cached encoder builds it.
    """
    records = records_batch_bytes(payloads)
    tail = b"\x10" + varint(high_watermark) if high_watermark else b""
    if next_offset:
        tail += b"\x18" + varint(next_offset)
    return records + tail if tail else records


def record_value(record: Record) -> bytes | Record:
    """What to append for a produced Record: its bare value when it has no key or headers.

    Raises InvalidArgumentError for a record with a ``type``: non-zero types are control
    records that only replication writes (and consumers skip).
    """
    if record.type:
        raise InvalidArgumentError(
            f"Record.type {record.type} is reserved for replication; produce records of type 0"
        )
    if not record.key and not len(record.headers):
        return record.value
    return record


def _value_only_size(value_size: int) -> int:
    """Bytes a record holding only a ``value_size``-byte value takes in a batch request."""
    inner = 1 + len(varint(value_size)) + value_size if value_size else 0
    return 1 + len(varint(inner)) + inner


_VALUE_ONLY_SIZES = [_value_only_size(n) for n in range(1 << 14)]


def _value_only_total(values: list[bytes]) -> int:
    sizes = map(len, values)
    try:
        return sum(map(_VALUE_ONLY_SIZES.__getitem__, sizes))
    except IndexError:  # a value of 16 KiB or more
        return sum(map(_value_only_size, map(len, values)))


def produce_batch_values(data: bytes) -> list[bytes | Record]:
    """What to append for a serialized ProduceBatchRequest, as ``record_value`` gives.

    Most batches carry bare values: the request is parsed once, the values taken, and if
    the request is exactly as long as those values wrapped minimally as Records (each
    Record only a value field), no record can hold anything else, so none is inspected.
    Otherwise each record is looked at. Raises InvalidArgumentError for bytes that do not
    parse or a batch without records.
    """
    try:
        records = ProduceBatchRequest.FromString(data).records
    except DecodeError as exc:
        raise InvalidArgumentError(f"malformed ProduceBatchRequest: {exc}") from None
    if not len(records):
        raise InvalidArgumentError("ProduceBatch needs at least one record")
    values: list[bytes | Record] = [record.value for record in records]
    if _value_only_total(values) == len(data):  # type: ignore[arg-type]
        return values
    return [record_value(record) for record in records]
