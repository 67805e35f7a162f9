"""aiokafka against replog's Kafka listener: every codec, consume from earliest and
latest, the same records over replog's gRPC client."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from replog import AsyncClient
from tests.kafka.conftest import KafkaServer

CODECS = [None, "gzip", "snappy", "lz4", "zstd"]


async def _read(address: str, topic: str, count: int, *, latest_then: int = 0) -> list[object]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=address, enable_auto_commit=False,
        auto_offset_reset="latest" if latest_then else "earliest",
    )  # fmt: skip
    await consumer.start()
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        if latest_then:
            await consumer.seek_to_end(partition)
            await consumer.position(partition)
            await _send(address, topic, None, latest_then)
        messages = []
        async with asyncio.timeout(20):
            while len(messages) < count:
                batch = await consumer.getmany(partition, timeout_ms=500)
                messages.extend(batch.get(partition, []))
        return messages
    finally:
        await consumer.stop()


async def _send(address: str, topic: str, codec: str | None, count: int) -> list[int]:
    producer = AIOKafkaProducer(bootstrap_servers=address, compression_type=codec,
                                enable_idempotence=True, acks="all")  # fmt: skip
    await producer.start()
    try:
        sent = [
            await producer.send(
                topic, value=b"v-%d" % i, key=b"k-%d" % i, partition=0, headers=[("h", b"%d" % i)]
            )
            for i in range(count)
        ]
        return [(await future).offset for future in sent]
    finally:
        await producer.stop()


@pytest.mark.parametrize("codec", CODECS, ids=lambda codec: codec or "none")
async def test_aiokafka_records_with_each_codec_read_back_over_kafka_and_grpc(
    kafka_server: KafkaServer, codec: str | None
) -> None:
    kafka_server.create_topic("aio")
    address = kafka_server.kafka_address
    assert await _send(address, "aio", codec, 15) == list(range(15))
    messages = await _read(address, "aio", 15)
    assert [m.offset for m in messages] == list(range(15))  # type: ignore[attr-defined]
    assert messages[9].headers == (("h", b"9"),)  # type: ignore[attr-defined]
    async with AsyncClient(kafka_server.grpc_address) as client:
        for message in messages:
            record = await client.consume(message.offset, topic="aio", partition=0)  # type: ignore[attr-defined]
            assert record.value == message.value  # type: ignore[attr-defined]
            assert record.key == message.key  # type: ignore[attr-defined]


async def test_an_aiokafka_consumer_at_the_latest_offset_sees_only_newer_records(
    kafka_server: KafkaServer,
) -> None:
    kafka_server.create_topic("aio-tail")
    address = kafka_server.kafka_address
    await _send(address, "aio-tail", None, 4)
    messages = await _read(address, "aio-tail", 3, latest_then=3)
    assert [m.offset for m in messages] == [4, 5, 6]  # type: ignore[attr-defined]
