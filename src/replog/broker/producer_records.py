"""Where a partition's records carry their producer: stamping a batch's first record and
reading the fields back. Pure.

The server sets ``producer_id``, ``producer_epoch``, ``sequence`` and ``batch_records`` on
the first record of an idempotent producer's batch (``stamp``); a partition rebuilds its
producers' state by reading them back (``producer_fields``) from its own log.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from replog.storage.encoded import EncodedRecords
from replog.v1.record_pb2 import Record

__all__ = ["ProducerFields", "producer_fields", "stamp"]


class ProducerFields(NamedTuple):
    """A batch's producer, read from its first record."""

    producer_id: int
    epoch: int
    sequence: int
    records: int
    timestamp_ms: int
    term: int


def stamp(
    values: Sequence[bytes | Record], producer_id: int, epoch: int, sequence: int
) -> Sequence[bytes | Record]:
    """``values`` with the first one a Record carrying the batch's producer fields (an
    ``EncodedRecords`` stays one, its first record carrying them)."""
    if isinstance(values, EncodedRecords):
        return values.stamped(producer_id, epoch, sequence)
    first = values[0]
    record = Record(value=first) if isinstance(first, bytes) else _copy(first)
    record.producer_id = producer_id
    record.producer_epoch = epoch
    record.sequence = sequence
    record.batch_records = len(values)
    return [record, *values[1:]]


def _copy(record: Record) -> Record:
    out = Record()
    out.CopyFrom(record)
    return out


_BATCH_RECORDS_TAG = 0x60  # field 12, varint
_BATCH_CONTINUES = b"\x40\x01"


def _may_carry_producer(payload: bytes) -> bool:
    """A cheap necessary condition: a stamped record is serialized with its fields in
    number order, so it ends with ``batch_records`` (tag 0x60 and a varint of at most 5
    bytes), before the ``batch_continues`` a replicated batch may add. False positives only
    cost a parse."""
    tail = payload[-9:-2] if payload.endswith(_BATCH_CONTINUES) else payload[-7:]
    return _BATCH_RECORDS_TAG in tail


def producer_fields(payload: bytes) -> ProducerFields | None:
    """The producer fields of a serialized record; None when it starts no producer's batch."""
    if not _may_carry_producer(payload):
        return None
    record = Record.FromString(payload)
    if not record.producer_id or not record.batch_records:
        return None
    return ProducerFields(
        record.producer_id,
        record.producer_epoch,
        record.sequence,
        record.batch_records,
        record.timestamp_ms,
        record.term,
    )
