"""Per-key conditions on a replicated partition: a key written earlier in the same
proposal group counts (found in review: the term's pending keys were built after it)."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from pathlib import Path

import pytest

from replog.api.backend import Conditions
from replog.cluster.log_store import ReplogLogStore
from replog.cluster.raft_node import NodeOptions, RaftNode
from replog.errors import ExpectedKeyOffsetError
from replog.raft.messages import Membership
from replog.v1.record_pb2 import Record

OPTIONS = dataclasses.replace(NodeOptions(tick_s=0.01, election_ticks=10), key_index=True)


async def _single(tmp_path: Path) -> RaftNode:
    store = ReplogLogStore(tmp_path / "n1", bootstrap=Membership(frozenset({1})), commit_flush_s=0)
    node = RaftNode(store, 1, random.Random(1), OPTIONS)
    node.send = lambda messages: None
    node.start()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while not (node.is_leader and node.raft.log.term(node.raft.log.committed) == node.raft.term):
        assert loop.time() < deadline
        await asyncio.sleep(0.01)
    return node


def test_a_key_written_earlier_in_the_same_proposal_group_fails_a_per_key_condition(
    tmp_path: Path,
) -> None:
    """R1 writes key a (no condition); R2, queued right behind it, asks that a has no record
    yet. Proposed together as the term's first per-key check, R2 must fail."""

    async def main() -> None:
        node = await _single(tmp_path)
        try:
            plain = node.submit([Record(key=b"a", value=b"plain")])
            conditional = node.submit(
                [Record(key=b"a", value=b"conditional")], Conditions(expected_key_offset=-1)
            )
            first = await asyncio.wait_for(plain, 5)
            with pytest.raises(ExpectedKeyOffsetError):
                second = await asyncio.wait_for(conditional, 5)
                print("both won:", first, second)
        finally:
            await node.stop()

    asyncio.run(main())


def test_control_a_key_written_in_an_earlier_turn_fails_a_per_key_condition(tmp_path: Path) -> None:
    async def main() -> None:
        node = await _single(tmp_path)
        try:
            await asyncio.wait_for(node.submit([Record(key=b"a", value=b"plain")]), 5)
            with pytest.raises(ExpectedKeyOffsetError):
                await asyncio.wait_for(
                    node.submit([Record(key=b"a", value=b"c")], Conditions(expected_key_offset=-1)),
                    5,
                )
        finally:
            await node.stop()

    asyncio.run(main())
