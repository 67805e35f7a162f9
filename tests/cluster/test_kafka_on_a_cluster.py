"""Kafka listeners on every node of a 3-node cluster of real processes (issue 14): each
node's Metadata names the same brokers and the same partition leaders (the partitions'
Raft leaders), real clients produce keyed records through any node and read them back
from every partition, a node that does not lead a partition answers
NOT_LEADER_OR_FOLLOWER and one that does not coordinate a group NOT_COORDINATOR, a group
of two consumers shares the topic, and an idempotent producer with retries loses and
duplicates nothing across a kill -9 of the node leading the most partitions."""

from __future__ import annotations

import datetime
import io
import json
import socket
import struct
import time
from collections import Counter
from typing import Any

import pytest
from confluent_kafka import Consumer as ConfluentConsumer
from confluent_kafka import Producer as ConfluentProducer
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kio.schema.errors import ErrorCode
from kio.schema.find_coordinator.v1.request import FindCoordinatorRequest
from kio.schema.find_coordinator.v1.response import FindCoordinatorResponse
from kio.schema.list_offsets.v1.request import (
    ListOffsetsPartition,
    ListOffsetsRequest,
    ListOffsetsTopic,
)
from kio.schema.list_offsets.v1.response import ListOffsetsResponse
from kio.schema.metadata.v1.request import MetadataRequest
from kio.schema.metadata.v1.response import MetadataResponse
from kio.schema.offset_fetch.v3.request import OffsetFetchRequest, OffsetFetchRequestTopic
from kio.schema.offset_fetch.v3.response import OffsetFetchResponse
from kio.schema.produce.v8.request import PartitionProduceData, ProduceRequest, TopicProduceData
from kio.schema.produce.v8.response import ProduceResponse
from kio.serial import entity_reader, entity_writer
from kio.static.primitive import i8, i16, i32, i32Timedelta, i64

from replog import Client
from replog.cluster.members import kafka_broker_id
from replog.server.kafka.records import BatchHeader, KafkaRecord, encode_batch
from tests.cluster.conftest import ProcCluster, ProcNode, wait_until
from tests.cluster.test_partitions_faults import BALANCE, create_topic, leaders

TOPIC = "kc"
PARTITIONS = 6
KAFKA = ("--kafka-addr", "127.0.0.1:0")


@pytest.fixture
def procs(direct_procs: ProcCluster) -> ProcCluster:
    """Nodes that talk straight to each other (no network faults here)."""
    return direct_procs


# -- the wire, byte by byte ---------------------------------------------------------------


def kafka_addr(node: ProcNode) -> str:
    """Where ``node``'s Kafka listener is (from its ready file)."""
    info: dict[str, str] = json.loads(node.ready_file.read_text())
    return info["kafka_addr"]


def call(addr: str, key: int, version: int, body: Any, response: type[Any]) -> Any:
    """One request to the Kafka listener at ``addr``; its decoded response."""
    buffer = io.BytesIO()
    entity_writer(type(body))(buffer, body)
    payload = struct.pack(">hhih", key, version, 1, 1) + b"t" + buffer.getvalue()
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(struct.pack(">i", len(payload)) + payload)
        size = struct.unpack(">i", _read(sock, 4))[0]
        frame = _read(sock, size)
    decoded, _ = entity_reader(response)(frame, 4)
    return decoded


