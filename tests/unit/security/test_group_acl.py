"""Consumer groups in the ACL: a group is the object ``group:<name>``, granted by rules such
as ``p, billing, group:billing-*, consume``; topic rules never grant a group, nor the other
way round."""

from __future__ import annotations

from pathlib import Path

import pytest

from replog.security.acl import ANY_TOPIC, CLUSTER, Action, Authorizer
from replog.server.acl_objects import group_object, grpc_object, http_permission
from replog.server.auth import grpc_action
from replog.v1 import group_pb2


def _acl(tmp_path: Path, text: str) -> Authorizer:
    path = tmp_path / "policy.csv"
    path.write_text(text)
    return Authorizer(str(path))


@pytest.mark.parametrize(
    ("group", "granted"),
    [("billing-1", True), ("billing-", True), ("billing", False), ("payments", False)],
)
def test_a_group_pattern_grants_the_groups_it_matches(
    tmp_path: Path, group: str, granted: bool
) -> None:
    acl = _acl(tmp_path, "p, billing, group:billing-*, consume\n")
    assert acl.allowed("billing", Action.CONSUME, group_object(group)) is granted


def test_a_topic_rule_does_not_grant_a_group_and_a_group_rule_no_topic(tmp_path: Path) -> None:
    acl = _acl(tmp_path, "p, app, billing*, consume\np, app, group:orders, consume\n")
    assert not acl.allowed("app", Action.CONSUME, group_object("billing"))
    assert not acl.allowed("app", Action.CONSUME, "orders")
    assert acl.allowed("app", Action.CONSUME, group_object("orders"))


@pytest.mark.parametrize("name", ["", "a/b", "x" * 256, "tab\there"])
def test_a_name_no_group_can_have_is_checked_as_the_cluster(name: str) -> None:
    assert group_object(name) == CLUSTER


def test_each_group_call_is_checked_on_its_group_and_deleting_needs_admin() -> None:
    beat = group_pb2.GroupHeartbeatRequest(group="billing-eu")
    assert grpc_object("/replog.v1.Groups/Heartbeat", beat) == "group:billing-eu"
    commit = group_pb2.CommitOffsetsRequest(group="billing-eu")
    assert grpc_object("/replog.v1.Groups/CommitOffsets", commit) == "group:billing-eu"
    assert grpc_object("/replog.v1.Groups/ListGroups", group_pb2.ListGroupsRequest()) == ANY_TOPIC
    for method in ("Heartbeat", "CommitOffsets", "FetchOffsets", "DescribeGroup", "ListGroups"):
        assert grpc_action(f"/replog.v1.Groups/{method}") is Action.CONSUME
    assert grpc_action("/replog.v1.Groups/DeleteGroup") is Action.ADMIN
    assert http_permission("GET", "/v1/groups/{name}", "g") == (Action.CONSUME, "group:g")
    assert http_permission("POST", "/v1/groups/{name}/offsets", "g") == (
        Action.CONSUME,
        "group:g",
    )
    assert http_permission("DELETE", "/v1/groups/{name}", "g") == (Action.ADMIN, "group:g")
    assert http_permission("GET", "/v1/groups", None) == (Action.CONSUME, ANY_TOPIC)
