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


def test_the_three_replicas_of_a_partition_hold_identical_tiles(three: Cluster) -> None:
    leader = three.leader()
    with Client(leader.grpc_address) as client:
        for batch in range(6):
            client.produce_batch([f"record {batch}-{i}".encode() for i in range(100)])

    def identical() -> bool:
        tiles = [partition_tiles(node.data_dir) for node in three.nodes]
        return bool(tiles[0]) and "tile/0/001" in tiles[0] and all(t == tiles[0] for t in tiles)

    wait_until(identical, 20, "every replica's tiles to be the same")
