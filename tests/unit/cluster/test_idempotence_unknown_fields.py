"""A keyed record a client sent with a field this server does not know (a newer client's):
the server drops the field, so the stamped first record still ends with its producer
fields and a retry of the batch is recognised on a replicated partition and after a
restart that replays the log (found in review: it was appended again)."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

from replog.api.backend import DuplicateOffset
from replog.api.wire import produce_batch_request
from replog.cluster.log_store import ReplogLogStore
from replog.cluster.raft_node import NodeOptions, RaftNode
from replog.raft.messages import Membership
from replog.server.backend import SingleNodeBackend
from replog.storage import Log
from replog.v1 import log_pb2
from replog.v1.record_pb2 import Record

PID = 2**62 + 5
UNKNOWN_FIELD_15 = b"\x7a\x0a" + b"A" * 10  # field 15, 10 bytes: unknown to this Record


def _request(unknown: bool) -> bytes:
    record = Record(key=b"k", value=b"v")
    if unknown:
        record.MergeFromString(UNKNOWN_FIELD_15)
    return log_pb2.ProduceBatchRequest(
        records=[record], partition=0, producer_id=PID, base_sequence=0
    ).SerializeToString()


async def _single_raft(tmp_path: Path) -> RaftNode:
    store = ReplogLogStore(tmp_path / "n1", bootstrap=Membership(frozenset({1})), commit_flush_s=0)
    node = RaftNode(store, 1, random.Random(1), NodeOptions(tick_s=0.01, election_ticks=10))
    node.send = lambda messages: None
    node.start()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while not (node.is_leader and node.raft.log.term(node.raft.log.committed) == node.raft.term):
        assert loop.time() < deadline
        await asyncio.sleep(0.01)
    return node


def _retry_on_a_replicated_partition(tmp_path: Path, unknown: bool) -> tuple[int, int]:
    async def main() -> tuple[int, int]:
        node = await _single_raft(tmp_path)
        try:
            values, _, _, conditions = produce_batch_request(_request(unknown))
            first = await asyncio.wait_for(node.submit(values, conditions), 5)
            values, _, _, conditions = produce_batch_request(_request(unknown))
            again = await asyncio.wait_for(node.submit(values, conditions), 5)
            return first, again
        finally:
            await node.stop()

    return asyncio.run(main())


def test_control_a_retry_on_a_replicated_partition_is_a_duplicate(tmp_path: Path) -> None:
    first, again = _retry_on_a_replicated_partition(tmp_path, unknown=False)
    assert isinstance(again, DuplicateOffset) and again == first


def test_a_retry_of_a_record_with_an_unknown_field_is_a_duplicate_on_a_replicated_partition(
    tmp_path: Path,
) -> None:
    first, again = _retry_on_a_replicated_partition(tmp_path, unknown=True)
    assert isinstance(again, DuplicateOffset) and again == first, (first, again)


def test_a_retry_of_a_record_with_an_unknown_field_is_a_duplicate_after_a_restart(
    tmp_path: Path,
) -> None:
    async def produce() -> int:
        backend = SingleNodeBackend(Log(tmp_path / "p"), server_id="n1", rpc_addr="x:0")
        backend.start()
        try:
            values, _, _, conditions = produce_batch_request(_request(True))
            return await asyncio.wait_for(backend.submit(values, conditions), 5)
        finally:
            await backend.close()

    first = asyncio.run(produce())
    (tmp_path / "p" / "producers.json").unlink()  # as after a crash before any checkpoint
    again = asyncio.run(produce())
    assert isinstance(again, DuplicateOffset) and again == first, (first, again)
