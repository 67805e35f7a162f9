"""The HTTP topic routes on a real single-node server: administration, the record routes
of one partition, the partitioner's produce, and every refusal with its status, its JSON
body and no change."""

from __future__ import annotations

import base64
import http.client
import json
from typing import Any

import pytest

from replog.broker.partitioner import partition_for_key
from tests.integration.conftest import ThreadedServer
from tests.integration.test_http_api import b64, request

PARTITION_KEYS = ("name", "config", "replication_factor", "partitions")
PARTITION_FIELDS = {
    "partition",
    "leader",
    "replicas",
    "in_sync",
    "lowest_offset",
    "next_offset",
    "size_bytes",
}


def create(server: ThreadedServer, name: str, partitions: int = 1, **extra: Any) -> Any:
    status, body = request(
        server, "POST", "/v1/topics", {"name": name, "partitions": partitions, **extra}
    )
    assert status == 201, body
    return body


def topics_state(server: ThreadedServer) -> Any:
    """Every topic as listed, with each partition's offsets: what a refusal must not change."""
    status, body = request(server, "GET", "/v1/topics")
    assert status == 200
    return body


def assert_refused(
    server: ThreadedServer,
    method: str,
    path: str,
    body: Any,
    status: int,
    code: str,
    says: str = "",
) -> None:
    before = topics_state(server)
    got_status, got = request(server, method, path, body)
    assert (got_status, got["error"]["code"]) == (status, code), got
    assert says in got["error"]["message"]
    assert "Traceback" not in got["error"]["message"]
    assert topics_state(server) == before


def test_a_created_topic_is_described_listed_and_located(server: ThreadedServer) -> None:
    host, port = server.http_address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=15)
    body = json.dumps({"name": "orders", "partitions": 3, "config": {"retention_ms": 60000}})
    conn.request("POST", "/v1/topics", body=body, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    created = json.loads(response.read())
    assert response.status == 201 and response.getheader("Location") == "/v1/topics/orders"
    conn.close()
    assert tuple(created) == PARTITION_KEYS
    assert created["name"] == "orders" and created["replication_factor"] == 1
    assert created["config"]["retention_ms"] == "60000" and "segment_bytes" in created["config"]
    assert [p["partition"] for p in created["partitions"]] == [0, 1, 2]
    me = server.agent.grpc_address
    for p in created["partitions"]:
        assert set(p) == PARTITION_FIELDS
        assert (p["leader"], p["replicas"], p["in_sync"]) == (me, [me], [me])
        assert (p["lowest_offset"], p["next_offset"]) == (0, 0)
    status, described = request(server, "GET", "/v1/topics/orders")
    assert (status, described) == (200, created)
    names = [t["name"] for t in topics_state(server)["topics"]]
    assert names == ["default", "orders"]


def test_records_go_to_and_come_from_the_partition_the_path_names(
    server: ThreadedServer,
) -> None:
    create(server, "orders", 2)
    base = "/v1/topics/orders/partitions/1/records"
    status, body = request(server, "POST", base, {"record": {"value": b64(b"one")}})
    assert (status, body) == (200, {"offset": 0, "partition": 1})
    record = {"value": b64(b"v"), "key": b64(b"k"), "headers": [{"key": "h", "value": b64(b"x")}]}
    status, body = request(server, "POST", base + ":batch", {"records": [record, record]})
    assert (status, body) == (200, {"base_offset": 1, "count": 2, "partition": 1})
    status, body = request(server, "GET", base + "/1")
    assert status == 200
    assert (body["record"]["value"], body["record"]["key"]) == (b64(b"v"), b64(b"k"))
    status, body = request(server, "GET", base + "?offset=0&max_records=10")
    assert [r["value"] for r in body["records"]] == [b64(b"one"), b64(b"v"), b64(b"v")]
    assert (body["next_offset"], body["high_watermark"]) == (3, 3)
    status, body = request(server, "GET", "/v1/topics/orders/partitions/0/records")
    assert (status, body["records"], body["high_watermark"]) == (200, [], 0)
    _, described = request(server, "GET", "/v1/topics/orders")
    assert [p["next_offset"] for p in described["partitions"]] == [0, 3]
    # The default topic is untouched, and the old routes are its partition 0.
    status, body = request(server, "POST", "/v1/records", {"record": {"value": b64(b"d")}})
    assert (status, body) == (200, {"offset": 0})
    status, body = request(server, "GET", "/v1/topics/default/partitions/0/records/0")
    assert (status, body["record"]["value"]) == (200, b64(b"d"))


def test_a_partition_event_stream_sends_that_partitions_records(server: ThreadedServer) -> None:
    create(server, "events", 2)
    request(
        server,
        "POST",
        "/v1/topics/events/partitions/0/records",
        {"record": {"value": b64(b"zero")}},
    )
    path = "/v1/topics/events/partitions/1/records"
    request(server, "POST", path, {"record": {"value": b64(b"old")}})
    host, port = server.http_address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=15)
    conn.request("GET", path + ":stream?offset=0")
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
    request(server, "POST", path, {"record": {"value": b64(b"new")}})
    event = next_event()
    assert (base64.b64decode(event["value"]), event["offset"]) == (b"new", 1)
    conn.close()


