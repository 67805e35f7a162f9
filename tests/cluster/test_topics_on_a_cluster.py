"""Topics on a cluster: each partition its own Raft group over its replicas, created,
described, written, read and deleted through any node."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from typer.testing import CliRunner

from replog.broker.partitioner import partition_for_key
from replog.cli import topics
from replog.client import Client
from replog.cluster.forward import Forwarder
from replog.errors import (
    AlreadyExistsError,
    InvalidArgumentError,
    UnavailableError,
    UnknownPartitionError,
    UnknownTopicError,
)
from tests.cluster.conftest import Cluster, wait_until
from tests.integration.test_http_bad_input import post


def _addrs(cluster: Cluster) -> str:
    return ",".join(n.grpc_address for n in cluster.running())


def test_a_topic_of_a_cluster_takes_keyed_records_on_murmur2_partitions_through_any_node(
    three: Cluster,
) -> None:
    with Client(_addrs(three)) as client:
        created = client.create_topic("orders", 6, replication_factor=3)
        assert created.partition_count == 6
        assert all(len(p.replicas) == 3 for p in created.partitions)
        offsets = {}
        for i in range(30):
            key = f"customer-{i}".encode()
            offsets[key] = client.produce(b"v%d" % i, key=key, topic="orders")
            assert offsets[key].partition == partition_for_key(key, 6)
        for node in three.running():  # every node serves every partition's records
            with Client(node.grpc_address) as one:
                for key, offset in offsets.items():
                    record = one.consume(offset, topic="orders", partition=offset.partition)
                    assert record.key == key
        described = client.describe_topic("orders")
        leaders = [p.leader for p in described.partitions]
        assert all(leaders), leaders
        names = {n.name for n in three.running()}
        assert set(leaders) <= names


def test_a_cluster_refuses_bad_topic_requests_and_changes_nothing(three: Cluster) -> None:
    with Client(_addrs(three)) as client:
        client.create_topic("events", 2, replication_factor=2)
        with pytest.raises(AlreadyExistsError):
            client.create_topic("events", 2)
        with pytest.raises(InvalidArgumentError, match="replication factor 4"):
            client.create_topic("big", 1, replication_factor=4)
        with pytest.raises(InvalidArgumentError):
            client.create_topic("bad/name", 1)
        with pytest.raises(UnknownTopicError):
            client.produce(b"x", topic="nope")
        with pytest.raises(UnknownPartitionError):
            client.produce(b"x", topic="events", partition=2)
        assert [t.name for t in client.list_topics()] == ["default", "events"]


def test_deleting_a_topic_of_a_cluster_removes_its_data_on_every_replica(three: Cluster) -> None:
    with Client(_addrs(three)) as client:
        client.create_topic("gone", 3, replication_factor=3)
        client.produce(b"x", topic="gone", partition=1)
        dirs = [n.data_dir / "topics" / "gone" for n in three.running()]
        wait_until(lambda: all(d.exists() for d in dirs), 10, "partition dirs")
        client.delete_topic("gone")
        wait_until(lambda: not any(d.exists() for d in dirs), 10, "the data to go")
        with pytest.raises(UnknownTopicError):
            client.produce(b"x", topic="gone")
        client.create_topic("gone", 1, replication_factor=3)  # a new incarnation, empty
        offset = client.produce(b"new", topic="gone")
        assert client.consume(offset, topic="gone").value == b"new"


def test_the_cli_creates_and_describes_a_topic_of_a_cluster(three: Cluster) -> None:
    server = _addrs(three)
    result = CliRunner().invoke(
        topics.app, ["create", "logs", "--partitions", "3", "--server", server]
    )
    assert result.exit_code == 0, result.output
    args = ["describe", "logs", "--format", "json", "--server", server]
    result = CliRunner().invoke(topics.app, args)
    assert result.exit_code == 0, result.output
    assert '"partition": 2' in result.stdout


def test_a_restarted_node_rebuilds_its_topics_and_catches_its_partitions_up(
    three: Cluster,
) -> None:
    with Client(_addrs(three)) as client:
        client.create_topic("kept", 4, replication_factor=3)
        before = [client.produce(b"before-%d" % p, topic="kept", partition=p) for p in range(4)]
    victim = three.followers()[0]
    victim.stop()
    with Client(_addrs(three)) as client:
        during = [client.produce(b"during-%d" % p, topic="kept", partition=p) for p in range(4)]
        client.create_topic("later", 2, replication_factor=3)  # created while it was down
    victim.start()
    topics_of = victim.cluster.topics_host
    wait_until(
        lambda: {"kept", "later"} <= set(topics_of.metadata.state.topics), 20, "the metadata"
    )
    wait_until(lambda: len(topics_of.partitions.hosted) == 6, 20, "its groups to open")
    hosted = {r.topic: r for r in topics_of.partitions.hosted}
    assert set(hosted) == {"kept", "later"}

    def caught_up() -> bool:
        for offset in during:
            backend = topics_of.local("kept", offset.partition)
            if backend is None or backend.high_watermark <= offset:
                return False
        return True

    wait_until(caught_up, 20, "its partitions to catch up")
    with Client(victim.grpc_address) as one:  # served from the restarted node's own replicas
        for offsets, what in ((before, b"before"), (during, b"during")):
            for offset in offsets:
                record = one.consume(offset, topic="kept", partition=offset.partition)
                assert record.value == b"%s-%d" % (what, offset.partition)


def test_a_replica_down_while_its_topic_was_deleted_removes_the_data_when_back(
    three: Cluster,
) -> None:
    with Client(_addrs(three)) as client:
        client.create_topic("old", 2, replication_factor=3)
        client.produce(b"x", topic="old", partition=0)
    victim = three.followers()[0]
    directory = victim.data_dir / "topics" / "old"
    wait_until((directory / "1").exists, 10, "its replica directories")
    victim.stop()
    with Client(_addrs(three)) as client:
        client.delete_topic("old")
    assert directory.exists()  # it was down: nothing removed it yet
    victim.start()
    wait_until(lambda: not directory.exists(), 20, "the deleted topic's data to go")
    assert not victim.cluster.topics_host.partitions.hosted


def test_a_crash_before_a_deleted_topic_was_removed_removes_it_at_the_next_start(
    three: Cluster,
) -> None:
    with Client(_addrs(three)) as client:
        client.create_topic("old", 1, replication_factor=3)
        client.produce(b"x", topic="old")
    victim = three.followers()[0]
    host = victim.cluster.topics_host
    topic_id = host.metadata.state.topics["old"].topic_id
    directory = victim.data_dir / "topics" / "old" / "0"
    left = (directory / "group.json").read_bytes()
    with Client(_addrs(three)) as client:
        client.delete_topic("old")
    wait_until(lambda: "old" not in host.metadata.state.topics, 10, "the delete to apply")
    version = host.metadata.state.version
    wait_until(lambda: not directory.exists(), 10, "the removal")
    victim.stop()  # saves the commit index: the restart rebuilds a state without "old"
    assert json.loads((victim.data_dir / "raft-state.json").read_bytes())["commit"] >= version
    directory.mkdir(parents=True)  # what a crash right before the removal leaves
    (directory / "group.json").write_bytes(left)
    assert json.loads(left)["topic_id"] == topic_id
    victim.start()
    wait_until(lambda: not directory.exists(), 20, "the stale directory to go")


def test_a_follower_hands_topic_changes_to_the_controller_leader(three: Cluster) -> None:
    follower = three.followers()[0]
    with Client(follower.grpc_address) as client:
        client.picker.set_leader(follower.grpc_address)  # as if it took it for the leader
        before = three.leader().cluster.topics_host.metadata.state.version
        created = client.create_topic(
            "via", 3, replication_factor=3, config={"retention.ms": "60000"}
        )
        assert created.partition_count == 3 and created.config["retention_ms"] == "60000"
        assert all(p.leader for p in created.partitions)  # ready when the call returns
        grown = client.create_partitions("via", 4)
        assert grown.partition_count == 4
        client.delete_topic("via")
    leader_host = three.leader().cluster.topics_host
    assert (
        leader_host.metadata.state.version > before
        and "via" not in leader_host.metadata.state.topics
    )
    raw = json.dumps({"name": "web", "partitions": 2}).encode()
    status, _, body = post(follower, "/v1/topics", raw)  # curl at any node works too
    assert status in (200, 201), body
    assert json.loads(body)["name"] == "web"


def test_a_node_stopping_gracefully_hands_its_partitions_to_other_replicas_first(
    three: Cluster,
) -> None:
    with Client(_addrs(three)) as client:
        client.create_topic("handed", 6, replication_factor=3)
    leaders = {n.name: 0 for n in three.running()}

    def spread() -> bool:
        for name in leaders:
            leaders[name] = 0
        for node in three.running():
            for ref, hosted in node.cluster.topics_host.partitions.hosted.items():
                if ref.topic == "handed" and hosted.node.is_leader:
                    leaders[node.name] += 1
        return sum(leaders.values()) == 6

    wait_until(spread, 10, "every partition to have a leader")
    victim = next(n for n in three.running() if leaders[n.name] > 0)
    victim.stop()
    stopped = time.monotonic()
    others = three.running()

    def led_elsewhere() -> bool:
        return all(
            any(
                h.node.is_leader
                for n in others
                for r, h in n.cluster.topics_host.partitions.hosted.items()
                if r.topic == "handed" and r.partition == p
            )
            for p in range(6)
        )

    # Without the hand-over they would wait for node liveness (1 s) and an election.
    wait_until(led_elsewhere, 0.8, "the partitions to be led by the others at once")
    assert time.monotonic() - stopped < 0.8


def test_a_forwarded_produce_for_another_incarnation_of_a_topic_is_refused_unapplied(
    three: Cluster,
) -> None:
    with Client(_addrs(three)) as client:
        client.create_topic("again", 1, replication_factor=3)
    node = three.leader()
    host = node.cluster.topics_host
    wait_until(lambda: host.local("again", 0) is not None, 10, "the group")
    backend = host.local("again", 0)
    assert backend is not None and backend.topic_id is not None
    leader = next(
        n
        for n in three.running()
        if n.cluster.topics_host.local("again", 0).node.is_leader  # type: ignore[union-attr]
    )
    before = backend.high_watermark

    async def forward(topic_id: int) -> int:
        forwarder = Forwarder(None)
        try:
            return await forwarder.forward(
                leader.grpc_address, [b"r"], "again", 0, topic_id=topic_id
            )
        finally:
            await forwarder.close()

    with pytest.raises(UnavailableError) as info:
        asyncio.run(forward(backend.topic_id + 1))  # as a node that saw it created again
    assert info.value.certainly_not_applied and "another incarnation" in str(info.value)
    assert backend.high_watermark == before  # nothing appended
    assert asyncio.run(forward(backend.topic_id)) >= before
