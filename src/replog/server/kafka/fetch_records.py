"""Stored records to the Kafka batches a Fetch answers with, from their serialized bytes.

Pure. ``records_to_batches`` (``mapping.py``) says what the batches are; this gives the
same bytes with less work per record: a stored record that holds only a value, its offset
and its timestamp (what a Kafka producer without keys or headers stores) is recognised by
comparing its tail with the offset and timestamp fields it must end with, and its value is
copied from it; any other record is parsed as a ``Record``.
"""

from __future__ import annotations

from collections.abc import Sequence

from replog.server.kafka.mapping import record_body
from replog.server.kafka.records import _ZIGZAG, BatchHeader, frame_batch, zigzag
from replog.storage.encoded import offset_fields, varint
from replog.v1.record_pb2 import Record

__all__ = ["payloads_to_batches"]

_VALUE_TAG = 0x0A
_TERM_TAG = b"\x18"
_TIMESTAMP_TAG = b"\x28"
_CONTINUES = b"\x40\x01"  # batch_continues: every record of a replicated batch but its last


class _Run:
    """The batch being built: records appended at one time, from offset ``start``."""

    __slots__ = ("count", "last", "parts", "start", "timestamp")

    def __init__(self, start: int, timestamp: int) -> None:
        self.start = start
        self.timestamp = timestamp
        self.parts: list[bytes] = []
        self.count = 0
        self.last = start

    def batch(self, end: int) -> bytes:
        header = BatchHeader(
            base_offset=self.start,
            base_timestamp=self.timestamp,
            max_timestamp=self.timestamp,
            attributes=0x08,
            last_offset_delta=max(0, end - self.start - 1),
        )
        return frame_batch(header, b"".join(self.parts), self.count, self.last - self.start)


def payloads_to_batches(
    payloads: Sequence[bytes], start: int, next_offset: int, max_bytes: int
) -> bytes:
    """``mapping.records_to_batches`` of the records serialized in ``payloads`` (ascending
    offsets from ``start``), byte for byte."""
    if not payloads:
        return _Run(start, 0).batch(next_offset)
    out: list[bytes] = []
    size = 0
    run: _Run | None = None
    table, limit = _ZIGZAG, len(_ZIGZAG)
    expected = start  # the offset of the next record when no offset is skipped before it
    offsets = offset_fields(start, len(payloads))
    shift = 0  # offsets[i - shift] is the offset field of ``expected`` at payload i
    fields = b""  # the term and timestamp fields of the run's records
    for i, payload in enumerate(payloads):
        if run is not None:
            value_start, value_end = _value_span(payload)
            tail = offsets[i - shift] + fields
            rest = len(payload) - value_end
            delta, value_size = expected - run.start, value_end - value_start
            if (
                value_end
                and delta < limit
                and value_size < limit
                and (
                    (rest == len(tail) and payload.endswith(tail))
                    or (rest == len(tail) + 2 and payload.endswith(tail + _CONTINUES))
                )
            ):
                offset_delta, value_length = table[delta], table[value_size]
                length = 4 + len(offset_delta) + len(value_length) + value_size
                run.parts += (
                    zigzag(length), b"\x00\x00", offset_delta, b"\x01", value_length,
                    payload[value_start:value_end], b"\x00",
                )  # fmt: skip
                run.count += 1
                run.last = expected
                expected += 1
                continue
        record = Record.FromString(payload)
        offset, timestamp = record.offset, record.timestamp_ms
        if run is None or timestamp != run.timestamp:
            if run is not None:
                batch = run.batch(run.last + 1)
                if out and size + len(batch) > max_bytes:
                    return b"".join(out)
                out.append(batch)
                size += len(batch)
            run = _Run(start if run is None else offset, timestamp)
        term = record.term
        fields = (_TERM_TAG + varint(term) if term else b"") + _TIMESTAMP_TAG + varint(timestamp)
        if offset != expected:  # offsets skipped (control records): renumber those ahead
            offsets = offset_fields(offset + 1, len(payloads) - i - 1)
            shift = i + 1
        body = record_body(record, 0, offset - run.start)
        run.parts += (zigzag(len(body)), body)
        run.count += 1
        run.last = offset
        expected = offset + 1
    assert run is not None
    batch = run.batch(next_offset)
    if not out or size + len(batch) <= max_bytes:
        out.append(batch)
    return b"".join(out)


def _value_span(payload: bytes) -> tuple[int, int]:
    """Where a serialized Record's value starts and ends when it comes first with a
    length of at most two varint bytes; (0, 0) otherwise."""
    if len(payload) < 3 or payload[0] != _VALUE_TAG:
        return 0, 0
    first = payload[1]
    if first < 0x80:
        return 2, 2 + first
    second = payload[2]
    if second < 0x80:
        return 3, 3 + ((first & 0x7F) | (second << 7))
    return 0, 0
