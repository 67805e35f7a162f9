"""Bad input to the gRPC API: INVALID_ARGUMENT without internals, and nothing changed.

grpcio answers a request deserializer's exception with UNKNOWN and the exception's class and
text; malformed bytes must be INVALID_ARGUMENT instead, with a plain message. And an empty
produce follows the HTTP API's rule.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import grpc
import pytest

from replog.v1 import log_pb2, log_pb2_grpc
from replog.v1.record_pb2 import Record
from tests.cluster.conftest import Cluster
from tests.integration.conftest import ThreadedServer, wait_until
from tests.integration.test_http_bad_input import assert_json_error, high_watermark, post

INTERNALS = ("DecodeError", "google.protobuf", "Traceback", "Error parsing", "<class")


@pytest.fixture
def channel(server: ThreadedServer) -> Any:
    with grpc.insecure_channel(server.grpc_address) as channel:
        yield channel


GARBAGE = [b"\x0a\x05ab", b"\xff" * 11, b"\x08"]


@pytest.mark.parametrize("garbage", GARBAGE, ids=["short-field", "bad-varint", "cut-varint"])
@pytest.mark.parametrize(
    ("method", "streaming"),
    [
        ("Produce", False),
        ("ProduceBatch", False),
        ("Consume", False),
        ("ConsumeBatch", False),
        ("ConsumeStream", True),
        ("ConsumeBatchStream", True),
        ("GetServers", False),
    ],
)
def test_malformed_protobuf_is_invalid_argument_without_internals(
    channel: Any, method: str, streaming: bool, garbage: bytes
) -> None:
    path = f"/replog.v1.Log/{method}"
    if streaming:
        call = channel.unary_stream(path)
        with pytest.raises(grpc.RpcError) as info:
            list(call(garbage, timeout=10))
    else:
        call = channel.unary_unary(path)
        with pytest.raises(grpc.RpcError) as info:
            call(garbage, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    details = info.value.details() or ""
    assert details and not any(word in details for word in INTERNALS), details
    stub = log_pb2_grpc.LogStub(channel)
    assert stub.ConsumeBatch(log_pb2.ConsumeBatchRequest(offset=0)).high_watermark == 0


def test_a_malformed_message_in_a_produce_stream_is_invalid_argument(channel: Any) -> None:
    good = log_pb2.ProduceRequest(record=Record(value=b"ok")).SerializeToString()
    call = channel.stream_stream("/replog.v1.Log/ProduceStream")
    answers = call(iter([good, GARBAGE[0]]), timeout=10)
    assert log_pb2.ProduceResponse.FromString(next(answers)).offset == 0
    with pytest.raises(grpc.RpcError) as info:
        list(answers)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = info.value.details() or ""
    assert not any(word in details for word in INTERNALS), details
    stub = log_pb2_grpc.LogStub(channel)
    assert stub.ConsumeBatch(log_pb2.ConsumeBatchRequest(offset=0)).high_watermark == 1


def test_malformed_protobuf_to_the_cluster_service_is_invalid_argument(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path)
    try:
        node = cluster.start_node("n1", bootstrap=True)
        wait_until(node.is_leader, 10, "n1 to lead")
        with grpc.insecure_channel(node.grpc_address) as channel:
            for method in ("Join", "Remove", "TransferLeader", "Status"):
                with pytest.raises(grpc.RpcError) as info:
                    channel.unary_unary(f"/replog.v1.Cluster/{method}")(GARBAGE[0], timeout=10)
                assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, method
                details = info.value.details() or ""
                assert details and not any(word in details for word in INTERNALS), details
    finally:
        cluster.stop_all()


# -- an empty produce: one rule for both APIs ------------------------------------------------


def test_a_produce_without_a_record_is_refused_by_both_apis(
    server: ThreadedServer, channel: Any
) -> None:
    stub = log_pb2_grpc.LogStub(channel)
    with pytest.raises(grpc.RpcError) as info:
        stub.Produce(log_pb2.ProduceRequest())
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "record" in (info.value.details() or "")
    with pytest.raises(grpc.RpcError) as info:
        list(stub.ProduceStream(iter([log_pb2.ProduceRequest()]), timeout=10))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status, content_type, body = post(server, "/v1/records", b"{}")
    assert assert_json_error(status, content_type, body, 400)["code"] == "INVALID_ARGUMENT"
    assert high_watermark(server) == 0


def test_a_record_with_an_empty_value_is_accepted_by_both_apis(
    server: ThreadedServer, channel: Any
) -> None:
    # An empty value is a legitimate record (a Kafka tombstone is one, with a key).
    stub = log_pb2_grpc.LogStub(channel)
    assert stub.Produce(log_pb2.ProduceRequest(record=Record(value=b""))).offset == 0
    assert stub.Produce(log_pb2.ProduceRequest(record=Record(key=b"k"))).offset == 1
    status, _, body = post(server, "/v1/records", b'{"record": {"value": ""}}')
    assert (status, json.loads(body)) == (200, {"offset": 2})
    key = base64.b64encode(b"k").decode()
    status, _, body = post(
        server, "/v1/records", b'{"record": {"value": "", "key": "%s"}}' % key.encode()
    )
    assert (status, json.loads(body)) == (200, {"offset": 3})
    batch = stub.ConsumeBatch(log_pb2.ConsumeBatchRequest(offset=0))
    assert [(r.value, r.key) for r in batch.records] == [(b"", b""), (b"", b"k")] * 2
