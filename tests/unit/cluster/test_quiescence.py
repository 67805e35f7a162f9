"""Quiescence of idle groups in the real driver (``NodeOptions.quiesce``): three RaftNodes over
real stores in one event loop, their messages counted on an in-process network."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from replog.cluster.log_store import ReplogLogStore
from replog.cluster.raft_node import NodeOptions, RaftNode
from replog.raft.messages import Membership, Message

TICK_S = 0.01
ELECTION_TICKS = 10
DEADLINE_S = 10.0
ELECTION_BOUND_S = 3 * 2 * ELECTION_TICKS * TICK_S  # a few randomized election timeouts


class Net:
    """Routes messages between in-process nodes and counts them."""

    def __init__(self) -> None:
        self.nodes: dict[int, RaftNode] = {}
        self.sent = 0

    def sender(self) -> Callable[[Sequence[Message]], None]:
        def send(messages: Sequence[Message]) -> None:
            loop = asyncio.get_running_loop()
            for m in messages:
                self.sent += 1
                node = self.nodes.get(m.dst)
                if node is not None:
                    loop.call_soon(node.deliver, [m])

        return send

    def leader(self) -> RaftNode | None:
        leaders = [n for n in self.nodes.values() if n.is_leader]
        return max(leaders, key=lambda n: n.raft.term) if leaders else None

    def all_quiet(self) -> bool:
        return all(n.quiescence.quiet for n in self.nodes.values())


async def _until(condition: Callable[[], bool], what: str, within_s: float = DEADLINE_S) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while not condition():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)


async def _count_over(net: Net, seconds: float) -> int:
    before = net.sent
    await asyncio.sleep(seconds)  # measuring an interval, not waiting for a condition
    return net.sent - before


def _run(tmp_path: Path, body: Callable[[Net], Awaitable[None]], *, quiesce: bool) -> None:
    options = NodeOptions(tick_s=TICK_S, election_ticks=ELECTION_TICKS, quiesce=quiesce)

    async def main() -> None:
        net = Net()
        voters = Membership(frozenset({1, 2, 3}))
        for i in (1, 2, 3):
            store = ReplogLogStore(tmp_path / f"n{i}", bootstrap=voters, commit_flush_s=0)
            node = RaftNode(store, i, random.Random(i), options)
            node.send = net.sender()
            net.nodes[i] = node
            node.start()
        try:
            await _until(lambda: net.leader() is not None, "a leader")
            await asyncio.wait_for(body(net), 30)
        finally:
            for node in list(net.nodes.values()):
                await node.stop()

    asyncio.run(main())


async def _produce(net: Net, value: bytes) -> None:
    leader = net.leader()
    assert leader is not None
    offset = await asyncio.wait_for(leader.submit([value]), DEADLINE_S)
    assert leader.store.log.read(offset).value == value


def test_an_idle_group_stops_exchanging_messages_and_a_produce_wakes_it(tmp_path: Path) -> None:
    async def body(net: Net) -> None:
        await _produce(net, b"first")
        await _until(net.all_quiet, "all three nodes to quiesce", within_s=2.0)
        assert await _count_over(net, 1.0) == 0
        turns = {n.id: n.quiescence.turns for n in net.nodes.values()}
        await _produce(net, b"second")  # wakes the group: it commits
        await _until(net.all_quiet, "the group to quiesce again", within_s=2.0)
        assert await _count_over(net, 0.5) == 0
        assert all(n.quiescence.turns > turns[n.id] for n in net.nodes.values())
        assert all(n.quiescence.quiesced >= 2 for n in net.nodes.values())
        assert {n.high_watermark for n in net.nodes.values()} == {
            net.nodes[1].raft.log.committed + 1
        }

    _run(tmp_path, body, quiesce=True)


def test_without_the_option_the_leader_heartbeats_forever(tmp_path: Path) -> None:
    async def body(net: Net) -> None:
        await _produce(net, b"first")
        heartbeats = await _count_over(net, 0.5)
        # 0.5 s of heartbeats every tick to two followers, and their answers
        assert heartbeats > 0.5 / TICK_S
        assert not any(n.quiescence.quiet for n in net.nodes.values())

    _run(tmp_path, body, quiesce=False)


def test_after_the_quiesced_leader_dies_unquiesce_lets_the_followers_elect(
    tmp_path: Path,
) -> None:
    async def body(net: Net) -> None:
        await _produce(net, b"first")
        await _until(net.all_quiet, "the group to quiesce", within_s=2.0)
        old = net.leader()
        assert old is not None
        del net.nodes[old.id]
        await old.stop()
        for node in net.nodes.values():
            node.unquiesce()  # what node liveness does once it reports old's node down
        await _until(lambda: net.leader() is not None, "a new leader", ELECTION_BOUND_S)
        new = net.leader()
        assert new is not None and new.raft.term > old.raft.term
        await _produce(net, b"after failover")

    _run(tmp_path, body, quiesce=True)


def test_without_unquiesce_a_quiesced_follower_never_campaigns(tmp_path: Path) -> None:
    """Why quiescence needs node liveness: nothing else tells a quiet follower its leader died."""

    async def body(net: Net) -> None:
        await _produce(net, b"first")
        await _until(net.all_quiet, "the group to quiesce", within_s=2.0)
        old = net.leader()
        assert old is not None
        term = old.raft.term
        del net.nodes[old.id]
        await old.stop()
        assert await _count_over(net, 10 * ELECTION_BOUND_S) == 0
        assert net.leader() is None and net.all_quiet()
        assert {n.raft.term for n in net.nodes.values()} == {term}

    _run(tmp_path, body, quiesce=True)


def test_a_follower_does_not_quiesce_behind_a_leader_liveness_reports_down(
    tmp_path: Path,
) -> None:
    async def body(net: Net) -> None:
        leader = net.leader()
        assert leader is not None
        follower = next(n for n in net.nodes.values() if n is not leader)
        follower.leader_live = lambda node_id: node_id != leader.id
        await _produce(net, b"first")
        others = [n for n in net.nodes.values() if n is not follower]
        await _until(lambda: all(n.quiescence.quiet for n in others), "the others to quiesce")
        # the quiesce heartbeat arrived, but it does not stop this follower's election timer
        await _until(lambda: follower.raft.role.value != "follower", "the follower to campaign")

    _run(tmp_path, body, quiesce=True)