def test_keyed_records_land_on_the_partition_murmur2_gives(server: ThreadedServer) -> None:
    create(server, "keyed", 6)
    for key in (b"alice", b"bob", b"carol", b"dave"):
        record = {"record": {"value": b64(b"v"), "key": b64(key)}}
        status, body = request(server, "POST", "/v1/topics/keyed/records", record)
        assert status == 200 and body["partition"] == partition_for_key(key, 6), key
        p = body["partition"]
        _, read = request(
            server, "GET", f"/v1/topics/keyed/partitions/{p}/records/{body['offset']}"
        )
        assert read["record"]["key"] == b64(key)
    same = [{"value": b64(bytes([i])), "key": b64(b"alice")} for i in range(3)]
    same.append({"value": b64(b"keyless rides along")})
    status, body = request(server, "POST", "/v1/topics/keyed/records:batch", {"records": same})
    assert status == 200 and body["partition"] == partition_for_key(b"alice", 6)
    assert body["count"] == 4


def test_keyless_records_go_to_some_partition_and_the_answer_says_which(
    server: ThreadedServer,
) -> None:
    create(server, "loose", 4)
    seen = set()
    for i in range(40):
        record = {"record": {"value": b64(bytes([i]))}}
        status, body = request(server, "POST", "/v1/topics/loose/records", record)
        assert status == 200 and 0 <= body["partition"] < 4
        seen.add(body["partition"])
        p, offset = body["partition"], body["offset"]
        _, read = request(server, "GET", f"/v1/topics/loose/partitions/{p}/records/{offset}")
        assert read["record"]["value"] == b64(bytes([i]))
    assert len(seen) > 1  # sticky per request, not for ever
    status, body = request(
        server, "POST", "/v1/topics/loose/records:batch", {"records": [{"value": b64(b"a")}] * 3}
    )
    assert status == 200 and body["count"] == 3 and 0 <= body["partition"] < 4


def test_a_batch_whose_keys_map_to_two_partitions_is_refused_naming_them(
    server: ThreadedServer,
) -> None:
    create(server, "split", 8)
    keys = [b"k%d" % i for i in range(20)]
    first = partition_for_key(keys[0], 8)
    other = next(i for i, k in enumerate(keys) if partition_for_key(k, 8) != first)
    records = [{"value": b64(b"v"), "key": b64(k)} for k in keys[: other + 1]]
    assert_refused(
        server,
        "POST",
        "/v1/topics/split/records:batch",
        {"records": [{"value": b64(b"no key")}, *records]},
        400,
        "INVALID_ARGUMENT",
        f"records[1] maps to partition {first} and records[{other + 1}] to partition",
    )


def test_config_changes_and_partition_growth_through_patch(server: ThreadedServer) -> None:
    create(server, "alter", 2, config={"retention_ms": "1000"})
    status, body = request(
        server,
        "PATCH",
        "/v1/topics/alter",
        {"config": {"segment_bytes": 2097152}, "delete": ["retention_ms"]},
    )
    assert status == 200
    assert (body["config"]["segment_bytes"], body["config"]["retention_ms"]) == ("2097152", "-1")
    status, body = request(server, "PATCH", "/v1/topics/alter", {"partitions": 5})
    assert status == 200 and [p["partition"] for p in body["partitions"]] == [0, 1, 2, 3, 4]
    status, body = request(
        server, "POST", "/v1/topics/alter/partitions/4/records", {"record": {"value": b64(b"x")}}
    )
    assert (status, body["partition"]) == (200, 4)
    _, described = request(server, "GET", "/v1/topics/alter")
    assert described["config"]["segment_bytes"] == "2097152"


def test_a_deleted_topic_is_gone(server: ThreadedServer) -> None:
    create(server, "doomed", 2)
    request(server, "POST", "/v1/topics/doomed/partitions/0/records", {"record": {"value": "eA=="}})
    status, body = request(server, "DELETE", "/v1/topics/doomed")
    assert (status, body) == (204, "")
    status, body = request(server, "GET", "/v1/topics/doomed")
    assert (status, body["error"]["code"]) == (404, "UNKNOWN_TOPIC")
    status, body = request(server, "DELETE", "/v1/topics/doomed")
    assert (status, body["error"]["code"]) == (404, "UNKNOWN_TOPIC")
    assert [t["name"] for t in topics_state(server)["topics"]] == ["default"]
    create(server, "doomed", 1)  # the name is free again, and the new topic is empty
    _, body = request(server, "GET", "/v1/topics/doomed/partitions/0/records")
    assert body["records"] == []


