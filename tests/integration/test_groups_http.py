"""The consumer group routes over HTTP on a real single-node server."""

from __future__ import annotations

from tests.integration.conftest import ThreadedServer
from tests.integration.test_http_api import request


def test_a_member_joins_commits_and_leaves_and_the_group_is_then_deleted(
    server: ThreadedServer,
) -> None:
    status, _ = request(server, "POST", "/v1/topics", {"name": "orders", "partitions": 2})
    assert status == 201
    status, joined = request(
        server, "POST", "/v1/groups/billing/heartbeat", {"member_epoch": 0, "topics": ["orders"]}
    )
    assert status == 200, joined
    assert joined["assignment"] == [
        {"topic": "orders", "partition": 0},
        {"topic": "orders", "partition": 1},
    ]
    member = {"member_id": joined["member_id"], "member_epoch": joined["member_epoch"]}
    offsets = [{"topic": "orders", "partition": 1, "offset": 3}]
    status, _ = request(
        server, "POST", "/v1/groups/billing/offsets", {**member, "offsets": offsets}
    )
    assert status == 204
    status, fetched = request(server, "GET", "/v1/groups/billing/offsets")
    assert fetched == {
        "offsets": [{"topic": "orders", "partition": 1, "offset": 3, "metadata": ""}]
    }
    status, described = request(server, "GET", "/v1/groups/billing")
    assert status == 200
    assert [m["id"] for m in described["members"]] == [joined["member_id"]]
    assert described["state"] in ("stable", "reconciling")
    status, body = request(server, "DELETE", "/v1/groups/billing")
    assert status == 409 and body["error"]["code"] == "NON_EMPTY_GROUP"
    stale = {**member, "member_epoch": member["member_epoch"] + 7, "offsets": offsets}
    status, body = request(server, "POST", "/v1/groups/billing/offsets", stale)
    assert status == 409 and body["error"]["code"] == "FENCED_MEMBER_EPOCH"
    status, _ = request(
        server, "POST", "/v1/groups/billing/heartbeat", {**member, "member_epoch": -1}
    )
    assert status == 200
    status, listed = request(server, "GET", "/v1/groups")
    assert listed == {"groups": [{"group": "billing", "state": "empty", "members": 0}]}
    status, _ = request(server, "DELETE", "/v1/groups/billing")
    assert status == 204
    status, body = request(server, "GET", "/v1/groups/billing")
    assert status == 404


def test_bad_group_bodies_are_refused_with_a_json_error_and_change_nothing(
    server: ThreadedServer,
) -> None:
    request(server, "POST", "/v1/topics", {"name": "orders", "partitions": 1})
    bad = [
        ("/v1/groups/g/heartbeat", {"member_epoch": 0}),  # no subscription
        ("/v1/groups/g/heartbeat", {"member_epoch": 0, "topics": "orders"}),
        ("/v1/groups/g/heartbeat", {"member_epoch": 0, "topics": ["orders"], "x": 1}),
        ("/v1/groups/g/offsets", {"offsets": []}),
        ("/v1/groups/g/offsets", {"offsets": [{"topic": "orders", "partition": 0, "offset": -1}]}),
        ("/v1/groups/g/offsets", {"offsets": [{"topic": "orders", "partition": "0"}]}),
        ("/v1/groups/g/offsets", [1, 2]),
    ]
    for path, body in bad:
        status, answer = request(server, "POST", path, body)
        assert status == 400, (path, body, answer)
        assert answer["error"]["code"] == "INVALID_ARGUMENT"
    status, answer = request(
        server,
        "POST",
        "/v1/groups/g/offsets",
        {"offsets": [{"topic": "orders", "partition": 9, "offset": 1}]},
    )
    assert status == 404, answer
    assert request(server, "GET", "/v1/groups") == (200, {"groups": []})


def test_the_internal_offsets_topic_takes_no_produce_from_users(server: ThreadedServer) -> None:
    request(server, "POST", "/v1/topics", {"name": "orders", "partitions": 1})
    request(server, "POST", "/v1/groups/g/offsets", {"offsets": [_row(1)]})  # creates it
    before = request(server, "GET", "/v1/groups/g/offsets")
    fake = {"record": {"key": "Zw==", "value": "eyJrIjoiY29tbWl0In0="}}
    for path in (
        "/v1/topics/__consumer_offsets/records",
        "/v1/topics/__consumer_offsets/partitions/0/records",
    ):
        status, body = request(server, "POST", path, fake)
        assert status == 400 and "internal" in body["error"]["message"], (path, body)
    assert request(server, "GET", "/v1/groups/g/offsets") == before


def _row(offset: int) -> dict[str, object]:
    return {"topic": "orders", "partition": 0, "offset": offset}


def test_the_internal_offsets_topic_cannot_be_deleted(server: ThreadedServer) -> None:
    request(server, "POST", "/v1/topics", {"name": "orders", "partitions": 1})
    request(server, "POST", "/v1/groups/g/offsets", {"offsets": [_row(4)]})
    status, body = request(server, "DELETE", "/v1/topics/__consumer_offsets")
    assert status == 400 and "internal" in body["error"]["message"]
    assert request(server, "GET", "/v1/groups/g/offsets")[1]["offsets"][0]["offset"] == 4
