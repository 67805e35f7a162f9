"""The seam every API edge calls: ``LogBackend``, and what its methods give and take.

The gRPC and HTTP edges (``replog.server``) only talk to a ``LogBackend``; a single local
``Log`` (``replog.server.backend.SingleNodeBackend``) and a Raft node
(``replog.cluster.backend.RaftBackend``) both implement it. It sits below both, so neither
imports the other.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from replog.v1.record_pb2 import Record

__all__ = [
    "NO_CONDITIONS",
    "STALL_S",
    "new_producer_id",
    "AppendValue",
    "Conditions",
    "DuplicateOffset",
    "LogBackend",
    "ReadResult",
    "ServerInfo",
]

#: What an append takes: a bare value or a Record (value, key and headers are kept).
AppendValue = bytes | Record

#: How long a tailing reader that ``wait_for_data`` woke with nothing to read (which it
#: promises not to do) waits before reading again, so such a bug cannot spin a loop.
STALL_S = 0.05


@dataclass(frozen=True, slots=True)
class Conditions:
    """What a produce asks of the partition besides appending (see ProduceBatchRequest):
    an idempotent producer's identity and sequence (``producer_id`` 0 = none), and
    conditional appends. Checked in append order on the partition's leader."""

    producer_id: int = 0
    producer_epoch: int = 0
    base_sequence: int = 0
    expected_offset: int | None = None
    expected_key_offset: int | None = None
    acks_leader: bool = False


NO_CONDITIONS = Conditions()


class DuplicateOffset(int):
    """The base offset a produce answers with when its batch was a producer's retry of a
    batch appended before (nothing was appended again)."""

    __slots__ = ()


def new_producer_id() -> int:
    """A fresh producer id: 63 random bits (never 0, which means "no producer"), so every
    node hands out ids unique in the cluster (collision odds ~n^2/2^64) with no
    coordination, and each fits Kafka's positive int64."""
    return secrets.randbits(63) or 1


class ReadResult(NamedTuple):
    """What a read gives: serialized user records, and the offset the next read starts at.

    ``next_offset`` is past the last record and past any control records skipped before or
    after it, so a caller that reads again from it always moves on, even when ``payloads``
    is empty (a replicated log's offsets have gaps where its control records are).
    """

    payloads: list[bytes]
    next_offset: int


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """One server of the cluster, as GetServers reports it."""

    id: str
    rpc_addr: str
    is_leader: bool
    is_voter: bool = True


class LogBackend(Protocol):
    """What the APIs need from the log, whether one local Log or a replicated one."""

    def submit(
        self, values: Sequence[AppendValue], conditions: Conditions = NO_CONDITIONS
    ) -> asyncio.Future[int]:
        """Queue values for appending at contiguous offsets; the future gives the first
        (a ``DuplicateOffset`` when ``conditions`` name a producer whose retry it was).

        The future fails with UnavailableError when shutting down, the Log's error, or a
        PreconditionFailedError when ``conditions`` do not hold (nothing appended).
        Values queued earlier get lower offsets.
        """
        ...

    def read_from(self, offset: int, max_records: int, max_bytes: int) -> ReadResult:
        """Serialized user records from ``offset`` up to the high watermark (none at it).

        At least one record comes back when a user record exists between ``offset`` and the
        high watermark (that is when ``wait_for_data`` returns True); ``next_offset`` is
        never below ``offset``.
        """
        ...

    def read(self, offset: int) -> Record:
        """The record at ``offset``; OffsetOutOfRangeError outside the readable range."""
        ...

    @property
    def lowest_offset(self) -> int:
        """The first readable offset."""
        ...

    @property
    def high_watermark(self) -> int:
        """The offset after the last readable (committed) record."""
        ...

    async def wait_for_data(self, offset: int, timeout_s: float | None) -> bool:
        """Wait until a user record at or after ``offset`` is below the high watermark, so
        ``read_from(offset, ...)`` returns one; False on timeout.

        Raises UnavailableError if the backend shuts down meanwhile.
        """
        ...

    async def wait_committed(self, offset: int, timeout_s: float | None) -> bool:
        """Wait until this node has committed ``offset`` (the high watermark passed it);
        False on timeout. Read-your-writes (``min_offset``) rests on it."""
        ...

    def servers(self) -> list[ServerInfo]:
        """The cluster's servers."""
        ...

    @property
    def closing(self) -> bool:
        """True once shutdown began: no new appends are accepted."""
        ...
