"""Protobuf bytes on the hot paths, handled without building more messages than needed.

A ``repeated Record records = 1`` field is each record's bytes behind a tag and a length,
so a ConsumeBatchResponse is built by concatenating the serialized records the Log returns,
and a ProduceBatchRequest whose records hold only values is recognised by its length alone
(see ``produce_batch_values``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

from google.protobuf.message import DecodeError, Message

from replog.api.backend import NO_CONDITIONS, Conditions
from replog.errors import BatchTooLargeError, InvalidArgumentError
from replog.storage.codec import records_batch_bytes
from replog.v1.log_pb2 import ACKS_ALL, ACKS_LEADER, ProduceBatchRequest, ProduceRequest
from replog.v1.record_pb2 import Record

__all__ = [
    "IDEMPOTENT_NEEDS_PARTITION",
    "single_conditions",
    "batch_conditions",
    "set_conditions",
    "BatchRequest",
    "MAX_BATCH_RECORDS_LIMIT",
    "MalformedRequest",
    "check_parsed",
    "check_batch_size",
    "encode_batch_response",
    "encode_consume_response",
    "produce_batch_request",
    "produce_batch_values",
    "produce_value",
    "record_value",
    "request_parser",
    "varint",
]

M = TypeVar("M", bound=Message)

#: The most ``max_batch_records`` may be set to; a follower's forwarded batch is held to it.
MAX_BATCH_RECORDS_LIMIT = 1_000_000

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
    records that only replication writes (and consumers skip). Producer fields a record
    carries are dropped (the server sets them from the request's), and so are fields this
    server does not know (a stamped first record must end with its producer fields, which
    is how a partition finds them again).
    """
    if record.type:
        raise InvalidArgumentError(
            f"Record.type {record.type} is reserved for replication; produce records of type 0"
        )
    if not record.key and not len(record.headers):
        return record.value
    record.DiscardUnknownFields()  # not stored: see the docstring
    if record.producer_id or record.sequence or record.batch_records or record.producer_epoch:
        # Set by the server from the request's producer fields; a client's own (e.g. a
        # consumed record produced again) would forge another producer's state.
        record = Record(value=record.value, key=record.key, headers=record.headers)
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


class BatchRequest(NamedTuple):
    """A parsed ProduceBatchRequest: what to append, its topic ("" = default) and the
    partition it names (None: the partitioner chooses)."""

    values: list[bytes | Record]
    topic: str
    partition: int | None
    conditions: Conditions = NO_CONDITIONS


def produce_batch_values(
    data: bytes, max_records: int = MAX_BATCH_RECORDS_LIMIT
) -> list[bytes | Record]:
    """What to append for a serialized ProduceBatchRequest, as ``record_value`` gives
    (its topic and partition are ignored: see ``produce_batch_request``)."""
    return produce_batch_request(data, max_records).values


def produce_batch_request(data: bytes, max_records: int = MAX_BATCH_RECORDS_LIMIT) -> BatchRequest:
    """A serialized ProduceBatchRequest's values (as ``record_value`` gives), topic and
    partition.

    Most batches carry bare values: the request is parsed once, the values taken, and if
    the request is exactly as long as those values wrapped minimally as Records (each
    Record only a value field) plus its topic and partition fields, no record can hold
    anything else, so none is inspected. Otherwise each record is looked at. Raises
    InvalidArgumentError for bytes that do not parse, a batch without records, or one over
    the limits ``check_batch_size`` applies.
    """
    check_batch_size(data, max_records)
    try:
        request = ProduceBatchRequest.FromString(data)
    except DecodeError:
        raise InvalidArgumentError(MalformedRequest("ProduceBatchRequest").message) from None
    records = request.records
    if not len(records):
        raise InvalidArgumentError("ProduceBatch needs at least one record")
    if len(records) > max_records:
        raise BatchTooLargeError(len(records), max_records)
    partition = request.partition if request.HasField("partition") else None
    topic = request.topic
    conditions, head_size = batch_conditions(request)
    values: list[bytes | Record] = [record.value for record in records]
    if _value_only_total(values) + head_size == len(data):  # type: ignore[arg-type]
        return BatchRequest(values, topic, partition, conditions)
    if len(records) + sum(len(record.headers) for record in records) > 2 * max_records:
        raise _too_many_messages(max_records)
    values = [record_value(record) for record in records]
    return BatchRequest(values, topic, partition, conditions)


