"""Sizing what the driver proposes and steps: produce requests grouped into proposals, and
received messages cut into turns."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

from replog.raft.messages import Message
from replog.raft.storage import data_bytes
from replog.v1.record_pb2 import Record

__all__ = ["messages_within", "proposal_groups", "turn_share", "values_bytes"]

T = TypeVar("T")


def proposal_groups(
    queued: Iterable[tuple[Sequence[bytes | Record], T]], max_bytes: int, max_records: int
) -> Iterator[list[tuple[Sequence[bytes | Record], T]]]:
    """Produce requests (values, anything) in order, cut into groups of about ``max_bytes``
    of values and ``max_records`` records: one proposal each (a request is never split)."""
    group: list[tuple[Sequence[bytes | Record], T]] = []
    size = records = 0
    for proposal in queued:
        group.append(proposal)
        size += values_bytes(proposal[0])
        records += len(proposal[0])
        if size >= max_bytes or records >= max_records:
            yield group
            group, size, records = [], 0, 0
    if group:
        yield group


def values_bytes(values: Sequence[bytes | Record]) -> int:
    """About the bytes of a request's values: a sequence that measures itself (the
    storage's ``EncodedRecords``, prepared by an edge, has ``byte_size``) is asked, so its
    records are not each made into a message to be measured."""
    measure = getattr(values, "byte_size", None)
    if measure is not None:
        return int(measure())
    return sum(len(v) if isinstance(v, bytes) else v.ByteSize() for v in values)


def turn_share(queued: Sequence[tuple[Sequence[bytes | Record], T]], max_records: int) -> int:
    """How many of the ``queued`` requests, from the first, hold at most ``max_records``
    records together (at least one): what one turn of the driver proposes."""
    records = 0
    for n, (values, _) in enumerate(queued):
        records += len(values)
        if records > max_records and n:
            return n
    return len(queued)


def messages_within(messages: Sequence[Message], max_bytes: int) -> int:
    """How many of ``messages``, from the first, carry at most ``max_bytes`` of entry data
    together (at least one, if there are any)."""
    size = 0
    for n, m in enumerate(messages):
        if m.entries:
            size += data_bytes(m.entries)
            if size > max_bytes and n:
                return n
    return len(messages)
