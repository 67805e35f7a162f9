"""Real replicated clusters on ephemeral 127.0.0.1 ports: in-process nodes (own thread + loop)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from replog.server.cluster import ClusterNode
from tests.integration.conftest import ThreadedServer, process_factory, wait_until

FAST = {"raft_tick_ms": 50, "election_ticks": 10}


class Node(ThreadedServer):
    """A cluster member; ``name`` is its node id."""

    def __init__(self, data_dir: Path, name: str, **settings: Any) -> None:
        super().__init__(data_dir, server_id=name, **FAST, **settings)
        self.name = name

    @property
    def cluster(self) -> ClusterNode:
        assert self.agent is not None and self.agent.cluster is not None
        return self.agent.cluster

    @property
    def running(self) -> bool:
        return self.loop is not None

    def is_leader(self) -> bool:
        return self.running and self.cluster.node.is_leader

    def is_voter(self, other: Node) -> bool:
        return self.cluster.id != 0 and other.cluster.id in self.cluster.node.raft.config.voters


class Cluster:
    """Nodes of one cluster; every started node is stopped by the fixture."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.nodes: list[Node] = []

    def start_node(self, name: str, **settings: Any) -> Node:
        node = Node(self.root / name, name, **settings)
        self.nodes.append(node)
        return node.start()  # type: ignore[return-value]

    def bootstrap(self, size: int = 3, **settings: Any) -> list[Node]:
        first = self.start_node("n1", bootstrap=True, **settings)
        wait_until(first.is_leader, 10, "n1 to lead")
        for i in range(2, size + 1):
            self.join(f"n{i}", **settings)
        return self.nodes

    def join(self, name: str, **settings: Any) -> Node:
        node = self.start_node(name, join=self.leader().grpc_address, **settings)
        wait_until(lambda: self.leader().is_voter(node), 20, f"{name} to become a voter")
        return node

    def running(self) -> list[Node]:
        return [n for n in self.nodes if n.running]

    def leader(self, timeout: float = 10) -> Node:
        def find() -> Node | None:
            leaders = [n for n in self.running() if n.is_leader()]
            return leaders[0] if len(leaders) == 1 else None

        node: Node = wait_until(find, timeout, "a single leader")
        return node

    def followers(self) -> list[Node]:
        leader = self.leader()
        return [n for n in self.running() if n is not leader]

    def stop_all(self) -> None:
        for node in self.nodes:
            node.stop()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    yield c
    c.stop_all()


@pytest.fixture
def three(cluster: Cluster) -> Cluster:
    cluster.bootstrap(3)
    return cluster


__all__ = ["Cluster", "Node", "process_factory", "wait_until"]
_: Callable[..., Any] = wait_until
