"""Verify a stopped partition offline: every record re-hashed, its tiles and its signed
checkpoints checked (``replog verify``; an I/O edge of tlog).

The records are read straight from the segment files (``storage.inspect``: no lock, no
repair). Their leaf hashes rebuild the tree in a scratch directory; each leaf tile on disk
must hold exactly those hashes (a differing one names the first offset whose record and tile
disagree), each upper tile must match the leaf tiles, and every checkpoint kept must be
signed by the verifier key, name this partition and state the root the records give at its
size. Leaves under the lowest retained offset (deleted by retention) are taken from the leaf
tiles: the checkpoints' roots vouch for them.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from replog.errors import ReplogError, VerificationError
from replog.storage.inspect import iter_stored, list_segments
from replog.tlog.checkpoint import open_checkpoint
from replog.tlog.checkpoints import CHECKPOINTS_DIR, CheckpointStore
from replog.tlog.hashing import HASH_SIZE, leaf_hash
from replog.tlog.log_tree import TLOG_DIR
from replog.tlog.note import Verifier
from replog.tlog.tile_files import TileDirectory
from replog.tlog.tile_io import TileFiles
from replog.tlog.tiles import TILE_HEIGHT, TILE_WIDTH, Tile, tiles_for_size

__all__ = ["PartitionReport", "verify_partition"]

_CHUNK = 4096


@dataclass(frozen=True)
class PartitionReport:
    """What verified: ``records`` re-hashed, the tree ``size``, ``checkpoints`` checked."""

    records: int
    size: int
    checkpoints: int


def verify_partition(
    directory: Path,
    verifier: Verifier,
    *,
    suffix: str | None = None,
    on_progress: Callable[[int], None] = lambda done: None,
) -> PartitionReport:
    """Verify the partition in ``directory`` (its log, ``tlog/`` tiles and checkpoints,
    whose origins must end with ``suffix``, e.g. ``/default/0``, when given); VerificationError
    naming the first bad offset, else the report. ``on_progress`` hears of records done."""
    log_dir = directory / "log" if (directory / "log").is_dir() else directory
    base = 1 if log_dir != directory else 0  # a cluster store's Raft log starts at 1
    tiles_dir = directory / TLOG_DIR
    disk = TileFiles(tiles_dir)
    segments = [s for s in list_segments(str(log_dir)) if s.store_path is not None]
    lowest = segments[0].base if segments else base
    with tempfile.TemporaryDirectory(prefix="replog-verify-") as scratch:
        tree = TileDirectory(Path(scratch))
        _append_checked(tree, disk, [b""] * base, hashed=False)  # offset 0 of a Raft log
        _append_checked(tree, disk, _gone_leaves(disk, base, lowest), hashed=True)
        records = 0
        chunk: list[bytes] = []
        try:
            for _, payload, _ in iter_stored(str(log_dir)):
                chunk.append(payload)
                if len(chunk) == _CHUNK:
                    records += _append_checked(tree, disk, chunk, hashed=False)
                    on_progress(records)
                    chunk = []
        except ReplogError as exc:
            raise VerificationError(f"the log is unreadable: {exc}", offset=tree.size) from None
        records += _append_checked(tree, disk, chunk, hashed=False)
        on_progress(records)
        tree.flush()
        _check_upper_tiles(tree, disk)
        count = _check_checkpoints(tree, tiles_dir / CHECKPOINTS_DIR, verifier, suffix)
        return PartitionReport(records, tree.size, count)


def _gone_leaves(disk: TileFiles, base: int, lowest: int) -> list[bytes]:
    """The leaf hashes of offsets ``[base, lowest)`` (records deleted), from the leaf tiles."""
    hashes: list[bytes] = []
    for index in range(base // TILE_WIDTH, -(-lowest // TILE_WIDTH)):
        data = disk.read_prefix(0, index, TILE_WIDTH)
        hashes += [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]
    first = base - (base // TILE_WIDTH) * TILE_WIDTH
    wanted = hashes[first : first + lowest - base]
    if len(wanted) < lowest - base:
        raise VerificationError(
            f"records {base}..{lowest - 1} are deleted and their leaf tiles missing",
            offset=base + len(wanted),
        )
    return wanted


def _append_checked(
    tree: TileDirectory, disk: TileFiles, leaves: list[bytes], *, hashed: bool
) -> int:
    """Append leaves (hashes when ``hashed``) and compare each with the leaf tile on disk
    (a tile missing, or narrower than the tree, is not compared: tiles are derived data a
    crash may leave behind, and the server rewrites them from the records)."""
    hashes = leaves if hashed else [leaf_hash(leaf) for leaf in leaves]
    start = tree.size
    tree.append_hashes(hashes)
    offset = start
    while offset < start + len(hashes):
        index = offset // TILE_WIDTH
        stop = min(start + len(hashes), (index + 1) * TILE_WIDTH)
        on_disk = disk.read_prefix(0, index, stop - index * TILE_WIDTH)
        for at in range(offset, stop):
            i = at - index * TILE_WIDTH
            stored = on_disk[i * HASH_SIZE : (i + 1) * HASH_SIZE]
            if stored and stored != hashes[at - start]:
                raise VerificationError(
                    f"record {at} does not match its leaf tile (tile {Tile(0, index).path()})",
                    offset=at,
                )
        offset = stop
    return len(leaves)


def _check_upper_tiles(tree: TileDirectory, disk: TileFiles) -> None:
    for tile in tiles_for_size(tree.size):
        if tile.level == 0:
            continue
        stored = disk.read_prefix(tile.level, tile.index, tile.width)
        expected = tree.read_tile(tile)
        if stored and stored != expected[: len(stored)]:
            first_leaf = tile.index * TILE_WIDTH << (TILE_HEIGHT * tile.level)
            raise VerificationError(
                f"tile {tile.path()} does not match the leaf tiles below it", offset=first_leaf
            )


def _check_checkpoints(
    tree: TileDirectory, directory: Path, verifier: Verifier, suffix: str | None
) -> int:
    store = CheckpointStore(directory)
    origins: set[str] = set()
    for size in store.sizes():
        checkpoint = open_checkpoint(store.read(size), verifier)
        if checkpoint.size != size:
            raise VerificationError(f"checkpoint file {size} states size {checkpoint.size}")
        if suffix is not None and not checkpoint.origin.endswith(suffix):
            raise VerificationError(f"checkpoint {size} is of log {checkpoint.origin!r}")
        origins.add(checkpoint.origin)
        if size > tree.size:
            raise VerificationError(
                f"checkpoint {size} covers records the log does not hold", offset=tree.size
            )
        if checkpoint.root != tree.root(size):
            raise VerificationError(
                f"the records do not give checkpoint {size}'s root", offset=size - 1
            )
    if len(origins) > 1:
        raise VerificationError(f"the checkpoints name several logs: {sorted(origins)}")
    return len(store.sizes())
