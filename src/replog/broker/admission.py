"""Whether a produce request may be appended, decided in append order on the partition's
leader: its conditions (``replog.api.backend.Conditions``) against the partition's producer
state and next offset. Pure; shared by the single-node and the replicated partition."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from replog.broker.producer_records import stamp
from replog.broker.producer_state import BatchMeta, Overlay
from replog.errors import ExpectedOffsetError, InvalidArgumentError, UnsupportedError
from replog.v1.record_pb2 import Record

__all__ = ["Asked", "admit"]


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


def admit(
    values: Sequence[bytes | Record], asked: Asked, *, overlay: Overlay, next_offset: int
) -> Sequence[bytes | Record] | BatchMeta:
    """The values to append at ``next_offset`` (the first stamped with its producer), or
    the batch this one duplicates (append nothing; answer with its offsets).

    Nothing is recorded: once the batch is on its way to the log, the caller notes it in
    ``overlay`` (``Overlay.record``), so a batch that then fails to encode leaves no trace.
    Raises ExpectedOffsetError,
    OutOfOrderSequenceError, ProducerFencedError, UnknownProducerError (nothing changes),
    UnsupportedError for a per-key condition (not offered yet).
    """
    producer_id, epoch, sequence = asked.producer_id, asked.producer_epoch, asked.base_sequence
    expected_offset = asked.expected_offset
    if asked.expected_key_offset is not None:
        raise UnsupportedError("expected_key_offset is not supported by this server yet")
    if producer_id:
        if not 0 <= sequence < 1 << 31:
            raise InvalidArgumentError("base_sequence must be below 2^31")
        duplicate = overlay.check(producer_id, epoch, sequence, len(values))
        if duplicate is not None:
            return duplicate
    if expected_offset is not None and expected_offset != next_offset:
        raise ExpectedOffsetError(expected_offset, next_offset)
    if not producer_id:
        return values
    return stamp(values, producer_id, epoch, sequence)
