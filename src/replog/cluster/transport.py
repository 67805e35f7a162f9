"""Raft messages over gRPC: conversion to ``replog.v1.raft`` and one outgoing stream per peer
node, shared by every Raft group of this process (docs/multiraft.md).

Theory of operation: ``RaftTransport.send(group, messages)`` never blocks the node loop.
Messages are queued per destination and group; one task per peer keeps a client-streaming
``Raft/Stream`` call open and writes what is queued as ``RaftBatch`` messages of up to 4 MiB
of entries (batching), the groups taking turns, awaiting gRPC flow control (backpressure):
the controller group's messages in ``RaftBatch.messages`` (as before groups existed), every
partition group's as one run of ``RaftBatch.groups`` tagged with the group, so a turn of a
thousand groups is one write, not a thousand. Entries travel as columns
(``RaftMessage.entry_*``). A full queue drops new messages and a broken stream drops what
was queued: Raft tolerates lost messages and retransmits, so the transport needs no
acknowledgements. Node liveness: every
``liveness_interval_s`` a peer that was sent nothing gets one empty batch (a ping, which
every receiver, old ones included, takes as a batch of no messages); the receiving side
reports each batch through ``heard``, and ``live``/``on_peer_down``/``on_peer_up`` give the
verdict (``cluster/liveness.py``).
Node-to-node TLS uses the node's own certificate (identity ``replog-node``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from itertools import accumulate, repeat

import grpc
from grpc import aio

from replog.cluster.liveness import Liveness
from replog.raft.messages import Entry, Membership, Message, MessageType, SnapshotMeta
from replog.raft.storage import data_bytes
from replog.v1 import raft_pb2

__all__ = [
    "RAFT_SERVICE",
    "RaftTransport",
    "message_from_proto",
    "message_to_proto",
    "open_channel",
]

log = logging.getLogger("replog.cluster.transport")

RAFT_SERVICE = "replog.v1.Raft"
_QUEUE_MAX_MESSAGES = 8192
_RECONNECT_S = 0.1
_BATCH_MAX_BYTES = 4 << 20
_GOSSIP_S = 1.0
_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 128 * 1024 * 1024),
    ("grpc.max_send_message_length", 128 * 1024 * 1024),
    ("grpc.keepalive_time_ms", 10_000),
]
_new_tuple = tuple.__new__


def open_channel(addr: str, credentials: grpc.ChannelCredentials | None) -> aio.Channel:
    """A channel to another node (TLS when ``credentials`` are given)."""
    if credentials is None:
        return aio.insecure_channel(addr, options=_CHANNEL_OPTIONS)
    return aio.secure_channel(addr, credentials, options=_CHANNEL_OPTIONS)


def _membership_to_proto(config: Membership) -> raft_pb2.RaftMembership:
    return raft_pb2.RaftMembership(voters=sorted(config.voters), learners=sorted(config.learners))


def message_to_proto(m: Message) -> raft_pb2.RaftMessage:
    """The wire form of a core message (entries keep their data bytes unchanged)."""
    pb = raft_pb2.RaftMessage(
        type=m.type,
        src=m.src,
        dst=m.dst,
        term=m.term,
        log_term=m.log_term,
        index=m.index,
        commit=m.commit,
        reject=m.reject,
        reject_hint=m.reject_hint,
        transfer=m.transfer,
        lost_entries=m.lost_entries,
        quiesce=m.quiesce,
    )
    entries = m.entries
    if entries:
        pb.first_index = entries[0].index
        pb.entry_terms.extend([e.term for e in entries])
        if any(e.kind for e in entries):
            pb.entry_kinds.extend([e.kind for e in entries])
        datas = [e.data for e in entries]
        pb.entry_sizes.extend(map(len, datas))
        pb.entry_data = b"".join(datas)
    if m.snapshot is not None:
        s = m.snapshot
        pb.snapshot.CopyFrom(
            raft_pb2.RaftSnapshotMeta(
                index=s.index, term=s.term, config=_membership_to_proto(s.config)
            )
        )
    return pb


def message_from_proto(pb: raft_pb2.RaftMessage) -> Message:
    """The core message a wire message describes."""
    entries: Sequence[Entry] = ()
    if pb.entry_sizes:
        entries = _entries_from_columns(pb)
    elif pb.entries:
        fields = [(e.term, e.index, e.kind, e.data) for e in pb.entries]
        entries = list(map(_new_tuple, repeat(Entry, len(fields)), fields))
    snapshot = None
    if pb.HasField("snapshot"):
        c = pb.snapshot.config
        config = Membership(frozenset(c.voters), frozenset(c.learners))
        snapshot = SnapshotMeta(pb.snapshot.index, pb.snapshot.term, config)
    return Message(
        type=MessageType(pb.type),
        src=pb.src,
        dst=pb.dst,
        term=pb.term,
        log_term=pb.log_term,
        index=pb.index,
        entries=entries,
        commit=pb.commit,
        reject=pb.reject,
        reject_hint=pb.reject_hint,
        snapshot=snapshot,
        transfer=pb.transfer,
        lost_entries=pb.lost_entries,
        quiesce=pb.quiesce,
    )


def _entries_from_columns(pb: raft_pb2.RaftMessage) -> list[Entry]:
    """The entries of a message in the columnar form (see ``raft.proto``)."""
    sizes = list(pb.entry_sizes)
    n = len(sizes)
    terms = list(pb.entry_terms)
    kinds: Iterable[int] = list(pb.entry_kinds) if pb.entry_kinds else repeat(0, n)
    if len(terms) != n or (pb.entry_kinds and len(pb.entry_kinds) != n):
        raise ValueError("a Raft message's entry columns differ in length")
    data = pb.entry_data
    ends = list(accumulate(sizes))
    if ends[-1] != len(data):
        raise ValueError("a Raft message's entry sizes do not add up to its data")
    datas = [data[end - size : end] for size, end in zip(sizes, ends, strict=True)]
    first = pb.first_index
    fields = zip(terms, range(first, first + n), kinds, datas, strict=False)
    return list(map(_new_tuple, repeat(Entry, n), fields))


class _Peer:
    """The outgoing stream to one peer node, shared by every group: one queue per group with
    something to send, served round-robin a batch at a time (a batch holds one group's
    messages, in the order they were sent)."""

    def __init__(self, transport: RaftTransport, peer_id: int) -> None:
        self.transport = transport
        self.peer_id = peer_id
        self.queues: dict[str, deque[tuple[raft_pb2.RaftMessage, int]]] = {}  # (msg, bytes)
        self.ready: deque[str] = deque()  # the groups whose queue is not empty, in turn
        self.queued = 0  # messages in all queues: the bound is per peer, not per group
        self.ping_due = False  # send a batch even if nothing is queued
        self.sent_messages = False  # since the last liveness tick (which then skips the ping)
        self.wakeup = asyncio.Event()
        self.task = asyncio.get_running_loop().create_task(self._run(), name=f"raft-peer-{peer_id}")
        self.connected_addr = ""

    def enqueue(self, group: str, messages: Iterable[Message]) -> None:
        room = _QUEUE_MAX_MESSAGES - self.queued
        queue = self.queues.get(group)
        if queue is None:
            queue = self.queues[group] = deque()
        was_empty = not queue
        for m in messages:
            if room <= 0:
                break  # the rest is dropped: Raft retransmits
            queue.append((message_to_proto(m), data_bytes(m.entries)))
            room -= 1
        self.queued = _QUEUE_MAX_MESSAGES - room
        if not queue:
            del self.queues[group]
        elif was_empty:
            self.ready.append(group)
        self.wakeup.set()

    def ping(self) -> None:
        """Send one (empty) batch soon, so the peer hears of this node."""
        self.ping_due = True
        self.wakeup.set()

    def clear(self) -> None:
        """Drop everything queued (Raft retransmits)."""
        self.queues.clear()
        self.ready.clear()
        self.queued = 0
        self.ping_due = False

    async def _run(self) -> None:
        while True:
            await self.wakeup.wait()
            addr = self.transport.resolve(self.peer_id)
            if not addr:
                self.clear()
                self.wakeup.clear()
                continue
            try:
                await self._stream(addr)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("stream to %s (%s) broke: %s", self.peer_id, addr, exc)
            self.clear()
            await asyncio.sleep(_RECONNECT_S)

    def _fill(self, batch: raft_pb2.RaftBatch) -> None:
        """Move queued messages into ``batch``, the groups in turn, up to ``_BATCH_MAX_BYTES``
        of entry data (at least one message): smaller batches keep a catching-up follower
        writing while the next ones are on the way, and let other groups in between. The
        controller group's messages go in ``messages`` (as before groups existed), each
        partition group's as one run of ``groups``: a turn of many groups is one write."""
        size = taken = 0
        for _ in range(len(self.ready)):
            group = self.ready[0]
            queue = self.queues[group]
            messages: list[raft_pb2.RaftMessage] = []
            while queue and (not (taken or messages) or size + queue[0][1] <= _BATCH_MAX_BYTES):
                message, nbytes = queue.popleft()
                messages.append(message)
                size += nbytes
            if not messages:
                break  # the batch is full
            self.ready.popleft()
            taken += len(messages)
            if group:
                batch.groups.add(group=group, messages=messages)
            else:
                batch.messages.extend(messages)
            if queue:
                self.ready.append(group)
                break  # the batch is full
            del self.queues[group]
        self.queued -= taken

    async def _stream(self, addr: str) -> None:
        channel = open_channel(addr, self.transport.credentials)
        try:
            call = channel.stream_unary(
                f"/{RAFT_SERVICE}/Stream",
                request_serializer=raft_pb2.RaftBatch.SerializeToString,
                response_deserializer=raft_pb2.RaftAck.FromString,
            )()
            t = self.transport
            gossiped_at = -_GOSSIP_S
            while self.transport.resolve(self.peer_id) == addr:
                if not self.ready and not self.ping_due:
                    self.wakeup.clear()
                    await self.wakeup.wait()
                    continue
                batch = raft_pb2.RaftBatch(
                    from_id=t.name, from_addr=t.addr, from_epoch=t.epoch, cluster_id=t.cluster_id
                )
                if self.ready:
                    self._fill(batch)
                    self.sent_messages = True
                self.ping_due = False  # any batch tells the peer we are alive
                now = time.monotonic()
                if now - gossiped_at >= _GOSSIP_S:
                    gossiped_at = now
                    batch.addresses.extend(
                        raft_pb2.NodeAddress(id=n, addr=a, epoch=e) for n, a, e in t.gossip()
                    )
                await call.write(batch)
            call.cancel()
        finally:
            await channel.close(None)


