"""Streams are bounded: per identity in number, per stream in the bytes a message holds; and
connections that never finish a request are closed after the idle timeout."""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack

import grpc
import pytest

from replog.client import Client, RetryPolicy
from replog.server.limits import DEFAULT_MAX_STREAMS_PER_IDENTITY
from replog.v1 import log_pb2
from tests.integration.conftest import ThreadedServer, wait_until

pytestmark = pytest.mark.timeout(120)

MIB = 1 << 20


def _consume_stream(channel: grpc.Channel) -> Callable[..., Iterator[log_pb2.ConsumeResponse]]:
    return channel.unary_stream(
        "/replog.v1.Log/ConsumeStream",
        request_serializer=log_pb2.ConsumeRequest.SerializeToString,
        response_deserializer=log_pb2.ConsumeResponse.FromString,
    )


def _open_stream(channel: grpc.Channel) -> Iterator[log_pb2.ConsumeResponse]:
    """A tailing ConsumeStream from 0, once its first record came (so the server holds it)."""
    call = _consume_stream(channel)(log_pb2.ConsumeRequest(offset=0), timeout=60)
    assert next(call).record.value == b"r"
    return call


def _sse_status(server: ThreadedServer) -> tuple[int, dict | None]:
    host, port = server.http_address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("GET", "/v1/records:stream?offset=0")
        response = conn.getresponse()
        if response.status != 200:
            return response.status, json.loads(response.read())
        return 200, None
    finally:
        conn.close()


def test_one_identity_past_the_default_stream_limit_is_refused_resource_exhausted(
    server: ThreadedServer,
) -> None:
    Client(server.grpc_address).produce(b"r")
    with grpc.insecure_channel(server.grpc_address) as channel, ExitStack() as calls:
        for _ in range(DEFAULT_MAX_STREAMS_PER_IDENTITY):
            calls.callback(_open_stream(channel).cancel)
        extra = _consume_stream(channel)(log_pb2.ConsumeRequest(offset=0), timeout=10)
        with pytest.raises(grpc.RpcError) as info:
            next(extra)
    assert info.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "max_streams_per_identity" in (info.value.details() or "")


def test_grpc_and_http_streams_share_the_limit_and_a_closed_one_frees_its_slot(
    server_factory: Callable[..., ThreadedServer],
) -> None:
    server = server_factory(max_streams_per_identity=2)
    Client(server.grpc_address).produce(b"r")
    with grpc.insecure_channel(server.grpc_address) as channel:
        first, second = _open_stream(channel), _open_stream(channel)
        status, body = _sse_status(server)
        assert status == 429 and body is not None
        assert body["error"]["code"] == "RESOURCE_EXHAUSTED"
        with pytest.raises(grpc.RpcError) as info:
            batch = channel.unary_stream(
                "/replog.v1.Log/ConsumeBatchStream",
                request_serializer=log_pb2.ConsumeBatchRequest.SerializeToString,
            )(log_pb2.ConsumeBatchRequest(offset=0), timeout=10)
            next(batch)
        assert info.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        first.cancel()
        slots = server.agent._service.limits.streams  # type: ignore[union-attr]
        wait_until(lambda: slots.open_count(None) == 1, 10, "the cancelled stream's slot")
        third = _open_stream(channel)
        third.cancel()
        second.cancel()
    wait_until(lambda: slots.open_count(None) == 0, 10, "every slot back")


def test_a_stream_message_holds_at_most_about_one_mib_whatever_max_bytes_asks(
    server: ThreadedServer,
) -> None:
    with Client(server.grpc_address) as client:
        client.produce_batch([bytes([i]) * (512 * 1024) for i in range(6)])
    with grpc.insecure_channel(server.grpc_address) as channel:
        call = channel.unary_stream(
            "/replog.v1.Log/ConsumeBatchStream",
            request_serializer=log_pb2.ConsumeBatchRequest.SerializeToString,
            response_deserializer=log_pb2.ConsumeBatchResponse.FromString,
        )(log_pb2.ConsumeBatchRequest(offset=0, max_bytes=2**32 - 1), timeout=10)
        first = next(call)
        call.cancel()
    assert sum(len(r.value) for r in first.records) <= MIB + 512 * 1024  # one record more
    assert first.next_offset == first.records[-1].offset + 1


