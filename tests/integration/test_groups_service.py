"""The Groups gRPC service on a real single-node server: heartbeats assign partitions,
commits land and survive a restart, stale members are fenced, and a group with members
cannot be deleted or committed to from outside."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest

from replog.v1 import admin_pb2, group_pb2
from tests.integration.conftest import ThreadedServer, wait_until


def join(stub: Any, group: str, topics: list[str]) -> group_pb2.GroupHeartbeatResponse:
    return stub.Heartbeat(
        group_pb2.GroupHeartbeatRequest(
            group=group,
            member_epoch=0,
            subscription=group_pb2.Subscription(topics=topics),
            session_timeout_ms=30_000,
        ),
        timeout=10,
    )


def beat(
    stub: Any, group: str, answer: group_pb2.GroupHeartbeatResponse
) -> group_pb2.GroupHeartbeatResponse:
    """A heartbeat reporting the answer's assignment as owned."""
    return stub.Heartbeat(
        group_pb2.GroupHeartbeatRequest(
            group=group,
            member_id=answer.member_id,
            member_epoch=answer.member_epoch,
            owned=answer.assignment,
        ),
        timeout=10,
    )


def owned(answer: group_pb2.GroupHeartbeatResponse) -> set[tuple[str, int]]:
    return {(t.topic, p) for t in answer.assignment.topics for p in t.partitions}


def commit(stub: Any, group: str, member: str, epoch: int, offsets: dict[int, int]) -> None:
    stub.CommitOffsets(
        group_pb2.CommitOffsetsRequest(
            group=group,
            member_id=member,
            member_epoch=epoch,
            offsets=[
                group_pb2.OffsetCommit(topic="orders", partition=p, offset=o)
                for p, o in offsets.items()
            ],
        ),
        timeout=10,
    )


def fetched(stub: Any, group: str) -> dict[tuple[str, int], int]:
    answer = stub.FetchOffsets(group_pb2.FetchOffsetsRequest(group=group), timeout=10)
    return {(o.topic, o.partition): o.offset for o in answer.offsets}


def precondition(exc: grpc.RpcError) -> str:
    assert exc.code() == grpc.StatusCode.FAILED_PRECONDITION, exc
    return dict(exc.trailing_metadata() or ()).get("replog-error-code", "")


def test_two_members_split_the_partitions_and_their_commits_survive_a_restart(
    server_factory: Callable[..., ThreadedServer], stub_for: Callable[[ThreadedServer], Any]
) -> None:
    server = server_factory()
    groups, admin = stub_for(server)
    admin.CreateTopic(admin_pb2.CreateTopicRequest(name="orders", partitions=4), timeout=10)
    a = join(groups, "billing", ["orders"])
    assert owned(a) == {("orders", p) for p in range(4)}
    a = beat(groups, "billing", a)
    b = join(groups, "billing", ["orders"])
    # a gives two partitions up first (revoke), then b gets them.
    a = beat(groups, "billing", a)
    assert len(owned(a)) == 2
    a = beat(groups, "billing", a)
    b = beat(groups, "billing", b)
    assert len(owned(b)) == 2 and not owned(a) & owned(b)
    commit(groups, "billing", a.member_id, a.member_epoch, {p: 10 + p for _, p in owned(a)})
    commit(groups, "billing", b.member_id, b.member_epoch, {p: 20 + p for _, p in owned(b)})
    expected = {("orders", p): (10 if ("orders", p) in owned(a) else 20) + p for p in range(4)}
    assert fetched(groups, "billing") == expected
    described = groups.DescribeGroup(group_pb2.DescribeGroupRequest(group="billing"), timeout=10)
    assert {m.member_id for m in described.group.members} == {a.member_id, b.member_id}
    assert {(o.partition, o.committed, o.lag) for o in described.group.offsets} == {
        (p, o, 0) for (_, p), o in expected.items()
    }
    data_dir = server.data_dir
    server.stop()
    again = server_factory(data_dir)
    groups, _ = stub_for(again)
    assert fetched(groups, "billing") == expected
    # The old members are gone with the old coordinator: they must rejoin.
    with pytest.raises(grpc.RpcError) as caught:
        beat(groups, "billing", a)
    assert precondition(caught.value) == "UNKNOWN_MEMBER_ID"
    with pytest.raises(grpc.RpcError) as caught:
        commit(groups, "billing", a.member_id, a.member_epoch, {0: 99})
    assert precondition(caught.value) == "UNKNOWN_MEMBER_ID"
    assert fetched(groups, "billing") == expected


