"""A cluster serves the topic ``default`` over the Admin service and the topic fields, and
refuses other topics clearly (UNIMPLEMENTED) until it hosts partition groups."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from replog.cli import topics
from replog.client import Client
from replog.errors import UnknownPartitionError, UnknownTopicError, UnsupportedError
from tests.cluster.conftest import Cluster


def test_a_cluster_describes_default_and_refuses_other_topics_without_changing_anything(
    three: Cluster,
) -> None:
    leader = three.leader()
    addrs = ",".join(n.grpc_address for n in three.running())
    with Client(addrs) as client:
        offset = client.produce(b"x", topic="default")
        assert offset.partition == 0
        described = client.describe_topic("default")
        assert described.partition_count == 1 and len(described.partitions[0].replicas) == 3
        assert described.partitions[0].leader == leader.name
        assert described.partitions[0].size_bytes > 0  # the replicated log holds the record
        with pytest.raises(UnsupportedError) as info:
            client.create_topic("orders", 3)
        assert "only the topic 'default'" in str(info.value)
        with pytest.raises(UnknownTopicError):
            client.produce(b"x", topic="orders")
        with pytest.raises(UnknownPartitionError):
            client.consume_batch(0, partition=1)
        assert [t.name for t in client.list_topics()] == ["default"]
        assert client.consume(offset, topic="default").value == b"x"
    result = CliRunner().invoke(topics.app, ["create", "orders", "--server", leader.grpc_address])
    assert result.exit_code == 1 and result.stderr.count("\n") == 1, result.output
    assert "only the topic 'default'" in result.stderr
