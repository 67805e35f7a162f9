"""Kafka records to replog records and back: value, key, headers and timestamp.

Pure. Kafka's null key and null value have no replog counterpart: they become empty
bytes, and an empty replog key reads back as a null Kafka key (as a producer that set
no key sent it)."""

from __future__ import annotations

import itertools
import operator
from collections.abc import Sequence

from kio.serial.errors import BufferUnderflow
from kio.serial.readers import read_signed_varint, read_signed_varlong

from replog.errors import CorruptBatchError
from replog.server.kafka.records import _ZIGZAG, BatchHeader, RecordBatch, frame_batch, zigzag
from replog.storage.encoded import EncodedRecords, key_and_headers
from replog.v1.record_pb2 import Header, Record

__all__ = [
    "batch_to_records",
    "encoded_records",
    "record_body",
    "records_to_batch",
    "records_to_batches",
]


def batch_to_records(batch: RecordBatch) -> list[Record]:
    """The replog records of a decoded Kafka batch, in order, with each record's
    timestamp (the batch's max timestamp for LogAppendTime batches, as Kafka reads it)."""
    header = batch.header
    append_time = header.max_timestamp if header.log_append_time else None
    records: list[Record] = []
    for record in batch.records:
        timestamp = header.base_timestamp + record.timestamp_delta
        records.append(
            Record(
                value=record.value or b"",
                key=record.key or b"",
                headers=[Header(key=name, value=value or b"") for name, value in record.headers],
                timestamp_ms=max(0, append_time if append_time is not None else timestamp),
            )
        )
    return records


def encoded_records(body: bytes, count: int) -> EncodedRecords:
    """The ``count`` records of a batch's (decompressed) records bytes, ready to append:
    the records ``batch_to_records`` makes of them, in one pass with no message per record
    (the log joins each stored record from its value and key-and-headers bytes).

    Raises CorruptBatchError as ``decode_batch`` does for records that do not decode or
    do not fill the bytes exactly."""
    values: list[bytes] = []
    tails: list[bytes] | None = None
    keys: list[bytes] | None = None
    read, read_long = read_signed_varint, read_signed_varlong
    size = len(body)
    position = 0
    try:
        for _ in range(count):
            length, used = read(body, position)
            position += used
            end = position + length
            if length < 0 or end > size:
                raise CorruptBatchError(f"record length {length} does not fit the batch")
            _, used = read_long(body, position + 1)  # after the attributes: timestamp delta
            position += 1 + used
            _, used = read(body, position)  # offset delta
            position += used
            key_length, used = read(body, position)
            position += used
            key = b""
            if key_length > 0:
                key, position = _field(body, position, key_length, end)
            elif key_length < -1:
                raise CorruptBatchError(f"a record field of length {key_length} does not fit")
            value_length, used = read(body, position)
            position += used
            value = b""
            if value_length > 0:  # _field, inline: every record has a value
                value = body[position : position + value_length]
                position += value_length
                if position > end:
                    raise CorruptBatchError(
                        f"a record field of length {value_length} does not fit its record"
                    )
            elif value_length < -1:
                raise CorruptBatchError(f"a record field of length {value_length} does not fit")
            header_count, used = read(body, position)
            position += used
            if key or header_count > 0:
                headers, position = _headers(body, position, header_count, end)
                if tails is None or keys is None:
                    tails, keys = [b""] * len(values), [b""] * len(values)
                tails.append(key_and_headers(key, headers))
                keys.append(key)
            elif tails is not None and keys is not None:
                tails.append(b"")
                keys.append(b"")
            if position != end:
                raise CorruptBatchError("a record's fields do not fill its length")
            values.append(value)
    except (BufferUnderflow, ValueError, IndexError, UnicodeDecodeError) as exc:
        raise CorruptBatchError(f"record {len(values)} does not decode: {exc}") from None
    if position != size:
        raise CorruptBatchError(f"{size - position} bytes after the batch's records")
    return EncodedRecords(values, tails, keys)


def _field(body: bytes, position: int, length: int, end: int) -> tuple[bytes, int]:
    if position + length > end:
        raise CorruptBatchError(f"a record field of length {length} does not fit its record")
    return body[position : position + length], position + length


def _headers(
    body: bytes, position: int, count: int, end: int
) -> tuple[list[tuple[bytes, bytes]], int]:
    """``count`` headers from ``position``: (UTF-8 name, value; null as b"")."""
    headers: list[tuple[bytes, bytes]] = []
    for _ in range(count):
        length, used = read_signed_varint(body, position)
        position += used
        if length < 0:
            raise CorruptBatchError("a record header has a null key")
        name, position = _field(body, position, length, end)
        name.decode()  # a replog header's name is a string: UnicodeDecodeError when not
        length, used = read_signed_varint(body, position)
        position += used
        value = b""
        if length > 0:
            value, position = _field(body, position, length, end)
        elif length < -1:
            raise CorruptBatchError(f"a record field of length {length} does not fit")
        headers.append((name, value))
    return headers, position


