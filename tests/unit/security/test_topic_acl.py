"""The ACL's object is the topic: glob patterns, the cluster object, and which object each
gRPC request and HTTP route is checked against."""

from __future__ import annotations

from pathlib import Path

import pytest

from replog.api.wire import MalformedRequest
from replog.security.acl import ANY_TOPIC, CLUSTER, Action, Authorizer
from replog.server.acl_objects import grpc_object, http_permission, topic_object
from replog.v1.admin_pb2 import CreateTopicRequest, ListTopicsRequest
from replog.v1.log_pb2 import ConsumeRequest, ProduceBatchRequest, ProduceRequest
from replog.v1.record_pb2 import Record


def _acl(tmp_path: Path, text: str) -> Authorizer:
    path = tmp_path / "policy.csv"
    path.write_text(text)
    return Authorizer(str(path))


@pytest.mark.parametrize(
    ("pattern", "topic", "granted"),
    [
        ("orders.*", "orders.eu", True),
        ("orders.*", "orders.", True),  # * matches an empty run too
        ("orders.*", "orders.eu.west", True),  # and dots: a topic name has no "/"
        ("orders.*", "ordersX", False),  # "." is literal, not "any character"
        ("orders.*", "orders", False),
        ("orders.*", "payments.orders.eu", False),  # a pattern is anchored at both ends
        ("orders.?", "orders.a", True),
        ("orders.?", "orders.ab", False),
        ("orders.[ab]", "orders.b", True),
        ("orders.[ab]", "orders.c", False),
        ("orders.[!a]", "orders.c", True),
        ("*.eu", "orders.eu", True),
        ("*.eu", "orders.us", False),
        ("orders", "orders", True),
        ("orders", "orders.eu", False),
        ("*", "anything", True),
    ],
)
def test_a_rule_object_is_a_glob_pattern_over_topic_names(
    tmp_path: Path, pattern: str, topic: str, granted: bool
) -> None:
    acl = _acl(tmp_path, f"p, billing, {pattern}, consume\n")
    assert acl.allowed("billing", Action.CONSUME, topic) is granted
    assert not acl.allowed("billing", Action.PRODUCE, topic)  # the action still has to match


def test_only_a_rule_for_every_object_grants_the_cluster_itself(tmp_path: Path) -> None:
    acl = _acl(tmp_path, "p, topics-admin, orders.*, admin\np, ops, *, admin\np, q, ?, admin\n")
    assert acl.allowed("topics-admin", Action.ADMIN, "orders.x")
    assert not acl.allowed("topics-admin", Action.ADMIN, CLUSTER)  # no membership changes
    assert not acl.allowed("q", Action.ADMIN, CLUSTER)  # "?" matches one character, not "*"
    assert acl.allowed("ops", Action.ADMIN, CLUSTER)
    assert acl.allowed("ops", Action.ADMIN, "payments.x")


def test_any_topic_is_granted_by_a_rule_on_any_object_for_that_action(tmp_path: Path) -> None:
    acl = _acl(tmp_path, "p, billing, orders.*, consume\np, alice, *, produce\n")
    assert acl.allowed("billing", Action.CONSUME, ANY_TOPIC)
    assert not acl.allowed("billing", Action.PRODUCE, ANY_TOPIC)
    assert not acl.allowed("billing", Action.ADMIN, ANY_TOPIC)
    assert acl.allowed("alice", Action.PRODUCE, ANY_TOPIC)


def test_policies_written_before_topics_keep_their_meaning(tmp_path: Path) -> None:
    acl = _acl(tmp_path, "p, alice, *, produce\np, *, *, consume\np, replog-node, *, replicate\n")
    for obj in ("default", "orders.eu", CLUSTER, ANY_TOPIC):
        assert acl.allowed("alice", Action.PRODUCE, obj)
        assert acl.allowed("mallory", Action.CONSUME, obj)
        assert not acl.allowed("mallory", Action.PRODUCE, obj)
    assert acl.allowed("replog-node", Action.REPLICATE)


@pytest.mark.parametrize(
    ("name", "obj"),
    [
        ("", "default"),
        ("orders.eu", "orders.eu"),
        ("orders.*", CLUSTER),
        ("<any>", CLUSTER),
        ("a/b", CLUSTER),
        ("x" * 250, CLUSTER),
        ("*", CLUSTER),
    ],
)
def test_a_name_no_topic_can_have_is_checked_as_the_cluster(name: str, obj: str) -> None:
    assert topic_object(name) == obj


