"""Idempotent and conditional produces on a real single-node server over gRPC: a retry of
an appended batch answers with its offsets and appends nothing, an out-of-order or fenced
batch is refused with the numbers a producer needs, and the state survives a restart, a
clean one (from the checkpoint) and kill -9 (from the log)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from replog.client import Client
from replog.client.core import error_from_status
from replog.errors import (
    ExpectedOffsetError,
    OutOfOrderSequenceError,
    ProducerFencedError,
    UnknownProducerError,
)
from replog.v1 import log_pb2
from replog.v1.record_pb2 import Record
from tests.integration.conftest import ServerProcess, ThreadedServer, wait_until
from tests.integration.test_http_bad_input import post


def _call(address: str, method: str, request: Any, response: Any) -> Any:
    with grpc.insecure_channel(address) as channel:
        stub = channel.unary_unary(
            f"/replog.v1.Log/{method}",
            request_serializer=type(request).SerializeToString,
            response_deserializer=response.FromString,
        )
        return stub(request, timeout=10)


def _batch(address: str, values: list[bytes], **fields: Any) -> log_pb2.ProduceBatchResponse:
    fields.setdefault("partition", 0)
    request = log_pb2.ProduceBatchRequest(records=[Record(value=v) for v in values], **fields)
    return _call(address, "ProduceBatch", request, log_pb2.ProduceBatchResponse)


def _refused(address: str, values: list[bytes], **fields: Any) -> Exception:
    with pytest.raises(grpc.RpcError) as info:
        _batch(address, values, **fields)
    error = info.value
    return error_from_status(error.code().name, error.details(), error.trailing_metadata())


def _producer_id(address: str) -> int:
    response = _call(
        address, "InitProducerId", log_pb2.InitProducerIdRequest(), log_pb2.InitProducerIdResponse
    )
    assert response.producer_id > 0 and response.producer_epoch == 0
    return int(response.producer_id)


def _values(address: str) -> list[bytes]:
    request = log_pb2.ConsumeBatchRequest(offset=0, max_records=10_000)
    response = _call(address, "ConsumeBatch", request, log_pb2.ConsumeBatchResponse)
    return [r.value for r in response.records]


@pytest.fixture
def address(server: ThreadedServer) -> Iterator[str]:
    yield server.grpc_address


def test_every_init_producer_id_is_a_new_positive_63_bit_id(address: str) -> None:
    ids = {_producer_id(address) for _ in range(20)}
    assert len(ids) == 20 and all(0 < i < 2**63 for i in ids)


def test_a_retried_batch_answers_with_its_first_offsets_and_appends_nothing(
    address: str,
) -> None:
    pid = _producer_id(address)
    first = _batch(address, [b"a", b"b"], producer_id=pid, base_sequence=0)
    again = _batch(address, [b"a", b"b"], producer_id=pid, base_sequence=0)
    assert (first.base_offset, first.duplicate) == (0, False)
    assert (again.base_offset, again.count, again.duplicate) == (0, 2, True)
    third = _batch(address, [b"c"], producer_id=pid, base_sequence=2)
    assert (third.base_offset, third.duplicate) == (2, False)
    assert _values(address) == [b"a", b"b", b"c"]


def test_a_batch_out_of_sequence_is_refused_naming_the_sequence_that_comes_next(
    address: str,
) -> None:
    pid = _producer_id(address)
    _batch(address, [b"a", b"b"], producer_id=pid, base_sequence=0)
    error = _refused(address, [b"x"], producer_id=pid, base_sequence=5)
    assert isinstance(error, OutOfOrderSequenceError)
    assert (error.expected, error.got) == (2, 5)
    unknown = _refused(address, [b"x"], producer_id=pid + 1, base_sequence=1)
    assert isinstance(unknown, UnknownProducerError) and unknown.producer_id == pid + 1
    assert _values(address) == [b"a", b"b"]


def test_an_older_epoch_of_a_producer_is_fenced(address: str) -> None:
    pid = _producer_id(address)
    _batch(address, [b"a"], producer_id=pid, producer_epoch=2, base_sequence=0)
    error = _refused(address, [b"x"], producer_id=pid, producer_epoch=1, base_sequence=1)
    assert isinstance(error, ProducerFencedError) and (error.epoch, error.current) == (1, 2)


def test_an_idempotent_batch_must_name_its_partition(address: str) -> None:
    request = log_pb2.ProduceBatchRequest(records=[Record(value=b"a")], producer_id=5)
    with pytest.raises(grpc.RpcError) as info:
        _call(address, "ProduceBatch", request, log_pb2.ProduceBatchResponse)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "partition" in (info.value.details() or "")


def test_a_conditional_append_holds_only_at_the_expected_next_offset(address: str) -> None:
    _batch(address, [b"a", b"b"])
    error = _refused(address, [b"x"], expected_offset=1)
    assert isinstance(error, ExpectedOffsetError) and (error.expected, error.actual) == (1, 2)
    assert _batch(address, [b"c"], expected_offset=2).base_offset == 2
    one = log_pb2.ProduceRequest(record=Record(value=b"d"), expected_offset=3)
    assert _call(address, "Produce", one, log_pb2.ProduceResponse).offset == 3
    assert _values(address) == [b"a", b"b", b"c", b"d"]


def test_a_per_key_condition_this_server_cannot_check_is_refused_not_ignored(
    address: str,
) -> None:
    with pytest.raises(grpc.RpcError) as info:
        _batch(address, [b"a"], expected_key_offset=-1)
    assert info.value.code() is grpc.StatusCode.UNIMPLEMENTED
    assert _values(address) == []


def test_producer_fields_a_client_puts_in_its_records_are_not_trusted(address: str) -> None:
    pid = _producer_id(address)
    forged = Record(value=b"f", key=b"k", producer_id=pid, sequence=0, batch_records=1)
    request = log_pb2.ProduceBatchRequest(records=[forged], partition=0)
    _call(address, "ProduceBatch", request, log_pb2.ProduceBatchResponse)
    # had the forged fields been stored, this producer's sequence 0 would be a duplicate
    assert _batch(address, [b"a"], producer_id=pid, base_sequence=0).duplicate is False


def test_the_consumed_first_record_of_an_idempotent_batch_names_its_producer(
    address: str,
) -> None:
    pid = _producer_id(address)
    _batch(address, [b"a", b"b"], producer_id=pid, base_sequence=0)
    request = log_pb2.ConsumeBatchRequest(offset=0, max_records=10)
    records = _call(address, "ConsumeBatch", request, log_pb2.ConsumeBatchResponse).records
    assert (records[0].producer_id, records[0].sequence, records[0].batch_records) == (pid, 0, 2)
    assert records[1].producer_id == 0


def test_a_clean_restart_keeps_recognising_retries(
    server_factory: Callable[..., ThreadedServer], tmp_path: Path
) -> None:
    data = tmp_path / "node"
    first = server_factory(data)
    pid = _producer_id(first.grpc_address)
    for seq in range(0, 30, 3):
        _batch(first.grpc_address, [b"x", b"y", b"z"], producer_id=pid, base_sequence=seq)
    first.stop()
    assert len(list(data.rglob("producers.json"))) == 1  # checkpointed on the clean stop
    again = server_factory(data)
    retry = _batch(again.grpc_address, [b"x", b"y", b"z"], producer_id=pid, base_sequence=27)
    assert (retry.base_offset, retry.duplicate) == (27, True)
    error = _refused(again.grpc_address, [b"w"], producer_id=pid, base_sequence=31)
    assert isinstance(error, OutOfOrderSequenceError) and error.expected == 30


def test_after_kill_9_the_state_is_rebuilt_from_the_log(
    process_factory: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    data = tmp_path / "node"
    proc = process_factory(data, "--sync", "always")
    pid = _producer_id(proc.grpc_address)
    for seq in range(5):
        _batch(proc.grpc_address, [b"v%d" % seq], producer_id=pid, base_sequence=seq)
    proc.kill()
    assert not list(data.rglob("producers.json"))  # no clean stop: only the log knows
    again = process_factory(data, "--sync", "always")
    retry = _batch(again.grpc_address, [b"v4"], producer_id=pid, base_sequence=4)
    assert (retry.base_offset, retry.duplicate) == (4, True)
    assert _batch(again.grpc_address, [b"v5"], producer_id=pid, base_sequence=5).base_offset == 5
    assert _values(again.grpc_address) == [b"v%d" % i for i in range(6)]


# -- the same over HTTP ----------------------------------------------------------------------


def _http(server: ThreadedServer, path: str, body: Any) -> tuple[int, Any]:
    status, _, payload = post(server, path, json.dumps(body).encode())
    return status, json.loads(payload)


def _records(*values: str) -> list[dict[str, str]]:
    return [{"value": base64.b64encode(v.encode()).decode()} for v in values]


def test_over_http_a_producer_retry_is_answered_and_a_gap_is_a_409_with_the_numbers(
    server: ThreadedServer,
) -> None:
    status, made = _http(server, "/v1/producers", {})
    assert status == 200 and made["producer_id"] > 0 and made["producer_epoch"] == 0
    body = {"records": _records("a", "b"), "producer_id": made["producer_id"], "base_sequence": 0}
    assert _http(server, "/v1/records:batch", body) == (200, {"base_offset": 0, "count": 2})
    assert _http(server, "/v1/records:batch", body) == (
        200,
        {"base_offset": 0, "count": 2, "duplicate": True},
    )
    status, error = _http(server, "/v1/records:batch", {**body, "base_sequence": 7})
    assert status == 409
    assert error["error"]["code"] == "OUT_OF_ORDER_SEQUENCE"
    assert (error["error"]["expected"], error["error"]["actual"]) == (2, 7)


def test_over_http_an_expected_offset_that_does_not_hold_is_a_409_with_the_actual_one(
    server: ThreadedServer,
) -> None:
    assert _http(server, "/v1/records", {"record": _records("a")[0]})[0] == 200
    status, error = _http(server, "/v1/records", {"record": _records("b")[0], "expected_offset": 0})
    assert status == 409 and error["error"]["code"] == "EXPECTED_OFFSET_MISMATCH"
    assert (error["error"]["expected"], error["error"]["actual"]) == (0, 1)
    ok = _http(server, "/v1/records:batch", {"records": _records("b"), "expected_offset": 1})
    assert ok == (200, {"base_offset": 1, "count": 1})


@pytest.mark.parametrize(
    ("path", "body", "named"),
    [
        ("/v1/records:batch", {"expected_offset": -1}, "expected_offset"),
        ("/v1/records:batch", {"producer_id": "1"}, "producer_id"),
        ("/v1/records:batch", {"base_sequence": 2**31}, "base_sequence"),
        ("/v1/records:batch", {"expected_key_offset": True}, "expected_key_offset"),
        ("/v1/records", {"producer_id": 5}, "producer_id"),
        ("/v1/topics/default/records:batch", {"producer_id": 5}, "producer_id"),
    ],
)
def test_over_http_bad_conditions_are_a_400_naming_the_field_and_append_nothing(
    server: ThreadedServer, path: str, body: dict[str, Any], named: str
) -> None:
    key = "records" if path.endswith(":batch") else "record"
    full = {key: _records("x") if key == "records" else _records("x")[0], **body}
    status, error = _http(server, path, full)
    assert status == 400 and named in error["error"]["message"]
    assert _values(server.grpc_address) == []


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"expected_key_offset": -2}, "expected_key_offset"),
        ({"acks": 7}, "acks"),
        ({"base_sequence": 3}, "producer_id"),
        ({"producer_epoch": 1}, "producer_id"),
        ({"producer_id": 9, "base_sequence": 2**31}, "base_sequence"),
    ],
)
def test_over_grpc_bad_condition_fields_are_refused_naming_the_field_and_append_nothing(
    address: str, fields: dict[str, int], named: str
) -> None:
    with pytest.raises(grpc.RpcError) as info:
        _batch(address, [b"x"], **fields)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert named in (info.value.details() or "")
    assert _values(address) == []


def test_a_producer_whose_records_retention_deleted_is_still_known_after_kill_9(
    process_factory: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    data = tmp_path / "node"
    proc = process_factory(data, "--retention-check-interval-ms", "100")
    config = {"segment_bytes": "2048", "max_record_bytes": "1024", "retention_bytes": "1"}
    with Client(proc.grpc_address) as client:
        client.create_topic("t", 1, config=config)
    pid = _producer_id(proc.grpc_address)
    first = _batch(proc.grpc_address, [b"once"], topic="t", producer_id=pid, base_sequence=0)
    for i in range(60):  # others roll segments until retention deletes the producer's
        _batch(proc.grpc_address, [b"filler-%03d" % i * 8], topic="t")

    def deleted() -> bool:
        with Client(proc.grpc_address) as client:
            return client.describe_topic("t").partitions[0].lowest_offset > first.base_offset

    wait_until(deleted, 20, "retention to delete the producer's record")
    proc.kill()  # no clean stop: only what retention checkpointed survives
    again = process_factory(data)
    retry = _batch(again.grpc_address, [b"once"], topic="t", producer_id=pid, base_sequence=0)
    assert retry.duplicate and retry.base_offset == first.base_offset
