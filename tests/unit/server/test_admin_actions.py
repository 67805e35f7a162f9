"""The ACL action of every Admin method: changing topics needs admin, reading them consume."""

from __future__ import annotations

from replog.security.acl import Action
from replog.server.auth import grpc_action
from replog.v1 import admin_pb2

READS = {"ListTopics", "DescribeTopic"}


def test_every_admin_method_has_its_action() -> None:
    methods = [m.name for m in admin_pb2.DESCRIPTOR.services_by_name["Admin"].methods]
    assert len(methods) == 6
    for name in methods:
        expected = Action.CONSUME if name in READS else Action.ADMIN
        assert grpc_action(f"/replog.v1.Admin/{name}") == expected, name
