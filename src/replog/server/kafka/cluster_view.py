"""The brokers of a cluster as the Kafka edge of one of its nodes sees them.

Every node carries every node's Kafka address in the controller metadata it applies
(``SetKafkaAddress``, proposed by each node for itself), so Metadata and FindCoordinator
are answered from memory on any node, with no call to another node. A node's broker id is
a function of its name (``kafka_broker_id``). Who leads a partition comes from this
node's replica of its Raft group, or, for a partition it holds no replica of, from what
its replicas last said (``RemoteLeaders``, refreshed in the background)."""

from __future__ import annotations

from replog.cluster.backend import RaftBackend
from replog.cluster.hosting import TopicsHost
from replog.cluster.members import kafka_broker_id, raft_id
from replog.errors import UnavailableError
from replog.server.kafka.context import KafkaBroker

__all__ = ["ClusterView"]


class ClusterView:
    """A ``BrokerView`` over one cluster node's topics (see the module docstring)."""

    def __init__(self, host: TopicsHost) -> None:
        """Answer from ``host``'s metadata and groups."""
        self._host = host
        self.remote = host.remote_leaders

    def brokers(self) -> list[KafkaBroker]:
        """Every live node whose Kafka address the metadata holds, by broker id: this node,
        and the others node liveness holds up (as Kafka lists only live brokers, so clients
        do not keep dialling a dead one)."""
        host = self._host
        found = (
            self.broker(name)
            for name in host.metadata.state.nodes
            if name == host.name or host.transport.live(raft_id(name))
        )
        return sorted(b for b in found if b is not None)

    def controller_id(self) -> int:
        """The controller group leader's broker id (-1: none known)."""
        lead = self._host.node.leader
        return -1 if lead is None else kafka_broker_id(self._host.book.name(lead))

    def broker_id(self, node: str) -> int:
        """``node``'s broker id."""
        return kafka_broker_id(node)

    def broker(self, node: str) -> KafkaBroker | None:
        """``node`` as a broker, if the metadata holds its Kafka address."""
        info = self._host.metadata.state.nodes.get(node)
        if info is None or not info.kafka_address:
            return None
        host, sep, port = info.kafka_address.rpartition(":")
        if not sep or not port.isdigit():
            return None
        return KafkaBroker(kafka_broker_id(node), host.strip("[]"), int(port))

    def leader(self, topic: str, partition: int) -> str:
        """The leader of a partition this node holds no replica of, as its replicas last
        said ("" when not known yet, or when this node holds a replica: its own group
        answers that)."""
        info = self._host.metadata.state.topics.get(topic)
        if info is None or not 0 <= partition < len(info.partitions):
            return ""
        if self._host.name in info.partitions[partition].hosts:
            return ""
        return self.remote.leader(topic, partition)

    async def close(self) -> None:
        """Nothing to stop: the host's ``remote_leaders`` stop with the host."""

    def leads(self, topic: str, partition: int) -> bool:
        """Whether this node's replica of the partition leads it (a partition it holds no
        replica of, or one still starting here: False)."""
        try:
            backend = self._host.topics.partition(topic, partition)
        except UnavailableError:
            return False
        return isinstance(backend, RaftBackend) and backend.node.is_leader
