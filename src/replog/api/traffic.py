"""What one partition replica counts of its traffic, and what a node reports of each
replica it holds, for the metrics read at scrape time (``server.partition_metrics``).

The counters are plain integers bumped once per produced batch and once per read, so the
append path pays a few additions, not a labelled Prometheus counter per record."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from replog.v1.record_pb2 import Record

__all__ = ["PartitionTraffic", "ReplicaStats", "value_bytes"]


def value_bytes(values: Sequence[bytes | Record]) -> int:
    """The bytes of a batch's values (a Record by its serialized size)."""
    try:
        return sum(map(len, values))  # type: ignore[arg-type]  # bare values: all in C
    except TypeError:  # a Record among them
        return sum(len(v) if isinstance(v, bytes) else v.ByteSize() for v in values)


class PartitionTraffic:
    """Records and bytes produced to (acknowledged by) and read from one replica."""

    __slots__ = ("bytes_in", "bytes_out", "records_in", "records_out")

    def __init__(self) -> None:
        """All zero."""
        self.records_in = 0
        self.bytes_in = 0
        self.records_out = 0
        self.bytes_out = 0

    def produced(self, records: int, nbytes: int) -> None:
        """Count one acknowledged batch of ``records`` records (``nbytes`` bytes)."""
        self.records_in += records
        self.bytes_in += nbytes

    def consumed(self, payloads: Sequence[bytes]) -> None:
        """Count one read's serialized records."""
        if payloads:
            self.records_out += len(payloads)
            self.bytes_out += sum(map(len, payloads))


@dataclass(frozen=True, slots=True)
class ReplicaStats:
    """One replica this node holds: its traffic, how often its group's leader changed as
    this node saw it, and (on the leader) each follower's lag in entries."""

    topic: str
    partition: int
    traffic: PartitionTraffic
    leader_changes: int = 0
    follower_lag: tuple[tuple[str, int], ...] = field(default=())
