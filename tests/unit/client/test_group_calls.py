"""The group calls' requests and answers, the merge of every server's group list, and the
CLI's pure helpers (describe's JSON shape, reset-offsets' time search)."""

from __future__ import annotations

import pytest

from replog.cli.groups import describe_json, first_offset_at, parse_time_ms
from replog.client.groups import (
    GroupDescription,
    GroupListing,
    GroupMember,
    PartitionLag,
    answer_from,
    commit_request,
    fetch_request,
    heartbeat_request,
    merge_listings,
    partitions_of,
)
from replog.errors import InvalidArgumentError
from replog.v1 import group_pb2 as pb


def test_a_heartbeat_request_sends_the_subscription_and_owned_partitions_only_when_given() -> None:
    joining = heartbeat_request("g", "", 0, ["orders"], [("orders", 1), ("orders", 0)], 10_000)
    assert joining.HasField("subscription")
    assert list(joining.subscription.topics) == ["orders"]
    assert partitions_of(joining.owned) == {("orders", 0), ("orders", 1)}
    assert joining.session_timeout_ms == 10_000
    beating = heartbeat_request("g", "m", 3)
    assert not beating.HasField("subscription")
    assert not beating.HasField("owned")
    empty = heartbeat_request("g", "m", 3, owned=[])
    assert empty.HasField("owned")


def test_a_heartbeat_answer_becomes_the_partitions_the_member_may_own() -> None:
    response = pb.GroupHeartbeatResponse(
        member_id="m",
        member_epoch=4,
        assignment=pb.Assignment(
            topics=[
                pb.TopicPartitions(topic="a", partitions=[0, 2]),
                pb.TopicPartitions(topic="b", partitions=[1]),
            ]
        ),
        heartbeat_interval_ms=500,
    )
    got = answer_from(response)
    assert (got.member_id, got.member_epoch, got.heartbeat_interval_ms) == ("m", 4, 500)
    assert got.assignment == {("a", 0), ("a", 2), ("b", 1)}


def test_a_commit_request_carries_every_offset_with_its_metadata_and_the_member() -> None:
    request = commit_request("g", {("a", 1): 9, ("a", 0): 4}, {("a", 1): "note"}, "m", 2)
    assert (request.group, request.member_id, request.member_epoch) == ("g", "m", 2)
    assert [(o.topic, o.partition, o.offset, o.metadata) for o in request.offsets] == [
        ("a", 0, 4, ""),
        ("a", 1, 9, "note"),
    ]


@pytest.mark.parametrize(
    "bad",
    [
        lambda: commit_request("g", {("a", 0): -1}, "", "", 0),
        lambda: commit_request("", {("a", 0): 1}, "", "", 0),
        lambda: heartbeat_request("g", "m", -2),
        lambda: heartbeat_request("g", "m", 0, topics="orders"),
        lambda: fetch_request("g", [("a", -1)]),
    ],
)
def test_bad_group_call_arguments_are_refused_with_a_typed_error(bad: object) -> None:
    with pytest.raises(InvalidArgumentError):
        bad()  # type: ignore[operator]


def test_fetching_every_offset_sends_no_topics_and_some_sends_them_by_topic() -> None:
    assert list(fetch_request("g", None).topics) == []
    some = fetch_request("g", [("a", 2), ("a", 0)])
    assert [(t.topic, list(t.partitions)) for t in some.topics] == [("a", [0, 2])]


def test_every_servers_groups_are_merged_by_name_the_fuller_report_winning() -> None:
    one = pb.ListGroupsResponse(groups=[pb.GroupListing(group="z", state="stable", members=2)])
    two = pb.ListGroupsResponse(
        groups=[
            pb.GroupListing(group="a", state="empty", members=0),
            pb.GroupListing(group="z", state="empty", members=0),
        ]
    )
    assert merge_listings([two, one]) == [
        GroupListing("a", "empty", 0),
        GroupListing("z", "stable", 2),
    ]


def test_describe_json_has_exactly_the_documented_keys() -> None:
    description = GroupDescription(
        "billing",
        "stable",
        7,
        "range",
        (GroupMember("m1", 7, ("orders",), (("orders", 0), ("orders", 1))),),
        (PartitionLag("orders", 0, 5, 9, 4), PartitionLag("orders", 1, -1, 3, 3)),
    )
    assert describe_json(description, list(description.offsets)) == {
        "group": "billing",
        "generation": 7,
        "members": [
            {
                "id": "m1",
                "assignment": [
                    {"topic": "orders", "partition": 0},
                    {"topic": "orders", "partition": 1},
                ],
            }
        ],
        "offsets": [
            {"topic": "orders", "partition": 0, "committed": 5, "lag": 4},
            {"topic": "orders", "partition": 1, "committed": -1, "lag": 3},
        ],
    }


def _lookup(records: dict[int, int], end: int):  # type: ignore[no-untyped-def]
    """first_from over offset -> timestamp (gaps allowed), as consume_batch(o, 1) answers."""

    def first(offset: int) -> tuple[int, int] | None:
        at = [o for o in sorted(records) if o >= offset and o < end]
        return (at[0], records[at[0]]) if at else None

    return first


@pytest.mark.parametrize(
    ("time_ms", "expected"),
    [
        (0, 10),
        (100, 10),
        (101, 11),
        (150, 13),
        (200, 13),
        (201, 16),
        (301, 19),
        (302, 20),
        (10**15, 20),
    ],
)
def test_reset_to_time_finds_the_first_offset_at_or_after_the_time_across_gaps(
    time_ms: int, expected: int
) -> None:
    # offsets 10..19 with control-record gaps at 12, 14, 15
    records = {10: 100, 11: 120, 13: 200, 16: 250, 17: 250, 18: 300, 19: 301}
    assert first_offset_at(_lookup(records, 20), 10, 20, time_ms) == expected


def test_reset_to_time_of_an_empty_partition_is_its_end() -> None:
    assert first_offset_at(_lookup({}, 5), 5, 5, 0) == 5


def test_times_are_epoch_milliseconds_or_iso_8601_in_utc_unless_zoned() -> None:
    assert parse_time_ms("1700000000000") == 1_700_000_000_000
    assert parse_time_ms("2023-11-14T22:13:20") == 1_700_000_000_000
    assert parse_time_ms("2023-11-14T23:13:20+01:00") == 1_700_000_000_000
    assert parse_time_ms("2023-11-14T22:13:20Z") == 1_700_000_000_000
    with pytest.raises(InvalidArgumentError, match="--to-time"):
        parse_time_ms("yesterday")