def batch_conditions(request: ProduceBatchRequest) -> tuple[Conditions, int]:
    """A ProduceBatchRequest's conditions, and the bytes its fields other than ``records``
    take when minimally encoded."""
    head = ProduceBatchRequest(
        topic=request.topic,
        producer_id=request.producer_id,
        producer_epoch=request.producer_epoch,
        base_sequence=request.base_sequence,
        acks=request.acks,
    )
    for name in ("partition", "expected_offset", "expected_key_offset"):
        if request.HasField(name):
            setattr(head, name, getattr(request, name))
    if not (request.producer_id or request.HasField("expected_offset")) and not (
        request.HasField("expected_key_offset") or request.acks
    ):
        if request.producer_epoch or request.base_sequence:
            raise InvalidArgumentError("producer_epoch and base_sequence need a producer_id")
        return NO_CONDITIONS, head.ByteSize()
    _check_conditions(request)
    conditions = Conditions(
        producer_id=request.producer_id,
        producer_epoch=request.producer_epoch,
        base_sequence=request.base_sequence,
        expected_offset=request.expected_offset if request.HasField("expected_offset") else None,
        expected_key_offset=(
            request.expected_key_offset if request.HasField("expected_key_offset") else None
        ),
        acks_leader=request.acks == ACKS_LEADER,
    )
    return conditions, head.ByteSize()


IDEMPOTENT_NEEDS_PARTITION = (
    "a batch with a producer_id must name its partition (sequences are per partition)"
)


def single_conditions(request: ProduceRequest) -> Conditions:
    """The conditional-append fields of a ProduceRequest."""
    if not request.HasField("expected_offset") and not request.HasField("expected_key_offset"):
        return NO_CONDITIONS
    if request.HasField("expected_key_offset") and request.expected_key_offset < -1:
        raise InvalidArgumentError("expected_key_offset must be -1 (no record) or an offset")
    return Conditions(
        expected_offset=request.expected_offset if request.HasField("expected_offset") else None,
        expected_key_offset=(
            request.expected_key_offset if request.HasField("expected_key_offset") else None
        ),
    )


def _check_conditions(request: ProduceBatchRequest) -> None:
    """InvalidArgumentError for condition fields out of their range."""
    if request.HasField("expected_key_offset") and request.expected_key_offset < -1:
        raise InvalidArgumentError("expected_key_offset must be -1 (no record) or an offset")
    if request.acks not in (ACKS_ALL, ACKS_LEADER):
        raise InvalidArgumentError(f"acks {request.acks} is not ACKS_ALL (0) or ACKS_LEADER (1)")
    if not request.producer_id and (request.producer_epoch or request.base_sequence):
        raise InvalidArgumentError("producer_epoch and base_sequence need a producer_id")
    if request.base_sequence >= 1 << 31:
        raise InvalidArgumentError("base_sequence must be below 2^31")


def set_conditions(request: ProduceBatchRequest, conditions: Conditions) -> None:
    """Set the ProduceBatchRequest fields that carry ``conditions`` (to forward them)."""
    if conditions.producer_id:
        request.producer_id = conditions.producer_id
        request.producer_epoch = conditions.producer_epoch
        request.base_sequence = conditions.base_sequence
    if conditions.expected_offset is not None:
        request.expected_offset = conditions.expected_offset
    if conditions.expected_key_offset is not None:
        request.expected_key_offset = conditions.expected_key_offset
    if conditions.acks_leader:
        request.acks = ACKS_LEADER