def test_a_batch_read_is_clamped_to_the_server_limits(server: ThreadedServer) -> None:
    with Client(server.grpc_address) as client:
        for i in range(20):
            client.produce(bytes([i]) * (1000 * 1024))
        batch = client.consume_batch(0, max_records=2**32 - 1, max_bytes=2**32 - 1)
        assert 1 <= len(batch.records) < 20
        assert sum(len(r.value) for r in batch.records) <= 17 * MIB
        assert batch.next_offset == batch.records[-1].offset + 1
        for _ in range(4):
            client.produce_batch([b""] * 25_000)
        batch = client.consume_batch(20, max_records=2**32 - 1, max_bytes=2**32 - 1)
        assert len(batch.records) == 100_000  # the most one read returns


# -- idle connections ---------------------------------------------------------------------------

IDLE_S = 0.5
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


@pytest.fixture
def idle_server(server_factory: Callable[..., ThreadedServer]) -> ThreadedServer:
    return server_factory(idle_timeout_s=IDLE_S)


def _closed_within(address: str, send: bytes, limit_s: float) -> float | None:
    """Seconds until the server closed a connection that sent ``send`` (None: still open)."""
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=limit_s) as sock:
        started = time.monotonic()
        if send:
            sock.sendall(send)
        try:
            while sock.recv(65536):  # a gRPC server sends its SETTINGS first
                pass
        except TimeoutError:
            return None
        except ConnectionResetError:
            pass
        return time.monotonic() - started


@pytest.mark.parametrize(
    ("api", "send"),
    [
        ("http", b""),
        ("http", b"GET /healthz HTTP/1.1\r\nHost: x\r\n"),
        ("grpc", b""),
        ("grpc", b"PRI * HTTP/2.0\r\n"),
        ("grpc", PREFACE + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"),  # and empty SETTINGS
    ],
    ids=["http-nothing", "http-half-headers", "grpc-nothing", "grpc-half-preface", "grpc-no-call"],
)
def test_a_connection_that_never_finishes_a_request_is_closed_after_the_idle_timeout(
    idle_server: ThreadedServer, api: str, send: bytes
) -> None:
    address = idle_server.http_address if api == "http" else idle_server.grpc_address
    took = _closed_within(address, send, limit_s=IDLE_S + 5)
    assert took is not None, "the server kept an idle connection open"
    assert took >= IDLE_S * 0.5


def test_streams_outlive_the_idle_timeout(idle_server: ThreadedServer) -> None:
    host, port = idle_server.http_address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    with (
        Client(idle_server.grpc_address) as client,
        grpc.insecure_channel(idle_server.grpc_address) as channel,
    ):
        client.produce(b"r")
        grpc_stream = _open_stream(channel)
        conn.request("GET", "/v1/records:stream?offset=0")
        sse = conn.getresponse()
        assert sse.status == 200
        time.sleep(IDLE_S * 3)  # idle on purpose: longer than the idle timeout
        client.produce(b"later")
        assert next(grpc_stream).record.value == b"later"
        lines = [sse.readline() for _ in range(8)]
        grpc_stream.cancel()
    conn.close()
    assert sum(line.startswith(b"data: ") for line in lines) == 2


def test_a_client_idle_past_the_timeout_calls_again_without_an_error(
    idle_server: ThreadedServer,
) -> None:
    with Client(idle_server.grpc_address, retry=RetryPolicy(max_attempts=1)) as client:
        first = client.produce(b"before")
        for _ in range(3):
            time.sleep(IDLE_S * 2)  # idle on purpose: the server closes the connection
            assert client.produce(b"after") > first
        assert len(client.consume_batch(0).records) == 4
