"""The real Admin service behind the ACL over mutual TLS: the Python client administers only
the topics its identity may, and lists only those it may consume."""

from __future__ import annotations

from typing import Any

import pytest

from replog.client import Client
from replog.errors import PermissionDeniedError
from tests.integration.test_security import Pki
from tests.integration.test_topic_acl import pki, secure  # noqa: F401  (fixtures)


def _client(certs: Pki, server: Any, who: str) -> Client:
    return Client(server.grpc_address, ca=certs.ca, cert=certs.cert(who), key=certs.key(who))


def test_admin_calls_are_checked_per_topic_and_change_nothing_when_denied(
    pki: Pki,  # noqa: F811
    secure: Any,  # noqa: F811
) -> None:
    with _client(pki, secure, "ops") as ops:
        before = {t.name: t for t in ops.list_topics()}
    with _client(pki, secure, "topics-admin") as admin:
        created = admin.create_topic("orders.us", 3)
        assert created.partition_count == 3
        assert admin.create_partitions("orders.us", 4).partition_count == 4
        for call in (
            lambda: admin.create_topic("payments.eu"),
            lambda: admin.delete_topic("payments"),
            lambda: admin.alter_topic_config("payments", {"retention_ms": "1"}),
            lambda: admin.create_partitions("payments", 5),
            lambda: admin.describe_topic("payments"),
        ):
            with pytest.raises(PermissionDeniedError):
                call()
        assert sorted(t.name for t in admin.list_topics()) == ["orders.eu", "orders.us"]
    with _client(pki, secure, "billing") as billing:
        assert billing.describe_topic("orders.us").partition_count == 4
        with pytest.raises(PermissionDeniedError):
            billing.delete_topic("orders.us")
        with pytest.raises(PermissionDeniedError):
            billing.produce(b"x", topic="orders.us")
        assert sorted(t.name for t in billing.list_topics()) == ["orders.eu", "orders.us"]
    with _client(pki, secure, "ops") as ops:
        after = {t.name: t for t in ops.list_topics()}
        assert after.pop("orders.us").partition_count == 4
        assert after == before
