"""What a topic looks like from outside: its description and each partition's state."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["PartitionDescription", "TopicDescription"]


@dataclass(frozen=True, slots=True)
class PartitionDescription:
    """One partition: who holds it and which offsets it has.

    ``leader`` is the node id of the replica that takes produce requests ("" while it has
    none); ``replicas`` lists the replica set, preferred leader first; ``in_sync`` the
    replicas that are caught up with the leader. A single node lists itself in all three.
    """

    partition: int
    leader: str
    replicas: tuple[str, ...]
    in_sync: tuple[str, ...]
    lowest_offset: int
    next_offset: int
    size_bytes: int


@dataclass(frozen=True, slots=True)
class TopicDescription:
    """A topic: its name, its effective configuration (every key, with defaults filled
    in), its replication factor and its partitions in partition order."""

    name: str
    config: Mapping[str, str]
    replication_factor: int
    partitions: tuple[PartitionDescription, ...] = field(default=())

    @property
    def partition_count(self) -> int:
        """How many partitions the topic has."""
        return len(self.partitions)
