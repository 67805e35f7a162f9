"""Raft messages on the wire: the columnar entry form round-trips, the old per-entry form is
still read, malformed columns are refused, and a real stream delivers big backlogs in bounded
batches, in order."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import grpc
import pytest
from grpc import aio
from hypothesis import given
from hypothesis import strategies as st

from replog.cluster.transport import (
    RAFT_SERVICE,
    RaftTransport,
    message_from_proto,
    message_to_proto,
)
from replog.raft.messages import Entry, Membership, Message, MessageType, SnapshotMeta
from replog.raft.records import messages_within
from replog.v1 import raft_pb2

_entries = st.lists(
    st.tuples(st.integers(0, 2**40), st.sampled_from([0, 1, 2, 3]), st.binary(max_size=64)),
    max_size=20,
)


def _wire(m: Message) -> Message:
    pb = message_to_proto(m)
    return message_from_proto(raft_pb2.RaftMessage.FromString(pb.SerializeToString()))


@given(_entries, st.integers(1, 2**40))
def test_messages_with_entries_survive_the_wire(fields: list[Any], first: int) -> None:
    entries = [Entry(t, first + i, k, d) for i, (t, k, d) in enumerate(fields)]
    m = Message(
        type=MessageType.APP, src=1, dst=2, term=7, log_term=6, index=first - 1, commit=3,
        entries=entries,
    )  # fmt: skip
    wired = _wire(m)
    assert list(wired.entries) == entries
    assert replace(wired, entries=()) == replace(m, entries=())


def test_snapshot_and_plain_messages_survive_the_wire() -> None:
    meta = SnapshotMeta(10, 3, Membership(frozenset({1, 2}), frozenset({3})))
    for m in (
        Message(type=MessageType.SNAPSHOT, src=1, dst=3, term=3, snapshot=meta),
        Message(type=MessageType.APP_RESP, src=2, dst=1, term=3, index=9, reject=True,
                reject_hint=4),
        Message(type=MessageType.TIMEOUT_NOW, src=1, dst=2, term=3),
    ):  # fmt: skip
        assert _wire(m) == m


def test_the_per_entry_form_is_still_read() -> None:
    pb = raft_pb2.RaftMessage(type=MessageType.APP, src=1, dst=2, term=2)
    pb.entries.add(term=2, index=5, kind=0, data=b"a")
    pb.entries.add(term=2, index=6, kind=1, data=b"")
    assert message_from_proto(pb).entries == [Entry(2, 5, 0, b"a"), Entry(2, 6, 1, b"")]


@pytest.mark.parametrize(
    "columns",
    [
        {"entry_sizes": [1, 2], "entry_terms": [1], "entry_data": b"abc"},
        {"entry_sizes": [1, 2], "entry_terms": [1, 1], "entry_data": b"ab"},
        {"entry_sizes": [1], "entry_terms": [1], "entry_kinds": [0, 0], "entry_data": b"a"},
    ],
)
def test_entry_columns_that_do_not_agree_are_refused(columns: dict[str, Any]) -> None:
    pb = raft_pb2.RaftMessage(type=MessageType.APP, first_index=1, **columns)
    with pytest.raises(ValueError, match="entry"):
        message_from_proto(pb)


def _app(index: int, size: int) -> Message:
    entry = Entry(1, index, 0, bytes([index % 256]) * size)
    return Message(type=MessageType.APP, src=1, dst=2, term=1, index=index - 1, entries=[entry])


def test_messages_within_takes_at_least_one_and_stops_at_the_byte_limit() -> None:
    big = [_app(i, 1000) for i in range(1, 6)]
    assert messages_within(big, 2500) == 2
    assert messages_within(big, 10) == 1  # never zero: one oversized message still moves
    heartbeats = [Message(type=MessageType.HEARTBEAT, src=1, dst=2, term=1)] * 3
    assert messages_within(heartbeats + big, 0) == 3  # the first with entries waits
    assert messages_within([], 10) == 0


async def test_a_large_backlog_goes_out_in_bounded_batches_in_order() -> None:
    received: list[raft_pb2.RaftBatch] = []

    async def stream(requests: Any, context: aio.ServicerContext[Any, Any]) -> raft_pb2.RaftAck:
        async for batch in requests:
            received.append(batch)
        return raft_pb2.RaftAck()

    server = aio.server(options=[("grpc.max_receive_message_length", 64 << 20)])
    handler = grpc.method_handlers_generic_handler(
        RAFT_SERVICE,
        {
            "Stream": grpc.stream_unary_rpc_method_handler(
                stream,
                request_deserializer=raft_pb2.RaftBatch.FromString,
                response_serializer=raft_pb2.RaftAck.SerializeToString,
            )
        },
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    transport = RaftTransport(
        name="n1",
        addr="127.0.0.1:1",
        resolve=lambda _: f"127.0.0.1:{port}",
        epoch=7,
        gossip=lambda: [("n3", "127.0.0.1:3", 5)],
    )
    try:
        sent = [_app(i, 1 << 20) for i in range(1, 13)]  # 12 MiB queued at once
        transport.send("", sent)
        for _ in range(500):
            if sum(len(b.messages) for b in received) == len(sent):
                break
            await asyncio.sleep(0.01)
        got = [message_from_proto(m) for b in received for m in b.messages]
        assert got == sent
        assert len(received) >= 3  # 4 MiB per batch, not one 12 MiB message
        assert all(len(b.messages) <= 4 for b in received)
        assert {(b.from_id, b.from_epoch) for b in received} == {("n1", 7)}
        gossip = received[0].addresses  # the first batch of a stream passes on the addresses
        assert [(a.id, a.addr, a.epoch) for a in gossip] == [("n3", "127.0.0.1:3", 5)]
    finally:
        await transport.close()
        await server.stop(None)
