"""The idempotent Producer on one real node: send order is append order, with batches in flight.

``REPLOG_PRODUCER_ORDER_RUNS`` and ``REPLOG_PRODUCER_ORDER_RECORDS`` make it a soak (e.g.
20 runs of 1,000,000 records); the defaults keep it a few seconds.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import time

import pytest

from replog import AsyncClient, Client, Producer, UnavailableError
from replog.client import RetryPolicy
from tests.integration.conftest import ThreadedServer

RUNS = int(os.environ.get("REPLOG_PRODUCER_ORDER_RUNS", "3"))
RECORDS = int(os.environ.get("REPLOG_PRODUCER_ORDER_RECORDS", "100000"))


def read_values(client: Client, start: int, count: int) -> list[bytes]:
    values: list[bytes] = []
    for batch in client.stream_batches(start, max_records=10_000):
        values += [r.value for r in batch.records]
        if len(values) >= count:
            break
    return values


@pytest.mark.parametrize("run", range(RUNS))
def test_records_sent_with_four_batches_in_flight_are_appended_once_in_send_order(
    server: ThreadedServer, run: int
) -> None:
    values = [b"r%d-%d" % (run, i) for i in range(RECORDS)]
    with Producer(server.grpc_address, max_in_flight=4, max_batch_records=2_000) as producer:
        assert producer.idempotent
        futures = [producer.send(v) for v in values]
    offsets = [f.result() for f in futures]
    assert all(a < b for a, b in itertools.pairwise(offsets)), "out of send order"
    with Client(server.grpc_address) as client:
        assert read_values(client, offsets[0], RECORDS) == values  # nothing twice, no gap


def test_send_many_and_keyed_sends_keep_send_order_per_partition(server: ThreadedServer) -> None:
    with Producer(server.grpc_address, max_in_flight=4, max_batch_records=100) as producer:
        futures = producer.send_many([b"m%d" % i for i in range(5_000)])
        futures += [producer.send(b"k%d" % i, key=b"key-%d" % (i % 7)) for i in range(5_000)]
    offsets = [f.result() for f in futures]
    assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)


def test_acks_leader_is_sent_and_answered(server: ThreadedServer) -> None:
    with Producer(server.grpc_address, acks="leader") as producer:
        futures = [producer.send(b"v%d" % i) for i in range(100)]
    assert [f.result() for f in futures] == list(range(100))


def test_with_no_server_a_record_fails_only_after_the_delivery_timeout_with_the_cause() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        addr = f"127.0.0.1:{s.getsockname()[1]}"
    client = Client(addr, timeout=1.0, retry=RetryPolicy(max_attempts=2))
    producer = Producer(client, delivery_timeout_ms=1_500, retry_backoff_ms=50)
    sent = time.monotonic()
    future = producer.send(b"v")
    error = future.exception(timeout=30)
    failed = time.monotonic()
    assert isinstance(error, UnavailableError)
    assert failed - sent >= 1.5
    producer.close()
    client.close()


def test_both_clients_get_distinct_producer_ids(server: ThreadedServer) -> None:
    async def async_id() -> tuple[int, int]:
        async with AsyncClient(server.grpc_address) as client:
            return await client.init_producer_id()

    with Client(server.grpc_address) as client:
        ids = {client.init_producer_id(), client.init_producer_id(), asyncio.run(async_id())}
    assert len(ids) == 3 and all(pid > 0 and epoch == 0 for pid, epoch in ids)


def test_keyless_batches_take_a_topics_partitions_in_turn_each_kept_in_send_order(
    server: ThreadedServer,
) -> None:
    with Client(server.grpc_address) as client:
        client.create_topic("spread", 3)
        with Producer(client, topic="spread", max_batch_records=50) as producer:
            futures = [producer.send(b"v%d" % i) for i in range(3_000)]
        placed = [(f.partition, f.result()) for f in futures]
    assert {p for p, _ in placed} == {0, 1, 2}
    for partition in range(3):
        offsets = [o for p, o in placed if p == partition]
        assert offsets == list(range(len(offsets))), f"partition {partition}"