CREATE_REFUSALS = [
    ({"name": "bad name"}, 400, "INVALID_ARGUMENT", "bad name"),
    ({"name": "a/b"}, 400, "INVALID_ARGUMENT", "a/b"),
    ({"name": ""}, 400, "INVALID_ARGUMENT", "empty"),
    ({"name": ".."}, 400, "INVALID_ARGUMENT", "'..'"),
    ({"name": "x" * 250}, 400, "INVALID_ARGUMENT", "249"),
    ({"name": 7}, 400, "INVALID_ARGUMENT", "name"),
    ({"partitions": 2}, 400, "INVALID_ARGUMENT", "name"),
    ({"name": "t", "partitions": 5000}, 400, "INVALID_ARGUMENT", "4096"),
    ({"name": "t", "partitions": -1}, 400, "INVALID_ARGUMENT", "partitions"),
    ({"name": "t", "partitions": "3"}, 400, "INVALID_ARGUMENT", "partitions"),
    ({"name": "t", "partitions": True}, 400, "INVALID_ARGUMENT", "partitions"),
    ({"name": "t", "partitions": 2**70}, 400, "INVALID_ARGUMENT", "partitions"),
    ({"name": "t", "replication_factor": 2}, 400, "INVALID_ARGUMENT", "replication factor 2"),
    ({"name": "t", "config": {"retention": "1"}}, 400, "INVALID_CONFIG", "retention"),
    ({"name": "t", "config": {"retention_ms": "soon"}}, 400, "INVALID_CONFIG", "retention_ms"),
    ({"name": "t", "config": {"sync": "sometimes"}}, 400, "INVALID_CONFIG", "sync"),
    ({"name": "t", "config": {"sync": None}}, 400, "INVALID_ARGUMENT", "sync"),
    ({"name": "t", "config": ["sync"]}, 400, "INVALID_ARGUMENT", "config"),
    ({"name": "t", "partitons": 3}, 400, "INVALID_ARGUMENT", "'partitons'"),
    (["t"], 400, "INVALID_ARGUMENT", "body"),
    ({"name": "default"}, 409, "TOPIC_EXISTS", "'default'"),
]


@pytest.mark.parametrize(("body", "status", "code", "says"), CREATE_REFUSALS)
def test_a_refused_creation_says_why_and_creates_nothing(
    server: ThreadedServer, body: Any, status: int, code: str, says: str
) -> None:
    assert_refused(server, "POST", "/v1/topics", body, status, code, says)


def test_creating_an_existing_topic_is_409_and_leaves_it_as_it_was(
    server: ThreadedServer,
) -> None:
    create(server, "twice", 2, config={"retention_ms": "5000"})
    request(server, "POST", "/v1/topics/twice/partitions/1/records", {"record": {"value": "eA=="}})
    assert_refused(
        server, "POST", "/v1/topics", {"name": "twice", "partitions": 4}, 409, "TOPIC_EXISTS"
    )
    _, described = request(server, "GET", "/v1/topics/twice")
    assert len(described["partitions"]) == 2 and described["config"]["retention_ms"] == "5000"


