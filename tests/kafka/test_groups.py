"""Kafka consumer groups (the classic protocol: FindCoordinator, JoinGroup, SyncGroup,
Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch) with real clients on replog's Kafka
listener: members share a topic's partitions, commits land in the same offsets replog's
own group calls show, and a member that leaves hands its partitions over."""

from __future__ import annotations

import threading
import time

from confluent_kafka import Consumer as ConfluentConsumer
from kafka import KafkaConsumer, KafkaProducer

from replog import Client
from tests.kafka.conftest import KafkaServer, wait_until


def _produce(address: str, topic: str, partitions: int, per_partition: int) -> None:
    producer = KafkaProducer(bootstrap_servers=address)
    try:
        futures = [
            producer.send(topic, value=b"%d-%d" % (p, i), partition=p)
            for p in range(partitions)
            for i in range(per_partition)
        ]
        for future in futures:
            future.get(timeout=20)
    finally:
        producer.close(timeout=10)


def test_a_kafka_python_group_reads_everything_and_its_commits_are_replogs_offsets(
    kafka_server: KafkaServer,
) -> None:
    kafka_server.create_topic("kg", 4)
    address = kafka_server.kafka_address
    _produce(address, "kg", 4, 25)
    consumer = KafkaConsumer(
        "kg",
        bootstrap_servers=address,
        group_id="kp-group",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=15_000,
    )
    try:
        seen = []
        for message in consumer:
            seen.append((message.partition, message.offset))
            if len(seen) == 100:
                break
        consumer.commit()
    finally:
        consumer.close()
    assert sorted(seen) == [(p, o) for p in range(4) for o in range(25)]
    with Client(kafka_server.grpc_address) as client:
        assert client.fetch_offsets("kp-group") == {("kg", p): 25 for p in range(4)}
        described = client.describe_group("kp-group")
    assert {(o.topic, o.partition, o.committed) for o in described.offsets} == {
        ("kg", p, 25) for p in range(4)
    }


def test_two_confluent_consumers_split_the_partitions_and_one_takes_all_after_the_other_leaves(
    kafka_server: KafkaServer,
) -> None:
    kafka_server.create_topic("cg", 4)
    address = kafka_server.kafka_address
    _produce(address, "cg", 4, 5)

    def make() -> ConfluentConsumer:
        consumer = ConfluentConsumer(
            {
                "bootstrap.servers": address,
                "group.id": "cf-group",
                "auto.offset.reset": "earliest",
                "session.timeout.ms": 6000,
                "heartbeat.interval.ms": 500,
                "partition.assignment.strategy": "range",
            }
        )
        consumer.subscribe(["cg"])
        return consumer

    consumers = [make(), make()]
    stop = threading.Event()
    assigned: dict[int, set[int]] = {0: set(), 1: set()}

    def run(i: int) -> None:
        while not stop.is_set():
            consumers[i].poll(0.1)
            assigned[i] = {tp.partition for tp in consumers[i].assignment()}

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(2)]
    for thread in threads:
        thread.start()
    try:
        wait_until(
            lambda: len(assigned[0]) == 2 and len(assigned[1]) == 2, 30, "two partitions each"
        )
        assert not assigned[0] & assigned[1]
        stop.set()
        for thread in threads:
            thread.join(10)
        consumers[1].close()
        started = time.monotonic()
        while len({tp.partition for tp in consumers[0].assignment()}) < 4:
            consumers[0].poll(0.1)
            assert time.monotonic() - started < 30, "the partitions never moved"
    finally:
        stop.set()
        consumers[0].close()
