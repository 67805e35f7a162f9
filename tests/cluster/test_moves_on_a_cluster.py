"""Moving replicas on an in-process cluster: ``replog topic reassign`` moves one partition,
``replog cluster decommission`` moves every replica off a node and removes it, both while a
producer writes; every acknowledged record is still there afterwards."""

from __future__ import annotations

import threading
from typing import Any

import grpc
import pytest
from typer.testing import CliRunner

from replog.cli import cluster as cluster_cli
from replog.cli import topics as topics_cli
from replog.client import Client
from replog.errors import ReplogError
from replog.v1 import cluster_pb2
from tests.cluster.conftest import Cluster, Node, admin_call, wait_until
from tests.cluster.test_leader_aware_client import _http


class Producer(threading.Thread):
    """Writes unique values round-robin over partitions until stopped; keeps what was
    acknowledged ((partition, offset) -> value)."""

    def __init__(self, addrs: list[str], topic: str, partitions: int) -> None:
        super().__init__(daemon=True)
        self.addrs, self.topic, self.partitions = addrs, topic, partitions
        self.acked: dict[tuple[int, int], bytes] = {}
        self.failed = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        i = 0
        with Client(self.addrs, timeout=5) as client:
            while not self.stopping.is_set():
                value = b"v%d" % i
                p = i % self.partitions
                i += 1
                try:
                    offset = client.produce(value, topic=self.topic, partition=p)
                except ReplogError:
                    self.failed += 1  # not acknowledged: not checked
                    continue
                self.acked[(offset.partition, int(offset))] = value

    def count(self) -> int:
        return len(self.acked)

    def stop(self) -> None:
        self.stopping.set()
        self.join(30)
        assert not self.is_alive()


def _addrs(nodes: list[Node]) -> list[str]:
    return [n.grpc_address for n in nodes]


def _node(cluster: Cluster, name: str) -> Node:
    return next(n for n in cluster.nodes if n.name == name)


def _status(node: Node) -> Any:
    request, response = cluster_pb2.StatusRequest(), cluster_pb2.StatusResponse
    return admin_call(node.grpc_address, "Status", request, response, timeout=5)


def _state(node: Node) -> Any:
    return node.cluster.topics_host.metadata.state


def _check_records(node: Any, topic: str, acked: dict[tuple[int, int], bytes]) -> None:
    """Every acknowledged record of ``topic`` is at its offset on ``node``'s replica (a
    ``Node`` or a ``ProcNode``: its ``name`` and ``grpc_address``)."""
    _check_records_from(node, topic, acked, 0)


def _check_records_from(
    node: Any, topic: str, acked: dict[tuple[int, int], bytes], start: int
) -> None:
    """``_check_records`` of the records from offset ``start`` on."""
    partitions = sorted({p for p, _ in acked})
    with Client(node.grpc_address, timeout=10) as client:
        for p in partitions:
            mine = {o: v for (q, o), v in acked.items() if q == p}
            top = max(mine)
            got: dict[int, bytes] = {}
            offset = start
            while offset <= top:
                batch = client.consume_batch(offset, 1000, topic=topic, partition=p, min_offset=top)
                assert batch.records, f"{topic}/{p} on {node.name} ends before {top}"
                for record in batch.records:
                    got[record.offset] = record.value
                offset = batch.records[-1].offset + 1
            lost = {o: v for o, v in mine.items() if got.get(o) != v}
            assert not lost, f"{topic}/{p} on {node.name} lost {len(lost)} records"


def test_reassigning_a_partition_keeps_every_acknowledged_record_and_removes_the_old_replica(
    cluster: Cluster,
) -> None:
    nodes = cluster.bootstrap(4)
    with Client(_addrs(nodes)) as client:
        created = client.create_topic("moving", 1, replication_factor=3)
    before = created.partitions[0].replicas
    spare = next(n.name for n in nodes if n.name not in before)
    leaving = before[0]  # the preferred leader: leads the group, so it hands over first
    target = [*before[1:], spare]
    producer = Producer(_addrs(nodes), "moving", 1)
    producer.start()
    wait_until(lambda: producer.count() >= 20, 20, "records before the move")
    server = cluster.leader().grpc_address
    args = ["reassign", "moving", "0", "--replicas", ",".join(target), "--server", server]
    result = CliRunner().invoke(topics_cli.app, args)
    assert result.exit_code == 0, result.output
    assert "moving moving/0" in result.stdout

    def moved() -> bool:
        part = _state(cluster.leader()).topics["moving"].partitions[0]
        return part.target is None and list(part.replicas) == target

    wait_until(moved, 60, "the move to complete")
    seen = producer.count()
    wait_until(lambda: producer.count() >= seen + 20, 20, "records after the move")
    producer.stop()
    old_dir = _node(cluster, leaving).data_dir / "topics" / "moving" / "0"
    wait_until(lambda: not old_dir.exists(), 20, "the old replica's directory to go")
    for name in target:
        node = _node(cluster, name)
        group = node.cluster.topics_host.local("moving", 0)
        assert group is not None
        wait_until(lambda g=group: g.node.raft.config.voters == g.node.raft.config.members(), 10)
        _check_records(node, "moving", producer.acked)
    with Client(_addrs(nodes)) as client:
        assert list(client.describe_topic("moving").partitions[0].replicas) == target


