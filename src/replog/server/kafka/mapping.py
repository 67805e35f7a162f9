"""Kafka records to replog records and back: value, key, headers and timestamp.

Pure. Kafka's null key and null value have no replog counterpart: they become empty
bytes, and an empty replog key reads back as a null Kafka key (as a producer that set
no key sent it)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from replog.server.kafka.records import BatchHeader, KafkaRecord, RecordBatch, encode_batch
from replog.v1.record_pb2 import Header, Record

__all__ = ["batch_to_records", "records_to_batch", "records_to_batches"]


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
    batch when ``records`` is empty)."""
    base_offset = records[0].offset if start is None else start
    base_timestamp = records[0].timestamp_ms if records else 0
    end = records[-1].offset + 1 if next_offset is None else next_offset
    kafka_records = [
        KafkaRecord(
            value=record.value,
            key=record.key or None,
            headers=tuple((header.key, header.value) for header in record.headers),
            offset_delta=record.offset - base_offset,
            timestamp_delta=record.timestamp_ms - base_timestamp,
        )
        for record in records
    ]
    header = BatchHeader(
        base_offset=base_offset,
        base_timestamp=base_timestamp,
        max_timestamp=max((record.timestamp_ms for record in records), default=0),
        attributes=0x08 if log_append_time else 0,
        last_offset_delta=max(0, end - base_offset - 1),
    )
    return encode_batch(header, kafka_records, compression)


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
    runs = [list(run) for _, run in itertools.groupby(records, key=_timestamp)]
    if not runs:
        return records_to_batch(records, log_append_time=True, start=start, next_offset=next_offset)
    parts: list[bytes] = []
    size = 0
    for number, run in enumerate(runs):
        last = number == len(runs) - 1
        batch = records_to_batch(
            run,
            log_append_time=True,
            start=start if number == 0 else run[0].offset,
            next_offset=next_offset if last else run[-1].offset + 1,
        )
        if parts and size + len(batch) > max_bytes:
            break
        parts.append(batch)
        size += len(batch)
    return b"".join(parts)


def _timestamp(record: Record) -> int:
    return int(record.timestamp_ms)
