"""The batching Producer against a real server: offsets, order, errors, flush and close."""

from __future__ import annotations

from concurrent.futures import Future, as_completed

import pytest

from replog import Client, InvalidArgumentError, Producer, RecordTooLargeError
from replog.v1.record_pb2 import Record
from tests.integration.conftest import ThreadedServer

LONG_LINGER_MS = 60_000  # a batch only leaves on flush/close or when full


def values_at(client: Client, offsets: list[int]) -> list[bytes]:
    return [client.consume(offset).value for offset in offsets]


def test_records_of_one_batch_get_consecutive_offsets_in_send_order(
    server: ThreadedServer,
) -> None:
    with Producer(server.grpc_address, linger_ms=LONG_LINGER_MS) as producer:
        futures = [producer.send(b"v%d" % i) for i in range(50)]
        producer.flush()
    assert [f.result() for f in futures] == list(range(50))


def test_with_one_batch_in_flight_offsets_follow_send_order_across_batches(
    server: ThreadedServer,
) -> None:
    with Producer(server.grpc_address, max_batch_records=7, max_in_flight=1) as producer:
        futures = [producer.send(b"v%d" % i) for i in range(100)]
    offsets = [f.result() for f in futures]
    assert offsets == list(range(100))
    with Client(server.grpc_address) as client:
        assert values_at(client, [0, 42, 99]) == [b"v0", b"v42", b"v99"]


def test_send_many_queues_values_and_records_in_order(server: ThreadedServer) -> None:
    batch = [b"a", Record(value=b"b", key=b"k"), b"", b"c" * 20_000]
    with Producer(server.grpc_address, max_batch_records=3, max_in_flight=1) as producer:
        futures = producer.send_many(batch * 5)
    offsets = [f.result() for f in futures]
    assert offsets == list(range(20))
    with Client(server.grpc_address) as client:
        assert values_at(client, offsets[:4]) == [b"a", b"b", b"", b"c" * 20_000]
        assert client.consume(offsets[1]).key == b"k"


def test_send_many_checks_every_value_before_queueing_any(server: ThreadedServer) -> None:
    with Producer(server.grpc_address) as producer:
        with pytest.raises(InvalidArgumentError):
            producer.send_many([b"ok", "not bytes"])  # type: ignore[list-item]
        producer.flush()
    with Client(server.grpc_address) as client:
        assert client.consume_batch(0).records == []


def test_an_oversized_record_fails_only_its_own_future(server_factory) -> None:
    server = server_factory(max_record_bytes=100)
    with Producer(server.grpc_address, linger_ms=LONG_LINGER_MS, max_in_flight=1) as producer:
        small = [producer.send(b"s%d" % i) for i in range(5)]
        big = producer.send(b"x" * 500)
        more = [producer.send(b"t%d" % i) for i in range(5)]
    with pytest.raises(RecordTooLargeError):
        big.result()
    assert [f.result() for f in small + more] == list(range(10))
    with Client(server.grpc_address) as client:
        assert values_at(client, [4, 5]) == [b"s4", b"t0"]


def test_a_record_over_the_batch_byte_limit_travels_alone(server: ThreadedServer) -> None:
    with Producer(server.grpc_address, max_batch_bytes=100, max_in_flight=1) as producer:
        futures = [producer.send(b"x" * 300), producer.send(b"y"), producer.send(b"z" * 300)]
    assert [f.result() for f in futures] == [0, 1, 2]


def test_flush_sends_a_lingering_batch_and_waits_for_its_answer(server: ThreadedServer) -> None:
    with Producer(server.grpc_address, linger_ms=LONG_LINGER_MS) as producer:
        futures = [producer.send(b"v") for _ in range(3)]
        assert not any(f.done() for f in futures)
        producer.flush(timeout=30)
        assert all(f.done() for f in futures)
        producer.flush()  # nothing queued: returns at once


def test_close_flushes_and_then_refuses_records(server: ThreadedServer) -> None:
    producer = Producer(server.grpc_address, linger_ms=LONG_LINGER_MS)
    future = producer.send(b"last")
    producer.close()
    assert future.result(timeout=0) == 0
    with pytest.raises(InvalidArgumentError):
        producer.send(b"late")
    producer.close()  # idempotent


def test_back_pressure_lets_a_small_buffer_carry_many_records(server: ThreadedServer) -> None:
    with Producer(
        server.grpc_address, max_batch_records=10, max_buffered_records=10, max_in_flight=2
    ) as producer:
        futures = [producer.send(b"v%d" % i) for i in range(300)]
        futures += producer.send_many([b"m"] * 25)
    assert sorted(f.result() for f in futures) == list(range(325))


def test_futures_work_with_callbacks_and_as_completed(server: ThreadedServer) -> None:
    seen: list[int] = []
    with Producer(server.grpc_address, linger_ms=LONG_LINGER_MS) as producer:
        futures: list[Future[int]] = [producer.send(b"v%d" % i) for i in range(4)]
        futures[0].add_done_callback(lambda f: seen.append(f.result()))
        producer.flush()
        assert sorted(f.result() for f in as_completed(futures, timeout=30)) == [0, 1, 2, 3]
    assert seen == [0]


def test_a_value_of_the_wrong_type_is_refused_at_send(server: ThreadedServer) -> None:
    with Producer(server.grpc_address) as producer, pytest.raises(InvalidArgumentError):
        producer.send("text")  # type: ignore[arg-type]