def test_decommissioning_the_controller_leader_moves_its_replicas_and_removes_it(
    cluster: Cluster,
) -> None:
    nodes = cluster.bootstrap(4)
    with Client(_addrs(nodes)) as client:
        client.create_topic("busy", 8, replication_factor=3)
    leader = cluster.leader()
    others = [n for n in nodes if n is not leader]
    producer = Producer(_addrs(others), "busy", 8)
    producer.start()
    wait_until(lambda: producer.count() >= 40, 20, "records before the decommission")
    result = CliRunner().invoke(
        cluster_cli.app, ["decommission", leader.name, "--server", others[0].grpc_address]
    )
    assert result.exit_code == 0, result.output
    assert f"decommissioning {leader.name}" in result.stdout

    def gone() -> bool:
        status = _status(cluster.leader())
        mine = [n for n in status.nodes if n.id == leader.name]
        members = {m.id for m in status.members}
        return bool(mine) and mine[0].state == "decommissioned" and leader.name not in members

    wait_until(gone, 120, f"{leader.name} to be decommissioned")
    shown = CliRunner().invoke(cluster_cli.app, ["status", "--server", others[0].grpc_address])
    assert shown.exit_code == 0, shown.output
    assert "decommissioned" in shown.stdout
    seen = producer.count()
    wait_until(lambda: producer.count() >= seen + 20, 20, "records after the decommission")
    producer.stop()
    state = _state(cluster.leader())
    assert not [
        (name, p)
        for name, topic in state.topics.items()
        for p, part in enumerate(topic.partitions)
        if leader.name in part.hosts
    ]
    assert leader.cluster.id not in cluster.leader().cluster.node.raft.config.members()
    for p in range(8):
        replicas = state.topics["busy"].partitions[p].replicas
        assert len(replicas) == 3
        mine = {k: v for k, v in producer.acked.items() if k[0] == p}
        if mine:
            _check_records(_node(cluster, replicas[-1]), "busy", mine)


