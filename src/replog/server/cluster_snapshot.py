"""The leader's side of a snapshot transfer: the ``Raft/InstallSnapshot`` chunk stream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from replog.raft.messages import Message
from replog.raft.transport import message_to_proto
from replog.storage import Log
from replog.v1 import raft_pb2

__all__ = ["snapshot_chunks"]

_SNAPSHOT_CHUNK_RECORDS = 4096
_SNAPSHOT_CHUNK_BYTES = 4 << 20


async def snapshot_chunks(
    log: Log, message: Message, *, name: str, addr: str, book: dict[str, str]
) -> AsyncIterator[raft_pb2.SnapshotChunk]:
    """The sender's id and address book, its retained records up to the snapshot index, then
    the SNAPSHOT message itself (the receiver installs only a complete stream)."""
    assert message.snapshot is not None
    offset, last = log.lowest_offset, message.snapshot.index
    yield raft_pb2.SnapshotChunk(
        from_id=name, from_addr=addr, first_offset=offset, address_book=json.dumps(book).encode()
    )
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
