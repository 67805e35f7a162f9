"""Every replica of a replicated partition keeps the same tree: its tiles are byte-identical
on all three nodes (control records included: leaf i is the payload stored at offset i)."""

from __future__ import annotations

from pathlib import Path

import pytest

from replog.client import Client
from tests.cluster.conftest import Cluster, wait_until

pytestmark = pytest.mark.timeout(60)


def partition_tiles(data_dir: Path) -> dict[str, bytes]:
    """The tiles of topic ``default``'s partition 0: a cluster keeps it in the node's own
    Raft log (with the metadata entries), the tiles under ``<data dir>/tlog``."""
    tlog = data_dir / "tlog"
    return {
        path.relative_to(tlog).as_posix(): path.read_bytes()
        for path in sorted(tlog.rglob("*"))
        if path.is_file()
    }


def test_the_three_replicas_of_a_partition_hold_identical_tiles(cluster: Cluster) -> None:
    cluster.bootstrap(3, tlog_tiles=True)
    three = cluster
    leader = three.leader()
    with Client(leader.grpc_address) as client:
        for batch in range(6):
            client.produce_batch([f"record {batch}-{i}".encode() for i in range(100)])

    def identical() -> bool:
        tiles = [partition_tiles(node.data_dir) for node in three.nodes]
        return bool(tiles[0]) and "tile/0/001" in tiles[0] and all(t == tiles[0] for t in tiles)

    wait_until(identical, 20, "every replica's tiles to be the same")


def test_each_replica_of_a_created_topic_keeps_the_same_tiles(cluster: Cluster) -> None:
    cluster.bootstrap(3, tlog_tiles=True)
    three = cluster
    addresses = [n.grpc_address for n in three.nodes]
    with Client(addresses, timeout=10) as client:
        client.create_topic("orders", 1, replication_factor=3)
        for batch in range(3):
            client.produce_batch(
                [f"order {batch}-{i}".encode() for i in range(100)], topic="orders", partition=0
            )

    def tiles_of(node_dir: Path) -> dict[str, bytes]:
        tlog = node_dir / "topics" / "orders" / "0" / "tlog"
        return {
            p.relative_to(tlog).as_posix(): p.read_bytes()
            for p in sorted(tlog.rglob("*"))
            if p.is_file()
        }

    def identical() -> bool:
        tiles = [tiles_of(node.data_dir) for node in three.nodes]
        return "tile/0/000" in tiles[0] and all(t == tiles[0] for t in tiles)

    wait_until(identical, 20, "every replica of orders/0 to hold the same tiles")