# -- the size of a produce request, before it is parsed ---------------------------------------
#
# Parsing builds an object of about 100 bytes for each Record and Header, from as little as
# 2 bytes of the request: 16 MiB of empty records took 1 GiB and seconds of CPU. So their
# number is bounded before parsing. Each one starts with its field's tag, whose first byte is
# one of these (the second pair: the same tags in an overlong encoding, which parsers accept).
_MESSAGE_TAG_BYTES = (0x0A, 0x3A, 0x8A, 0xBA)  # records = 1, headers = 7
_NOT_MESSAGE_TAG_BYTES = bytes(b for b in range(256) if b not in _MESSAGE_TAG_BYTES)
_RECORDS_TAG = 0x0A
_HEADERS_TAG = 0x3A


def check_batch_size(data: bytes, max_records: int) -> None:
    """Refuse, before it is parsed, a serialized ProduceBatchRequest whose parse would build
    more than ``4 * max_records`` records and headers; exactly, one with more than
    ``max_records`` records or ``2 * max_records`` records and headers together when it
    holds many bytes that could start their tags (``produce_batch_values`` checks the
    others once parsed). Raises InvalidArgumentError.

    Counting the bytes that could start a record or header tag (C speed) settles most
    requests; the others are walked field by field, stopping once a limit is passed.
    """
    if len(data) <= 8 * max_records:
        return  # a parse builds at most 4 * max_records messages: each takes 2 bytes
    if len(data.translate(None, _NOT_MESSAGE_TAG_BYTES)) <= 4 * max_records:  # one C pass
        return
    try:
        records, messages, fields = _count_messages(data, max_records)
    except IndexError:  # a field runs past the end of the request, or is a group
        raise InvalidArgumentError("malformed ProduceBatchRequest") from None
    if records > max_records:
        raise BatchTooLargeError(None, max_records)  # counting stopped past the limit
    if messages > 2 * max_records:
        raise _too_many_messages(max_records)
    if fields > 6 * max_records:
        raise InvalidArgumentError(f"a ProduceBatch request holds at most {6 * max_records} fields")


def _too_many_messages(max_records: int) -> InvalidArgumentError:
    return InvalidArgumentError(
        f"a ProduceBatch request holds at most {2 * max_records} records and headers together"
    )


def _count_messages(data: bytes, max_records: int) -> tuple[int, int, int]:
    """(records, records + headers, fields) of ``data``, counted until a limit is passed.
    IndexError if a field runs past its end or is a group."""
    records = messages = fields = 0
    pos, end = 0, len(data)
    most_messages, most_fields = 2 * max_records, 6 * max_records
    while pos < end:
        tag, pos = _varint(data, pos)
        fields += 1
        if tag == _RECORDS_TAG:
            size, pos = _varint(data, pos)
            stop = pos + size
            records += 1
            messages += 1
            while pos < stop and messages <= most_messages and fields <= most_fields:
                tag, pos = _varint(data, pos)
                fields += 1
                messages += tag == _HEADERS_TAG
                pos = _skip(data, pos, tag & 7)
            if pos > stop:
                raise IndexError("a record's fields overrun it")
        else:
            pos = _skip(data, pos, tag & 7)
        if records > max_records or messages > most_messages or fields > most_fields:
            return records, messages, fields
    if pos > end:
        raise IndexError("the last field overruns the request")
    return records, messages, fields


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    """The varint at ``pos`` and the position after it."""
    byte = data[pos]
    if byte < 0x80:
        return byte, pos + 1
    value, shift = byte & 0x7F, 7
    while shift < 64:
        pos += 1
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos + 1
        shift += 7
    raise IndexError("a varint over 10 bytes")


def _skip(data: bytes, pos: int, wire_type: int) -> int:
    """The position after the value of a field of ``wire_type`` that starts at ``pos``."""
    if wire_type == 2:
        size, pos = _varint(data, pos)
        return pos + size
    if wire_type == 0:
        return _varint(data, pos)[1]
    if wire_type == 1:
        return pos + 8
    if wire_type == 5:
        return pos + 4
    raise IndexError(f"wire type {wire_type}")  # groups: no replog message has one