RECORD = {"record": {"value": b64(b"x")}}
ROUTE_REFUSALS = [
    ("GET", "/v1/topics/nope", None, 404, "UNKNOWN_TOPIC", "'nope'"),
    ("POST", "/v1/topics/nope/records", RECORD, 404, "UNKNOWN_TOPIC", "'nope'"),
    (
        "POST",
        "/v1/topics/nope/records:batch",
        {"records": [RECORD["record"]]},
        404,
        "UNKNOWN_TOPIC",
        "'nope'",
    ),
    ("POST", "/v1/topics/nope/partitions/0/records", RECORD, 404, "UNKNOWN_TOPIC", "'nope'"),
    ("GET", "/v1/topics/nope/partitions/0/records", None, 404, "UNKNOWN_TOPIC", "'nope'"),
    ("POST", "/v1/topics/t2/partitions/2/records", RECORD, 404, "UNKNOWN_PARTITION", "0..1"),
    (
        "POST",
        "/v1/topics/t2/partitions/2/records:batch",
        {"records": [RECORD["record"]]},
        404,
        "UNKNOWN_PARTITION",
        "0..1",
    ),
    ("GET", "/v1/topics/t2/partitions/9/records/0", None, 404, "UNKNOWN_PARTITION", "0..1"),
    ("GET", "/v1/topics/t2/partitions/2/records:stream", None, 404, "UNKNOWN_PARTITION", ""),
    (
        "POST",
        "/v1/topics/t2/partitions/x/records",
        RECORD,
        400,
        "INVALID_ARGUMENT",
        "partition must be a non-negative integer",
    ),
    ("POST", "/v1/topics/t2/partitions/-1/records", RECORD, 400, "INVALID_ARGUMENT", "partition"),
    (
        "GET",
        "/v1/topics/t2/partitions/99999999999/records",
        None,
        400,
        "INVALID_ARGUMENT",
        "partition",
    ),
    ("GET", "/v1/topics/t2/partitions/0/records/5", None, 404, "OFFSET_OUT_OF_RANGE", "empty"),
    (
        "POST",
        "/v1/topics/t2/partitions/0/records",
        {"record": {}},
        400,
        "INVALID_ARGUMENT",
        "value",
    ),
    (
        "POST",
        "/v1/topics/t2/records",
        {"record": {"value": "***"}},
        400,
        "INVALID_ARGUMENT",
        "base64",
    ),
    ("POST", "/v1/topics/t2/records:batch", {"records": []}, 400, "INVALID_ARGUMENT", "at least"),
    ("PATCH", "/v1/topics/t2", {"partitions": 1}, 400, "INVALID_ARGUMENT", ""),
    (
        "PATCH",
        "/v1/topics/t2",
        {"partitions": 3, "config": {"sync": "never"}},
        400,
        "INVALID_ARGUMENT",
        "not both",
    ),
    ("PATCH", "/v1/topics/t2", {}, 400, "INVALID_ARGUMENT", "nothing to change"),
    ("PATCH", "/v1/topics/t2", {"config": {"bogus": "1"}}, 400, "INVALID_CONFIG", "bogus"),
    (
        "PATCH",
        "/v1/topics/t2",
        {"config": {"sync": "never"}, "delete": ["bogus"]},
        400,
        "INVALID_CONFIG",
        "bogus",
    ),
    ("PATCH", "/v1/topics/t2", {"delete": "sync"}, 400, "INVALID_ARGUMENT", "delete"),
    ("PATCH", "/v1/topics/t2", {"colour": "red"}, 400, "INVALID_ARGUMENT", "'colour'"),
    ("PATCH", "/v1/topics/nope", {"partitions": 3}, 404, "UNKNOWN_TOPIC", "'nope'"),
    ("DELETE", "/v1/topics/nope", None, 404, "UNKNOWN_TOPIC", "'nope'"),
    ("PUT", "/v1/topics/t2", None, 405, "METHOD_NOT_ALLOWED", ""),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "code", "says"), ROUTE_REFUSALS)
def test_a_refused_topic_request_says_why_and_changes_nothing(
    server: ThreadedServer,
    method: str,
    path: str,
    body: Any,
    status: int,
    code: str,
    says: str,
) -> None:
    create(server, "t2", 2, config={"sync": "always"})
    assert_refused(server, method, path, body, status, code, says)


def test_malformed_topic_bodies_are_400_and_oversized_ones_413(server_factory: Any) -> None:
    server = server_factory(http_max_body_bytes=4096)
    for path, method in (("/v1/topics", "POST"), ("/v1/topics/default", "PATCH")):
        status, body = request(server, method, path, raw=b"{not json")
        assert (status, body["error"]["code"]) == (400, "INVALID_ARGUMENT")
        status, body = request(server, method, path, raw=b"[" + b"0," * 3000 + b"0]")
        assert (status, body["error"]["code"]) == (413, "REQUEST_TOO_LARGE")
    huge = {"name": "big", "config": {f"k{i}": "v" for i in range(1000)}}
    status, body = request(server, "POST", "/v1/topics", huge)
    assert (status, body["error"]["code"]) == (413, "REQUEST_TOO_LARGE")
    assert [t["name"] for t in topics_state(server)["topics"]] == ["default"]


def test_topic_changes_are_refused_while_shutting_down(server: ThreadedServer) -> None:
    server.agent._http_state.draining = True
    assert_refused(server, "POST", "/v1/topics", {"name": "late"}, 503, "UNAVAILABLE")
    assert_refused(server, "DELETE", "/v1/topics/default", None, 503, "UNAVAILABLE")
    assert_refused(server, "POST", "/v1/topics/default/records", RECORD, 503, "UNAVAILABLE")


def test_the_default_topic_cannot_be_deleted_and_the_old_routes_keep_working(
    server: ThreadedServer,
) -> None:
    request(server, "POST", "/v1/records", RECORD)
    assert_refused(
        server, "DELETE", "/v1/topics/default", None, 400, "INVALID_ARGUMENT", "names no topic"
    )
    status, body = request(server, "POST", "/v1/records", {"record": {"value": b64(b"new")}})
    assert (status, body) == (200, {"offset": 1})
    status, body = request(server, "GET", "/v1/topics/default/partitions/0/records/1")
    assert (status, body["record"]["value"]) == (200, b64(b"new"))
