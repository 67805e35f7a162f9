"""Whether a produce request may be appended, decided in append order on the partition's
leader: its conditions (``replog.api.backend.Conditions``) against the partition's producer
state and next offset. Pure; shared by the single-node and the replicated partition."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from replog.broker.producer_records import stamp
from replog.broker.producer_state import BatchMeta, Overlay
from replog.errors import (
    ExpectedKeyOffsetError,
    ExpectedOffsetError,
    InvalidArgumentError,
    UnsupportedError,
)
from replog.storage.encoded import EncodedRecords
from replog.v1.record_pb2 import Record

__all__ = ["NO_KEY_INDEX", "Asked", "KeyLatest", "admit", "batch_key", "keys_of"]

NO_KEY_INDEX = "expected_key_offset needs the topic's key index: set its config key_index=true"


def keys_of(values: Sequence[bytes | Record]) -> list[bytes]:
    """Each value's key (b"" for a bare value)."""
    if isinstance(values, EncodedRecords):
        return values.keys()
    return [b"" if isinstance(v, bytes) else v.key for v in values]


def batch_key(values: Sequence[bytes | Record]) -> bytes:
    """The one key every record of a per-key conditional batch has; InvalidArgumentError
    when they have none or several."""
    keys = set(keys_of(values))
    if len(keys) != 1 or b"" in keys:
        raise InvalidArgumentError(
            "a batch with expected_key_offset must have one key, the same on every record"
        )
    return keys.pop()


class Asked(Protocol):
    """What a produce asks (``replog.api.backend.Conditions`` is one)."""

    @property
    def producer_id(self) -> int:
        """The idempotent producer's id; 0 = none."""
        ...

    @property
    def producer_epoch(self) -> int:
        """Its epoch."""
        ...

    @property
    def base_sequence(self) -> int:
        """The sequence of the batch's first record."""
        ...

    @property
    def expected_offset(self) -> int | None:
        """Append only at this next offset."""
        ...

    @property
    def expected_key_offset(self) -> int | None:
        """Append only if the key's latest record is here (-1: none)."""
        ...


KeyLatest = Callable[[bytes], int]
"""The offset of a key's latest record in the partition, its pending batches included
(-1: none)."""


def admit(
    values: Sequence[bytes | Record],
    asked: Asked,
    *,
    overlay: Overlay,
    next_offset: int,
    key_latest: KeyLatest | None = None,
) -> Sequence[bytes | Record] | BatchMeta:
    """The values to append at ``next_offset`` (the first stamped with its producer), or
    the batch this one duplicates (append nothing; answer with its offsets).

    Nothing is recorded: once the batch is on its way to the log, the caller notes it in
    ``overlay`` (``Overlay.record``), so a batch that then fails to encode leaves no trace.
    Raises ExpectedOffsetError,
    OutOfOrderSequenceError, ProducerFencedError, UnknownProducerError (nothing changes),
    ExpectedKeyOffsetError, InvalidArgumentError for a per-key condition on a batch whose
    records do not all have one key, UnsupportedError for one on a partition without a key
    index (``key_latest`` None).
    """
    producer_id, epoch, sequence = asked.producer_id, asked.producer_epoch, asked.base_sequence
    expected_offset = asked.expected_offset
    expected_key = asked.expected_key_offset
    if producer_id:
        if not 0 <= sequence < 1 << 31:
            raise InvalidArgumentError("base_sequence must be below 2^31")
        duplicate = overlay.check(producer_id, epoch, sequence, len(values))
        if duplicate is not None:
            return duplicate
    if expected_offset is not None and expected_offset != next_offset:
        raise ExpectedOffsetError(expected_offset, next_offset)
    if expected_key is not None:
        if key_latest is None:
            raise UnsupportedError(NO_KEY_INDEX)
        actual = key_latest(batch_key(values))
        if actual != expected_key:
            raise ExpectedKeyOffsetError(expected_key, actual)
    if not producer_id:
        return values
    return stamp(values, producer_id, epoch, sequence)
