"""Per-key conditional appends on a real single-node server (a topic with key_index=true):
a batch of one key is appended only if the key's latest record is where the writer
expects (-1: nowhere yet); racing writers on one key never both win a round; the index
survives a clean restart and kill -9; topics without the index refuse the condition."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from replog.client import AsyncClient, Client
from replog.client.core import error_from_status
from replog.errors import ExpectedKeyOffsetError, ExpectedOffsetError, InvalidArgumentError
from replog.v1 import log_pb2
from replog.v1.record_pb2 import Record
from tests.integration.conftest import ServerProcess, ThreadedServer

TOPIC = "accounts"


def _produce(address: str, key: bytes, *values: bytes, expected: int | None, **more: Any) -> Any:
    request = log_pb2.ProduceBatchRequest(
        records=[Record(key=key, value=v) for v in values], topic=TOPIC, partition=0, **more
    )
    if expected is not None:
        request.expected_key_offset = expected
    with grpc.insecure_channel(address) as channel:
        call = channel.unary_unary(
            "/replog.v1.Log/ProduceBatch",
            request_serializer=log_pb2.ProduceBatchRequest.SerializeToString,
            response_deserializer=log_pb2.ProduceBatchResponse.FromString,
        )
        try:
            return call(request, timeout=10)
        except grpc.RpcError as exc:
            return error_from_status(exc.code().name, exc.details(), exc.trailing_metadata())


def _create(address: str, key_index: bool = True) -> None:
    with Client(address) as client:
        client.create_topic(TOPIC, 1, config={"key_index": "true" if key_index else "false"})


def test_a_key_condition_holds_only_at_the_keys_latest_offset(server: ThreadedServer) -> None:
    _create(server.grpc_address)
    first = _produce(server.grpc_address, b"acct-1", b"opened", expected=-1)
    assert first.base_offset == 0
    again = _produce(server.grpc_address, b"acct-1", b"opened twice", expected=-1)
    assert isinstance(again, ExpectedKeyOffsetError) and (again.expected, again.actual) == (-1, 0)
    _produce(server.grpc_address, b"acct-2", b"other", expected=None)  # moves no other key
    second = _produce(server.grpc_address, b"acct-1", b"deposit", b"withdraw", expected=0)
    assert second.base_offset == 2
    stale = _produce(server.grpc_address, b"acct-1", b"late", expected=0)
    assert isinstance(stale, ExpectedKeyOffsetError) and stale.actual == 3  # the batch's last


def _refusal(address: str, request: log_pb2.ProduceBatchRequest) -> grpc.RpcError:
    with grpc.insecure_channel(address) as channel, pytest.raises(grpc.RpcError) as info:
        channel.unary_unary(
            "/replog.v1.Log/ProduceBatch",
            request_serializer=log_pb2.ProduceBatchRequest.SerializeToString,
            response_deserializer=log_pb2.ProduceBatchResponse.FromString,
        )(request, timeout=10)
    return info.value


def test_a_key_condition_needs_one_key_on_every_record(server: ThreadedServer) -> None:
    _create(server.grpc_address)
    request = log_pb2.ProduceBatchRequest(
        records=[Record(key=b"a", value=b"1"), Record(key=b"b", value=b"2")],
        topic=TOPIC,
        partition=0,
        expected_key_offset=-1,
    )
    error = _refusal(server.grpc_address, request)
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "one key" in (error.details() or "")


def test_a_topic_without_a_key_index_refuses_the_condition_naming_the_setting(
    server: ThreadedServer,
) -> None:
    _create(server.grpc_address, key_index=False)
    request = log_pb2.ProduceBatchRequest(
        records=[Record(key=b"a", value=b"1")], topic=TOPIC, partition=0, expected_key_offset=-1
    )
    error = _refusal(server.grpc_address, request)
    assert error.code() is grpc.StatusCode.UNIMPLEMENTED
    assert "key_index=true" in (error.details() or "")


def _race(address: str, round_: int, expected: int, writers: int) -> list[Any]:
    """``writers`` threads send one conditional append each, released together."""
    results: list[Any] = [None] * writers
    start = threading.Barrier(writers)

    def write(i: int) -> None:
        start.wait()
        results[i] = _produce(address, b"hot", b"r%d-w%d" % (round_, i), expected=expected)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def test_eight_writers_racing_on_one_key_win_exactly_one_append_a_round(
    server: ThreadedServer,
) -> None:
    _create(server.grpc_address)
    rounds, writers = 150, 8
    latest = -1
    for round_ in range(rounds):
        results = _race(server.grpc_address, round_, latest, writers)
        won = [r for r in results if isinstance(r, log_pb2.ProduceBatchResponse)]
        lost = [r for r in results if isinstance(r, ExpectedKeyOffsetError)]
        assert len(won) == 1 and len(lost) == writers - 1, (round_, results)
        assert all(r.actual == won[0].base_offset for r in lost)
        latest = won[0].base_offset
    with Client(server.grpc_address) as client:
        assert client.describe_topic(TOPIC).partitions[0].next_offset == rounds


@pytest.mark.parametrize("crash", [False, True], ids=["clean-stop", "kill-9"])
def test_a_restart_keeps_the_key_index_right(
    process_factory: Callable[..., ServerProcess], tmp_path: Path, crash: bool
) -> None:
    data = tmp_path / "node"
    proc = process_factory(data)
    _create(proc.grpc_address)
    offsets = {}
    for i in range(50):
        key = b"k%d" % (i % 7)
        response = _produce(proc.grpc_address, key, b"v%d" % i, expected=offsets.get(key, -1))
        offsets[key] = response.base_offset
    if crash:
        proc.kill()
    else:
        assert proc.terminate() == 0
    again = process_factory(data)
    for key, offset in offsets.items():
        stale = _produce(again.grpc_address, key, b"x", expected=offset - 1)
        assert isinstance(stale, ExpectedKeyOffsetError) and stale.actual == offset
        assert _produce(again.grpc_address, key, b"y", expected=offset).base_offset > offset


def test_the_python_clients_send_both_conditions_and_raise_the_typed_errors(
    server: ThreadedServer,
) -> None:
    _create(server.grpc_address)
    with Client(server.grpc_address) as client:
        first = client.produce(b"opened", b"acct-9", topic=TOPIC, expected_key_offset=-1)
        with pytest.raises(ExpectedKeyOffsetError) as raised:
            client.produce(b"again", b"acct-9", topic=TOPIC, expected_key_offset=-1)
        assert raised.value.actual == first
        base, count = client.produce_batch(
            [Record(key=b"acct-9", value=b"a"), Record(key=b"acct-9", value=b"b")],
            topic=TOPIC,
            partition=0,
            expected_key_offset=first,
            expected_offset=first + 1,
        )
        assert (base, count) == (first + 1, 2)
        with pytest.raises(ExpectedOffsetError) as stale:
            client.produce_batch([b"x"], topic=TOPIC, partition=0, expected_offset=first)
        assert stale.value.actual == first + 3
        with pytest.raises(InvalidArgumentError):
            client.produce(b"x", topic=TOPIC, expected_key_offset=-2)

    async def from_async() -> int:
        async with AsyncClient(server.grpc_address) as aclient:
            at = await aclient.produce(
                b"c", b"acct-9", topic=TOPIC, partition=0, expected_key_offset=first + 2
            )
            with pytest.raises(ExpectedKeyOffsetError):
                await aclient.produce_batch(
                    [Record(key=b"acct-9", value=b"d")],
                    topic=TOPIC,
                    partition=0,
                    expected_key_offset=first + 2,
                )
            return int(at)

    assert asyncio.run(from_async()) == first + 3