def test_grpc_requests_are_checked_against_the_topic_they_name() -> None:
    produce = "/replog.v1.Log/Produce"
    assert grpc_object(produce, ProduceRequest(topic="orders.eu")) == "orders.eu"
    assert grpc_object(produce, ProduceRequest()) == "default"
    assert grpc_object(produce, MalformedRequest("ProduceRequest")) == CLUSTER
    consume = "/replog.v1.Log/ConsumeBatchStream"
    assert grpc_object(consume, ConsumeRequest(topic="orders.eu")) == "orders.eu"
    batch = ProduceBatchRequest(records=[Record(value=b"v" * 50)] * 3, topic="orders.eu")
    assert grpc_object("/replog.v1.Log/ProduceBatch", batch.SerializeToString()) == "orders.eu"
    assert grpc_object("/replog.v1.Log/ProduceBatch", b"\x12\x02\xff\xfe") == CLUSTER
    assert grpc_object("/replog.v1.Log/ProduceBatch", b"\x0a\x01\x00") == "default"
    create = CreateTopicRequest(name="orders.x")
    assert grpc_object("/replog.v1.Admin/CreateTopic", create) == "orders.x"
    assert grpc_object("/replog.v1.Admin/ListTopics", ListTopicsRequest()) == ANY_TOPIC
    assert grpc_object("/replog.v1.Log/GetServers", None) == ANY_TOPIC
    assert grpc_object("/replog.v1.Cluster/Remove", None) == CLUSTER
    assert grpc_object("/replog.v1.Raft/Stream", None) == CLUSTER
    assert grpc_object("/replog.v1.Later/Unknown", None) == CLUSTER


@pytest.mark.parametrize(
    ("method", "route", "name", "needs"),
    [
        ("POST", "/v1/records", None, (Action.PRODUCE, "default")),
        ("GET", "/v1/records:stream", None, (Action.CONSUME, "default")),
        ("POST", "/v1/topics", None, (Action.ADMIN, ANY_TOPIC)),
        ("GET", "/v1/topics", None, (Action.CONSUME, ANY_TOPIC)),
        ("GET", "/v1/topics/{name}", "t", (Action.CONSUME, "t")),
        ("PATCH", "/v1/topics/{name}", "t", (Action.ADMIN, "t")),
        ("DELETE", "/v1/topics/{name}", "t", (Action.ADMIN, "t")),
        ("POST", "/v1/topics/{name}/records", "t", (Action.PRODUCE, "t")),
        ("POST", "/v1/topics/{name}/partitions/{p}/records:batch", "t", (Action.PRODUCE, "t")),
        ("GET", "/v1/topics/{name}/partitions/{p}/records/{offset}", "t", (Action.CONSUME, "t")),
        ("GET", "/v1/topics/{name}/partitions/{p}/records", "bad*", (Action.CONSUME, CLUSTER)),
        ("GET", "/v1/servers", None, (Action.CONSUME, ANY_TOPIC)),
        ("GET", "/v1/cluster", None, (Action.CONSUME, ANY_TOPIC)),
        ("POST", "/v1/cluster:remove", None, (Action.ADMIN, CLUSTER)),
        ("POST", "/v1/cluster:decommission", None, (Action.ADMIN, CLUSTER)),
        ("GET", None, None, (Action.CONSUME, ANY_TOPIC)),
    ],
)
def test_http_routes_are_checked_against_the_topic_in_their_path(
    method: str, route: str | None, name: str | None, needs: tuple[Action, str]
) -> None:
    assert http_permission(method, route, name) == needs


def test_moving_replicas_is_admin_and_recording_a_finished_move_is_a_nodes_call() -> None:
    from replog.server.auth import grpc_action

    assert grpc_action("/replog.v1.Cluster/Decommission") is Action.ADMIN
    assert grpc_action("/replog.v1.Cluster/ReassignPartition") is Action.ADMIN
    assert grpc_action("/replog.v1.Cluster/CompleteReassignment") is Action.REPLICATE
    assert grpc_object("/replog.v1.Cluster/Decommission", None) == CLUSTER
