"""Address epochs (issue item 6): a node's restart on a new port wins over its earlier
addresses whatever its wall clock says, and so does a wiped node re-joining under its old
name, whose start counter begins again while the others remember its old incarnation's."""

from __future__ import annotations

import shutil
import time

import pytest

from replog.client import Client
from replog.cluster.members import join_pending
from tests.cluster.conftest import Cluster, Node, wait_until


def _reached_at(node: Node, observers: list[Node]) -> bool:
    """Every observer resolves ``node`` to where it listens now."""
    return all(o.cluster.book.address(node.cluster.id) == node.grpc_address for o in observers)


def _catches_up(cluster: Cluster, node: Node, what: str) -> None:
    """A record produced now reaches ``node``: the leader can talk to it."""
    leader = cluster.leader()
    with Client(leader.grpc_address) as client:
        client.produce(what.encode())
    target = leader.cluster.node.raft.log.committed
    wait_until(lambda: node.cluster.node.raft.log.committed >= target, 10, f"{what} on it")


def test_a_node_restarted_on_a_new_port_with_its_clock_behind_is_reached_there(
    three: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    leader = three.leader()
    victim = three.followers()[0]
    others = [n for n in three.nodes if n is not victim]
    old_addr, old_epoch = victim.grpc_address, victim.cluster.epoch
    wait_until(lambda: _reached_at(victim, others), 10, "the first address to be known")
    victim.stop()
    started = time.time_ns()
    # The machine's clock was set back: "now" is before the node's previous start.
    monkeypatch.setattr(time, "time_ns", lambda: min(old_epoch, started) - 10**9)
    victim.start()  # same data dir, a new ephemeral port
    assert victim.grpc_address != old_addr
    wait_until(lambda: _reached_at(victim, others), 10, "the new address to win everywhere")
    assert victim.cluster.epoch > old_epoch
    _catches_up(three, victim, "after the restart")
    assert leader.running


def test_a_wiped_node_rejoining_on_a_new_port_wins_over_its_old_incarnation(
    three: Cluster,
) -> None:
    leader = three.leader()
    victim = three.followers()[0]
    others = [n for n in three.nodes if n is not victim]
    victim.stop()
    victim.start()  # the old incarnation's second start: epoch 2 on another port
    wait_until(lambda: _reached_at(victim, others), 10, "the restart's address to be known")
    remembered = victim.cluster.epoch
    victim.stop()
    shutil.rmtree(victim.data_dir)
    wiped = Node(victim.data_dir, victim.name, join=leader.grpc_address)
    three.nodes.append(wiped)
    wiped.start()  # its start counter begins again, below what the others remember
    wait_until(lambda: not join_pending(str(wiped.data_dir)), 20, "the fresh join to be confirmed")
    wait_until(lambda: _reached_at(wiped, others), 10, "the wiped node's address to win")
    assert wiped.cluster.epoch > remembered  # the leader raised it at the join...
    saved = (wiped.data_dir / "start-epoch").read_text().strip()
    assert saved == str(wiped.cluster.epoch)  # ...and the node counts on from there
    _catches_up(three, wiped, "after the re-join")
