"""A partition's tiles on disk: written as leaves are appended, private, identical to a tree
built at once, and rebuilt from the records when missing or damaged."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from replog.errors import InvalidArgumentError
from replog.tlog.hashing import leaf_hash
from replog.tlog.proof import consistency_proof, inclusion_proof
from replog.tlog.tile_files import TileDirectory
from replog.tlog.tiles import TILE_WIDTH, Tile, tile_data, tiles_for_size, verify_tiles
from replog.tlog.tree import MerkleTree


def records(start: int, stop: int) -> list[bytes]:
    return [f"record {i}".encode() for i in range(start, stop)]


def opened(directory: Path, leaves: list[bytes]) -> TileDirectory:
    return TileDirectory.open(directory, len(leaves), lambda a, b: leaves[a:b])


def files_under(directory: Path) -> dict[str, bytes]:
    return {
        path.relative_to(directory).as_posix(): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def expected_files(leaves: list[bytes]) -> dict[str, bytes]:
    tree = MerkleTree.from_leaf_hashes(leaf_hash(leaf) for leaf in leaves)
    return {tile.path(): tile_data(tree, tile) for tile in tiles_for_size(tree.size)}


def test_appends_write_exactly_the_tiles_of_the_tree_and_nothing_else(tmp_path: Path) -> None:
    tiles = opened(tmp_path, [])
    for start, stop in [(0, 1), (1, 255), (255, 257), (257, 700), (700, 65536 + 300)]:
        tiles.append(records(start, stop))
        assert files_under(tmp_path) == expected_files(records(0, stop)), stop
    assert tiles.size == 65536 + 300


def test_tile_files_are_private(tmp_path: Path) -> None:
    tiles = opened(tmp_path / "tlog", [])
    tiles.append(records(0, 300))
    for path in (tmp_path / "tlog").rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), path


def test_a_tile_reads_at_an_older_size_as_a_prefix_of_the_newer_one(tmp_path: Path) -> None:
    tiles = opened(tmp_path, records(0, 10))
    tiles.append(records(10, 300))
    old = MerkleTree.from_leaf_hashes(leaf_hash(leaf) for leaf in records(0, 10))
    assert tiles.read_tile(Tile(0, 0, 10)) == tile_data(old, Tile(0, 0, 10))
    assert not (tmp_path / "tile/0/000.p").exists()  # the full tile replaced the partials
    with pytest.raises(InvalidArgumentError):
        tiles.read_tile(Tile(0, 1, 45))  # the tree has 300 leaves: 44 in tile 1


def test_reopening_an_intact_directory_rewrites_nothing(tmp_path: Path) -> None:
    opened(tmp_path, []).append(records(0, 1000))
    assert opened(tmp_path, records(0, 1000)).rewritten == []


def test_a_damaged_missing_or_stray_tile_is_repaired_on_open(tmp_path: Path) -> None:
    opened(tmp_path, []).append(records(0, 1000))
    damaged = tmp_path / "tile/0/001"
    data = bytearray(damaged.read_bytes())
    data[100] ^= 1
    damaged.write_bytes(bytes(data))
    (tmp_path / "tile/0/002").unlink()
    (tmp_path / "tile/0/003.p/232").write_bytes(b"short")
    (tmp_path / "tile/0/000.p").mkdir()
    (tmp_path / "tile/0/000.p/17").write_bytes(b"a partial left behind")
    (tmp_path / "tile/1/000.p/3").unlink()
    (tmp_path / "tile/1/000.p/3").symlink_to(tmp_path / "elsewhere")

    tiles = opened(tmp_path, records(0, 1000))

    assert sorted(tiles.rewritten) == sorted(
        [Tile(0, 1), Tile(0, 2), Tile(0, 3, 232), Tile(1, 0, 3)]
    )
    assert files_under(tmp_path) == expected_files(records(0, 1000))
    assert not (tmp_path / "elsewhere").exists()


def test_a_deleted_tile_directory_is_rebuilt_from_the_records(tmp_path: Path) -> None:
    opened(tmp_path / "t", []).append(records(0, 600))
    for path in sorted((tmp_path / "t").rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    os.rmdir(tmp_path / "t")
    tiles = opened(tmp_path / "t", records(0, 600))
    assert len(tiles.rewritten) == len(tiles_for_size(600))
    root = tiles.tree.root()
    assert verify_tiles(600, root, lambda tile: (tmp_path / "t" / tile.path()).read_bytes())


def test_a_tile_file_found_missing_while_serving_is_rewritten_from_the_tree(
    tmp_path: Path,
) -> None:
    tiles = opened(tmp_path, records(0, 300))
    (tmp_path / "tile/0/001.p/44").unlink()
    assert tiles.read_tile(Tile(0, 1, 44)) == expected_files(records(0, 300))["tile/0/001.p/44"]
    assert (tmp_path / "tile/0/001.p/44").exists()


def test_tiles_a_failed_write_left_out_are_written_by_the_next_append(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tiles = opened(tmp_path, records(0, 10))

    def disk_full(tile: Tile, data: bytes) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tiles, "_write", disk_full)
    with pytest.raises(OSError):
        tiles.append(records(10, 300))
    monkeypatch.undo()
    tiles.append(records(300, 301))
    assert files_under(tmp_path) == expected_files(records(0, 301))


def test_proofs_and_roots_from_the_tiles_match_the_in_memory_tree(tmp_path: Path) -> None:
    leaves = records(0, 70_000)
    memory = MerkleTree.from_leaf_hashes(map(leaf_hash, leaves))
    tiles = opened(tmp_path, [])
    tiles.append(leaves)
    for size in (1, 255, 256, 257, 65_536, 65_537, 70_000):
        assert tiles.root(size) == memory.root(size), size
    for index, size in [(0, 70_000), (768, 70_000), (65_536, 69_999), (12_345, 20_000)]:
        assert inclusion_proof(tiles, index, size) == inclusion_proof(memory, index, size)
    for old, new in [(1, 70_000), (256, 65_537), (1_000, 70_000)]:
        assert consistency_proof(tiles, old, new) == consistency_proof(memory, old, new)


def test_the_tree_keeps_only_its_right_edge_and_a_proof_reads_few_tiles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tiles = opened(tmp_path, [])
    tiles.append(records(0, 70_000))
    assert sum(len(edge) for edge in tiles._edge) < 3 * TILE_WIDTH
    reads: list[Tile] = []
    real_read = tiles.files.read

    def counting_read(tile: Tile) -> bytes | None:
        reads.append(tile)
        return real_read(tile)

    monkeypatch.setattr(tiles.files, "read", counting_read)
    tiles._cache.clear()
    inclusion_proof(tiles, 12_345, 70_000)
    assert 0 < len(set(reads)) <= 3  # one leaf tile, one level-1 tile: O(log n) tiles


def test_reopening_reuses_the_tiles_and_rehashes_only_the_records_after_the_last_full_tile(
    tmp_path: Path,
) -> None:
    leaves = records(0, 1_000)
    opened(tmp_path, leaves[:900]).append([])  # tiles for 900 leaves
    asked: list[tuple[int, int]] = []

    def read(start: int, stop: int) -> list[bytes]:
        asked.append((start, stop))
        return leaves[start:stop]

    tiles = TileDirectory.open(tmp_path, 1_000, read)
    assert tiles.reused == 768
    assert asked == [(512, 768), (768, 1_000)]  # the last full tile checked, then the tail
    assert tiles.root() == MerkleTree.from_leaf_hashes(map(leaf_hash, leaves)).root()
    assert files_under(tmp_path) == expected_files(leaves)


def test_tiles_of_records_lost_in_a_crash_are_removed_on_open(tmp_path: Path) -> None:
    opened(tmp_path, records(0, 70_000))
    tiles = opened(tmp_path, records(0, 600))
    assert tiles.reused == 512
    assert files_under(tmp_path) == expected_files(records(0, 600))


def test_truncating_drops_the_hashes_and_tiles_past_the_cut(tmp_path: Path) -> None:
    tiles = opened(tmp_path, records(0, 70_000))
    tiles.truncate(600)
    assert files_under(tmp_path) == expected_files(records(0, 600))
    tiles.append(f"other {i}".encode() for i in range(600, 1_000))
    replaced = records(0, 600) + [f"other {i}".encode() for i in range(600, 1_000)]
    assert files_under(tmp_path) == expected_files(replaced)
    assert tiles.root() == MerkleTree.from_leaf_hashes(map(leaf_hash, replaced)).root()
    assert opened(tmp_path, replaced).rewritten == []


def test_a_record_altered_under_the_last_full_tile_is_named_by_the_rebuild(
    tmp_path: Path,
) -> None:
    leaves = records(0, 1_000)
    opened(tmp_path, leaves)
    leaves[700] = b"record 7OO"
    tiles = opened(tmp_path, leaves)
    assert tiles.damage_at == 700
    assert Tile(0, 2) in tiles.rewritten


def test_a_tree_whose_partial_tiles_were_never_written_reopens_from_its_full_tiles(
    tmp_path: Path,
) -> None:
    leaves = records(0, 70_000)
    tiles = opened(tmp_path, leaves[:300])
    tiles.flush()  # partials for 300 leaves; then appends write full tiles only (a crash)
    tiles.append_hashes(map(leaf_hash, leaves[300:]), write=False)
    for tile, data in tiles.unwritten():  # what the tile writer does
        tiles.write_full(tile, data)
    reopened = opened(tmp_path, leaves)
    assert reopened.reused == 69_888
    assert reopened.root() == MerkleTree.from_leaf_hashes(map(leaf_hash, leaves)).root()
    assert files_under(tmp_path) == expected_files(leaves)
