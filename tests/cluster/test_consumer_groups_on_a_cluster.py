"""Consumer groups on a 3-node cluster: any node points at the group's coordinator (the
leader of its __consumer_offsets partition), committed offsets survive the coordinator's
crash, and the members of the old coordinator are fenced by the new one."""

from __future__ import annotations

import time
from typing import Any

import grpc

from replog import Client
from replog.broker.group_log import OFFSETS_TOPIC
from replog.v1 import group_pb2, group_pb2_grpc
from tests.cluster.conftest import Cluster, Node, wait_until


def group_call(nodes: list[Node], method: str, request: Any, timeout: float = 20) -> Any:
    """Call ``method`` on whichever node coordinates the group: follow ``replog-leader``,
    retry elsewhere on UNAVAILABLE (an election, a node down), like a client does."""
    deadline = time.monotonic() + timeout
    addrs = [n.grpc_address for n in nodes if n.running]
    addr = addrs[0]
    while True:
        with grpc.insecure_channel(addr) as channel:
            stub = group_pb2_grpc.GroupsStub(channel)
            try:
                return getattr(stub, method)(request, timeout=5)
            except grpc.RpcError as exc:
                if exc.code() not in (
                    grpc.StatusCode.UNAVAILABLE,
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                ):
                    raise
                hint = dict(exc.trailing_metadata() or ()).get("replog-leader", "")
                if time.monotonic() > deadline:
                    raise
                if hint and hint in addrs:
                    addr = hint
                else:
                    addr = addrs[(addrs.index(addr) + 1) % len(addrs)]
                    time.sleep(0.05)


def coordinator(nodes: list[Node], group: str) -> Node:
    """The node that answers for ``group`` (it serves without a redirect)."""
    for node in nodes:
        if not node.running:
            continue
        with grpc.insecure_channel(node.grpc_address) as channel:
            try:
                group_pb2_grpc.GroupsStub(channel).FetchOffsets(
                    group_pb2.FetchOffsetsRequest(group=group), timeout=5
                )
                return node
            except grpc.RpcError:
                continue
    raise AssertionError("no node coordinates the group")


def test_offsets_survive_the_coordinators_crash_and_its_members_must_rejoin(
    three: Cluster,
) -> None:
    nodes = three.nodes
    with Client([n.grpc_address for n in nodes], timeout=10) as client:
        client.create_topic("orders", 3, replication_factor=3)
    joined = group_call(
        nodes,
        "Heartbeat",
        group_pb2.GroupHeartbeatRequest(
            group="billing",
            member_epoch=0,
            subscription=group_pb2.Subscription(topics=["orders"]),
        ),
    )
    assert sum(len(t.partitions) for t in joined.assignment.topics) == 3
    with Client([n.grpc_address for n in nodes], timeout=10) as client:
        offsets_topic = client.describe_topic(OFFSETS_TOPIC)
    assert len(offsets_topic.partitions) == 8 and offsets_topic.replication_factor == 3
    commit = group_pb2.CommitOffsetsRequest(
        group="billing",
        member_id=joined.member_id,
        member_epoch=joined.member_epoch,
        offsets=[
            group_pb2.OffsetCommit(topic="orders", partition=p, offset=10 * p) for p in range(3)
        ],
    )
    group_call(nodes, "CommitOffsets", commit)
    old = coordinator(nodes, "billing")
    old.stop_without_hand_over()
    survivors = [n for n in nodes if n.running]
    fetched = group_call(survivors, "FetchOffsets", group_pb2.FetchOffsetsRequest(group="billing"))
    assert {(o.partition, o.offset) for o in fetched.offsets} == {(0, 0), (1, 10), (2, 20)}
    new = coordinator(survivors, "billing")
    assert new is not old
    # The member of the crashed coordinator is unknown to the new one: its commit is refused.
    try:
        group_call(survivors, "CommitOffsets", commit)
        raise AssertionError("a member of the old coordinator committed")
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert dict(exc.trailing_metadata() or ()).get("replog-error-code") == "UNKNOWN_MEMBER_ID"
    again = group_call(
        survivors,
        "Heartbeat",
        group_pb2.GroupHeartbeatRequest(
            group="billing", member_epoch=0, subscription=group_pb2.Subscription(topics=["orders"])
        ),
    )
    assert again.member_epoch > joined.member_epoch  # epochs continue past the recorded one

    def described() -> Any:
        answer = group_call(
            survivors, "DescribeGroup", group_pb2.DescribeGroupRequest(group="billing")
        ).group
        return answer if {o.committed for o in answer.offsets} == {0, 10, 20} else None

    assert wait_until(described, 10, "the committed offsets in describe")
