"""The Python client: Client, AsyncClient and Producer against real servers."""

from __future__ import annotations

import socket
import threading

import pytest

from replog import (
    AsyncClient,
    Client,
    InvalidArgumentError,
    OffsetOutOfRangeError,
    Producer,
    RecordTooLargeError,
    UnavailableError,
)
from replog.client import RetryPolicy
from replog.v1.record_pb2 import Record
from tests.integration.conftest import ThreadedServer

FAST_RETRY = RetryPolicy(max_attempts=3, initial_backoff_s=0.01, max_backoff_s=0.05)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_produce_and_consume_round_trip(server: ThreadedServer) -> None:
    with Client(server.grpc_address) as client:
        assert client.produce(b"a") == 0
        assert client.produce(b"b", key=b"k", headers={"h": b"1"}) == 1
        assert client.produce_batch([b"c", Record(value=b"d", key=b"kk")]) == (2, 2)
        record = client.consume(1)
        assert (record.value, record.key, record.headers[0].value) == (b"b", b"k", b"1")
        batch = client.consume_batch(0, max_records=10)
        assert [r.value for r in batch.records] == [b"a", b"b", b"c", b"d"]
        assert batch.high_watermark == 4 and batch.next_offset == 4
        assert [s.is_leader for s in client.servers()] == [True]


def test_errors_map_to_the_replog_hierarchy(server_factory) -> None:
    server = server_factory(max_record_bytes=100)
    with Client(server.grpc_address, retry=FAST_RETRY) as client:
        client.produce(b"a")
        with pytest.raises(OffsetOutOfRangeError) as info:
            client.consume(5)
        assert (info.value.offset, info.value.lowest, info.value.next_offset) == (5, 0, 1)
        with pytest.raises(RecordTooLargeError):
            client.produce(b"x" * 500)
        with pytest.raises(InvalidArgumentError):
            client.produce_batch([])
        with pytest.raises(InvalidArgumentError):
            client.consume(-1)


def test_a_server_that_is_down_is_unavailable_and_certainly_not_applied() -> None:
    with Client(f"127.0.0.1:{free_port()}", retry=FAST_RETRY, timeout=5) as client:
        with pytest.raises(UnavailableError) as info:
            client.produce(b"a")
        assert info.value.certainly_not_applied


def test_a_bad_address_is_an_invalid_argument() -> None:
    with pytest.raises(InvalidArgumentError):
        Client("no-port-here")


def test_stream_sees_existing_and_new_records(server: ThreadedServer) -> None:
    with Client(server.grpc_address) as client:
        client.produce_batch([b"a", b"b"])
        stream = client.stream(0)
        assert [next(stream).value, next(stream).value] == [b"a", b"b"]
        client.produce(b"c")
        assert next(stream).value == b"c"
        stream.close()


def test_reads_are_retried_across_a_server_restart(server_factory, tmp_path) -> None:
    port = free_port()
    data = tmp_path / "restart"
    first = server_factory(data, grpc_addr=f"127.0.0.1:{port}")
    retry = RetryPolicy(max_attempts=40, initial_backoff_s=0.02, max_backoff_s=0.2)
    with Client(first.grpc_address, retry=retry) as client:
        assert client.produce(b"before") == 0
        first.stop()
        restarted = threading.Event()

        def restart() -> None:
            server_factory(data, grpc_addr=f"127.0.0.1:{port}")
            restarted.set()

        thread = threading.Thread(target=restart)
        thread.start()
        assert client.consume(0).value == b"before"  # retried until the server is back
        thread.join()
        assert restarted.is_set()
        assert client.produce(b"after") == 1


async def test_async_client_round_trip_and_stream(server: ThreadedServer) -> None:
    async with AsyncClient(server.grpc_address) as client:
        assert await client.produce(b"a") == 0
        assert await client.produce_batch([b"b", b"c"]) == (1, 2)
        assert (await client.consume(2)).value == b"c"
        batch = await client.consume_batch(0)
        assert len(batch.records) == 3
        with pytest.raises(OffsetOutOfRangeError):
            await client.consume(3)
        stream = client.stream(1)
        assert (await anext(stream)).value == b"b"
        assert (await anext(stream)).value == b"c"
        await client.produce(b"d")
        assert (await anext(stream)).value == b"d"
        await stream.aclose()
        assert (await client.servers())[0].is_leader


def test_producer_resolves_every_future_to_its_offset(server: ThreadedServer) -> None:
    with Client(server.grpc_address) as client:
        with Producer(client, linger_ms=2, max_batch_records=100, max_in_flight=3) as producer:
            futures = [producer.send(b"v%d" % i) for i in range(1000)]
            producer.flush()
            assert all(f.done() for f in futures)
        offsets = [f.result() for f in futures]
        assert sorted(offsets) == list(range(1000))
        for i in (0, 499, 999):
            assert client.consume(offsets[i]).value == b"v%d" % i


def test_producer_batches_by_bytes_and_keeps_keys(server: ThreadedServer) -> None:
    with Producer(server.grpc_address, max_batch_bytes=1024, linger_ms=50) as producer:
        futures = [producer.send(b"x" * 300, key=b"k%d" % i) for i in range(20)]
    with Client(server.grpc_address) as client:
        for i, future in enumerate(futures):
            assert client.consume(future.result()).key == b"k%d" % i


def test_producer_fails_futures_when_the_server_is_down() -> None:
    producer = Producer(
        Client(f"127.0.0.1:{free_port()}", retry=FAST_RETRY, timeout=5), delivery_timeout_ms=2_000
    )
    future = producer.send(b"a")
    with pytest.raises(UnavailableError):
        future.result(timeout=30)
    producer.close()
    producer.client.close()
