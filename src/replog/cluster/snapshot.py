"""Snapshot transfers (``Raft/InstallSnapshot``): the leader streams its retained records up
to the snapshot index, the follower stages them and installs only a complete stream.
``SnapshotChunk.group`` names the group (absent = the controller group), whose store the
receiver looks up in the inbox's registry.

A group with application state beside its records (the controller group: its metadata
snapshot, which the records after it continue) sends it in the first chunk as field 10,
``group_state``; the receiver keeps it durably (``GroupState.accept``) before the records
are installed, and refuses the stream if they do not continue it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator

import grpc

from replog.broker.producer_log import CHECKPOINT_NAME
from replog.cluster.admin import NodeChannel
from replog.cluster.events import group_labels
from replog.cluster.inbox import GroupTarget, Inbox
from replog.cluster.transport import RAFT_SERVICE, message_to_proto
from replog.errors import ReplogError
from replog.raft.messages import Message
from replog.storage import Log
from replog.storage.atomic import write_atomically
from replog.v1 import raft_pb2

__all__ = [
    "group_state_of",
    "receive_snapshot",
    "send_snapshot",
    "set_group_state",
    "snapshot_chunks",
]

log = logging.getLogger("replog.cluster")

_log = logging.getLogger("replog.cluster.snapshot")

_SNAPSHOT_CHUNK_RECORDS = 4096
_SNAPSHOT_CHUNK_BYTES = 4 << 20


def set_group_state(chunk: raft_pb2.SnapshotChunk, data: bytes) -> None:
    """Put ``data`` in ``chunk``'s ``group_state`` (field 10)."""
    if data:
        chunk.group_state = data


def group_state_of(chunk: raft_pb2.SnapshotChunk) -> bytes:
    """The bytes of ``chunk``'s ``group_state`` (field 10); empty if absent."""
    return bytes(chunk.group_state)


async def snapshot_chunks(
    log: Log,
    message: Message,
    *,
    name: str,
    addr: str,
    book: dict[str, str],
    cluster_id: str = "",
    group: str = "",
    producer_state: bytes = b"",
    group_state: bytes = b"",
    first_offset: int | None = None,
) -> AsyncIterator[raft_pb2.SnapshotChunk]:
    """The sender's id, cluster, address book, producer-state checkpoint and group state,
    its retained records from ``first_offset`` (default: its lowest) up to the snapshot
    index, then the SNAPSHOT message itself (the receiver installs only a complete
    stream)."""
    assert message.snapshot is not None
    offset, last = first_offset or log.lowest_offset, message.snapshot.index
    first = raft_pb2.SnapshotChunk(
        from_id=name,
        from_addr=addr,
        first_offset=offset,
        address_book=json.dumps(book).encode(),
        cluster_id=cluster_id,
        group=group,
        producer_state=producer_state,
    )
    set_group_state(first, group_state)
    yield first
    while offset <= last:
        payloads = await asyncio.to_thread(
            log.read_payloads,
            offset,
            max_records=min(_SNAPSHOT_CHUNK_RECORDS, last - offset + 1),
            max_bytes=_SNAPSHOT_CHUNK_BYTES,
        )
        yield raft_pb2.SnapshotChunk(payloads=payloads)
        offset += len(payloads)
    yield raft_pb2.SnapshotChunk(message=message_to_proto(message))


async def send_snapshot(  # noqa: PLR0917  (the sender's identity travels along)
    addr: str,
    message: Message,
    log: Log,
    credentials: grpc.ChannelCredentials | None,
    name: str,
    own_addr: str,
    book: dict[str, str],
    *,
    cluster_id: str = "",
    group: str = "",
    producer_state: bytes = b"",
    group_state: bytes = b"",
    first_offset: int | None = None,
) -> bool:
    """Stream the snapshot ``message`` names to the node at ``addr``; whether it took it."""
    async with NodeChannel(addr, credentials) as channel:
        call = channel.stream_unary(
            f"/{RAFT_SERVICE}/InstallSnapshot",
            request_serializer=raft_pb2.SnapshotChunk.SerializeToString,
            response_deserializer=raft_pb2.SnapshotAck.FromString,
        )
        chunks = snapshot_chunks(
            log,
            message,
            name=name,
            addr=own_addr,
            book=book,
            cluster_id=cluster_id,
            group=group,
            producer_state=producer_state,
            group_state=group_state,
            first_offset=first_offset,
        )
        ack = await call(chunks, timeout=300)
        return bool(ack.ok)


async def receive_snapshot(
    requests: AsyncIterator[raft_pb2.SnapshotChunk], inbox: Inbox
) -> tuple[GroupTarget, raft_pb2.RaftMessage] | None:
    """Stage a leader's snapshot stream in its group's store; that group and the SNAPSHOT
    message to step once it is complete (None if the stream ended early, is of another
    cluster, for another node, or of a group not hosted here, also if the group stopped being
    hosted meanwhile: the staged records are never used)."""
    staged = None
    producer_state = group_state = b""
    first_offset = 0
    final: raft_pb2.RaftMessage | None = None
    book = inbox.book
    sender = group = ""
    target = None
    try:
        async for chunk in requests:
            if target is None:
                sender, group = chunk.from_id, chunk.group
                if not inbox.of_this_cluster(chunk.cluster_id, sender):
                    return None  # before anything is staged or learnt
                target = inbox.target(group)
                if target is None or target.store is None:
                    inbox.drop("group", sender, 1)
                    return None
                staged = await asyncio.to_thread(target.store.stage_snapshot, chunk.first_offset)
                producer_state, group_state = chunk.producer_state, group_state_of(chunk)
                first_offset = chunk.first_offset
                for name, addr in json.loads(chunk.address_book or b"{}").items():
                    book.set(name, addr)
            if chunk.payloads:
                assert staged is not None
                await asyncio.to_thread(staged.append_payloads, list(chunk.payloads))
            if chunk.HasField("message"):
                final = chunk.message
        if target is None or target.store is None or staged is None or final is None:
            return None
        if not inbox.addressed_here(final, sender) or inbox.target(group) is not target:
            return None
        if target.state is not None and not await _accept_state(
            target, group_state, first_offset, final, sender
        ):
            return None
        await asyncio.to_thread(target.store.finish_staging, staged)
        staged = None
        if producer_state:  # read by the rebuild that installing the snapshot starts
            path = target.store.directory / CHECKPOINT_NAME
            await asyncio.to_thread(write_atomically, path, producer_state)
        _log_received(group, sender, final.snapshot.index, book.name(inbox.id))
    finally:
        if staged is not None and target is not None and target.store is not None:
            # incomplete: its records must never be swapped in
            await asyncio.to_thread(target.store.discard_staging, staged)
    return target, final


async def _accept_state(
    target: GroupTarget, data: bytes, first_offset: int, final: raft_pb2.RaftMessage, sender: str
) -> bool:
    """Keep the group state that came with a stream (before its records are installed);
    False if it does not fit them (the stream is refused, the leader sends another)."""
    assert target.state is not None
    try:
        await asyncio.to_thread(target.state.accept, data, first_offset, final.snapshot.index)
    except (ReplogError, OSError) as exc:
        log.warning("refusing a snapshot from %s: %s", sender, exc)
        return False
    return True


def _log_received(group: str, sender: str, index: int, node: str) -> None:
    where, topic, partition = group_labels(group)
    _log.info(
        "%s: received a snapshot up to index %d from %s",
        where,
        index,
        sender,
        extra={
            "event": "snapshot_received",
            "node": node,
            "group": where,
            "topic": topic,
            "partition": partition,
            "peer": sender,
            "index": index,
        },
    )
