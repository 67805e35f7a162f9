"""Bad input to the Groups service and the internal offsets topic is refused and changes
nothing (regressions of a review)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest

from replog.broker.group_log import OFFSETS_TOPIC
from replog.v1 import admin_pb2, group_pb2
from tests.integration.conftest import ThreadedServer


def test_a_commit_of_an_offset_past_int64_is_refused_and_never_breaks_fetch_or_describe(
    server_factory: Callable[..., ThreadedServer], stub_for: Callable[[ThreadedServer], Any]
) -> None:
    # OffsetCommit.offset is uint64, CommittedOffset.offset / PartitionLag.committed int64:
    # main stores 2**64-1, then every FetchOffsets and DescribeGroup of the group is INTERNAL.
    groups, admin = stub_for(server_factory(offsets_topic_partitions=1))
    admin.CreateTopic(admin_pb2.CreateTopicRequest(name="t", partitions=1), timeout=10)
    request = group_pb2.CommitOffsetsRequest(
        group="g", offsets=[group_pb2.OffsetCommit(topic="t", partition=0, offset=2**64 - 1)]
    )
    with pytest.raises(grpc.RpcError) as info:
        groups.CommitOffsets(request, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    groups.FetchOffsets(group_pb2.FetchOffsetsRequest(group="g"), timeout=10)


def test_the_offsets_topic_config_cannot_be_changed_to_delete_live_offsets(
    server_factory: Callable[..., ThreadedServer], stub_for: Callable[[ThreadedServer], Any]
) -> None:
    groups, admin = stub_for(server_factory(offsets_topic_partitions=1))
    groups.ListGroups(group_pb2.ListGroupsRequest(), timeout=10)  # makes the offsets topic
    with pytest.raises(grpc.RpcError) as info:
        admin.AlterTopicConfig(
            admin_pb2.AlterTopicConfigRequest(name=OFFSETS_TOPIC, set={"retention_ms": "1"}),
            timeout=10,
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
