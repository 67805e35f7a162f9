"""The HTTP/JSON API, with plain urllib (what curl does)."""

from __future__ import annotations

import base64
import http.client
import json
import threading
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from replog import Client
from tests.integration.conftest import ThreadedServer


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def request(
    server: ThreadedServer, method: str, path: str, body: Any = None, raw: bytes | None = None
) -> tuple[int, Any]:
    host, port = server.http_address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=15)
    try:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        payload = response.read()
        content_type = response.getheader("Content-Type", "")
        if "json" in content_type:
            return response.status, json.loads(payload)
        return response.status, payload.decode()
    finally:
        conn.close()


def test_produce_and_read_records(server: ThreadedServer) -> None:
    status, body = request(server, "POST", "/v1/records", {"record": {"value": b64(b"hello")}})
    assert (status, body) == (200, {"offset": 0})
    record = {"value": b64(b"v"), "key": b64(b"k"), "headers": [{"key": "h", "value": b64(b"x")}]}
    status, body = request(server, "POST", "/v1/records:batch", {"records": [record, record]})
    assert (status, body) == (200, {"base_offset": 1, "count": 2})
    status, body = request(server, "GET", "/v1/records/1")
    assert status == 200
    got = body["record"]
    assert (got["value"], got["key"], got["offset"]) == (b64(b"v"), b64(b"k"), 1)
    assert got["headers"] == [{"key": "h", "value": b64(b"x")}] and got["timestamp_ms"] > 0
    status, body = request(server, "GET", "/v1/records?offset=1&max_records=5")
    assert status == 200
    assert [r["offset"] for r in body["records"]] == [1, 2]
    assert (body["next_offset"], body["high_watermark"]) == (3, 3)


def test_read_long_polls_with_wait_ms(server: ThreadedServer) -> None:
    timer = threading.Timer(0.2, lambda: Client(server.grpc_address).produce(b"late"))
    timer.start()
    status, body = request(server, "GET", "/v1/records?offset=0&wait_ms=10000")
    timer.join()
    assert status == 200 and [r["value"] for r in body["records"]] == [b64(b"late")]


def test_sse_stream_sends_existing_then_new_records(server: ThreadedServer) -> None:
    with Client(server.grpc_address) as client:
        client.produce(b"old")
        host, port = server.http_address.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=15)
        conn.request("GET", "/v1/records:stream?offset=0")
        response = conn.getresponse()
        assert response.status == 200
        assert response.getheader("Content-Type").startswith("text/event-stream")

        def next_event() -> dict[str, Any]:
            lines = []
            while (line := response.readline()) not in (b"\n", b""):
                lines.append(line.decode().rstrip("\n"))
            data = next(line[len("data: ") :] for line in lines if line.startswith("data: "))
            return json.loads(data)

        assert base64.b64decode(next_event()["value"]) == b"old"
        client.produce(b"new")
        event = next_event()
        assert (base64.b64decode(event["value"]), event["offset"]) == (b"new", 1)
        conn.close()


def test_servers_health_ready_metrics_and_openapi(server: ThreadedServer) -> None:
    request(server, "POST", "/v1/records", {"record": {"value": b64(b"x")}})
    status, body = request(server, "GET", "/v1/servers")
    assert status == 200 and body["servers"][0]["is_leader"] is True
    assert body["servers"][0]["http_addr"] == server.http_address
    assert request(server, "GET", "/healthz")[0] == 200
    assert request(server, "GET", "/readyz")[0] == 200
    status, text = request(server, "GET", "/metrics")
    assert status == 200
    assert "replog_records_appended_total 1.0" in text
    assert 'replog_requests_total{api="http",method="POST /v1/records",status="200"}' in text
    assert "replog_log_segments" in text and "replog_request_seconds_bucket" in text
    status, doc = request(server, "GET", "/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.")
    routes = {
        (resource.canonical, route.method)
        for resource in server.agent._runner.app.router.resources()
        for route in resource
        if route.method != "HEAD"
    }
    documented = {(path, m.upper()) for path, ops in doc["paths"].items() for m in ops}
    assert routes == documented


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("POST", "/v1/records", b"{not json", 400, "INVALID_ARGUMENT"),
        ("POST", "/v1/records", b'{"record": {"value": "***"}}', 400, "INVALID_ARGUMENT"),
        ("POST", "/v1/records", b'{"record": {}}', 400, "INVALID_ARGUMENT"),
        ("POST", "/v1/records", b"[]", 400, "INVALID_ARGUMENT"),
        ("POST", "/v1/records:batch", b'{"records": []}', 400, "INVALID_ARGUMENT"),
        ("GET", "/v1/records/7", None, 404, "OFFSET_OUT_OF_RANGE"),
        ("GET", "/v1/records/abc", None, 400, "INVALID_ARGUMENT"),
        ("GET", "/v1/records?offset=9", None, 404, "OFFSET_OUT_OF_RANGE"),
        ("GET", "/v1/records?offset=-1", None, 400, "INVALID_ARGUMENT"),
        ("GET", "/v1/records?max_records=0", None, 400, "INVALID_ARGUMENT"),
        ("GET", "/v1/records:stream?offset=9", None, 404, "OFFSET_OUT_OF_RANGE"),
        ("GET", "/nowhere", None, 404, "NOT_FOUND"),
        ("DELETE", "/v1/records", None, 405, "METHOD_NOT_ALLOWED"),
    ],
)
def test_errors_are_json_with_the_right_status(
    server: ThreadedServer, method: str, path: str, body: bytes | None, status: int, code: str
) -> None:
    got_status, got = request(server, method, path, raw=body)
    assert got_status == status
    assert got["error"]["code"] == code and got["error"]["message"]