def test_a_fenced_member_cannot_commit_and_a_group_with_members_cannot_be_deleted(
    server_factory: Callable[..., ThreadedServer], stub_for: Callable[[ThreadedServer], Any]
) -> None:
    server = server_factory()
    groups, admin = stub_for(server)
    admin.CreateTopic(admin_pb2.CreateTopicRequest(name="orders", partitions=2), timeout=10)
    a = beat(groups, "g", join(groups, "g", ["orders"]))
    with pytest.raises(grpc.RpcError) as caught:
        commit(groups, "g", a.member_id, a.member_epoch - 1, {0: 5})
    assert precondition(caught.value) == "FENCED_MEMBER_EPOCH"
    with pytest.raises(grpc.RpcError) as caught:
        commit(groups, "g", "", 0, {0: 5})
    assert precondition(caught.value) == "NON_EMPTY_GROUP"
    with pytest.raises(grpc.RpcError) as caught:
        groups.DeleteGroup(group_pb2.DeleteGroupRequest(group="g"), timeout=10)
    assert precondition(caught.value) == "NON_EMPTY_GROUP"
    assert fetched(groups, "g") == {}
    # Leaving empties the group: a tool may set offsets, then delete it.
    groups.Heartbeat(
        group_pb2.GroupHeartbeatRequest(group="g", member_id=a.member_id, member_epoch=-1),
        timeout=10,
    )
    commit(groups, "g", "", 0, {0: 5, 1: 7})
    assert fetched(groups, "g") == {("orders", 0): 5, ("orders", 1): 7}
    listed = groups.ListGroups(group_pb2.ListGroupsRequest(), timeout=10)
    assert [(g.group, g.state, g.members) for g in listed.groups] == [("g", "empty", 0)]
    groups.DeleteGroup(group_pb2.DeleteGroupRequest(group="g"), timeout=10)
    assert fetched(groups, "g") == {}
    with pytest.raises(grpc.RpcError) as caught:
        groups.DescribeGroup(group_pb2.DescribeGroupRequest(group="g"), timeout=10)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (group_pb2.GroupHeartbeatRequest(group="", member_epoch=0), "INVALID_ARGUMENT"),
        (group_pb2.GroupHeartbeatRequest(group="g", member_epoch=0), "INVALID_ARGUMENT"),
        (
            group_pb2.GroupHeartbeatRequest(
                group="g", member_epoch=0, subscription=group_pb2.Subscription(topics=["a/b"])
            ),
            "INVALID_ARGUMENT",
        ),
        (
            group_pb2.GroupHeartbeatRequest(
                group="g",
                member_epoch=0,
                subscription=group_pb2.Subscription(topics=["orders"]),
                assignor="roundrobin",
            ),
            "INVALID_ARGUMENT",
        ),
    ],
    ids=["no group", "join without subscription", "bad topic name", "unknown assignor"],
)
def test_a_bad_heartbeat_is_refused_and_changes_nothing(
    server_factory: Callable[..., ThreadedServer],
    stub_for: Callable[[ThreadedServer], Any],
    request_: group_pb2.GroupHeartbeatRequest,
    code: str,
) -> None:
    groups, _ = stub_for(server_factory())
    with pytest.raises(grpc.RpcError) as caught:
        groups.Heartbeat(request_, timeout=10)
    assert caught.value.code().name == code
    assert list(groups.ListGroups(group_pb2.ListGroupsRequest(), timeout=10).groups) == []


def test_committing_a_partition_that_does_not_exist_is_refused(
    server_factory: Callable[..., ThreadedServer], stub_for: Callable[[ThreadedServer], Any]
) -> None:
    groups, admin = stub_for(server_factory())
    admin.CreateTopic(admin_pb2.CreateTopicRequest(name="orders", partitions=2), timeout=10)
    with pytest.raises(grpc.RpcError) as caught:
        commit(groups, "g", "", 0, {0: 1, 5: 1})
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert fetched(groups, "g") == {}


def test_a_member_subscribed_before_its_topic_existed_gets_it_once_created(
    server_factory: Callable[..., ThreadedServer], stub_for: Callable[[ThreadedServer], Any]
) -> None:
    groups, admin = stub_for(server_factory())
    a = beat(groups, "g", join(groups, "g", ["later"]))
    assert owned(a) == set()
    admin.CreateTopic(admin_pb2.CreateTopicRequest(name="later", partitions=3), timeout=10)
    state = {"answer": a}

    def assigned() -> bool:
        state["answer"] = beat(groups, "g", state["answer"])
        return owned(state["answer"]) == {("later", p) for p in range(3)}

    wait_until(assigned, 10, "the new topic's partitions assigned")


def test_time_retention_of_the_offsets_topic_keeps_every_live_offset(
    server_factory: Callable[..., ThreadedServer], stub_for: Callable[[ThreadedServer], Any]
) -> None:
    settings = {
        "offsets_topic_partitions": 1,
        "offsets_retention_ms": 2000,  # compacted every 0.5 s
        "retention_check_interval_ms": 100,
    }
    server = server_factory(**settings)
    groups, admin = stub_for(server)
    admin.CreateTopic(admin_pb2.CreateTopicRequest(name="orders", partitions=2), timeout=10)
    commit(groups, "old", "", 0, {0: 5, 1: 6})  # never committed again
    for i in range(20):
        commit(groups, "busy", "", 0, {0: i})
    config = admin.DescribeTopic(
        admin_pb2.DescribeTopicRequest(name="__consumer_offsets"), timeout=10
    ).topic.config
    assert config["retention_ms"] == "2000"

    def front_deleted() -> bool:
        topic = admin.DescribeTopic(
            admin_pb2.DescribeTopicRequest(name="__consumer_offsets"), timeout=10
        ).topic
        return topic.partitions[0].lowest_offset > 21  # past every commit written above

    wait_until(front_deleted, 20, "retention to delete the offsets topic's front")
    assert fetched(groups, "old") == {("orders", 0): 5, ("orders", 1): 6}
    assert fetched(groups, "busy") == {("orders", 0): 19}
    data_dir = server.data_dir
    server.stop()
    groups, _ = stub_for(server_factory(data_dir, **settings))
    assert fetched(groups, "old") == {("orders", 0): 5, ("orders", 1): 6}
    assert fetched(groups, "busy") == {("orders", 0): 19}
