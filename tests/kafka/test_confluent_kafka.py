"""confluent-kafka (librdkafka) against replog's Kafka listener: admin, idempotent
produce with every codec, consume from earliest, latest and a timestamp, and the same
records and offsets over replog's own gRPC client, both ways round."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from replog import Client
from tests.kafka.conftest import KafkaServer

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


def _consume(address: str, topic: str, partition: int, offset: int, count: int) -> list[Message]:
    consumer = Consumer(
        {"bootstrap.servers": address, "group.id": "unused", "enable.auto.commit": False}
    )
    try:
        consumer.assign([TopicPartition(topic, partition, offset)])
        messages: list[Message] = []
        deadline = time.monotonic() + 20
        while len(messages) < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            assert message.error() is None, message.error()
            messages.append(message)
        return messages
    finally:
        consumer.close()


def _produce(address: str, topic: str, codec: str, count: int) -> list[int]:
    producer = Producer(
        {"bootstrap.servers": address, "enable.idempotence": True, "compression.type": codec,
         "linger.ms": 5}
    )  # fmt: skip
    offsets: list[int] = []

    def delivered(err: KafkaError | None, message: Message) -> None:
        assert err is None, err
        offsets.append(message.offset())

    for i in range(count):
        producer.produce(
            topic, key=b"key-%d" % i, value=f"{codec}-{i}".encode(), partition=0,
            headers=[("codec", codec.encode()), ("i", b"%d" % i)], on_delivery=delivered,
        )  # fmt: skip
    assert producer.flush(20) == 0
    return offsets


def test_a_topic_created_over_kafka_is_listed_in_metadata_and_can_be_deleted(
    kafka_server: KafkaServer,
) -> None:
    admin = AdminClient({"bootstrap.servers": kafka_server.kafka_address})
    for future in admin.create_topics([NewTopic("orders", 3, 1)]).values():
        future.result(10)
    topics = admin.list_topics(timeout=10).topics
    assert sorted(topics["orders"].partitions) == [0, 1, 2]
    again = admin.create_topics([NewTopic("orders", 3, 1)])["orders"]
    with pytest.raises(Exception, match="TOPIC_ALREADY_EXISTS"):
        again.result(10)
    for future in admin.delete_topics(["orders"]).values():
        future.result(10)
    assert "orders" not in admin.list_topics(timeout=10).topics


@pytest.mark.parametrize("codec", CODECS)
def test_records_produced_with_each_codec_read_back_over_kafka_and_grpc_alike(
    kafka_server: KafkaServer, codec: str
) -> None:
    kafka_server.create_topic("events")
    offsets = _produce(kafka_server.kafka_address, "events", codec, 20)
    assert offsets == list(range(20))
    messages = _consume(kafka_server.kafka_address, "events", 0, 0, 20)
    assert [m.offset() for m in messages] == offsets
    assert [m.key() for m in messages] == [b"key-%d" % i for i in range(20)]
    assert messages[7].headers() == [("codec", codec.encode()), ("i", b"7")]
    with Client(kafka_server.grpc_address) as client:
        for message in messages:
            record = client.consume(message.offset(), topic="events", partition=0)
            assert (record.value, record.key) == (message.value(), message.key())
            assert [(h.key, h.value) for h in record.headers] == message.headers()
            assert record.timestamp_ms == message.timestamp()[1]


def test_records_produced_over_grpc_are_consumed_over_kafka_at_the_same_offsets(
    kafka_server: KafkaServer,
) -> None:
    kafka_server.create_topic("grpc-made")
    with Client(kafka_server.grpc_address) as client:
        produced = [
            client.produce(
                b"value-%d" % i,
                key=b"k",
                headers=[("n", b"%d" % i)],
                topic="grpc-made",
                partition=0,
            )
            for i in range(10)
        ]
    messages = _consume(kafka_server.kafka_address, "grpc-made", 0, 0, 10)
    assert [m.offset() for m in messages] == [int(offset) for offset in produced]
    assert [m.value() for m in messages] == [b"value-%d" % i for i in range(10)]
    assert messages[3].headers() == [("n", b"3")]


def test_a_consumer_starts_at_the_latest_offset_and_by_timestamp(kafka_server: KafkaServer) -> None:
    kafka_server.create_topic("tail")
    address = kafka_server.kafka_address
    _produce(address, "tail", "none", 5)
    with Client(kafka_server.grpc_address) as client:
        stamps = [client.consume(o, topic="tail", partition=0).timestamp_ms for o in range(5)]
    middle = stamps[3]
    first_at_middle = stamps.index(middle)
    consumer = Consumer({"bootstrap.servers": address, "group.id": "unused"})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition("tail", 0), timeout=10)
        assert (low, high) == (0, 5)
        found = consumer.offsets_for_times([TopicPartition("tail", 0, middle)], timeout=10)
        assert found[0].offset == first_at_middle
        after = consumer.offsets_for_times([TopicPartition("tail", 0, 2**50)], timeout=10)
        assert after[0].offset == -1
    finally:
        consumer.close()
    latest = Consumer({"bootstrap.servers": address, "group.id": "unused",
                       "enable.auto.commit": False})  # fmt: skip
    try:
        latest.assign([TopicPartition("tail", 0, -1)])  # OFFSET_END
        # assign() returns before librdkafka resolves OFFSET_END (a ListOffsets round
        # trip): a record produced before that would be skipped. The cached watermarks
        # are filled once the partition's offset is resolved and fetching.
        tail = TopicPartition("tail", 0)
        deadline = time.monotonic() + 10
        while latest.get_watermark_offsets(tail, cached=True)[1] < 0:
            assert time.monotonic() < deadline, "the consumer never resolved OFFSET_END"
            latest.poll(0.1)
        produced_later = _produce(address, "tail", "none", 2)
        seen: list[int] = []
        while len(seen) < 2 and time.monotonic() < deadline + 10:
            message = latest.poll(0.5)
            if message is not None and message.error() is None:
                seen.append(message.offset())
        assert seen == produced_later == [5, 6]
    finally:
        latest.close()
