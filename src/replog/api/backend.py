"""The seam every API edge calls: ``LogBackend``, and what its methods give and take.

The gRPC and HTTP edges (``replog.server``) only talk to a ``LogBackend``; a single local
``Log`` (``replog.server.backend.SingleNodeBackend``) and a Raft node
(``replog.cluster.backend.RaftBackend``) both implement it. It sits below both, so neither
imports the other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from replog.v1.record_pb2 import Record

__all__ = ["STALL_S", "AppendValue", "LogBackend", "ReadResult", "ServerInfo"]

#: What an append takes: a bare value or a Record (value, key and headers are kept).
AppendValue = bytes | Record

#: How long a tailing reader that ``wait_for_data`` woke with nothing to read (which it
#: promises not to do) waits before reading again, so such a bug cannot spin a loop.
STALL_S = 0.05


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

    def submit(self, values: Sequence[AppendValue]) -> asyncio.Future[int]:
        """Queue values for appending at contiguous offsets; the future gives the first.

        The future fails with UnavailableError when shutting down, or the Log's error.
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
