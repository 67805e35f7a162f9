"""Real cluster nodes (ClusterNode, each with its own loop, gRPC server and one transport)
host a second Raft group beside the controller group through the same registry, and every
node judges the others' liveness from the pings and traffic of the one stream per peer."""

from __future__ import annotations

import random

from replog.client import Client
from replog.cluster.log_store import ReplogLogStore
from replog.cluster.raft_node import RaftNode
from replog.raft.messages import Membership
from tests.cluster.conftest import Cluster, Node, wait_until


async def _host_group(node: Node, group: str, voters: Membership) -> RaftNode:
    """Open ``group`` on ``node`` (a store under its data dir) and run it there."""
    cluster = node.cluster
    path = node.data_dir / "topics" / group
    store = ReplogLogStore(path, bootstrap=voters, commit_flush_s=0)
    raft = RaftNode(store, cluster.id, random.Random(), cluster.node.options)
    cluster.groups.host(group, raft, store)
    raft.start()
    return raft


async def _submit(raft: RaftNode, values: list[bytes]) -> int:
    return await raft.submit(values)


async def _stop_group(node: Node, group: str) -> None:
    raft = node.cluster.groups.nodes[group]
    node.cluster.groups.unhost(group)
    await raft.stop()


def test_a_partition_group_elects_and_commits_beside_the_controller_on_the_same_streams(
    three: Cluster,
) -> None:
    nodes = three.running()
    voters = Membership(frozenset(n.cluster.id for n in nodes))
    groups = {n.name: n.call(_host_group(n, "orders/0", voters)) for n in nodes}
    try:

        def leader() -> Node | None:
            leaders = [n for n in nodes if n.call(_is_leader(groups[n.name]))]
            return leaders[0] if len(leaders) == 1 else None

        group_leader: Node = wait_until(leader, 10, "a leader of orders/0")
        first = group_leader.call(_submit(groups[group_leader.name], [b"o1", b"o2"]))
        wait_until(
            lambda: all(n.call(_watermark(groups[n.name])) > first + 1 for n in nodes),
            10,
            "orders/0 committed on every node",
        )
        with Client(",".join(n.grpc_address for n in nodes)) as client:  # the controller too
            offset = client.produce(b"c1")
            assert client.consume(offset).value == b"c1"
        for n in nodes:
            assert n.cluster.inbox.groups == ["", "orders/0"]
            assert n.cluster.inbox.dropped["group"] == 0
            assert n.call(_read(groups[n.name], first, 2)) == [b"o1", b"o2"]
    finally:
        for n in nodes:
            n.call(_stop_group(n, "orders/0"))


async def _is_leader(raft: RaftNode) -> bool:
    return raft.is_leader


async def _watermark(raft: RaftNode) -> int:
    return raft.high_watermark


async def _read(raft: RaftNode, first: int, count: int) -> list[bytes]:
    return [raft.store.log.read(first + k).value for k in range(count)]


async def _live(node: Node, other: int) -> bool:
    return node.cluster.transport.live(other)


def test_every_node_reports_a_stopped_peer_down_once_and_up_again_when_it_returns(
    three: Cluster,
) -> None:
    a, b, c = three.running()
    b_id = b.cluster.id
    events: list[tuple[str, int]] = []
    wait_until(lambda: a.call(_live(a, b_id)) and a.call(_live(a, c.cluster.id)), 5, "peers live")
    a.call(_watch(a, b_id, events))
    b.stop()
    wait_until(lambda: ("down", b_id) in events, 5, "b reported down")
    assert not a.call(_live(a, b_id))
    assert a.call(_live(a, c.cluster.id))  # the others stay live
    b.start()
    wait_until(lambda: ("up", b_id) in events, 20, "b reported up again")
    assert events == [("down", b_id), ("up", b_id)]  # once each, whatever the ticks between


async def _watch(node: Node, peer: int, events: list[tuple[str, int]]) -> None:
    """Record ``peer``'s transitions as ``node`` reports them (on its loop)."""
    t = node.cluster.transport
    t.on_peer_down(lambda p: events.append(("down", p)) if p == peer else None)
    t.on_peer_up(lambda p: events.append(("up", p)) if p == peer else None)


async def _host_quiescing_group(node: Node, group: str, voters: Membership) -> RaftNode:
    """Like ``_host_group``, with quiescence on."""
    import dataclasses

    cluster = node.cluster
    store = ReplogLogStore(node.data_dir / "topics" / group, bootstrap=voters, commit_flush_s=0)
    options = dataclasses.replace(cluster.node.options, quiesce=True)
    raft = RaftNode(store, cluster.id, random.Random(), options)
    cluster.groups.host(group, raft, store)
    raft.start()
    return raft


async def _quiet(raft: RaftNode) -> bool:
    return raft.quiescence.quiet


def test_a_quiet_group_whose_leaders_node_dies_elects_a_new_leader(three: Cluster) -> None:
    nodes = three.running()
    voters = Membership(frozenset(n.cluster.id for n in nodes))
    groups = {n.name: n.call(_host_quiescing_group(n, "idle/0", voters)) for n in nodes}
    survivors: list[Node] = []
    try:

        def leader_of(among: list[Node]) -> Node | None:
            leaders = [n for n in among if n.call(_is_leader(groups[n.name]))]
            return leaders[0] if len(leaders) == 1 else None

        first: Node = wait_until(lambda: leader_of(nodes), 10, "a leader of idle/0")
        first.call(_submit(groups[first.name], [b"x"]))
        wait_until(
            lambda: all(n.call(_quiet(groups[n.name])) for n in nodes), 10, "idle/0 to go quiet"
        )
        survivors = [n for n in nodes if n is not first]
        first.call(_stop_group(first, "idle/0"))
        first.stop()  # the whole node: its pings stop, liveness reports it down
        second: Node = wait_until(lambda: leader_of(survivors), 10, "a new leader of idle/0")
        offset = second.call(_submit(groups[second.name], [b"after"]))
        assert offset > 0
    finally:
        for n in survivors or nodes:
            n.call(_stop_group(n, "idle/0"))
