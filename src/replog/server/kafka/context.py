"""What every Kafka request handler is given: the topics seam, and who the brokers are.

On a single node this node is the only broker and leads every partition; on a cluster a
``BrokerView`` (``server/kafka/cluster_view.py``) answers from the metadata every node
applies (each node's Kafka address) and this node's Raft groups (who leads)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple, Protocol

from replog.errors import UnavailableError
from replog.server.kafka.time_index import TimeIndexes
from replog.server.topics import TopicsBackend

if TYPE_CHECKING:
    from replog.server.group_service import GroupService

__all__ = ["BrokerView", "KafkaBroker", "KafkaContext", "NotLeaderError"]


class KafkaBroker(NamedTuple):
    """One broker as Metadata and FindCoordinator name it."""

    node_id: int
    host: str
    port: int


class NotLeaderError(UnavailableError):
    """This node does not lead the partition (NOT_LEADER_OR_FOLLOWER: the client refreshes
    its metadata and goes to the leader). Nothing was applied."""

    def __init__(self, topic: str, partition: int) -> None:
        super().__init__(
            f"this broker does not lead {topic}/{partition}", certainly_not_applied=True
        )


class BrokerView(Protocol):
    """Who the brokers of a cluster are and which partitions this node leads."""

    def brokers(self) -> list[KafkaBroker]:
        """Every node with a Kafka listener, by broker id."""
        ...

    def controller_id(self) -> int:
        """The controller leader's broker id (-1: none known)."""
        ...

    def broker_id(self, node: str) -> int:
        """Node ``node``'s broker id (whether or not it runs a listener)."""
        ...

    def broker(self, node: str) -> KafkaBroker | None:
        """Node ``node`` as a broker; None when no Kafka listener of it is known."""
        ...

    def leads(self, topic: str, partition: int) -> bool:
        """Whether this node leads the partition (UnknownTopicError and
        UnknownPartitionError for one that does not exist)."""
        ...

    def leader(self, topic: str, partition: int) -> str:
        """The leader (a node name) of a partition this node holds no replica of, as far
        as known ("": not known); never waits."""
        ...


@dataclass(slots=True)
class KafkaContext:
    """The topics behind the Kafka edge and what Metadata says about the brokers."""

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
    cluster: BrokerView | None = None
    """The cluster's brokers (None: a single node, the only broker, leading everything)."""

    def brokers(self) -> list[KafkaBroker]:
        """Every broker Metadata names."""
        if self.cluster is None:
            return [KafkaBroker(self.node_id, self.host, self.port)]
        return self.cluster.brokers()

    def controller_id(self) -> int:
        """The controller's broker id (-1: none known)."""
        return self.node_id if self.cluster is None else self.cluster.controller_id()

    def broker_id(self, node: str) -> int:
        """The broker id of the node named ``node`` in a topic description."""
        return self.node_id if self.cluster is None else self.cluster.broker_id(node)

    def broker(self, node: str) -> KafkaBroker | None:
        """The node named ``node`` as a broker (None: no listener of it is known)."""
        if self.cluster is None:
            return KafkaBroker(self.node_id, self.host, self.port)
        return self.cluster.broker(node)

    def leader_of(self, topic: str, partition: int, described: str) -> str:
        """The node leading the partition: ``described`` (this node's word, from its
        topic description), else what the cluster view knows ("": none known)."""
        if described or self.cluster is None:
            return described
        return self.cluster.leader(topic, partition)

    def require_leader(self, topic: str, partition: int) -> None:
        """Return if this node leads the partition; else raise NotLeaderError (or the
        partition's UnknownTopicError / UnknownPartitionError)."""
        if self.cluster is not None and not self.cluster.leads(topic, partition):
            raise NotLeaderError(topic, partition)