class RaftTransport:
    """Sends core messages of any group to peers by Raft id over one stream per peer node;
    ``resolve`` maps an id to its address. Once started, it also pings every peer node each
    ``liveness_interval_s`` that nothing else was sent to, and judges peers' liveness from
    what the receiving side reports through ``heard``."""

    def __init__(
        self,
        *,
        name: str,
        addr: str,
        resolve: Callable[[int], str | None],
        credentials: grpc.ChannelCredentials | None = None,
        epoch: int = 0,
        gossip: Callable[[], list[tuple[str, str, int]]] = list,
        cluster_id: str = "",
        peers: Callable[[], Iterable[int]] = tuple,
        liveness_interval_s: float = 0.25,
        liveness_timeout_s: float = 1.0,
    ) -> None:
        """``name``/``addr``/``epoch``/``cluster_id``: this node's user-facing id, Raft
        address, start epoch and cluster (sent along; settable); ``gossip()``: the (name,
        address, epoch) it knows, sent about once a second on each stream; ``peers()``: the
        Raft ids of the other nodes to keep pinging (besides those sent to)."""
        self.name = name
        self.addr = addr
        self.resolve = resolve
        self.credentials = credentials
        self.epoch = epoch
        self.gossip = gossip
        self.cluster_id = cluster_id
        self.peers = peers
        self.liveness_interval_s = liveness_interval_s
        # Checks come every interval: a gap of two means this node's loop stalled.
        stall_s = max(liveness_timeout_s / 2, 2 * liveness_interval_s)
        self.liveness = Liveness(liveness_timeout_s, stall_s=stall_s)
        self.heard = self.liveness.heard
        """Tell the transport something of peer ``id`` arrived (the inbox does, per batch)."""
        self.live = self.liveness.live
        self.on_peer_down = self.liveness.on_peer_down
        self.on_peer_up = self.liveness.on_peer_up
        self._peers: dict[int, _Peer] = {}
        self._pinger: asyncio.Task[None] | None = None
        self._closed = False
        self._closed_pings = False

    def start(self) -> None:
        """Start the liveness pings and checks (call from the event loop)."""
        if self._pinger is None and not self._closed and not self._closed_pings:
            loop = asyncio.get_running_loop()
            self._pinger = loop.create_task(self._ping_loop(), name="raft-liveness")

    def stop_pings(self) -> None:
        """Send no more pings (this node fail-stopped: its peers must find it down, though
        its streams still carry what is already queued)."""
        if self._pinger is not None:
            self._pinger.cancel()
        self._closed_pings = True

    def send(self, group: str, messages: Sequence[Message]) -> None:
        """Queue ``messages`` of ``group`` for their destinations (never blocks; may drop on
        overload)."""
        if self._closed:
            return
        by_peer: dict[int, list[Message]] = {}
        for m in messages:
            by_peer.setdefault(m.dst, []).append(m)
        for dst, some in by_peer.items():
            self._peer(dst).enqueue(group, some)

    def sender(self, group: str) -> Callable[[Sequence[Message]], None]:
        """A ``send`` for ``group``'s messages only (what a group's RaftNode is given)."""
        return partial(self.send, group)

    def _peer(self, peer_id: int) -> _Peer:
        peer = self._peers.get(peer_id)
        if peer is None:
            peer = self._peers[peer_id] = _Peer(self, peer_id)
        return peer

    async def _ping_loop(self) -> None:
        while True:
            await asyncio.sleep(self.liveness_interval_s)
            self.tick()

    def tick(self) -> None:
        """One liveness round: ping each peer node that was sent nothing since the last
        round (one empty batch per node, whatever its number of groups), then report the
        peers silent for too long."""
        if self._closed or self._closed_pings:
            return
        for peer_id in {*self._peers, *self.peers()}:
            peer = self._peer(peer_id)
            if peer.sent_messages:
                peer.sent_messages = False
            else:
                peer.ping()
        self.liveness.check()

    async def close(self) -> None:
        """Stop every peer stream and the pings; later sends are dropped."""
        self._closed = True
        tasks = [p.task for p in self._peers.values()]
        self._peers = {}
        if self._pinger is not None:
            tasks.append(self._pinger)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