def _read(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        assert chunk, "the broker closed the connection"
        data += chunk
    return data


def metadata(addr: str) -> Any:
    return call(addr, 3, 1, MetadataRequest(topics=None), MetadataResponse)


def view(addr: str) -> tuple[dict[int, str], dict[int, int], int, dict[int, int]] | None:
    """(broker id -> address, partition -> leader broker id, controller id, partition ->
    preferred leader) as the broker at ``addr`` answers Metadata; None while a partition of
    ``TOPIC`` has no leader."""
    answer = metadata(addr)
    brokers = {int(b.node_id): f"{b.host}:{b.port}" for b in answer.brokers}
    topic = next(t for t in answer.topics if t.name == TOPIC)
    if any(p.error_code is not ErrorCode.none or p.leader_id < 0 for p in topic.partitions):
        return None
    led = {int(p.partition_index): int(p.leader_id) for p in topic.partitions}
    preferred = {int(p.partition_index): int(p.replica_nodes[0]) for p in topic.partitions}
    return brokers, led, int(answer.controller_id), preferred


def agreed(
    procs: ProcCluster, *, preferred: bool = False
) -> tuple[dict[int, str], dict[int, int]] | None:
    """The brokers and leaders every running node's Metadata names, when they all name the
    same ones, every running node is a broker, and each leader is the Raft leader (with
    ``preferred``: the preferred leader too, where leader balancing leaves it)."""
    up = procs.up()
    views = [view(kafka_addr(n)) for n in up]
    if any(v is None for v in views) or len({json.dumps(v) for v in views}) != 1:
        return None
    brokers, led, controller, first = views[0]  # type: ignore[misc]
    if preferred and led != first:
        return None
    if not {kafka_addr(n) for n in up} <= set(brokers.values()):
        return None
    raft = leaders(procs, TOPIC)
    if raft is None or led != {p: kafka_broker_id(n) for p, n in raft.items()}:
        return None
    if controller != kafka_broker_id(procs.leader(timeout=0) or ""):
        return None
    return brokers, led


def sole_replicas_lead(procs: ProcCluster, topic: str) -> bool:
    """Whether every running node's Metadata names, as each partition of ``topic`` (one
    replica each, so most nodes hold none of it), its one replica as leader."""
    for node in procs.up():
        answer = next(t for t in metadata(kafka_addr(node)).topics if t.name == topic)
        for p in answer.partitions:
            if p.error_code is not ErrorCode.none or [p.leader_id] != list(p.replica_nodes):
                return False
    return True


def list_offset(addr: str, partition: int) -> tuple[ErrorCode, int]:
    """The error code and latest offset of ``TOPIC``/``partition`` at ``addr``."""
    request = ListOffsetsRequest(
        replica_id=i32(-1),  # type: ignore[arg-type]
        topics=(
            ListOffsetsTopic(
                name=TOPIC,  # type: ignore[arg-type]
                partitions=(
                    ListOffsetsPartition(partition_index=i32(partition), timestamp=i64(-1)),
                ),
            ),
        ),
    )
    part = call(addr, 2, 1, request, ListOffsetsResponse).topics[0].partitions[0]
    return part.error_code, int(part.offset)


def produce_raw(addr: str, partition: int) -> ErrorCode:
    """Produce one record to ``TOPIC``/``partition`` at ``addr``: the answer's error code."""
    batch = encode_batch(BatchHeader(), [KafkaRecord(b"raw", b"k")])
    request = ProduceRequest(
        acks=i16(-1), timeout=i32Timedelta.parse(datetime.timedelta(seconds=5)),
        topic_data=(TopicProduceData(name=TOPIC, partition_data=(  # type: ignore[arg-type]
            PartitionProduceData(index=i32(partition), records=bytes(batch)),  # type: ignore[arg-type]
        )),),
    )  # fmt: skip
    answer = call(addr, 0, 8, request, ProduceResponse)
    return answer.responses[0].partition_responses[0].error_code  # type: ignore[no-any-return]


def coordinator(addr: str, group: str) -> tuple[ErrorCode, int, str]:
    request = FindCoordinatorRequest(key=group, key_type=i8(0))
    answer = call(addr, 10, 1, request, FindCoordinatorResponse)
    return answer.error_code, int(answer.node_id), f"{answer.host}:{answer.port}"


def offset_fetch_code(addr: str, group: str) -> ErrorCode:
    request = OffsetFetchRequest(
        group_id=group,  # type: ignore[arg-type]
        topics=(OffsetFetchRequestTopic(name=TOPIC, partition_indexes=(i32(0),)),),  # type: ignore[arg-type]
    )
    answer = call(addr, 9, 3, request, OffsetFetchResponse)
    return answer.error_code  # type: ignore[no-any-return]


# -- clients ------------------------------------------------------------------------------


def read_all(bootstrap: str, ends: dict[int, int]) -> dict[int, list[tuple[int, bytes, bytes]]]:
    """Every record of ``TOPIC`` below ``ends`` (partition -> end offset), per partition:
    (offset, key, value), read with kafka-python from the beginning. (A cluster's offsets
    rise with gaps: the Raft no-op of each leader's term is a control record, which takes
    an offset and is never delivered.)"""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=10_000
    )
    out: dict[int, list[tuple[int, bytes, bytes]]] = {p: [] for p in ends}

    def short() -> bool:
        return any(out[p][-1][0] < ends[p] - 1 if out[p] else ends[p] > 0 for p in ends)

    try:
        consumer.assign([TopicPartition(TOPIC, p) for p in ends])
        consumer.seek_to_beginning()
        deadline = time.monotonic() + 30
        while short() and time.monotonic() < deadline:
            for tp, messages in consumer.poll(timeout_ms=500).items():
                out[tp.partition] += [(m.offset, m.key, m.value) for m in messages]
    finally:
        consumer.close()
    return out


