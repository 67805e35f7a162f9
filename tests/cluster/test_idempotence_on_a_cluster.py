"""Idempotent produces on a replicated partition: the producer state travels in the
partition's Raft log, so any node forwards a producer's batches to the leader, and a new
leader recognises a retry of a batch its predecessor appended and answers with its
offsets."""

from __future__ import annotations

import threading
from typing import Any

import grpc
import pytest

from replog.client import Client
from replog.client.core import error_from_status
from replog.errors import (
    ExpectedKeyOffsetError,
    OutOfOrderSequenceError,
    UnavailableError,
    UnsupportedError,
)
from replog.v1 import log_pb2
from replog.v1.record_pb2 import Record
from tests.cluster.conftest import Cluster, Node, wait_until


def _batch(node: Node, seq: int, pid: int, topic: str = "", partition: int = 0) -> Any:
    request = log_pb2.ProduceBatchRequest(
        records=[Record(value=b"%d-%d" % (seq, i)) for i in range(3)],
        topic=topic,
        partition=partition,
        producer_id=pid,
        base_sequence=seq * 3,
    )
    with grpc.insecure_channel(node.grpc_address) as channel:
        call = channel.unary_unary(
            "/replog.v1.Log/ProduceBatch",
            request_serializer=log_pb2.ProduceBatchRequest.SerializeToString,
            response_deserializer=log_pb2.ProduceBatchResponse.FromString,
        )
        return call(request, timeout=10)


def _leader_of(cluster: Cluster, topic: str, partition: int) -> Node:
    def find() -> Node | None:
        for node in cluster.running():
            backend = node.cluster.topics_host.local(topic, partition)
            if backend is not None and backend.node.is_leader:
                return node
        return None

    found: Node = wait_until(find, 20, f"a leader of {topic}/{partition}")
    return found


def test_a_retry_through_any_node_of_the_default_topic_is_answered_not_appended(
    three: Cluster,
) -> None:
    pid = 2**62 + 1
    follower = three.followers()[0]
    first = _batch(follower, 0, pid)  # forwarded to the leader
    again = _batch(three.leader(), 0, pid)
    assert again.duplicate and again.base_offset == first.base_offset
    assert not first.duplicate


def test_a_new_partition_leader_deduplicates_a_retry_of_its_predecessors_batch(
    three: Cluster,
) -> None:
    with Client([n.grpc_address for n in three.running()]) as client:
        client.create_topic("orders", 2, replication_factor=3)
    pid = 2**61 + 7
    old = _leader_of(three, "orders", 1)
    offsets = [_batch(old, seq, pid, "orders", 1).base_offset for seq in range(10)]
    old.stop()  # a graceful stop hands its leaderships over
    new = _leader_of(three, "orders", 1)
    assert new is not old
    retry = _batch(new, 9, pid, "orders", 1)
    assert retry.duplicate and retry.base_offset == offsets[9]
    older = _batch(new, 6, pid, "orders", 1)  # one of the last five batches
    assert older.duplicate and older.base_offset == offsets[6]
    with pytest.raises(grpc.RpcError) as info:
        _batch(new, 12, pid, "orders", 1)
    error = info.value
    refused = error_from_status(error.code().name, error.details(), error.trailing_metadata())
    assert isinstance(refused, OutOfOrderSequenceError) and refused.expected == 30
    nxt = _batch(new, 10, pid, "orders", 1)
    assert not nxt.duplicate and nxt.base_offset > offsets[9]
    old.start()  # rebuilt from its own log and checkpoint, it recognises retries too
    back = next(n for n in three.running() if n.name == old.name)
    wait_until(
        lambda: (
            (b := back.cluster.topics_host.local("orders", 1)) is not None
            and b.high_watermark > nxt.base_offset + 2
        ),
        20,
        "the restarted replica to catch up",
    )
    assert _batch(back, 10, pid, "orders", 1).base_offset == nxt.base_offset


def test_an_acks_leader_produce_is_answered_and_then_committed_like_any_other(
    three: Cluster,
) -> None:
    request = log_pb2.ProduceBatchRequest(
        records=[Record(value=b"quick")], partition=0, acks=log_pb2.ACKS_LEADER
    )
    with grpc.insecure_channel(three.followers()[0].grpc_address) as channel:  # forwarded
        call = channel.unary_unary(
            "/replog.v1.Log/ProduceBatch",
            request_serializer=log_pb2.ProduceBatchRequest.SerializeToString,
            response_deserializer=log_pb2.ProduceBatchResponse.FromString,
        )
        response = call(request, timeout=10)
    with Client([n.grpc_address for n in three.running()]) as client:
        assert client.consume(response.base_offset, min_offset=response.base_offset).value == (
            b"quick"
        )


def _keyed(node: Node, key: bytes, value: bytes, expected: int) -> Any:
    request = log_pb2.ProduceBatchRequest(
        records=[Record(key=key, value=value)],
        topic="events",
        partition=0,
        expected_key_offset=expected,
    )
    with grpc.insecure_channel(node.grpc_address) as channel:
        call = channel.unary_unary(
            "/replog.v1.Log/ProduceBatch",
            request_serializer=log_pb2.ProduceBatchRequest.SerializeToString,
            response_deserializer=log_pb2.ProduceBatchResponse.FromString,
        )
        try:
            return call(request, timeout=10)
        except grpc.RpcError as exc:
            return error_from_status(exc.code().name, exc.details(), exc.trailing_metadata())


def _race(nodes: list[Node], round_: int, expected: int, writers: int) -> list[Any]:
    """``writers`` conditional appends on one key, through the nodes in turn, at once."""
    results: list[Any] = [None] * writers
    start = threading.Barrier(writers)

    def write(i: int) -> None:
        start.wait()
        results[i] = _keyed(nodes[i % len(nodes)], b"order-1", b"%d-%d" % (round_, i), expected)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def test_writers_racing_on_a_key_through_every_node_win_one_a_round_across_a_leader_change(
    three: Cluster,
) -> None:
    with Client([n.grpc_address for n in three.running()]) as client:
        client.create_topic("events", 1, replication_factor=3, config={"key_index": "true"})
        with pytest.raises(UnsupportedError, match="key_index"):
            client.alter_topic_config("events", {"key_index": "false"})
    latest = -1
    for round_ in range(30):
        if round_ == 15:
            _leader_of(three, "events", 0).stop()  # the new leader answers from its own index
        nodes = three.running()
        results = _race(nodes, round_, latest, 6)
        won = [r for r in results if isinstance(r, log_pb2.ProduceBatchResponse)]
        assert len(won) <= 1, (round_, results)
        refused = [r for r in results if not isinstance(r, log_pb2.ProduceBatchResponse)]
        assert all(isinstance(r, ExpectedKeyOffsetError | UnavailableError) for r in refused)
        if won:
            latest = won[0].base_offset
        else:  # an election in the way: every writer refused, the key is unchanged
            retry = _keyed(nodes[0], b"order-1", b"retry", latest)
            assert isinstance(retry, log_pb2.ProduceBatchResponse), retry
            latest = retry.base_offset
    stale = _keyed(three.running()[0], b"order-1", b"late", latest - 1)
    assert isinstance(stale, ExpectedKeyOffsetError) and stale.actual == latest
