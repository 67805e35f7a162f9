"""Bad input to the HTTP API: a 400 (413) with the JSON error body, and nothing changed.

Bodies that make Python's parsers raise (huge integers, lone surrogates, deep nesting) and
requests aiohttp's own parser refuses before any handler runs must never become a 500, a
text/plain answer, or an appended record.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
from typing import Any

import pytest

from tests.integration.conftest import ThreadedServer

INTERNALS = ("Traceback", "<class", "Error")


def post(server: ThreadedServer, path: str, raw: bytes) -> tuple[int, str, Any]:
    host, port = server.http_address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=15)
    try:
        conn.request("POST", path, body=raw, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        payload = response.read()
        return response.status, response.getheader("Content-Type", ""), payload
    finally:
        conn.close()


def get(server: ThreadedServer, path: str) -> tuple[int, str, bytes]:
    host, port = server.http_address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=15)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        conn.close()


def raw_exchange(server: ThreadedServer, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``data`` on a new connection; the answer's status, headers and body.

    An error answer closes the connection, which ends the read.
    """
    host, port = server.http_address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=15) as sock:
        sock.sendall(data)  # no half-close: aiohttp drops a connection at EOF unanswered
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


def assert_json_error(status: int, content_type: str, body: bytes, want: int) -> dict[str, Any]:
    assert status == want, body[:300]
    assert content_type.startswith("application/json"), (content_type, body[:300])
    error: dict[str, Any] = json.loads(body)["error"]
    assert error["code"] and error["message"]
    assert not any(word in error["message"] for word in INTERNALS), error
    return error


def high_watermark(server: ThreadedServer) -> int:
    status, _, body = get(server, "/v1/records?offset=0&max_records=1")
    assert status == 200
    high: int = json.loads(body)["high_watermark"]
    return high


HUGE = "1" + "0" * 5000
DEEP = 100_000


@pytest.mark.parametrize(
    ("path", "raw"),
    [
        ("/v1/records", b'{"record": {"value": ' + HUGE.encode() + b"}}"),
        ("/v1/records", b'{"record": {"value": "", "headers": [{"key": "\\ud800"}]}}'),
        ("/v1/records:batch", b'{"records": [{"value": "", "headers": [{"key": "\\udfff"}]}]}'),
        ("/v1/records", b'{"record": {"value": "\\ud800"}}'),
        ("/v1/records", b'{"record": ' + b"[" * DEEP + b"]" * DEEP + b"}"),
        ("/v1/records:batch", b'{"records": ' + b'{"a": ' * DEEP + b"1" + b"}" * DEEP + b"}"),
    ],
    ids=[
        "huge-number",
        "surrogate-header-key",
        "surrogate-batch",
        "surrogate-value",
        "deep",
        "deep-object",
    ],
)
def test_a_body_python_cannot_parse_is_a_400_and_appends_nothing(
    server: ThreadedServer, path: str, raw: bytes
) -> None:
    before = high_watermark(server)
    status, content_type, body = post(server, path, raw)
    error = assert_json_error(status, content_type, body, 400)
    assert error["code"] == "INVALID_ARGUMENT"
    assert high_watermark(server) == before


@pytest.mark.parametrize(
    "path",
    [f"/v1/records?offset={HUGE}", f"/v1/records?max_records={HUGE}", f"/v1/records/{HUGE}"],
    ids=["offset", "max_records", "path-offset"],
)
def test_a_number_of_thousands_of_digits_in_a_url_is_a_400(
    server: ThreadedServer, path: str
) -> None:
    status, content_type, body = get(server, path)
    assert assert_json_error(status, content_type, body, 400)["code"] == "INVALID_ARGUMENT"


@pytest.mark.parametrize(
    "data",
    [
        b"NOT-A-METHOD\x01 / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Header Without Colon\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 20_000 + b"\r\n\r\n",
        b"POST /v1/records HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
    ],
    ids=["request-line", "header", "header-too-long", "two-lengths"],
)
def test_a_request_the_http_parser_refuses_gets_a_json_error(
    server: ThreadedServer, data: bytes
) -> None:
    status, headers, body = raw_exchange(server, data)
    assert_json_error(status, headers.get("content-type", ""), body, 400)


@pytest.mark.parametrize(
    "data",
    [
        b"POST /v1/records HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\n"
        b"Content-Length: 5\r\n\r\nabcde",
        b"POST /v1/records HTTP/1.1\r\nHost: x\r\nContent-Encoding: deflate\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n0\r\n\r\n",
        b"POST /v1/records HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
    ids=["bad-gzip", "bad-deflate-chunked", "bad-chunk-size"],
)
def test_a_body_that_cannot_be_decoded_is_a_400_json_error(
    server: ThreadedServer, data: bytes
) -> None:
    host, port = server.http_address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=15) as sock:
        sock.sendall(data)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    content_type = next(
        line.split(b":", 1)[1].strip().decode()
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-type:")
    )
    assert_json_error(status, content_type, body, 400)
    assert high_watermark(server) == 0


def test_an_oversized_body_is_a_413_json_error(server_factory: Any) -> None:
    server = server_factory(http_max_body_bytes=4096)
    value = base64.b64encode(b"x" * 8192).decode()
    raw = json.dumps({"record": {"value": value}}).encode()
    status, content_type, body = post(server, "/v1/records", raw)
    assert assert_json_error(status, content_type, body, 413)["code"] == "REQUEST_TOO_LARGE"
    assert high_watermark(server) == 0
