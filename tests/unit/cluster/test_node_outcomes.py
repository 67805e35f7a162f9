"""RaftNode reports true outcomes across leader changes: produce batches, membership changes,
and the promotion of learners (issue 11, defects 3-5).

Three real RaftNodes over real stores run in one event loop; their messages go through a
small in-process network that can cut links, so a test sets up a leader change exactly.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from pathlib import Path

import pytest

from replog.cluster.log_store import ReplogLogStore
from replog.cluster.raft_node import NodeOptions, RaftNode
from replog.errors import UnavailableError
from replog.raft.errors import NotLeaderError
from replog.raft.membership import ConfChange, ConfChangeOp
from replog.raft.messages import Membership, Message

OPTIONS = NodeOptions(tick_s=0.01, election_ticks=10)
DEADLINE_S = 10.0


class Net:
    """Routes messages between in-process nodes; ``cut`` isolates a node both ways."""

    def __init__(self) -> None:
        self.nodes: dict[int, RaftNode] = {}
        self.isolated: set[int] = set()

    def sender(self, src: int) -> Callable[[Sequence[Message]], None]:
        def send(messages: Sequence[Message]) -> None:
            loop = asyncio.get_running_loop()
            for m in messages:
                node = self.nodes.get(m.dst)
                if node is None or {m.src, m.dst} & self.isolated:
                    continue
                loop.call_soon(node.deliver, [m])

        return send


async def _until(condition: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    while not condition():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def _cluster(tmp_path: Path, ids: Sequence[int] = (1, 2, 3)) -> Net:
    net = Net()
    voters = Membership(frozenset(ids))
    for i in ids:
        store = ReplogLogStore(tmp_path / f"n{i}", bootstrap=voters, commit_flush_s=0)
        node = RaftNode(store, i, random.Random(i), OPTIONS)
        node.send = net.sender(i)
        net.nodes[i] = node
        node.start()
    await _until(lambda: _leader(net) is not None, "a leader")
    return net


def _leader(net: Net) -> RaftNode | None:
    leaders = [n for i, n in net.nodes.items() if n.is_leader and i not in net.isolated]
    return max(leaders, key=lambda n: n.raft.term) if leaders else None


async def _stop(net: Net) -> None:
    for node in net.nodes.values():
        await node.stop()


def _run(tmp_path: Path, body: Callable[[Net], Awaitable[None]]) -> None:
    async def main() -> None:
        net = await _cluster(tmp_path)
        try:
            await asyncio.wait_for(body(net), 30)
        finally:
            await _stop(net)

    asyncio.run(main())


def _committed_own_term(node: RaftNode) -> bool:
    r = node.raft
    return r.log.term(r.log.committed) == r.term


async def _lead_with(net: Net, node_id: int) -> RaftNode:
    """Make ``node_id`` the leader (a leadership transfer from whoever leads), once it has
    committed an entry of its term."""
    while True:
        current = _leader(net)
        if current is not None and current.id == node_id:
            await _until(partial(_committed_own_term, current), "the leader's no-op")
            return current
        if current is not None:
            with contextlib.suppress(NotLeaderError):  # it lost leadership meanwhile
                await current.call(lambda r: r.transfer_leadership(node_id))
        await asyncio.sleep(0.05)
        await _until(lambda: _leader(net) is not None, "a leader after the transfer")


def test_a_batch_committed_after_leadership_was_lost_and_regained_is_acknowledged(
    tmp_path: Path,
) -> None:
    async def body(net: Net) -> None:
        old = await _lead_with(net, 1)
        await old.submit([b"warm-up"])
        net.isolated = {1}
        lost = old.submit([b"lost-%d" % i for i in range(5)])  # never reaches a majority
        await _until(lambda: _leader(net) is not None and _leader(net) is not old, "node 2/3")
        new = _leader(net)
        assert new is not None
        await new.submit([b"overwrites the lost batch"])
        net.isolated = set()
        await _until(lambda: old.high_watermark >= new.high_watermark, "node 1 to catch up")
        leader = await _lead_with(net, 1)
        # The new entries sit below the lost batch's old indices: the waiter of this produce
        # must not queue behind the lost one's (it used to wait forever, or end "unknown").
        offset = await asyncio.wait_for(leader.submit([b"after regaining leadership"]), 5)
        assert leader.store.log.read(offset).value == b"after regaining leadership"
        with pytest.raises(UnavailableError) as info:
            await asyncio.wait_for(lost, 5)
        assert info.value.certainly_not_applied
        values = [r.value for r in leader.store.log.read_batch(1, max_records=100)]
        assert not any(v.startswith(b"lost-") for v in values)

    _run(tmp_path, body)


def test_a_membership_change_replaced_by_another_leaders_change_is_not_reported_done(
    tmp_path: Path,
) -> None:
    async def body(net: Net) -> None:
        old = await _lead_with(net, 1)
        net.isolated = {1}
        lost = old.submit([b"lost"])  # takes the index of the next leader's no-op
        before = old.raft.log.last_index()
        change = asyncio.ensure_future(
            old.propose_change(ConfChange(ConfChangeOp.ADD_LEARNER, 4), timeout_s=DEADLINE_S)
        )
        await _until(lambda: old.raft.log.last_index() == before + 2, "both proposals")
        proposed_at = old.raft.log.last_index()
        await _until(lambda: _leader(net) is not None and _leader(net) is not old, "node 2/3")
        new = await _lead_with(net, _leader(net).id)  # type: ignore[union-attr]
        index = await new.propose_change(ConfChange(ConfChangeOp.ADD_LEARNER, 5))
        net.isolated = set()
        # Node 1's ADD_LEARNER 4 sat at the index where the new leader's ADD_LEARNER 5 was
        # committed; both are configuration entries, but not the same one.
        assert index == proposed_at
        with pytest.raises(UnavailableError) as info:
            await asyncio.wait_for(change, DEADLINE_S)
        assert info.value.certainly_not_applied
        assert 4 not in old.raft.config.members()
        with pytest.raises(UnavailableError):
            await asyncio.wait_for(lost, DEADLINE_S)

    _run(tmp_path, body)


def test_a_learner_that_never_answered_is_not_promoted(tmp_path: Path) -> None:
    async def body(net: Net) -> None:
        leader = await _lead_with(net, 1)
        await leader.propose_change(ConfChange(ConfChangeOp.ADD_LEARNER, 4))  # never starts
        committed = leader.raft.log.committed
        for i in range(3):
            await leader.submit([b"more %d" % i])
        # Many promotion checks (one per tick) go by: node 4 must stay a learner.
        await asyncio.sleep(OPTIONS.tick_s * OPTIONS.election_ticks * 3)
        assert leader.raft.log.committed > committed
        assert 4 in leader.raft.config.learners
        assert leader.raft.config.voters == frozenset({1, 2, 3})

    _run(tmp_path, body)
