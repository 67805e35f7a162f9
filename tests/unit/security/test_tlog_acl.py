"""The verifiable log's routes need consume permission on the topic they name, over gRPC and
HTTP alike."""

from __future__ import annotations

import pytest

from replog.security.acl import Action
from replog.server.acl_objects import grpc_object, http_permission
from replog.server.auth import grpc_action
from replog.v1 import tlog_pb2

REQUESTS = {
    "GetCheckpoint": tlog_pb2.GetCheckpointRequest(topic="orders"),
    "GetInclusionProof": tlog_pb2.GetInclusionProofRequest(topic="orders"),
    "GetConsistencyProof": tlog_pb2.GetConsistencyProofRequest(topic="orders"),
    "GetRangeProof": tlog_pb2.GetRangeProofRequest(topic="orders"),
}


def test_every_tlog_method_needs_consume_on_the_topic_it_names() -> None:
    methods = [m.name for m in tlog_pb2.DESCRIPTOR.services_by_name["Tlog"].methods]
    assert sorted(methods) == sorted(REQUESTS)
    for name in methods:
        method = f"/replog.v1.Tlog/{name}"
        assert grpc_action(method) == Action.CONSUME, name
        assert grpc_object(method, REQUESTS[name]) == "orders", name


@pytest.mark.parametrize(
    "tail", ["checkpoint", "tile/{tile}", "proof/inclusion", "proof/consistency"]
)
def test_every_tlog_http_route_needs_consume_on_the_topic_in_its_path(tail: str) -> None:
    route = f"/v1/topics/{{name}}/partitions/{{p}}/{tail}"
    assert http_permission("GET", route, "orders") == (Action.CONSUME, "orders")