def check_read_back(
    read: dict[int, list[tuple[int, bytes, bytes]]], acked: dict[bytes, tuple[int, int]]
) -> None:
    """Each partition holds exactly its acknowledged records, once each, at the offsets
    they were acknowledged at, in rising offsets and in the producer's order."""
    for p, records in read.items():
        offsets = [o for o, _, _ in records]
        assert offsets == sorted(set(offsets)), f"partition {p}: offsets not rising"
        values = [v for _, _, v in records]
        assert len(values) == len(set(values)), f"partition {p} holds a duplicate"
        assert {v: (p, o) for o, _, v in records} == {
            v: at for v, at in acked.items() if at[0] == p
        }, f"partition {p}"


def ends_of(acked: dict[bytes, tuple[int, int]]) -> dict[int, int]:
    """Partition -> one past its last acknowledged offset (0: none acknowledged)."""
    ends = dict.fromkeys(range(PARTITIONS), 0)
    for p, o in acked.values():
        ends[p] = max(ends[p], o + 1)
    return ends


def produce_keyed(bootstrap: str, tag: str, count: int) -> dict[bytes, tuple[int, int]]:
    """``count`` keyed records through confluent-kafka (idempotent): value -> (partition,
    offset) of each acknowledged one."""
    producer = ConfluentProducer(
        {"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5}
    )
    acked: dict[bytes, tuple[int, int]] = {}

    def report(error: Any, message: Any) -> None:
        assert error is None, error
        acked[message.value()] = (message.partition(), message.offset())

    for i in range(count):
        value = f"{tag}-{i}".encode()
        producer.produce(TOPIC, value, key=b"key-%d" % i, on_delivery=report)
    assert producer.flush(30) == 0
    return acked


# -- the tests ----------------------------------------------------------------------------


def test_kafka_clients_use_every_node_of_a_cluster_and_each_names_the_same_leaders(
    procs: ProcCluster,
) -> None:
    procs.bootstrap(3, *KAFKA, *BALANCE)
    create_topic(procs, TOPIC, PARTITIONS)
    with Client(procs.addresses(), timeout=10) as client:
        client.create_topic("kc-one", 3, replication_factor=1)
    nodes = [procs.nodes[n] for n in procs.names]
    addrs = [kafka_addr(n) for n in nodes]
    brokers, led = wait_until(
        lambda: agreed(procs, preferred=True), 30, "every node's Metadata to agree"
    )
    assert brokers == {kafka_broker_id(n.name): kafka_addr(n) for n in nodes}
    # a node names the leaders of partitions it holds no replica of too (it asks them)
    wait_until(lambda: sole_replicas_lead(procs, "kc-one"), 10, "kc-one's leaders named")

    acked = produce_keyed(addrs[0], "c", 60)  # confluent-kafka, bootstrapped on one node
    python = KafkaProducer(bootstrap_servers=addrs[1])  # kafka-python, on another
    try:
        futures = {
            b"p-%d" % i: python.send(TOPIC, b"p-%d" % i, key=b"key-%d" % i) for i in range(60)
        }
        for value, future in futures.items():
            meta = future.get(timeout=20)
            acked[value] = (meta.partition, meta.offset)
    finally:
        python.close(timeout=10)
    ends = ends_of(acked)
    assert sum(1 for end in ends.values() if end) > 1, "keyed records spread over partitions"
    check_read_back(read_all(addrs[2], ends), acked)

    by_id = {kafka_broker_id(n.name): kafka_addr(n) for n in nodes}
    for p, leader in led.items():
        others = [a for i, a in by_id.items() if i != leader]
        assert list_offset(by_id[leader], p) == (ErrorCode.none, ends[p])
        for addr in others:  # followers: the client must go to the leader
            assert list_offset(addr, p)[0] is ErrorCode.not_leader_or_follower
        assert produce_raw(others[0], p) is ErrorCode.not_leader_or_follower
        assert list_offset(by_id[leader], p) == (ErrorCode.none, ends[p]), "nothing appended"

    group = "kc-group"
    found = {coordinator(a, group) for a in addrs}
    assert len(found) == 1, found
    code, coordinating, where = found.pop()
    assert code is ErrorCode.none and where == by_id[coordinating]
    for addr in (a for i, a in by_id.items() if i != coordinating):
        assert offset_fetch_code(addr, group) is ErrorCode.not_coordinator
    consume_with_a_group_of_two(addrs, group, acked)


def consume_with_a_group_of_two(
    addrs: list[str], group: str, acked: dict[bytes, tuple[int, int]]
) -> None:
    """Two confluent consumers of one group, bootstrapped on different nodes, read every
    record between them and each owns some of the partitions."""
    consumers = [
        ConfluentConsumer(
            {
                "bootstrap.servers": addr,
                "group.id": group,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "session.timeout.ms": 6000,
                "heartbeat.interval.ms": 300,
                "partition.assignment.strategy": "range",
            }
        )
        for addr in addrs[:2]
    ]
    seen: dict[int, set[tuple[int, int]]] = {0: set(), 1: set()}
    try:
        for consumer in consumers:
            consumer.subscribe([TOPIC])
        deadline = time.monotonic() + 40
        owners: set[int] = set()
        while time.monotonic() < deadline:
            for index, consumer in enumerate(consumers):
                message = consumer.poll(0.1)
                if message is not None and message.error() is None:
                    seen[index].add((message.partition(), message.offset()))
                    owners.add(index)
            both = all(consumer.assignment() for consumer in consumers)
            if both and seen[0] | seen[1] >= set(acked.values()):
                break
        assert seen[0] | seen[1] == set(acked.values())
        assert all(consumer.assignment() for consumer in consumers), "the group split"
    finally:
        for consumer in consumers:
            consumer.close()


def test_an_idempotent_kafka_producer_loses_and_duplicates_nothing_across_a_kill_9(
    procs: ProcCluster,
) -> None:
    procs.bootstrap(3, *KAFKA, *BALANCE)
    create_topic(procs, TOPIC, PARTITIONS)
    _, led = wait_until(lambda: agreed(procs), 30, "every node's Metadata to agree")
    busiest_id = Counter(led.values()).most_common(1)[0][0]
    victim = next(n for n in procs.nodes.values() if kafka_broker_id(n.name) == busiest_id)
    survivors = [n for n in procs.nodes.values() if n is not victim]
    producer = ConfluentProducer(
        {
            "bootstrap.servers": ",".join(kafka_addr(n) for n in procs.nodes.values()),
            "enable.idempotence": True,
            "linger.ms": 2,
            "message.timeout.ms": 40_000,
            "retry.backoff.ms": 50,
        }
    )
    acked: dict[bytes, tuple[int, int]] = {}
    failed: list[Any] = []

    def report(error: Any, message: Any) -> None:
        if error is None:
            acked[message.value()] = (message.partition(), message.offset())
        else:
            failed.append(error)

    for i in range(600):
        producer.produce(TOPIC, b"v-%d" % i, key=b"key-%d" % i, on_delivery=report)
        producer.poll(0)
        if i == 200:
            assert producer.flush(20) == 0
            victim.kill()
        time.sleep(0.002)
    assert producer.flush(60) == 0
    assert not failed, failed[:3]
    assert len(acked) == 600
    brokers, after = wait_until(lambda: agreed(procs), 30, "the survivors to agree")
    assert busiest_id not in brokers, "a dead node is no broker"
    assert busiest_id not in after.values(), "its partitions are led by the survivors"
    ends = ends_of(acked)
    check_read_back(read_all(",".join(kafka_addr(n) for n in survivors), ends), acked)
    for p in range(PARTITIONS):  # one producer: each partition in the order it sent
        order = [
            int(v.split(b"-")[1])
            for v, at in sorted(acked.items(), key=lambda x: x[1])
            if at[0] == p
        ]
        assert order == sorted(order), f"partition {p} is out of the producer's order"
