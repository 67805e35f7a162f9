"""RaftNode fail-stop: a failed write stops the node at once and fails every producer."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from replog.cluster.log_store import ReplogLogStore
from replog.cluster.members import (
    clear_join_pending,
    is_clustered,
    join_incarnation,
    join_pending,
    mark_join_pending,
)
from replog.cluster.raft_node import NodeOptions, RaftNode
from replog.errors import StorageIOError, UnavailableError
from replog.raft.membership import ConfChange, ConfChangeOp
from replog.raft.messages import Membership


async def _leader(tmp_path: Path) -> RaftNode:
    store = ReplogLogStore(tmp_path, bootstrap=Membership(frozenset({1})))
    node = RaftNode(store, 1, random.Random(0), NodeOptions(tick_s=0.005, election_ticks=4))
    node.start()
    for _ in range(400):
        if node.is_leader:
            break
        await asyncio.sleep(0.005)
    assert node.is_leader
    await node.submit([b"before"])
    return node


def test_a_failed_append_stops_the_node_and_fails_its_producers(tmp_path: Path) -> None:
    async def run() -> None:
        node = await _leader(tmp_path)
        failures: list[BaseException] = []
        node.on_fatal = failures.append

        def broken(entries: object) -> None:
            raise StorageIOError("write failed: [Errno 28] No space left on device")

        node.store.append = broken  # type: ignore[method-assign]
        pending = node.submit([b"lost?"])
        with pytest.raises(UnavailableError) as info:
            await asyncio.wait_for(pending, 5)
        assert not info.value.certainly_not_applied  # it may be on a follower already
        assert len(failures) == 1 and isinstance(node.failure, StorageIOError)
        assert not node.is_leader and node.leader is None
        later = node.submit([b"after"])
        with pytest.raises(UnavailableError) as info:
            await later
        assert info.value.certainly_not_applied  # never proposed
        with pytest.raises(UnavailableError):
            await node.call(lambda r: r.propose_conf_change(ConfChange(ConfChangeOp.REMOVE, 2)))
        await node.stop()  # closes without raising

    asyncio.run(run())


def test_a_failed_hard_state_write_is_fatal_too(tmp_path: Path) -> None:
    async def run() -> None:
        node = await _leader(tmp_path)
        failures: list[BaseException] = []
        node.on_fatal = failures.append

        def broken(state: object) -> None:
            raise OSError(28, "No space left on device")

        node.store.save_hard_state = broken  # type: ignore[method-assign]
        with pytest.raises(UnavailableError):
            await asyncio.wait_for(node.submit([b"x"]), 5)
        assert failures and not node.is_leader
        await node.stop()

    asyncio.run(run())


def test_a_fresh_join_is_pending_until_confirmed(tmp_path: Path) -> None:
    assert not is_clustered(str(tmp_path)) and not join_pending(str(tmp_path))
    mark_join_pending(str(tmp_path / "n"))
    assert join_pending(str(tmp_path / "n"))
    token = join_incarnation(str(tmp_path / "n"))
    mark_join_pending(str(tmp_path / "n"))  # a restart while the join is still pending
    assert join_incarnation(str(tmp_path / "n")) == token  # the same incarnation
    mark_join_pending(str(tmp_path / "other"))
    assert join_incarnation(str(tmp_path / "other")) not in ("", token)
    clear_join_pending(str(tmp_path / "n"))
    assert not join_pending(str(tmp_path / "n")) and join_incarnation(str(tmp_path / "n")) == ""


def test_a_node_that_is_not_voting_grants_no_vote_and_never_campaigns() -> None:
    from replog.raft import MemoryRaftStorage
    from replog.raft.config import RaftConfig
    from replog.raft.core import Raft
    from replog.raft.messages import Message, MessageType

    storage = MemoryRaftStorage(Membership(frozenset({1, 2, 3})))
    raft = Raft(RaftConfig(node_id=3), storage, random.Random(0))
    raft.voting = False
    for _ in range(50):
        raft.tick()
    assert not raft.msgs  # no campaign
    raft.step(Message(type=MessageType.VOTE, src=1, dst=3, term=1, index=0, log_term=0))
    (answer,) = raft.msgs
    assert answer.type is MessageType.VOTE_RESP and answer.reject and raft.vote is None
