"""What every Kafka request handler is given: the topics seam and this node's identity."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from replog.server.kafka.time_index import TimeIndexes
from replog.server.topics import TopicsBackend

if TYPE_CHECKING:
    from replog.server.group_service import GroupService

__all__ = ["KafkaContext"]


@dataclass(slots=True)
class KafkaContext:
    """The topics behind the Kafka edge and what Metadata says about this node."""

    topics: TopicsBackend
    host: str = "127.0.0.1"
    port: int = 9092
    node_id: int = 1
    cluster_id: str = "replog"
    max_batch_records: int = 100_000
    draining: bool = False
    groups: GroupService | None = None
    """The consumer groups (None: the group APIs answer COORDINATOR_NOT_AVAILABLE)."""
    time_indexes: TimeIndexes = field(default_factory=TimeIndexes)
    """What ListOffsets by timestamp has learnt of each partition's timestamps."""
