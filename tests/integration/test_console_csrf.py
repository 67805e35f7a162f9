"""Cross-site request forgery against the console's identities.

The console (issue 16) makes browsers hold replog client certificates, and a browser
presents that certificate on *any* request to the server, including ones a foreign page
makes. Nothing on the HTTP side tells such a request from the console's own: there is no
Origin / Sec-Fetch-Site check, and json_body (http_common.py) parses a body whatever its
Content-Type. A POST with Content-Type text/plain is a CORS "simple request" (no preflight),
so a page on https://evil.example can, with the operator's certificate:
  * append records via the new ?encoding=utf8 / text/plain produce path (an HTML
    <form enctype="text/plain"> is enough; http_records.body_encoding), and
  * create topics or run the cluster admin POSTs (text/plain body holding JSON).
These tests send exactly what such a browser request looks like and expect a refusal (a
review found both accepted); the same request from the server's own origin, and one with
no browser headers (curl, the Python client), still work.
"""

from __future__ import annotations

import http.client
import json
import ssl
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.conftest import ThreadedServer
from tests.integration.test_console_acl import console_pki, secure_settings
from tests.integration.test_security import Pki, https

CROSS_SITE = {
    "Origin": "https://evil.example",
    "Sec-Fetch-Site": "cross-site",
    "Sec-Fetch-Mode": "no-cors",
    "Content-Type": "text/plain",
}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return console_pki(tmp_path_factory.mktemp("csrf-pki"))


@pytest.fixture(scope="module")
def secure(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedServer]:
    server = ThreadedServer(tmp_path_factory.mktemp("csrf-data"), **secure_settings(pki))
    server.start()
    status, _ = https(server, pki.https("ops"), "POST", "/v1/topics", {"name": "orders"})
    assert status == 201
    yield server
    server.stop()


def _raw(
    server: ThreadedServer, context: ssl.SSLContext, path: str, body: bytes
) -> tuple[int, Any]:
    host, port = server.http_address.rsplit(":", 1)
    conn = http.client.HTTPSConnection(host, int(port), timeout=10, context=context)
    try:
        conn.request("POST", path, body=body, headers=CROSS_SITE)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_a_cross_site_text_plain_post_does_not_append_a_record(
    pki: Pki, secure: ThreadedServer
) -> None:
    status, body = _raw(
        secure, pki.https("ops"), "/v1/topics/orders/records", b"forged=by evil.example"
    )
    assert status >= 400, f"a cross-site form post appended a record: {status} {body!r}"


def test_a_cross_site_text_plain_post_does_not_create_a_topic(
    pki: Pki, secure: ThreadedServer
) -> None:
    status, body = _raw(
        secure, pki.https("ops"), "/v1/topics", json.dumps({"name": "forged"}).encode()
    )
    assert status >= 400, f"a cross-site text/plain post created a topic: {status} {body!r}"


def test_the_consoles_own_origin_and_clients_without_browser_headers_still_write(
    pki: Pki, secure: ThreadedServer
) -> None:
    host, port = secure.http_address.rsplit(":", 1)
    same = {
        "Origin": f"https://{secure.http_address}",
        "Sec-Fetch-Site": "same-origin",
        "Content-Type": "text/plain",
    }
    for headers in (same, {"Content-Type": "text/plain"}):
        conn = http.client.HTTPSConnection(host, int(port), timeout=10, context=pki.https("ops"))
        try:
            conn.request("POST", "/v1/topics/orders/records", body=b"ok", headers=headers)
            response = conn.getresponse()
            assert response.status == 200, (headers, response.read())
        finally:
            conn.close()
    status, body = _raw(secure, pki.https("ops"), "/v1/topics", b"{}")
    assert status == 403 and b"another site" in body
