"""Consumer groups and the ACL: topic rules never grant groups, and a description shows
only the topics the caller may consume (regressions of a review)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from replog.security.acl import Action, Authorizer
from replog.server.acl_objects import group_object
from replog.server.auth import CURRENT_ACCESS, Access, Gatekeeper
from replog.v1 import admin_pb2, group_pb2
from tests.integration.conftest import ThreadedServer
from tests.integration.test_groups_service import commit

POLICY = """\
p, bob, *-events, consume
p, bob, *-events, admin
p, carol, group:shared, consume
p, carol, public, consume
"""


def authorizer(tmp_path: Path) -> Authorizer:
    path = tmp_path / "policy.csv"
    path.write_text(POLICY)
    return Authorizer(str(path))


def test_a_topic_rule_never_grants_a_consumer_group(tmp_path: Path) -> None:
    # docs/operations.md: "a topic rule never grants a group (... except a rule whose object
    # is *)". bob may consume and administer the topics *-events, not the group
    # "billing-events" (deleting it wipes another team's offsets).
    acl = authorizer(tmp_path)
    assert not acl.allowed("bob", Action.CONSUME, group_object("billing-events"))
    assert not acl.allowed("bob", Action.ADMIN, group_object("billing-events"))


def test_describing_a_group_shows_no_offsets_of_topics_the_caller_may_not_consume(
    server_factory: Callable[..., ThreadedServer],
    stub_for: Callable[[ThreadedServer], Any],
    tmp_path: Path,
) -> None:
    # FetchOffsets leaves out the topics the caller may not consume; DescribeGroup (and
    # GET /v1/groups/{name}) answers their committed offsets, end offsets and lag.
    server = server_factory(offsets_topic_partitions=1)
    groups, admin = stub_for(server)
    for name in ("public", "orders"):
        admin.CreateTopic(admin_pb2.CreateTopicRequest(name=name, partitions=1), timeout=10)
    commit(groups, "shared", "", 0, {0: 3})  # orders/0 = 3 (carol may not read orders)
    gate = Gatekeeper(authorizer(tmp_path))
    handler = server.agent._groups_grpc

    async def as_carol(call: Callable[[], Any]) -> Any:
        CURRENT_ACCESS.set(Access(gate, "carol", "test"))
        return await call()

    fetch = server.call(
        as_carol(lambda: handler._fetch(group_pb2.FetchOffsetsRequest(group="shared"), None))
    )
    assert [o.topic for o in fetch.offsets] == []  # filtered: as documented
    described = server.call(
        as_carol(lambda: handler._describe(group_pb2.DescribeGroupRequest(group="shared"), None))
    )
    assert [o.topic for o in described.group.offsets] == []
