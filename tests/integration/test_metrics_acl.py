"""GET /metrics stays open, but with an ACL its per-partition and per-group series (which
name topics and groups) are served only to a cluster admin: a review found an identity-less
client reading every topic the ACL hides from GET /v1/topics there."""

from __future__ import annotations

import http.client
import ssl
from collections.abc import Iterator

import pytest

from tests.integration.conftest import ThreadedServer
from tests.integration.test_console_acl import console_pki, secure_settings
from tests.integration.test_security import Pki, https


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return console_pki(tmp_path_factory.mktemp("leak-pki"))


@pytest.fixture(scope="module")
def secure(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedServer]:
    server = ThreadedServer(tmp_path_factory.mktemp("leak-data"), **secure_settings(pki))
    server.start()
    status, _ = https(server, pki.https("ops"), "POST", "/v1/topics", {"name": "payroll-secret"})
    assert status == 201
    yield server
    server.stop()


def test_a_topic_hidden_by_the_acl_is_not_named_to_an_anonymous_scrape(
    pki: Pki, secure: ThreadedServer
) -> None:
    # With a certificate naming no identity the topic list is refused (401) ...
    status, _ = https(secure, pki.https("anonymous"), "GET", "/v1/topics?view=summary")
    assert status == 401
    # ... but an identity-less client reads it from /metrics.
    host, port = secure.http_address.rsplit(":", 1)
    conn = http.client.HTTPSConnection(host, int(port), timeout=10, context=pki.https("anonymous"))
    try:
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        text = response.read().decode()
    finally:
        conn.close()
    assert response.status == 200
    assert "payroll-secret" not in text, "an unauthenticated scrape lists the hidden topic"


def _metrics(server: ThreadedServer, context: ssl.SSLContext) -> str:
    host, port = server.http_address.rsplit(":", 1)
    conn = http.client.HTTPSConnection(host, int(port), timeout=10, context=context)
    try:
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        assert response.status == 200
        return response.read().decode()
    finally:
        conn.close()


def test_a_cluster_admin_scrapes_every_series_and_others_the_process_ones(
    pki: Pki, secure: ThreadedServer
) -> None:
    admin = _metrics(secure, pki.https("ops"))
    assert 'kafka_topic_partition_current_offset{topic="payroll-secret"' in admin
    for who in ("reader", "anonymous"):
        text = _metrics(secure, pki.https(who))
        assert "payroll-secret" not in text and "replog_records_appended_total" in text
