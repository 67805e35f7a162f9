"""One transport per process carrying many Raft groups (docs/multiraft.md): each group's
messages reach only its handler, in order, over one stream per peer node; a batch of a group
not hosted is dropped and counted; node liveness pings report a stopped peer down once and
up again when it returns; two Raft groups elect and commit independently over the same
transports. Real gRPC servers on ephemeral 127.0.0.1 ports."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import grpc
from grpc import aio

from replog.cluster.groups import GroupHost
from replog.cluster.inbox import Inbox
from replog.cluster.log_store import ReplogLogStore
from replog.cluster.members import AddressBook, raft_id
from replog.cluster.raft_node import NodeOptions, RaftNode
from replog.cluster.snapshot import receive_snapshot
from replog.cluster.transport import RAFT_SERVICE, RaftTransport
from replog.raft.messages import Membership, Message, MessageType
from replog.v1 import raft_pb2

CLUSTER = "c1"
DEADLINE_S = 10.0


async def _until(condition: Callable[[], object], what: str, timeout: float = DEADLINE_S) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)


class Host:
    """One "process": a gRPC server feeding an Inbox, and a RaftTransport to its peers."""

    def __init__(self, tmp: Path, name: str, **liveness: float) -> None:
        self.name = name
        self.id = raft_id(name)
        self.book = AddressBook(tmp / f"{name}-members.json")
        self.inbox = Inbox(self.id, CLUSTER, self.book)
        self.raw: list[bytes] = []  # every batch received, as it was on the wire
        self.streams = 0
        self.stream_peers: set[str] = set()
        self.transport = RaftTransport(
            name=name,
            addr="",
            resolve=self.book.address,
            cluster_id=CLUSTER,
            peers=lambda: [i for i in self.book.entries if i != self.id],
            **liveness,
        )
        self.inbox.on_heard = self.transport.heard
        self.server: aio.Server | None = None
        self.port = 0

    async def start(self, port: int = 0) -> Host:
        server = aio.server()
        handler = grpc.method_handlers_generic_handler(
            RAFT_SERVICE,
            {
                "Stream": grpc.stream_unary_rpc_method_handler(
                    self._stream,
                    request_deserializer=self._parse,
                    response_serializer=raft_pb2.RaftAck.SerializeToString,
                )
            },
        )
        server.add_generic_rpc_handlers((handler,))
        self.port = server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        self.server = server
        self.transport.addr = f"127.0.0.1:{self.port}"
        self.book.set(self.name, self.transport.addr)
        return self

    def _parse(self, data: bytes) -> raft_pb2.RaftBatch:
        self.raw.append(data)
        return raft_pb2.RaftBatch.FromString(data)

    async def _stream(self, requests: Any, context: aio.ServicerContext[Any, Any]) -> Any:
        self.streams += 1
        self.stream_peers.add(context.peer())
        async for batch in requests:
            self.inbox.receive(batch)
        return raft_pb2.RaftAck()

    def knows(self, *others: Host) -> None:
        for other in others:
            self.book.set(other.name, other.transport.addr)

    async def stop(self) -> None:
        await self.transport.close()
        if self.server is not None:
            await self.server.stop(None)
            self.server = None


def _heartbeat(src: Host, dst: Host, index: int) -> Message:
    return Message(type=MessageType.HEARTBEAT, src=src.id, dst=dst.id, term=1, index=index)


def _top_level_fields(data: bytes) -> set[int]:
    """The field numbers present at the top level of a serialized message."""
    fields, i = set(), 0

    def varint() -> int:
        nonlocal i
        value = shift = 0
        while True:
            byte = data[i]
            i += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value

    while i < len(data):
        key = varint()
        fields.add(key >> 3)
        if key & 7 == 0:
            varint()
        else:
            assert key & 7 == 2, "RaftBatch has only varint and length-delimited fields"
            length = varint()  # (``i += varint()`` would add to the old ``i``)
            i += length
    return fields


def _collector() -> tuple[list[Message], Callable[[Sequence[Message]], None]]:
    got: list[Message] = []
    return got, got.extend


async def _pair(tmp_path: Path) -> tuple[Host, Host]:
    a, b = Host(tmp_path, "a"), Host(tmp_path, "b")
    await a.start()
    await b.start()
    a.knows(b)
    b.knows(a)
    return a, b


async def test_two_groups_share_one_stream_and_each_gets_only_its_messages_in_order(
    tmp_path: Path,
) -> None:
    a, b = await _pair(tmp_path)
    controller, deliver_controller = _collector()
    partition, deliver_partition = _collector()
    b.inbox.register("", deliver_controller)
    b.inbox.register("a/0", deliver_partition)
    try:
        n = 300
        for i in range(n):  # interleaved, a few messages at a time
            a.transport.send("a/0", [_heartbeat(a, b, 2 * i), _heartbeat(a, b, 2 * i + 1)])
            a.transport.sender("")([_heartbeat(a, b, i)])
            if i % 50 == 0:
                await asyncio.sleep(0)  # let some batches go out between sends
        await _until(lambda: len(controller) == n and len(partition) == 2 * n, "every message")
        assert [m.index for m in controller] == list(range(n))
        assert [m.index for m in partition] == list(range(2 * n))
        assert b.streams == 1  # one gRPC stream carries both groups
        assert len(b.stream_peers) == 1  # over one connection
        batches = [raft_pb2.RaftBatch.FromString(r) for r in b.raw]
        assert {x.group for x in batches if x.messages} == {""}
        assert {run.group for x in batches for run in x.groups} == {"a/0"}
        for raw in b.raw:
            # the controller group's messages are byte-for-byte what a peer from before
            # groups existed sends and expects: no field 7 at all
            assert 7 not in _top_level_fields(raw)
    finally:
        await a.stop()
        await b.stop()


async def test_what_many_groups_queued_for_one_peer_goes_out_in_one_batch(
    tmp_path: Path,
) -> None:
    a, b = await _pair(tmp_path)
    got, deliver = _collector()
    groups = [f"t/{p}" for p in range(100)]
    for group in groups:
        b.inbox.register(group, deliver)
    try:
        for i, group in enumerate(groups):  # one turn of a hundred groups' loops
            a.transport.send(group, [_heartbeat(a, b, i)])
        await _until(lambda: len(got) == len(groups), "every group's message")
        assert sorted(m.index for m in got) == list(range(len(groups)))
        batches = [raft_pb2.RaftBatch.FromString(r) for r in b.raw]
        carrying = [x for x in batches if x.groups]
        assert len(carrying) == 1, len(carrying)
        assert [run.group for run in carrying[0].groups] == groups
    finally:
        await a.stop()
        await b.stop()


async def test_a_batch_of_a_group_not_hosted_is_dropped_and_counted_and_the_stream_goes_on(
    tmp_path: Path,
) -> None:
    a, b = await _pair(tmp_path)
    controller, deliver_controller = _collector()
    b.inbox.register("", deliver_controller)
    counted: list[tuple[str, int]] = []
    b.inbox.on_drop = lambda reason, count: counted.append((reason, count))
    try:
        a.transport.send("t/9", [_heartbeat(a, b, i) for i in range(5)])
        a.transport.send("", [_heartbeat(a, b, 1)])
        await _until(lambda: controller, "the controller's message after the dropped batch")
        assert b.inbox.dropped["group"] == 5
        assert counted == [("group", 5)]
        b.inbox.register("t/9", deliver_controller)  # hosted a moment later: now delivered
        a.transport.send("t/9", [_heartbeat(a, b, 2)])
        await _until(lambda: len(controller) == 2, "the group's message once it is hosted")
        b.inbox.unregister("t/9")
        a.transport.send("t/9", [_heartbeat(a, b, 3)])
        a.transport.send("", [_heartbeat(a, b, 4)])
        await _until(lambda: len(controller) == 3, "the controller's next message")
        assert [m.index for m in controller] == [1, 2, 4]
        assert b.inbox.dropped["group"] == 6
        assert b.streams == 1
    finally:
        await a.stop()
        await b.stop()


async def test_a_stopped_peer_is_reported_down_once_and_up_again_when_it_returns(
    tmp_path: Path,
) -> None:
    interval, timeout = 0.05, 0.3
    liveness = {"liveness_interval_s": interval, "liveness_timeout_s": timeout}
    a, b = Host(tmp_path, "a", **liveness), Host(tmp_path, "b", **liveness)
    await a.start()
    await b.start()
    a.knows(b)
    b.knows(a)
    events: list[tuple[str, int]] = []
    a.transport.on_peer_down(lambda peer: events.append(("down", peer)))
    a.transport.on_peer_up(lambda peer: events.append(("up", peer)))
    a.transport.start()
    b.transport.start()
    loop = asyncio.get_running_loop()
    try:
        # nothing but pings flows: no group sends anything
        await _until(lambda: a.transport.live(b.id), "a to hear b's pings")
        assert events == [("up", b.id)]
        port = b.port
        await b.stop()
        stopped = loop.time()
        await _until(lambda: len(events) == 2, "b reported down")
        took = loop.time() - stopped
        assert events[1] == ("down", b.id)
        assert not a.transport.live(b.id)
        # within timeout + interval (+ scheduling slack on a loaded machine)
        assert took <= timeout + interval + 0.2, took
        b = Host(tmp_path, "b", **liveness)
        await b.start(port)  # the same address again
        b.knows(a)
        b.transport.start()
        await _until(lambda: len(events) == 3, "b reported up again", timeout=5)
        assert events == [("up", b.id), ("down", b.id), ("up", b.id)]  # down once, not per tick
        assert a.transport.live(b.id)
    finally:
        await a.stop()
        await b.stop()


async def test_two_raft_groups_elect_and_commit_independently_over_the_same_transports(
    tmp_path: Path,
) -> None:
    hosts = [Host(tmp_path, f"n{i}") for i in (1, 2, 3)]
    for h in hosts:
        await h.start()
    for h in hosts:
        h.knows(*hosts)
    voters = Membership(frozenset(h.id for h in hosts))
    options = NodeOptions(tick_s=0.02, election_ticks=10)
    tasks: set[asyncio.Task[None]] = set()
    nodes: dict[str, list[RaftNode]] = {"": [], "a/0": []}
    for h in hosts:
        groups = GroupHost(h.transport, h.inbox, h.book, None, lambda c: _spawn(tasks, c))
        for group, members in nodes.items():
            path = tmp_path / h.name / (group.replace("/", "-") or "controller")
            store = ReplogLogStore(path, bootstrap=voters, commit_flush_s=0)
            node = RaftNode(store, h.id, random.Random(f"{h.name}{group}"), options)
            groups.host(group, node, store)
            members.append(node)
            node.start()
    try:
        for group, members in nodes.items():
            await _until(lambda m=members: any(n.is_leader for n in m), f"a leader of {group!r}")
        offsets = {}
        for group, members in nodes.items():
            leader = next(n for n in members if n.is_leader)
            offsets[group] = await leader.submit([f"{group}-record".encode()] * 3)
        for group, members in nodes.items():
            last = offsets[group] + 2
            await _until(
                lambda m=members, last=last: all(n.high_watermark > last for n in m),
                f"{group!r} committed on every member",
            )
        for group, members in nodes.items():
            for node in members:
                records = [node.store.log.read(offsets[group] + k) for k in range(3)]
                assert [r.value for r in records] == [f"{group}-record".encode()] * 3
        assert all(h.streams == 2 for h in hosts)  # one from each other node, not per group
    finally:
        for members in nodes.values():
            for node in members:
                await node.stop()
        for task in tasks:
            task.cancel()
        for h in hosts:
            await h.stop()


def _spawn(tasks: set[asyncio.Task[None]], coro: Any) -> None:
    task = asyncio.get_running_loop().create_task(coro)
    tasks.add(task)
    task.add_done_callback(tasks.discard)


async def _chunks(*chunks: raft_pb2.SnapshotChunk) -> Any:
    for chunk in chunks:
        yield chunk


def _snapshot_stream(group: str, dst: int) -> Any:
    final = raft_pb2.RaftMessage(type=MessageType.SNAPSHOT, src=raft_id("a"), dst=dst, term=1)
    return _chunks(
        raft_pb2.SnapshotChunk(from_id="a", cluster_id=CLUSTER, first_offset=1, group=group),
        raft_pb2.SnapshotChunk(message=final),
    )


def _staged(store: ReplogLogStore) -> list[str]:
    return sorted(p.name for p in store.directory.iterdir() if p.name.startswith("snapshot-"))


async def test_a_snapshot_is_staged_in_its_own_groups_store_and_one_of_no_hosted_group_nowhere(
    tmp_path: Path,
) -> None:
    b = Host(tmp_path, "b")
    stores = {g: ReplogLogStore(tmp_path / (g.replace("/", "-") or "c")) for g in ("", "a/0")}
    for group, store in stores.items():
        b.inbox.register(group, lambda messages: None, store)
    try:
        received = await receive_snapshot(_snapshot_stream("a/0", b.id), b.inbox)
        assert received is not None
        target, final = received
        assert target.store is stores["a/0"]
        assert final.type == MessageType.SNAPSHOT
        assert _staged(stores["a/0"]) and not _staged(stores[""])
        assert await receive_snapshot(_snapshot_stream("t/3", b.id), b.inbox) is None
        assert b.inbox.dropped["group"] == 1
        assert len(_staged(stores["a/0"])) == 1 and not _staged(stores[""])
    finally:
        for store in stores.values():
            store.close()


async def test_a_node_that_stops_pinging_is_reported_down_by_its_peer(tmp_path: Path) -> None:
    liveness = {"liveness_interval_s": 0.05, "liveness_timeout_s": 0.3}
    a, b = Host(tmp_path, "a", **liveness), Host(tmp_path, "b", **liveness)
    for h in (a, b):
        await h.start()
    a.knows(b)
    b.knows(a)
    down: list[int] = []
    b.transport.on_peer_down(down.append)
    a.transport.start()
    b.transport.start()
    try:
        await _until(lambda: b.transport.live(a.id), "b to hear a's pings")
        a.transport.stop_pings()  # what a fail-stopped node does; its server still runs
        await _until(lambda: down == [a.id], "a reported down")
        assert a.transport.live(b.id)  # b still pings a
    finally:
        await a.stop()
        await b.stop()
