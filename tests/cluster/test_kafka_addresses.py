"""A node's Kafka address in the cluster's metadata follows its listener: recorded once it
listens, and cleared when it starts again without one (so no broker is named that is not
there)."""

from __future__ import annotations

from tests.cluster.conftest import Cluster, Node, wait_until


def _recorded(node: Node) -> str | None:
    info = node.cluster.topics_host.metadata.state.nodes.get(node.name)
    return None if info is None else info.kafka_address


def test_a_node_restarted_without_a_listener_clears_its_kafka_address(cluster: Cluster) -> None:
    node = cluster.start_node("n1", bootstrap=True, kafka_addr="127.0.0.1:0")
    listening = node.agent.kafka_address if node.agent is not None else ""
    assert listening
    wait_until(lambda: _recorded(node) == listening, 10, "the address recorded")
    node.stop()
    node.settings.pop("kafka_addr")
    node.settings.pop("bootstrap")
    node.start()
    wait_until(lambda: _recorded(node) == "", 10, "the address cleared")
