"""Topics over gRPC against a real single-node server: the Admin service, produce and consume
by (topic, partition), and every bad input refused with the right status and no change."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from replog.broker.partitioner import partition_for_key
from replog.client import AsyncClient, Client, Offset, Producer
from replog.errors import (
    AlreadyExistsError,
    ConfigError,
    InvalidArgumentError,
    UnknownPartitionError,
    UnknownTopicError,
)
from replog.v1 import admin_pb2, log_pb2
from replog.v1.record_pb2 import Record
from tests.integration.conftest import ThreadedServer


@pytest.fixture
def client(server: ThreadedServer) -> Iterator[Client]:
    with Client(server.grpc_address) as c:
        yield c


@pytest.fixture
def channel(server: ThreadedServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.grpc_address) as ch:
        yield ch


def _raw(channel: grpc.Channel, service: str, method: str, request: Any, response: Any) -> Any:
    stub = channel.unary_unary(
        f"/replog.v1.{service}/{method}",
        request_serializer=type(request).SerializeToString,
        response_deserializer=response.FromString,
    )
    return stub(request, timeout=10)


def _code(channel: grpc.Channel, *call: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        _raw(channel, *call)
    return info.value.code(), info.value.details() or ""


def test_a_topic_is_created_described_listed_altered_grown_and_deleted(client: Client) -> None:
    created = client.create_topic("orders", 3, config={"retention_ms": "60000"})
    assert (created.name, created.partition_count, created.replication_factor) == ("orders", 3, 1)
    assert created.config["retention_ms"] == "60000"
    assert [p.partition for p in created.partitions] == [0, 1, 2]
    assert sorted(t.name for t in client.list_topics()) == ["default", "orders"]
    described = client.describe_topic("orders")
    node = described.partitions[0].leader
    assert node and all(p.replicas == (node,) == p.in_sync for p in described.partitions)
    altered = client.alter_topic_config("orders", {"segment_bytes": "8388608"}, ["retention_ms"])
    assert altered.config["segment_bytes"] == "8388608"
    assert altered.config["retention_ms"] == client.describe_topic("default").config["retention_ms"]
    assert client.create_partitions("orders", 5).partition_count == 5
    client.delete_topic("orders")
    assert [t.name for t in client.list_topics()] == ["default"]
    with pytest.raises(UnknownTopicError):
        client.describe_topic("orders")


def test_partitions_zero_means_one(channel: grpc.Channel, client: Client) -> None:
    request = admin_pb2.CreateTopicRequest(name="one")
    answer = _raw(channel, "Admin", "CreateTopic", request, admin_pb2.CreateTopicResponse)
    assert len(answer.topic.partitions) == 1
    assert client.describe_topic("one").partition_count == 1


def test_keyed_records_land_on_the_murmur2_partition(client: Client) -> None:
    client.create_topic("keyed", 6)
    keys = [b"user-%d" % i for i in range(40)]
    for key in keys:
        offset = client.produce(b"v-" + key, key, topic="keyed")
        assert offset.partition == partition_for_key(key, 6), key
    for p in range(6):
        batch = client.consume_batch(0, topic="keyed", partition=p)
        expected = [k for k in keys if partition_for_key(k, 6) == p]
        assert [r.key for r in batch.records] == expected
        assert [r.offset for r in batch.records] == list(range(len(expected)))


def test_records_produced_to_partition_two_are_read_from_it_with_their_own_offsets(
    client: Client,
) -> None:
    client.create_topic("three", 3)
    client.produce_batch([b"default-a", b"default-b"])  # the default topic has offsets too
    base, count = client.produce_batch([b"a", b"b", b"c"], topic="three", partition=2)
    assert (base, base.partition, count) == (0, 2, 3)
    single = client.produce(b"d", topic="three", partition=2)
    assert (single, single.partition) == (3, 2)
    records = client.consume_batch(0, topic="three", partition=2).records
    assert [(r.offset, r.value) for r in records] == [(0, b"a"), (1, b"b"), (2, b"c"), (3, b"d")]
    assert client.consume(1, topic="three", partition=2).value == b"b"
    assert client.consume_batch(0, topic="three", partition=0).records == []
    assert [r.value for r in client.consume_batch(0).records] == [b"default-a", b"default-b"]
    stream = client.stream(2, topic="three", partition=2)
    assert [next(stream).value, next(stream).value] == [b"c", b"d"]
    stream.close()
    assert [p.next_offset for p in client.describe_topic("three").partitions] == [0, 0, 4]


def test_requests_without_a_topic_still_address_the_default_log(client: Client) -> None:
    offset = client.produce(b"x")
    assert isinstance(offset, int) and isinstance(offset, Offset)
    assert (offset, offset.partition) == (0, 0)
    base, count = client.produce_batch([b"y", b"z"])
    assert (base, count) == (1, 2)
    assert [r.value for r in client.consume_batch(0, topic="default").records] == [b"x", b"y", b"z"]


def test_a_keyless_batch_stays_on_one_partition(client: Client) -> None:
    client.create_topic("sticky", 4)
    placed = [client.produce_batch([b"%d" % i] * 5, topic="sticky") for i in range(8)]
    for base, count in placed:
        records = client.consume_batch(base, count, topic="sticky", partition=base.partition)
        assert len({r.value for r in records.records}) == 1 and len(records.records) == count
    total = sum(p.next_offset for p in client.describe_topic("sticky").partitions)
    assert total == 40


def test_a_batch_whose_keys_map_to_two_partitions_is_refused_and_nothing_is_appended(
    client: Client,
) -> None:
    client.create_topic("split", 4)
    first = b"k0"
    other = next(
        b"k%d" % i
        for i in range(1, 100)
        if partition_for_key(b"k%d" % i, 4) != partition_for_key(first, 4)
    )
    records = [Record(value=b"a", key=first), Record(value=b"b"), Record(value=b"c", key=other)]
    with pytest.raises(InvalidArgumentError) as info:
        client.produce_batch(records, topic="split")
    low, high = sorted((partition_for_key(first, 4), partition_for_key(other, 4)))
    assert f"partitions {low} and {high}" in str(info.value)
    assert "name the partition" in str(info.value)
    assert [p.next_offset for p in client.describe_topic("split").partitions] == [0] * 4
    # Keyless records join the keyed ones' partition; a named partition takes any keys.
    base, _ = client.produce_batch(records[:2], topic="split")
    assert base.partition == partition_for_key(first, 4)
    base, count = client.produce_batch(records, topic="split", partition=3)
    assert (base.partition, count) == (3, 3)


@pytest.mark.parametrize(
    "name", ["", "a/b", "x" * 250, "..", "ü", "with space"], ids=lambda n: repr(n)[:12]
)
def test_an_invalid_topic_name_is_refused_and_nothing_is_created(
    client: Client, channel: grpc.Channel, name: str
) -> None:
    with pytest.raises(InvalidArgumentError):
        client.create_topic(name)
    request = admin_pb2.CreateTopicRequest(name=name)
    code, details = _code(channel, "Admin", "CreateTopic", request, admin_pb2.CreateTopicResponse)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "topic name" in details
    assert [t.name for t in client.list_topics()] == ["default"]


def test_creating_a_topic_twice_is_already_exists_and_changes_nothing(
    client: Client, channel: grpc.Channel
) -> None:
    client.create_topic("dup", 2, config={"retention_ms": "1000"})
    client.produce(b"kept", topic="dup", partition=1)
    before = client.describe_topic("dup")
    with pytest.raises(AlreadyExistsError) as info:
        client.create_topic("dup", 5)
    assert info.value.topic == "dup" and str(info.value) == "topic 'dup' already exists"
    request = admin_pb2.CreateTopicRequest(name="dup", partitions=7)
    code, _ = _code(channel, "Admin", "CreateTopic", request, admin_pb2.CreateTopicResponse)
    assert code == grpc.StatusCode.ALREADY_EXISTS
    assert client.describe_topic("dup") == before


def test_a_replication_factor_above_the_node_count_is_refused(
    client: Client, channel: grpc.Channel
) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        client.create_topic("rf", 1, replication_factor=2)
    assert "replication factor 2" in str(info.value)
    assert client.create_topic("rf1", 1, replication_factor=1).replication_factor == 1
    assert client.create_topic("rf0", 1, replication_factor=0).replication_factor == 1
    assert sorted(t.name for t in client.list_topics()) == ["default", "rf0", "rf1"]


@pytest.mark.parametrize("count", [4097, 100_000])
def test_a_partition_count_out_of_range_is_refused(client: Client, count: int) -> None:
    with pytest.raises(InvalidArgumentError):
        client.create_topic("many", count)
    assert [t.name for t in client.list_topics()] == ["default"]


def test_a_bad_config_key_or_value_is_refused_naming_it_and_nothing_changes(
    client: Client, channel: grpc.Channel
) -> None:
    with pytest.raises(ConfigError) as info:
        client.create_topic("cfg", config={"retension_ms": "5"})
    assert "retension_ms" in str(info.value)
    assert [t.name for t in client.list_topics()] == ["default"]
    client.create_topic("cfg")
    before = client.describe_topic("cfg")
    for change in ({"no_such_key": "1"}, {"retention_ms": "soon"}, {"sync": "sometimes"}):
        with pytest.raises(ConfigError) as info:
            client.alter_topic_config("cfg", change)
        assert next(iter(change)) in str(info.value)
    with pytest.raises(ConfigError):
        client.alter_topic_config("cfg", delete=["nope"])
    request = admin_pb2.AlterTopicConfigRequest(name="cfg", set={"bogus": "1"})
    code, _ = _code(
        channel, "Admin", "AlterTopicConfig", request, admin_pb2.AlterTopicConfigResponse
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert client.describe_topic("cfg") == before


def test_partitions_never_shrink(client: Client) -> None:
    client.create_topic("grow", 3)
    for count in (2, 3, 5000):
        with pytest.raises(InvalidArgumentError):
            client.create_partitions("grow", count)
    assert client.describe_topic("grow").partition_count == 3


def test_an_unknown_topic_is_not_found_for_every_call(
    client: Client, channel: grpc.Channel
) -> None:
    calls = [
        lambda: client.describe_topic("ghost"),
        lambda: client.delete_topic("ghost"),
        lambda: client.alter_topic_config("ghost", {"retention_ms": "1"}),
        lambda: client.create_partitions("ghost", 2),
        lambda: client.produce(b"x", topic="ghost"),
        lambda: client.produce(b"x", b"key", topic="ghost"),
        lambda: client.produce_batch([b"x"], topic="ghost", partition=0),
        lambda: client.consume(0, topic="ghost"),
        lambda: client.consume_batch(0, topic="ghost"),
        lambda: next(client.stream(0, topic="ghost")),
    ]
    for call in calls:
        with pytest.raises(UnknownTopicError) as info:
            call()
        assert info.value.topic == "ghost" and "'ghost' does not exist" in str(info.value)
    request = log_pb2.ProduceRequest(record=Record(value=b"x"), topic="ghost")
    code, details = _code(channel, "Log", "Produce", request, log_pb2.ProduceResponse)
    assert code == grpc.StatusCode.NOT_FOUND and details == "topic 'ghost' does not exist"
    assert [t.name for t in client.list_topics()] == ["default"]


def test_a_partition_out_of_range_is_not_found_and_names_the_valid_ones(
    client: Client, channel: grpc.Channel
) -> None:
    client.create_topic("three", 3)
    for call in (
        lambda: client.produce(b"x", topic="three", partition=3),
        lambda: client.produce_batch([b"x", b"y"], topic="three", partition=7),
        lambda: client.consume_batch(0, topic="three", partition=3),
        lambda: client.consume(0, partition=1),  # the default topic has one partition
    ):
        with pytest.raises(UnknownPartitionError) as info:
            call()
        assert "there is no partition" in str(info.value)
    assert info.value.partitions == 1 and info.value.topic == "default"
    request = log_pb2.ConsumeBatchRequest(topic="three", partition=9)
    code, details = _code(channel, "Log", "ConsumeBatch", request, log_pb2.ConsumeBatchResponse)
    assert code == grpc.StatusCode.NOT_FOUND and "partitions 0..2" in details
    assert [p.next_offset for p in client.describe_topic("three").partitions] == [0, 0, 0]


def test_a_produce_stream_sends_each_record_where_its_request_says(
    client: Client, channel: grpc.Channel
) -> None:
    client.create_topic("streamed", 3)
    requests = [
        log_pb2.ProduceRequest(record=Record(value=b"a"), topic="streamed", partition=1),
        log_pb2.ProduceRequest(record=Record(value=b"b", key=b"kk"), topic="streamed"),
        log_pb2.ProduceRequest(record=Record(value=b"c")),
        log_pb2.ProduceRequest(record=Record(value=b"d"), topic="streamed", partition=1),
    ]
    stream = channel.stream_stream(
        "/replog.v1.Log/ProduceStream",
        request_serializer=log_pb2.ProduceRequest.SerializeToString,
        response_deserializer=log_pb2.ProduceResponse.FromString,
    )
    answers = [(a.partition, a.offset) for a in stream(iter(requests), timeout=10)]
    key_partition = partition_for_key(b"kk", 3)
    assert answers[0] == (1, 0) and answers[2] == (0, 0)
    assert answers[1] == (key_partition, 1 if key_partition == 1 else 0)
    assert answers[3][0] == 1


def test_a_malformed_admin_request_is_invalid_argument(channel: grpc.Channel) -> None:
    stub = channel.unary_unary("/replog.v1.Admin/CreateTopic")
    with pytest.raises(grpc.RpcError) as info:
        stub(b"\x0a\x05ab", timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "malformed" in (info.value.details() or "")


def test_reading_another_partition_does_not_wait_for_this_clients_writes_elsewhere(
    client: Client,
) -> None:
    client.create_topic("fresh", 2)
    for _ in range(5):
        client.produce(b"x")  # read-your-writes floor of default/0 is now 4
    batch = client.consume_batch(0, topic="fresh", partition=1, timeout=2)
    assert batch.records == [] and batch.high_watermark == 0


def test_a_producer_for_a_topic_keeps_each_keys_records_on_its_partition(client: Client) -> None:
    client.create_topic("produced", 4)
    keys = [b"a", b"b", b"c", b"d", b"e"] * 20
    # max_in_flight=1: batches in flight at once may be appended out of order (documented).
    with Producer(client, topic="produced", linger_ms=20, max_in_flight=1) as producer:
        futures = [producer.send(b"%d" % i, key) for i, key in enumerate(keys)]
    for future, key in zip(futures, keys, strict=True):
        assert future.partition == partition_for_key(key, 4)
    for p in range(4):
        records = client.consume_batch(0, topic="produced", partition=p).records
        mine = [b"%d" % i for i, key in enumerate(keys) if partition_for_key(key, 4) == p]
        assert [r.value for r in records] == mine  # per-partition order is send order


def test_the_async_client_administers_and_addresses_topics(server: ThreadedServer) -> None:
    async def run() -> None:
        async with AsyncClient(server.grpc_address) as client:
            created = await client.create_topic("async", 2)
            assert created.partition_count == 2
            offset = await client.produce(b"x", topic="async", partition=1)
            assert (offset, offset.partition) == (0, 1)
            base, count = await client.produce_batch([b"y"], topic="async", partition=1)
            assert (base, count) == (1, 1)
            assert (await client.consume(1, topic="async", partition=1)).value == b"y"
            batch = await client.consume_batch(0, topic="async", partition=1)
            assert [r.value for r in batch.records] == [b"x", b"y"]
            assert [t.name for t in await client.list_topics()] == ["async", "default"]
            altered = await client.alter_topic_config("async", {"retention_ms": "5000"})
            assert altered.config["retention_ms"] == "5000"
            assert (await client.create_partitions("async", 3)).partition_count == 3
            assert (await client.describe_topic("async")).partitions[1].next_offset == 2
            await client.delete_topic("async")
            with pytest.raises(UnknownTopicError):
                await client.describe_topic("async")
            with pytest.raises(AlreadyExistsError):
                await client.create_topic("default")

    asyncio.run(run())


def test_the_default_topic_cannot_be_deleted(client: Client, channel: grpc.Channel) -> None:
    client.produce(b"kept")
    with pytest.raises(InvalidArgumentError, match="cannot be deleted"):
        client.delete_topic("default")
    request = admin_pb2.DeleteTopicRequest(name="default")
    code, _ = _code(channel, "Admin", "DeleteTopic", request, admin_pb2.DeleteTopicResponse)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert client.consume(0).value == b"kept"
