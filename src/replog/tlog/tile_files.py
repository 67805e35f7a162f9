"""One partition's tiles on disk, kept as its tree grows (the I/O edge of ``tlog``).

Under ``directory`` every tile of the tree lies at its C2SP path (``tile/<L>/<N>`` and, for the
rightmost tile of a level, ``tile/<L>/<N>.p/<W>``), directories 0700 and files 0600, each
replaced atomically (written aside, then renamed). Only the newest partial tile of an index is
kept; a reader of an older tree size takes the prefix of a wider tile it needs.

Tiles are derived data: the partition's records are the truth, so tiles are not fsynced, and
``open`` recomputes the tree from the records' bytes and rewrites any tile that is missing or
does not match (a crash, a flipped bit, a deleted directory).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from collections.abc import Iterable
from pathlib import Path

from replog.errors import InvalidArgumentError
from replog.storage.files import PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, make_private_dir
from replog.tlog.hashing import leaf_hash
from replog.tlog.tiles import (
    TILE_HEIGHT,
    TILE_WIDTH,
    Tile,
    changed_tiles,
    tile_data,
    tiles_for_size,
)
from replog.tlog.tree import MerkleTree

__all__ = ["TileDirectory"]


class TileDirectory:
    """The tree of one partition and its tiles under ``directory``."""

    def __init__(self, directory: Path, tree: MerkleTree) -> None:
        """Use ``open``: this takes a tree whose tiles are already on disk."""
        self.directory = directory
        self.tree = tree
        self._tiles_size = tree.size  # the tree size the files on disk are written for
        self.rewritten: list[Tile] = []
        """The tiles ``open`` found missing or damaged and rewrote."""

    @classmethod
    def open(cls, directory: Path, leaves: Iterable[bytes]) -> TileDirectory:
        """The tiles under ``directory`` of the tree of ``leaves`` (every record's stored
        bytes, in offset order): each tile that is missing or differs from the recomputed tree
        is rewritten (listed in ``rewritten``), and files of no tile of the tree are removed."""
        make_private_dir(directory)
        tiles = cls(directory, MerkleTree.from_leaf_hashes(leaf_hash(leaf) for leaf in leaves))
        expected = tiles_for_size(tiles.tree.size)
        for tile in expected:
            data = tile_data(tiles.tree, tile)
            if tiles._read(tile) != data:
                tiles._write(tile, data)
                tiles.rewritten.append(tile)
        tiles._remove_strays({tile.path() for tile in expected})
        return tiles

    @property
    def size(self) -> int:
        """How many leaves the tree holds."""
        return self.tree.size

    def append(self, leaves: Iterable[bytes]) -> list[Tile]:
        """Add records' stored bytes as leaves and write the tiles that changed; returns them.

        If writing fails (OSError), the leaves stay in the tree and the next call writes their
        tiles too."""
        for leaf in leaves:
            self.tree.append(leaf_hash(leaf))
        changed = changed_tiles(self._tiles_size, self.tree.size)
        for tile in changed:
            self._write(tile, tile_data(self.tree, tile))
            self._remove_older_partials(tile)
        self._tiles_size = self.tree.size
        return changed

    def path_of(self, tile: Tile) -> Path:
        """Where ``tile``'s file is."""
        return self.directory / tile.path()

    def read_tile(self, tile: Tile) -> bytes:
        """The data of ``tile`` (a prefix of the wider or full tile of its index when the tree
        has grown past it); a file found missing or cut short is rewritten from the tree.
        InvalidArgumentError if the tree has no such tile."""
        if not self._holds(tile):
            raise InvalidArgumentError(f"the tree of {self.size} leaves has no tile {tile.path()}")
        count = self.size >> (TILE_HEIGHT * tile.level)
        current = Tile(tile.level, tile.index, min(TILE_WIDTH, count - tile.index * TILE_WIDTH))
        data = self._read(current)
        if data is None or len(data) != current.data_size:
            data = tile_data(self.tree, current)
            self._write(current, data)
        return data[: tile.data_size]

    def _holds(self, tile: Tile) -> bool:
        count = self.size >> (TILE_HEIGHT * tile.level)
        return (tile.index * TILE_WIDTH) + tile.width <= count

    def _read(self, tile: Tile) -> bytes | None:
        try:
            fd = os.open(self.path_of(tile), os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return None
        with os.fdopen(fd, "rb") as handle:
            return handle.read(tile.data_size + 1)

    def _write(self, tile: Tile, data: bytes) -> None:
        path = self.path_of(tile)
        self._make_dirs(path.parent)
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, PRIVATE_FILE_MODE)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        os.replace(tmp, path)

    def _make_dirs(self, path: Path) -> None:
        """Create each directory from ``directory`` down to ``path``, 0700."""
        relative = path.relative_to(self.directory)
        current = self.directory
        for part in relative.parts:
            current = current / part
            with contextlib.suppress(FileExistsError):
                os.mkdir(current, PRIVATE_DIR_MODE)
            if not stat.S_ISDIR(os.lstat(current).st_mode):
                _remove(current)  # a file or symlink where a directory belongs
                os.mkdir(current, PRIVATE_DIR_MODE)

    def _remove_older_partials(self, tile: Tile) -> None:
        """Remove the partial tiles of ``tile``'s index narrower than it."""
        partials = self.path_of(Tile(tile.level, tile.index)).with_name(
            self.path_of(Tile(tile.level, tile.index)).name + ".p"
        )
        if not partials.is_dir():
            return
        for entry in partials.iterdir():
            if not tile.partial or entry.name != str(tile.width):
                _remove(entry)
        if not tile.partial:
            _remove(partials)

    def _remove_strays(self, expected: set[str]) -> None:
        """Remove every file under ``tile/`` that is no tile of the tree, and empty dirs."""
        root = self.directory / "tile"
        if not root.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(root, topdown=False):
            for name in filenames:
                path = Path(dirpath) / name
                if path.relative_to(self.directory).as_posix() not in expected:
                    _remove(path)
            for name in dirnames:
                path = Path(dirpath) / name
                if path.is_symlink():
                    path.unlink()
                    continue
                with contextlib.suppress(OSError):
                    path.rmdir()  # only when empty


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
