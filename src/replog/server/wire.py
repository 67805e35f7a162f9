"""Protobuf bytes on the hot paths, handled without building more messages than needed.

A ``repeated Record records = 1`` field is each record's bytes behind a tag and a length,
so a ConsumeBatchResponse is built by concatenating the serialized records the Log returns,
and a ProduceBatchRequest whose records hold only values is recognised by its length alone
(see ``produce_batch_values``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from google.protobuf.message import DecodeError, Message

from replog.errors import InvalidArgumentError
from replog.storage.codec import records_batch_bytes
from replog.v1.log_pb2 import ProduceBatchRequest, ProduceRequest
from replog.v1.record_pb2 import Record

__all__ = [
    "MalformedRequest",
    "check_parsed",
    "encode_batch_response",
    "encode_consume_response",
    "offset_after",
    "produce_batch_values",
    "produce_value",
    "record_value",
    "request_parser",
    "varint",
]

M = TypeVar("M", bound=Message)

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


def encode_batch_response(payloads: list[bytes], high_watermark: int) -> bytes:
    """A serialized ConsumeBatchResponse holding serialized Records and the high watermark.

    Its field 1 is the ``records`` field of a RecordBatch too, so the storage codec's
    prefix-cached encoder builds it.
    """
    records = records_batch_bytes(payloads)
    if high_watermark:
        return records + b"\x10" + varint(high_watermark)
    return records


class MalformedRequest:
    """What a request deserializer gives for bytes that do not parse as its message.

    grpcio turns an exception raised by a deserializer into UNKNOWN with the exception's
    class and text as the details; the handler turns this into INVALID_ARGUMENT instead.
    """

    __slots__ = ("message",)

    def __init__(self, type_name: str) -> None:
        self.message = f"the request is not a valid {type_name} (malformed protobuf)"


def request_parser(message_type: type[M]) -> Callable[[bytes], M | MalformedRequest]:
    """A gRPC request deserializer for ``message_type`` that never raises."""
    from_string = message_type.FromString
    name = message_type.DESCRIPTOR.name

    def parse(data: bytes) -> M | MalformedRequest:
        try:
            return from_string(data)
        except DecodeError:
            return MalformedRequest(name)

    return parse


def check_parsed(request: Any) -> None:
    """Raise InvalidArgumentError if ``request`` is a MalformedRequest."""
    if isinstance(request, MalformedRequest):
        raise InvalidArgumentError(request.message)


def produce_value(request: ProduceRequest | MalformedRequest) -> bytes | Record:
    """What to append for a ProduceRequest: one must carry a record, whose value may be empty.

    The HTTP API asks the same (``{"record": {"value": ""}}`` is a record; ``{}`` is not).
    """
    if isinstance(request, MalformedRequest):
        raise InvalidArgumentError(request.message)
    if not request.HasField("record"):
        raise InvalidArgumentError("a ProduceRequest must carry a record (its value may be empty)")
    return record_value(request.record)


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
    except DecodeError:
        raise InvalidArgumentError(MalformedRequest("ProduceBatchRequest").message) from None
    if not len(records):
        raise InvalidArgumentError("ProduceBatch needs at least one record")
    values: list[bytes | Record] = [record.value for record in records]
    if _value_only_total(values) == len(data):  # type: ignore[arg-type]
        return values
    return [record_value(record) for record in records]


def offset_after(payloads: list[bytes]) -> int:
    """The offset after the last of ``payloads`` (serialized Records; one is parsed)."""
    return Record.FromString(payloads[-1]).offset + 1
