"""The gRPC API, called with the generated stubs (as any gRPC client would)."""

from __future__ import annotations

import threading

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from replog.v1 import log_pb2, log_pb2_grpc
from replog.v1.record_pb2 import Header, Record
from tests.integration.conftest import ThreadedServer


@pytest.fixture
def stub(server: ThreadedServer):
    with grpc.insecure_channel(server.grpc_address) as channel:
        yield log_pb2_grpc.LogStub(channel)


def produce(stub, value: bytes) -> int:
    return stub.Produce(log_pb2.ProduceRequest(record=Record(value=value))).offset


def test_produce_then_consume_returns_the_record_with_offset_and_timestamp(stub) -> None:
    record = Record(value=b"v", key=b"k", headers=[Header(key="h", value=b"x")])
    assert stub.Produce(log_pb2.ProduceRequest(record=record)).offset == 0
    got = stub.Consume(log_pb2.ConsumeRequest(offset=0)).record
    assert (got.value, got.key, got.offset) == (b"v", b"k", 0)
    assert got.headers[0].key == "h" and got.timestamp_ms > 0


def test_produce_batch_appends_contiguous_offsets(stub) -> None:
    produce(stub, b"first")
    records = [Record(value=b"%d" % i) for i in range(5)]
    response = stub.ProduceBatch(log_pb2.ProduceBatchRequest(records=records))
    assert (response.base_offset, response.count) == (1, 5)
    batch = stub.ConsumeBatch(log_pb2.ConsumeBatchRequest(offset=1, max_records=10))
    assert [r.value for r in batch.records] == [b"%d" % i for i in range(5)]
    assert [r.offset for r in batch.records] == [1, 2, 3, 4, 5]
    assert batch.high_watermark == 6


def test_produce_stream_answers_each_request_in_order(stub) -> None:
    requests = (log_pb2.ProduceRequest(record=Record(value=b"%d" % i)) for i in range(50))
    offsets = [r.offset for r in stub.ProduceStream(requests)]
    assert offsets == list(range(50))


def test_consume_batch_long_polls_until_a_record_arrives(stub) -> None:
    produce(stub, b"a")
    timer = threading.Timer(0.2, produce, (stub, b"b"))
    timer.start()
    batch = stub.ConsumeBatch(log_pb2.ConsumeBatchRequest(offset=1, max_wait_ms=10_000))
    timer.join()
    assert [r.value for r in batch.records] == [b"b"]


def test_consume_batch_at_the_end_without_wait_is_empty(stub) -> None:
    produce(stub, b"a")
    batch = stub.ConsumeBatch(log_pb2.ConsumeBatchRequest(offset=1))
    assert list(batch.records) == [] and batch.high_watermark == 1


def test_consume_stream_sends_existing_records_then_tails_new_ones(stub) -> None:
    for i in range(3):
        produce(stub, b"old%d" % i)
    call = stub.ConsumeStream(log_pb2.ConsumeRequest(offset=1))
    seen = [next(call).record.value for _ in range(2)]
    produce(stub, b"new")
    seen.append(next(call).record.value)
    call.cancel()
    assert seen == [b"old1", b"old2", b"new"]


def test_consume_batch_stream_tails(stub) -> None:
    produce(stub, b"a")
    call = stub.ConsumeBatchStream(log_pb2.ConsumeBatchRequest(offset=0))
    first = next(call)
    produce(stub, b"b")
    second = next(call)
    call.cancel()
    assert [r.value for r in first.records] == [b"a"]
    assert [r.value for r in second.records] == [b"b"]


@pytest.mark.parametrize("offset", [1, 99])
def test_consume_past_the_end_is_out_of_range_with_the_valid_range(stub, offset: int) -> None:
    produce(stub, b"a")
    with pytest.raises(grpc.RpcError) as info:
        stub.Consume(log_pb2.ConsumeRequest(offset=offset))
    assert info.value.code() == grpc.StatusCode.OUT_OF_RANGE
    assert "valid offsets are 0..0" in info.value.details()


def test_stream_and_batch_past_the_end_are_out_of_range(stub) -> None:
    with pytest.raises(grpc.RpcError) as info:
        stub.ConsumeBatch(log_pb2.ConsumeBatchRequest(offset=5))
    assert info.value.code() == grpc.StatusCode.OUT_OF_RANGE
    with pytest.raises(grpc.RpcError) as info:
        next(stub.ConsumeStream(log_pb2.ConsumeRequest(offset=5)))
    assert info.value.code() == grpc.StatusCode.OUT_OF_RANGE


def test_a_record_over_the_limit_is_invalid_argument(server_factory) -> None:
    server = server_factory(max_record_bytes=1000)
    with grpc.insecure_channel(server.grpc_address) as channel:
        stub = log_pb2_grpc.LogStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            produce(stub, b"x" * 2000)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert produce(stub, b"small") == 0  # nothing was appended by the failed call


def test_empty_batch_is_invalid_argument(stub) -> None:
    with pytest.raises(grpc.RpcError) as info:
        stub.ProduceBatch(log_pb2.ProduceBatchRequest())
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_calls_after_shutdown_began_are_unavailable(server: ThreadedServer, stub) -> None:
    server.agent._service.draining = True  # what shutdown() does first
    with pytest.raises(grpc.RpcError) as info:
        produce(stub, b"a")
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def test_get_servers_returns_this_server_as_leader(server: ThreadedServer, stub) -> None:
    servers = stub.GetServers(log_pb2.GetServersRequest()).servers
    assert [(s.rpc_addr, s.is_leader) for s in servers] == [(server.grpc_address, True)]


def test_health_and_reflection_are_served(server: ThreadedServer) -> None:
    with grpc.insecure_channel(server.grpc_address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        status = health.Check(health_pb2.HealthCheckRequest(service="replog.v1.Log")).status
        assert status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        response = next(reflection.ServerReflectionInfo(iter([request])))
        names = {s.name for s in response.list_services_response.service}
        assert {"replog.v1.Log", "grpc.health.v1.Health"} <= names


def test_a_record_with_a_control_type_is_invalid_argument(stub) -> None:
    # Non-zero types are replication's control records (no-op, configuration, address book).
    reserved = Record(value=b"v", key=b"k", type=3)
    for call in (
        lambda: stub.Produce(log_pb2.ProduceRequest(record=reserved)),
        lambda: stub.ProduceBatch(log_pb2.ProduceBatchRequest(records=[reserved])),
    ):
        with pytest.raises(grpc.RpcError) as info:
            call()
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "reserved" in info.value.details()
    assert produce(stub, b"fine") == 0  # nothing was appended by the refused calls
