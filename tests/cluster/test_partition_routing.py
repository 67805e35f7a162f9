"""Clients route each partition's calls: produces to its leader, reads to its replicas, even
when a node holds no replica of the partition (4 nodes, replication factor 2).

The tests share one 4-node cluster (started once for the module): none stops a node or
changes the membership, and each makes a topic of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from replog.broker.partitioner import partition_for_key
from replog.client import AsyncClient, Client
from tests.cluster.conftest import Cluster, Node, wait_until


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A 4-node cluster for the module's tests; every node is stopped at the end."""
    four = Cluster(tmp_path_factory.mktemp("routing"))
    try:
        four.bootstrap(4)
        yield four
    finally:
        four.stop_all()


def _leaders(cluster: Cluster, topic: str) -> dict[int, str]:
    """Partition -> address of its leader, from the nodes' own groups."""
    out = {}
    for node in cluster.running():
        for ref, hosted in node.cluster.topics_host.partitions.hosted.items():
            if ref.topic == topic and hosted.node.is_leader:
                out[ref.partition] = node.grpc_address
    return out


def _four_nodes_with(cluster: Cluster, topic: str, partitions: int) -> list[Node]:
    """The 4 nodes, once ``topic`` (replication factor 2) is made and every partition led."""
    nodes = cluster.running()
    with Client(nodes[0].grpc_address) as admin:
        admin.create_topic(topic, partitions, replication_factor=2)
    wait_until(lambda: len(_leaders(cluster, topic)) == partitions, 20, "every partition to lead")
    return nodes


def test_produces_go_to_each_partition_leader_and_reads_to_its_replicas(
    cluster: Cluster,
) -> None:
    nodes = _four_nodes_with(cluster, "spread", 4)
    for node in nodes:  # whichever node a client starts from
        with Client(node.grpc_address) as client:
            offsets = [client.produce(b"%d" % p, topic="spread", partition=p) for p in range(4)]
            leaders = _leaders(cluster, "spread")
            for p in range(4):
                assert client.routes.leader("spread", p) == leaders[p]
                record = client.consume(offsets[p], topic="spread", partition=p)
                assert record.value == b"%d" % p
                batch = client.consume_batch(offsets[p], 1, topic="spread", partition=p)
                assert [r.value for r in batch.records] == [b"%d" % p]


def test_a_read_sent_to_a_node_without_a_replica_follows_its_hint(cluster: Cluster) -> None:
    nodes = cluster.running()
    with Client(nodes[0].grpc_address) as admin:
        admin.create_topic("far", 1, replication_factor=2)
        offset = admin.produce(b"x", topic="far", partition=0)
    holders = set(
        cluster.leader().cluster.topics_host.metadata.state.topics["far"].partitions[0].replicas
    )
    outsider = next(n for n in nodes if n.name not in holders)
    with Client(outsider.grpc_address) as client:
        client.routes.update("far", [], now=0.0, hold=True)  # as if it may not describe
        client.picker.set_leader(outsider.grpc_address)
        for _ in range(3):  # the outsider is asked, answers with a replica's address
            assert client.consume(offset, topic="far", partition=0).value == b"x"

    async def read() -> bytes:
        async with AsyncClient(outsider.grpc_address) as aclient:
            return (await aclient.consume(offset, topic="far", partition=0)).value

    assert asyncio.run(read()) == b"x"


def test_describe_through_one_node_shows_every_partition_as_its_leader_sees_it(
    cluster: Cluster,
) -> None:
    nodes = _four_nodes_with(cluster, "wide", 6)
    with Client(nodes[0].grpc_address) as client:
        for p in range(6):
            client.produce(b"x", topic="wide", partition=p)
        names = {n.grpc_address: n.name for n in nodes}
        leaders = {p: names[a] for p, a in _leaders(cluster, "wide").items()}
        for node in nodes:
            with Client(node.grpc_address) as one:
                described = one.describe_topic("wide")
                assert [p.leader for p in described.partitions] == [leaders[p] for p in range(6)]
                for p in described.partitions:
                    assert p.next_offset > 0 and p.size_bytes > 0  # a replica's own figures
                    assert set(p.in_sync) == set(p.replicas)


def test_a_keyed_produce_learns_the_routes_and_goes_to_its_partition_leader(
    cluster: Cluster,
) -> None:
    nodes = _four_nodes_with(cluster, "keyed", 4)
    with Client(nodes[-1].grpc_address) as client:
        offset = client.produce(b"v", key=b"customer-7", topic="keyed")
        assert client.routes.partitions("keyed") == 4  # learnt before the first keyed produce
        assert offset.partition == partition_for_key(b"customer-7", 4)
        leader = _leaders(cluster, "keyed")[offset.partition]
        assert client.routes.leader("keyed", offset.partition) == leader
