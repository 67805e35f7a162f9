"""kafka-python with its default settings (idempotent, acks=all) against replog's Kafka
listener: keys, headers and timestamps survive (as LogAppendTime,
the broker's), offsets match replog's gRPC view."""

from __future__ import annotations

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from replog import Client
from tests.kafka.conftest import KafkaServer

# kafka-python needs extra libraries (python-snappy, lz4, zstandard) for the other codecs;
# confluent-kafka and aiokafka cover those.
CODECS = [None, "gzip"]


@pytest.mark.parametrize("codec", CODECS, ids=lambda codec: codec or "none")
def test_kafka_python_defaults_produce_and_consume_the_same_records(
    kafka_server: KafkaServer, codec: str | None
) -> None:
    kafka_server.create_topic("kp")
    address = kafka_server.kafka_address
    producer = KafkaProducer(bootstrap_servers=address, compression_type=codec)
    try:
        futures = [
            producer.send(
                "kp",
                value=b"value-%d" % i,
                key=b"key-%d" % i,
                partition=0,
                headers=[("i", b"%d" % i)],
                timestamp_ms=1_700_000_000_000 + i,
            )
            for i in range(10)
        ]
        metadata = [future.get(timeout=20) for future in futures]
    finally:
        producer.close(timeout=10)
    assert [m.offset for m in metadata] == list(range(10))
    consumer = KafkaConsumer(bootstrap_servers=address, enable_auto_commit=False,
                             consumer_timeout_ms=10_000)  # fmt: skip
    try:
        partition = TopicPartition("kp", 0)
        consumer.assign([partition])
        consumer.seek_to_beginning(partition)
        messages = [message for _, message in zip(range(10), consumer, strict=False)]
    finally:
        consumer.close()
    assert [m.offset for m in messages] == list(range(10))
    assert [m.key for m in messages] == [b"key-%d" % i for i in range(10)]
    assert messages[4].headers == [("i", b"4")]
    assert {m.timestamp_type for m in messages} == {1}  # LogAppendTime: the broker's time
    with Client(kafka_server.grpc_address) as client:
        for message in messages:
            record = client.consume(message.offset, topic="kp", partition=0)
            assert (record.value, record.key) == (message.value, message.key)
            assert record.timestamp_ms == message.timestamp