def _refused(addr: str, method: str, request: Any, response: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        admin_call(addr, method, request, response, timeout=10)
    return info.value


def test_bad_moves_are_refused_with_a_clear_error_and_change_nothing(three: Cluster) -> None:
    nodes = three.running()
    with Client(_addrs(nodes)) as client:
        client.create_topic("kept", 2, replication_factor=3)
    leader = three.leader()

    # Each node records its HTTP address a moment after it is registered: wait for them,
    # so that the version below moves only if a refused command changed something.
    def addressed() -> bool:
        known = _state(leader).nodes
        return all(n.name in known and known[n.name].http_address for n in nodes)

    wait_until(addressed, 10, "every node's HTTP address in the metadata")
    version = _state(leader).version
    pb = cluster_pb2
    decommission = (pb.DecommissionRequest, pb.DecommissionResponse)
    bad, missing = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND

    def reassign(topic: str, partition: int, replicas: list[str]) -> Any:
        return pb.ReassignPartitionRequest(topic=topic, partition=partition, replicas=replicas)

    cases = [
        ("Decommission", pb.DecommissionRequest(node_id="nope"), missing, "nope"),
        # Two nodes cannot hold three replicas of a partition.
        ("Decommission", pb.DecommissionRequest(node_id="n2"), bad, "kept"),
        ("Decommission", pb.DecommissionRequest(node_id=""), bad, "required"),
        ("ReassignPartition", reassign("nope", 0, ["n1"]), missing, "nope"),
        ("ReassignPartition", reassign("kept", 2, ["n1"]), missing, "partition"),
        ("ReassignPartition", reassign("kept", 0, ["n1", "n1"]), bad, "twice"),
        ("ReassignPartition", reassign("kept", 0, ["n1", "n9"]), missing, "n9"),
        ("ReassignPartition", reassign("kept", 0, []), bad, "replica"),
        ("ReassignPartition", reassign("default", 0, ["n1"]), bad, "controller"),
    ]
    responses = {"Decommission": decommission[1], "ReassignPartition": pb.ReassignPartitionResponse}
    for method, request, code, needle in cases:
        error = _refused(leader.grpc_address, method, request, responses[method])
        assert error.code() == code, (method, request, error.details())
        assert needle in (error.details() or ""), error.details()
        assert "Error" not in (error.details() or "")
    assert _state(leader).version == version
    status = _status(leader)
    assert not status.moves
    assert {n.state for n in status.nodes} == {"active"}
    follower = three.followers()[0]
    error = _refused(
        follower.grpc_address, "Decommission", pb.DecommissionRequest(node_id="n2"), decommission[1]
    )
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert dict(error.trailing_metadata() or ()).get("replog-leader") == leader.grpc_address
    result = CliRunner().invoke(
        cluster_cli.app, ["decommission", "nope", "--server", follower.grpc_address]
    )
    assert result.exit_code == 1
    assert "nope" in result.stderr and "Traceback" not in result.output
    status, body = _http(leader, "POST", "/v1/cluster:decommission", {"id": "nope"})
    assert status == 404 and body["error"]["code"] == "NOT_FOUND", body
    status, body = _http(leader, "POST", "/v1/cluster:decommission", {"id": "n2"})
    assert status == 400 and "kept" in body["error"]["message"], body
    status, body = _http(leader, "POST", "/v1/cluster:decommission", {})
    assert status == 400, body
    assert _state(leader).version == version
    status, view = _http(follower, "GET", "/v1/cluster")
    assert status == 200 and view["moves"] == []
    assert {n["id"]: n["state"] for n in view["nodes"]} == dict.fromkeys(
        ("n1", "n2", "n3"), "active"
    )


def test_a_move_resumes_after_its_group_leader_restarts_and_its_new_replica_comes_back(
    cluster: Cluster,
) -> None:
    nodes = cluster.bootstrap(5)
    with Client(_addrs(nodes)) as client:
        created = client.create_topic("resumed", 1, replication_factor=3)
        before = list(created.partitions[0].replicas)
        acked = {
            (0, int(client.produce(b"a%d" % i, topic="resumed"))): b"a%d" % i for i in range(30)
        }
    spare = _node(cluster, next(n.name for n in nodes if n.name not in before))
    spare.stop()  # the learner cannot catch up: the move stops half-way
    target = [*before[:2], spare.name]
    server = cluster.leader().grpc_address
    request = cluster_pb2.ReassignPartitionRequest(topic="resumed", partition=0, replicas=target)
    admin_call(server, "ReassignPartition", request, cluster_pb2.ReassignPartitionResponse, 10)

    def group_leader() -> Node | None:
        for name in before:
            group = _node(cluster, name).cluster.topics_host.local("resumed", 0)
            if group is not None and group.node.is_leader:
                return _node(cluster, name)
        return None

    def learner_added() -> bool:
        lead = group_leader()
        group = lead.cluster.topics_host.local("resumed", 0) if lead is not None else None
        return group is not None and spare.cluster.id in group.node.raft.config.learners

    wait_until(learner_added, 30, "the new replica to be added as a learner")
    old_leader = group_leader()
    assert old_leader is not None
    old_leader.stop()
    wait_until(group_leader, 30, "another replica to lead the group")
    old_leader.start()
    spare.start()
    with Client(_addrs(cluster.running())) as client:
        for i in range(10):
            value = b"b%d" % i
            acked[(0, int(client.produce(value, topic="resumed")))] = value

    def moved() -> bool:
        part = _state(cluster.leader()).topics["resumed"].partitions[0]
        return part.target is None and list(part.replicas) == target

    wait_until(moved, 60, "the move to complete")
    _check_records(spare, "resumed", acked)


def test_a_new_replica_of_a_partition_whose_start_retention_deleted_catches_up_by_snapshot(
    cluster: Cluster,
) -> None:
    nodes = cluster.bootstrap(4)
    config = {"segment_bytes": "4096", "max_record_bytes": "1024", "retention_bytes": "8192"}
    with Client(_addrs(nodes)) as client:
        created = client.create_topic("kept-short", 1, replication_factor=3, config=config)
        acked = {}
        for i in range(300):
            value = b"r%04d" % i + b"." * 90
            acked[(0, int(client.produce(value, topic="kept-short")))] = value
    before = list(created.partitions[0].replicas)
    holders = [_node(cluster, n) for n in before]
    for node in holders:
        node.call(node.cluster.topics_host.apply_retention())

    def lowest() -> int:
        group = holders[0].cluster.topics_host.local("kept-short", 0)
        assert group is not None
        return int(group.lowest_offset)

    start = wait_until(lowest, 10, "retention to delete the first segments")
    spare = next(n for n in nodes if n.name not in before)
    target = [*before[:2], spare.name]
    request = cluster_pb2.ReassignPartitionRequest(topic="kept-short", partition=0, replicas=target)
    server = cluster.leader().grpc_address
    admin_call(server, "ReassignPartition", request, cluster_pb2.ReassignPartitionResponse, 10)

    def moved() -> bool:
        part = _state(cluster.leader()).topics["kept-short"].partitions[0]
        return part.target is None and list(part.replicas) == target

    wait_until(moved, 60, "the move to complete")
    kept = {k: v for k, v in acked.items() if k[1] >= start}
    assert kept and len(kept) < len(acked)
    _check_records_from(spare, "kept-short", kept, start)
