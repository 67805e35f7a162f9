"""The console's routes behind mutual TLS and an ACL: whoami names each identity's rights,
the console's files need no permission, and the admin routes refuse a consume-only identity.

``console_pki`` and ``POLICY`` are shared with the browser tests (tests/browser).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from replog.security.certs import NODE_SUBJECT, CertificateAuthority
from tests.integration.conftest import ThreadedServer
from tests.integration.test_security import Pki, _anonymous, _save, https

POLICY = """\
p, ops, *, admin
p, ops, *, produce
p, ops, *, consume
p, reader, *, consume
p, writer, orders, produce
p, replog-node, *, replicate
"""
IDENTITIES = ("ops", "reader", "writer")


def console_pki(directory: Path) -> Pki:
    """A CA, the node's certificate and one per identity of POLICY (and one without any)."""
    ca = CertificateAuthority()
    (directory / "ca.pem").write_bytes(ca.cert_pem)
    _save(directory, "node", ca.issue(NODE_SUBJECT, sans=["localhost", "127.0.0.1"], server=True))
    for name in IDENTITIES:
        _save(directory, name, ca.issue(name))
    _save(directory, "anonymous", _anonymous(ca))
    (directory / "policy.csv").write_text(POLICY)
    return Pki(directory)


def secure_settings(pki: Pki) -> dict[str, Any]:
    """ThreadedServer settings: mutual TLS with ``pki`` and its ACL."""
    return {
        "tls_cert": pki.cert("node"),
        "tls_key": pki.key("node"),
        "tls_ca": pki.ca,
        "acl_policy": str(pki.dir / "policy.csv"),
    }


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return console_pki(tmp_path_factory.mktemp("console-pki"))


@pytest.fixture(scope="module")
def secure(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedServer]:
    server = ThreadedServer(tmp_path_factory.mktemp("console-data"), **secure_settings(pki))
    server.start()
    status, _ = https(server, pki.https("ops"), "POST", "/v1/topics", {"name": "orders"})
    assert status == 201
    yield server
    server.stop()


def test_whoami_names_the_identity_and_what_it_may_do(pki: Pki, secure: ThreadedServer) -> None:
    def me(who: str, query: str = "") -> Any:
        status, body = https(secure, pki.https(who), "GET", "/v1/whoami" + query)
        assert status == 200, body
        return body

    ops = me("ops", "?topic=orders&group=g")
    assert (ops["identity"], ops["acl"]) == ("ops", True)
    assert ops["may"] == {"produce": True, "consume": True, "admin": True, "cluster_admin": True}
    assert ops["group"] == {"name": "g", "consume": True, "admin": True}
    reader = me("reader", "?topic=orders&group=g")
    assert reader["may"] == {
        "produce": False,
        "consume": True,
        "admin": False,
        "cluster_admin": False,
    }
    assert reader["topic"] == {"name": "orders", "produce": False, "consume": True, "admin": False}
    assert reader["group"] == {"name": "g", "consume": True, "admin": False}
    writer = me("writer", "?topic=payments")
    assert (writer["may"]["produce"], writer["may"]["consume"]) == (True, False)
    assert writer["topic"]["produce"] is False  # writer may produce to orders only


def test_whoami_without_an_identity_is_401_and_the_files_need_no_permission(
    pki: Pki, secure: ThreadedServer
) -> None:
    status, body = https(secure, pki.https("anonymous"), "GET", "/v1/whoami")
    assert (status, body["error"]["code"]) == (401, "UNAUTHENTICATED")
    status, page = https(secure, pki.https("writer"), "GET", "/ui/")  # writer may consume nothing
    assert status == 200 and page.startswith("<!doctype html>")
    status, body = https(secure, pki.https("writer"), "GET", "/v1/topics")
    assert status == 403, body  # what the page then calls is checked as ever


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/topics", {"name": "new-one"}),
        ("DELETE", "/v1/topics/orders", None),
        ("PATCH", "/v1/topics/orders", {"config": {"retention_ms": "1000"}}),
        ("POST", "/v1/cluster:transfer-leader", {}),
        ("DELETE", "/v1/groups/g", None),
    ],
)
def test_the_admin_routes_refuse_a_consume_only_identity(
    pki: Pki, secure: ThreadedServer, method: str, path: str, body: Any
) -> None:
    status, answer = https(secure, pki.https("reader"), method, path, body)
    assert (status, answer["error"]["code"]) == (403, "PERMISSION_DENIED"), answer
    _, topics = https(secure, pki.https("ops"), "GET", "/v1/topics")
    described = {t["name"]: t for t in topics["topics"]}
    assert "orders" in described and "new-one" not in described
    assert described["orders"]["config"]["retention_ms"] != "1000"
