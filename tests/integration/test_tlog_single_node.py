"""A single-node server keeps each partition's tiles as records are produced: after it stops,
the tiles under the partition's tlog/ are exactly those of the tree of its stored records."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from replog.client import Client
from replog.storage import Log
from replog.tlog.hashing import leaf_hash
from replog.tlog.tiles import tile_data, tiles_for_size
from replog.tlog.tree import MerkleTree
from tests.integration.conftest import ThreadedServer


def tile_files(directory: Path) -> dict[str, bytes]:
    return {
        p.relative_to(directory).as_posix(): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def test_produced_records_are_the_leaves_of_the_tiles_the_server_keeps(
    server_factory: Callable[..., ThreadedServer], tmp_path: Path
) -> None:
    server = server_factory(tmp_path / "data", tlog_tiles=True)
    with Client(server.grpc_address) as client:
        for batch in range(6):
            client.produce_batch([f"record {batch}-{i}".encode() for i in range(100)])
    server.stop()
    partition = tmp_path / "data" / "topics" / "default" / "0"
    with Log(partition) as log_:
        payloads = log_.read_payloads(0, max_records=10_000, max_bytes=1 << 26)
    assert len(payloads) == 600
    tree = MerkleTree.from_leaf_hashes(map(leaf_hash, payloads))
    expected = {tile.path(): tile_data(tree, tile) for tile in tiles_for_size(600)}
    assert tile_files(partition / "tlog") == expected
