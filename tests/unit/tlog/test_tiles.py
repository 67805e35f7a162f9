"""C2SP tlog-tiles: paths as the spec writes them, every tile of a tree, and a tree read back
from its tiles alone."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from replog.errors import InvalidArgumentError, VerificationError
from replog.tlog.hashing import leaf_hash
from replog.tlog.proof import inclusion_proof, verify_inclusion
from replog.tlog.tiles import (
    TILE_WIDTH,
    Tile,
    TileHashSource,
    changed_tiles,
    parse_tile_path,
    tile_data,
    tiles_for_size,
    verify_tiles,
)
from replog.tlog.tree import MerkleTree, tree_hash


def tree_of(size: int) -> MerkleTree:
    return MerkleTree.from_leaf_hashes(leaf_hash(i.to_bytes(4, "big")) for i in range(size))


@pytest.mark.parametrize(
    ("tile", "path"),
    [
        (Tile(0, 0), "tile/0/000"),
        (Tile(0, 5), "tile/0/005"),
        (Tile(1, 999), "tile/1/999"),
        (Tile(0, 1000), "tile/0/x001/000"),
        (Tile(4, 1234067), "tile/4/x001/x234/067"),
        (Tile(0, 3, 7), "tile/0/003.p/7"),
        (Tile(2, 1234067, 255), "tile/2/x001/x234/067.p/255"),
    ],
)
def test_tile_paths_are_the_spec_ones_and_parse_back(tile: Tile, path: str) -> None:
    assert tile.path() == path
    assert parse_tile_path(path) == tile


@pytest.mark.parametrize(
    "path",
    [
        "tile/0/5",  # groups are 3 digits
        "tile/0/x000/005",  # no leading zero group
        "tile/0/001/002",  # all but the last group carry an x
        "tile/0/x001",  # the last group does not
        "tile/8/0/000",  # Go's path, with the height in it
        "tile/0/000.p/256",  # a full tile has no .p
        "tile/0/000.p/0",
        "tile/0/000.p/07",
        "tile/64/000",
        "tile/01/000",
        "tile/entries/000",
        "/tile/0/000",
        "tile/0/000/",
    ],
)
def test_a_path_that_is_no_tile_is_refused(path: str) -> None:
    with pytest.raises(InvalidArgumentError):
        parse_tile_path(path)


def test_tile_coordinates_out_of_range_are_refused() -> None:
    for level, index, width in [(-1, 0, 1), (64, 0, 1), (0, -1, 1), (0, 0, 0), (0, 0, 257)]:
        with pytest.raises(InvalidArgumentError):
            Tile(level, index, width)


def test_a_tree_has_full_tiles_then_a_partial_one_at_each_level() -> None:
    assert tiles_for_size(0) == []
    assert tiles_for_size(1) == [Tile(0, 0, 1)]
    assert tiles_for_size(256) == [Tile(0, 0), Tile(1, 0, 1)]
    size = 2 * 65536 + 3 * 256 + 5
    assert tiles_for_size(size)[-5:] == [
        Tile(0, 515, 5),
        *(Tile(1, i) for i in range(2)),
        Tile(1, 2, 3),
        Tile(2, 0, 2),
    ]
    assert len(tiles_for_size(size)) == 515 + 1 + 3 + 1


@pytest.mark.parametrize("steps", [[1, 1, 1], [255, 1, 1, 300], [256 * 256 + 7, 250, 6]])
def test_the_tiles_changed_by_each_append_add_up_to_the_tiles_of_the_tree(
    steps: list[int],
) -> None:
    seen: dict[tuple[int, int], int] = {}
    size = 0
    for step in steps:
        for tile in changed_tiles(size, size + step):
            assert tile.width > seen.get((tile.level, tile.index), 0)
            seen[(tile.level, tile.index)] = tile.width
        size += step
    assert sorted(Tile(level, index, width) for (level, index), width in seen.items()) == sorted(
        tiles_for_size(size)
    )


def test_tile_data_is_the_level_hashes_concatenated() -> None:
    tree = tree_of(300)
    assert tile_data(tree, Tile(0, 1, 44)) == b"".join(
        tree.stored_hash(0, i) for i in range(256, 300)
    )
    assert tile_data(tree, Tile(1, 0, 1)) == tree.stored_hash(8, 0)


@pytest.mark.parametrize("size", [1, 7, 255, 256, 257, 511, 513, 65536, 65536 + 256 * 5 + 17])
def test_a_tree_read_back_from_its_tiles_has_the_same_root_and_proofs(size: int) -> None:
    tree = tree_of(size)
    reads: list[Tile] = []

    def read(tile: Tile) -> bytes:
        reads.append(tile)
        return tile_data(tree, tile)

    tiles = TileHashSource(size, read)
    assert tree_hash(tiles, size) == tree.root()
    for index in {0, size // 2, size - 1}:
        proof = inclusion_proof(tiles, index, size)
        assert proof == inclusion_proof(tree, index, size)
        verify_inclusion(tree.stored_hash(0, index), index, size, proof, tree.root())
    assert len(reads) == len(set(reads))  # each tile is read once
    assert set(reads) <= set(tiles_for_size(size))


def test_a_tile_of_the_wrong_length_is_a_verification_error() -> None:
    tree = tree_of(300)
    tiles = TileHashSource(300, lambda tile: tile_data(tree, tile)[:-1])
    with pytest.raises(VerificationError, match="holds"):
        tree_hash(tiles, 300)


def tampered(tree: MerkleTree, bad: Tile, byte: int = 5) -> Callable[[Tile], bytes]:
    def read(tile: Tile) -> bytes:
        data = bytearray(tile_data(tree, tile))
        if tile == bad:
            data[byte] ^= 1
        return bytes(data)

    return read


def test_every_tile_of_an_honest_tree_verifies() -> None:
    tree = tree_of(70_000)
    rebuilt = verify_tiles(70_000, tree.root(), lambda tile: tile_data(tree, tile))
    assert rebuilt.root() == tree.root() and rebuilt.size == 70_000


def test_a_root_read_through_upper_tiles_misses_a_tampered_leaf_tile_and_verify_tiles_not() -> None:
    tree = tree_of(600)
    read = tampered(tree, Tile(0, 1))
    # The trap: leaves 256..511 are covered by a level-1 hash, so the root never reads them.
    assert tree_hash(TileHashSource(600, read), 600) == tree.root()
    with pytest.raises(VerificationError, match="leaf tiles") as raised:
        verify_tiles(600, tree.root(), read)
    assert raised.value.offset == 0


@pytest.mark.parametrize("bad", [Tile(1, 0), Tile(1, 1, 17), Tile(2, 0, 1), Tile(0, 273, 112)])
def test_verify_tiles_names_the_first_leaf_of_a_tampered_tile(bad: Tile) -> None:
    tree = tree_of(70_000)
    with pytest.raises(VerificationError) as raised:
        verify_tiles(70_000, tree.root(), tampered(tree, bad, byte=bad.data_size - 1))
    if bad.level > 0:
        assert raised.value.offset == bad.index * 256 ** (bad.level + 1)
    assert "tile" in str(raised.value)


def test_a_node_the_tree_does_not_hold_yet_is_refused() -> None:
    tiles = TileHashSource(300, lambda tile: b"")
    with pytest.raises(InvalidArgumentError):
        tiles.stored_hash(9, 0)  # 512 leaves
    assert TILE_WIDTH == 256