def records_to_batch(
    records: Sequence[Record],
    compression: int = 0,
    *,
    log_append_time: bool = False,
    start: int | None = None,
    next_offset: int | None = None,
) -> bytes:
    """One Kafka batch holding replog ``records`` (ascending offsets) at their own offsets
    and timestamps, compressed with the codec numbered ``compression``. The batch spans
    ``start`` (default: the first record's offset) to ``next_offset`` (default: after
    the last record), so a reader moves past offsets without user records (an empty
    batch when ``records`` is empty). Each record is encoded straight from its fields:
    a null Kafka key for an empty one, the value and headers' values as they are."""
    base_offset = records[0].offset if start is None else start
    base_timestamp = records[0].timestamp_ms if records else 0
    end = records[-1].offset + 1 if next_offset is None else next_offset
    parts: list[bytes] = []
    append = parts.append
    max_timestamp = 0
    for record in records:
        timestamp = record.timestamp_ms
        max_timestamp = max(max_timestamp, timestamp)
        body = record_body(record, timestamp - base_timestamp, record.offset - base_offset)
        append(zigzag(len(body)))
        append(body)
    header = BatchHeader(
        base_offset=base_offset,
        base_timestamp=base_timestamp,
        max_timestamp=max_timestamp,
        attributes=0x08 if log_append_time else 0,
        last_offset_delta=max(0, end - base_offset - 1),
    )
    last_delta = records[-1].offset - base_offset if records else 0
    return frame_batch(header, b"".join(parts), len(records), last_delta, compression)


def _headers_field(headers: Sequence[Header]) -> bytes:
    parts = [zigzag(len(headers))]
    for header in headers:
        name = header.key.encode()
        parts += (zigzag(len(name)), name, zigzag(len(header.value)), header.value)
    return b"".join(parts)


def records_to_batches(
    records: Sequence[Record], start: int, next_offset: int, max_bytes: int
) -> bytes:
    """Replog ``records`` (ascending offsets from ``start``) as Kafka batches marked
    LogAppendTime, which is what replog's timestamps are: the broker stamps each record
    when it is appended, whatever time the producer sent.

    A client gives every record of a LogAppendTime batch the batch's max timestamp, so
    each run of records appended at the same time is its own batch. The first batch
    starts at ``start`` and the last spans to ``next_offset`` (a reader moves past offsets
    without user records; an empty batch when ``records`` is empty). Batches after the
    first stop before the bytes would pass ``max_bytes``: the records they leave out are
    read by the next fetch, from the end of the last batch sent."""
    if not records:
        return records_to_batch(records, log_append_time=True, start=start, next_offset=next_offset)
    timestamps = list(map(_timestamp, records))
    parts: list[bytes] = []
    size = 0
    first = 0
    for timestamp, run in itertools.groupby(timestamps):
        end = first + sum(1 for _ in run)
        last = end == len(timestamps)
        batch = _append_time_batch(
            records[first:end],
            timestamp,
            start if first == 0 else records[first].offset,
            next_offset if last else records[end - 1].offset + 1,
        )
        if parts and size + len(batch) > max_bytes:
            break
        parts.append(batch)
        size += len(batch)
        first = end
    return b"".join(parts)


def _append_time_batch(records: Sequence[Record], timestamp: int, start: int, end: int) -> bytes:
    """``records_to_batch`` of records that share ``timestamp`` (LogAppendTime): every
    timestamp delta is 0, and a record without key and headers (the common one) is
    written from a table of varints with no bytes built for it alone."""
    table = _ZIGZAG
    limit = len(table)
    parts: list[bytes] = []
    for record in records:
        key, value, delta = record.key, record.value, record.offset - start
        size = len(value)
        if key or record.headers or size >= limit or delta >= limit:
            body = record_body(record, 0, delta)
            parts += (zigzag(len(body)), body)
            continue
        offset_delta, value_length = table[delta], table[size]
        length = 4 + len(offset_delta) + len(value_length) + size  # + attributes, ts, key, hdrs
        parts += (zigzag(length), b"\x00\x00", offset_delta, b"\x01", value_length, value, b"\x00")
    header = BatchHeader(
        base_offset=start,
        base_timestamp=timestamp,
        max_timestamp=timestamp,
        attributes=0x08,
        last_offset_delta=max(0, end - start - 1),
    )
    return frame_batch(header, b"".join(parts), len(records), records[-1].offset - start)


def record_body(record: Record, timestamp_delta: int, offset_delta: int) -> bytes:
    """A Kafka record's bytes after its length: a null key for an empty one, the value and
    headers' values as they are."""
    key, value = record.key, record.value
    return b"".join((
        b"\x00",  # attributes
        zigzag(timestamp_delta),
        zigzag(offset_delta),
        zigzag(len(key)) + key if key else b"\x01",  # zigzag(-1): null
        zigzag(len(value)),
        value,
        _headers_field(record.headers) if record.headers else b"\x00",
    ))  # fmt: skip


_timestamp = operator.attrgetter("timestamp_ms")