def test_out_of_range_message_gives_the_valid_range(server: ThreadedServer) -> None:
    request(server, "POST", "/v1/records", {"record": {"value": b64(b"x")}})
    _, body = request(server, "GET", "/v1/records/3")
    assert "valid offsets are 0..0" in body["error"]["message"]


def test_too_large_record_and_body_are_413(server_factory) -> None:
    server = server_factory(max_record_bytes=1000, http_max_body_bytes=4096)
    status, body = request(server, "POST", "/v1/records", {"record": {"value": b64(b"x" * 2000)}})
    assert (status, body["error"]["code"]) == (413, "RECORD_TOO_LARGE")
    status, body = request(server, "POST", "/v1/records", raw=b"x" * 10_000)
    assert (status, body["error"]["code"]) == (413, "REQUEST_TOO_LARGE")


def test_shutting_down_is_503(server: ThreadedServer) -> None:
    server.agent._http_state.draining = True
    status, body = request(server, "GET", "/readyz")
    assert (status, body["error"]["code"]) == (503, "UNAVAILABLE")
    status, body = request(server, "POST", "/v1/records", {"record": {"value": b64(b"x")}})
    assert (status, body["error"]["code"]) == (503, "UNAVAILABLE")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.floats(allow_nan=False),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
record_like = st.fixed_dictionaries(
    {},
    optional={
        "value": st.text(max_size=8) | json_values,
        "key": st.text(max_size=8) | json_values,
        "headers": json_values,
    },
)
bodies = st.one_of(
    json_values,
    st.fixed_dictionaries({"record": record_like | json_values}),
    st.fixed_dictionaries({"records": st.lists(record_like, max_size=3) | json_values}),
)
params = st.dictionaries(
    st.sampled_from(["offset", "max_records", "wait_ms"]),
    st.text(max_size=6) | st.integers(-5, 2**65).map(str),
    max_size=3,
)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_fuzzed_requests_never_get_a_5xx(server: ThreadedServer, data: st.DataObject) -> None:
    choice = data.draw(st.sampled_from(["produce", "batch", "read", "one", "stream"]))
    if choice in ("produce", "batch"):
        path = "/v1/records" if choice == "produce" else "/v1/records:batch"
        status, _ = request(server, "POST", path, data.draw(bodies))
    elif choice == "one":
        segment = data.draw(st.text(max_size=6) | st.integers(-3, 2**65).map(str))
        from urllib.parse import quote

        status, _ = request(server, "GET", "/v1/records/" + quote(segment, safe=""))
    else:
        from urllib.parse import urlencode

        query = data.draw(params)
        if choice == "stream":
            query["offset"] = "999999"  # out of range: answers at once (a valid one would tail)
        path = "/v1/records" if choice == "read" else "/v1/records:stream"
        query.pop("wait_ms", None)
        status, _ = request(server, "GET", f"{path}?{urlencode(query)}")
    assert status < 500


# -- requests drawn from the OpenAPI document itself ------------------------------------------


def _from_schema(schema: dict[str, Any], doc: dict[str, Any], depth: int = 0) -> Any:
    """A hypothesis strategy for JSON matching ``schema`` (the subset the document uses)."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return _from_schema(doc["components"]["schemas"][name], doc, depth)
    kind = schema.get("type")
    if kind == "object" and depth < 4:
        properties = {
            name: _from_schema(sub, doc, depth + 1)
            for name, sub in schema.get("properties", {}).items()
        }
        required = {name: properties.pop(name) for name in schema.get("required", [])}
        return st.fixed_dictionaries(required, optional=properties)
    if kind == "array" and depth < 4:
        return st.lists(_from_schema(schema.get("items", {}), doc, depth + 1), max_size=3)
    if kind == "integer":
        return st.integers(-2, 2**64 + 2)
    if kind == "boolean":
        return st.booleans()
    if kind == "string" and schema.get("format") == "byte":
        return st.binary(max_size=16).map(b64)
    if kind == "string":
        return st.text(max_size=8)
    return json_values


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_requests_drawn_from_the_openapi_document_get_documented_answers(
    server: ThreadedServer, data: st.DataObject
) -> None:
    from urllib.parse import quote, urlencode

    status, doc = request(server, "GET", "/openapi.json")
    assert status == 200
    operations = [
        (path, method, op)
        for path, ops in sorted(doc["paths"].items())
        for method, op in sorted(ops.items())
    ]
    path, method, op = data.draw(st.sampled_from(operations))
    query: dict[str, str] = {}
    for param in op.get("parameters", []):
        if param["in"] == "query" and not data.draw(st.booleans()):
            continue  # optional query parameters are sometimes left out
        good = _from_schema(param.get("schema", {}), doc).map(str)
        value = data.draw(good | st.text(max_size=6))
        if param["name"] == "wait_ms":
            value = "0"  # a long poll would only make the test slow
        if path.endswith(":stream") and param["name"] == "offset":
            value = data.draw(st.sampled_from(["999999", "-1", "x"]))  # never tails
        if param["in"] == "path":
            path = path.replace("{" + param["name"] + "}", quote(value, safe=""))
        else:
            query[param["name"]] = value
    if path.endswith(":stream") and "offset" not in query:
        query["offset"] = "999999"
    body = None
    if "requestBody" in op:
        schema = op["requestBody"]["content"]["application/json"]["schema"]
        body = data.draw(_from_schema(schema, doc) | json_values)
    url = path + (f"?{urlencode(query)}" if query else "")
    status, _ = request(server, method.upper(), url, body)
    assert status < 500 or status == 501  # 501: a documented feature this server lacks
    assert str(status) in op["responses"], (
        f"{method.upper()} {url} answered an undocumented {status}"
    )
