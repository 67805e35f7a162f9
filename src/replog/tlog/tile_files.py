"""One partition's tree, kept in its tile files as it grows (the I/O edge of ``tlog``).

Under ``directory`` every tile of the tree lies at its C2SP path (``tile/<L>/<N>`` and, for the
rightmost tile of a level, ``tile/<L>/<N>.p/<W>``; see ``tile_io``). Only the newest partial
tile of an index is kept; a reader of an older tree size takes the prefix of a wider tile.

Memory does not grow with the log: the tree keeps only its right edge (the hashes of each
level's rightmost, incomplete tile: at most 255 per tile level) and a small cache of full tiles
read back; every other hash is read from the full tiles on disk, so a proof reads O(log n)
tiles. ``TileDirectory`` is a ``HashSource``.

Opening reuses the tiles: it takes the longest prefix whose last full leaf tile matches its
records (re-hashed) and whose upper tiles' right edge matches the tiles below, loads the edge
and re-hashes only the records after it. When that check fails (a tile missing, cut short or
altered), the whole tree is rebuilt from the records and every tile that differed rewritten
(``rewritten``; ``damage_at`` names the first leaf whose leaf tile differed). Deeper checks of
every tile are ``verify_tiles``'s (and ``replog verify``'s) job.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from replog.errors import InvalidArgumentError
from replog.storage.files import make_private_dir
from replog.tlog.hashing import EMPTY_ROOT, HASH_SIZE, leaf_hash, node_hash
from replog.tlog.tile_io import TileFiles
from replog.tlog.tiles import TILE_HEIGHT, TILE_WIDTH, Tile, tiles_for_size
from replog.tlog.tree import tree_hash

__all__ = ["LeafReader", "TileDirectory"]

LeafReader = Callable[[int, int], Sequence[bytes]]
"""``read(start, stop)``: the stored bytes of leaves ``[start, stop)`` (records, in order)."""

_CACHE_TILES = 64  # full tiles kept in memory (8 KiB each)
_REHASH_CHUNK = 4096


def _tile_root(data: bytes) -> bytes:
    """The hash of the complete subtree a full tile's 256 hashes are the bottom of
    (``node_hash`` inlined: this runs on every append)."""
    sha256 = hashlib.sha256
    hashes = [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]
    while len(hashes) > 1:
        pairs = iter(hashes)
        hashes = [
            sha256(b"\x01" + left + right).digest()
            for left, right in zip(pairs, pairs, strict=True)
        ]
    return hashes[0]


class TileDirectory:
    """The tree of one partition, its tiles under ``directory``."""

    def __init__(self, directory: Path, read_leaves: LeafReader | None = None) -> None:
        """An empty tree (use ``open`` for one on disk); ``read_leaves`` lets a missing full
        leaf tile be recomputed from the records while serving."""
        self.directory = directory
        self.files = TileFiles(directory)
        self._read_leaves = read_leaves
        self._size = 0
        self._edge: list[list[bytes]] = [[]]  # per tile level: the rightmost tile's hashes
        self._unwritten: dict[Tile, bytes] = {}  # full tiles not yet on disk
        self._written_size = 0  # the tree size the partial tiles on disk are written for
        self._cache: OrderedDict[Tile, bytes] = OrderedDict()
        self._compare = False  # while opening: count a write as a repair only if it differs
        self.rewritten: list[Tile] = []
        """The tiles ``open`` found missing or damaged and rewrote."""
        self.damage_at: int | None = None
        """The first leaf whose full leaf tile on disk differed from its records (open)."""
        self.reused = 0
        """How many leaves ``open`` took from the tiles without re-hashing them."""

    @classmethod
    def open(cls, directory: Path, size: int, read_leaves: LeafReader) -> TileDirectory:
        """The tree of the ``size`` leaves ``read_leaves`` gives (every record's stored bytes,
        in offset order), its tiles under ``directory`` reused where they check out and
        rewritten where not."""
        make_private_dir(directory)
        tiles = cls(directory, read_leaves)
        tiles._compare = True
        start = tiles._reusable_prefix(size)
        if start is None:
            tiles._rebuild(size)
        else:
            tiles._load_edge(start)
            tiles.reused = start
            tiles._rehash(start, size)
            tiles._remove_beyond(size)
        tiles._compare = False
        return tiles

    # -- the tree --------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """How many leaves the tree holds."""
        return self._size

    @property
    def tree(self) -> TileDirectory:
        """The tree itself (kept for callers of the in-memory tree's API)."""
        return self

    def root(self, size: int | None = None) -> bytes:
        """The root hash at ``size`` leaves (default: the whole tree)."""
        size = self._size if size is None else size
        if not 0 <= size <= self._size:
            raise InvalidArgumentError(f"the tree holds {self._size} leaves, not {size}")
        return EMPTY_ROOT if size == 0 else tree_hash(self, size)

    def stored_hash(self, level: int, index: int) -> bytes:
        """The hash of node ``(level, index)``, a complete subtree of the tree."""
        if level < 0 or index < 0 or (index + 1) << level > self._size:
            raise InvalidArgumentError(
                f"a tree of {self._size} leaves has no complete node at level {level}, "
                f"index {index}"
            )
        tile_level, below = divmod(level, TILE_HEIGHT)
        first = index << below
        tile_index, start = divmod(first, TILE_WIDTH)
        data = self._hashes_of(tile_level, tile_index)
        hashes = [
            data[(start + i) * HASH_SIZE : (start + i + 1) * HASH_SIZE] for i in range(1 << below)
        ]
        while len(hashes) > 1:
            hashes = [node_hash(hashes[i], hashes[i + 1]) for i in range(0, len(hashes), 2)]
        return hashes[0]

    def _hashes_of(self, level: int, index: int) -> bytes:
        """The hashes the tree holds of tile ``(level, index)`` (full, or the edge's)."""
        count = self._size >> (TILE_HEIGHT * level)
        if index == count // TILE_WIDTH:
            return b"".join(self._edge[level])
        return self._full_tile(Tile(level, index))

    def _full_tile(self, tile: Tile) -> bytes:
        data = self._unwritten.get(tile)
        if data is not None:
            return data
        data = self._cache.get(tile)
        if data is not None:
            self._cache.move_to_end(tile)
            return data
        data = self.files.read(tile)
        if data is None or len(data) != tile.data_size:
            data = self._recompute(tile)
            self.files.write(tile, data)
        self._cache[tile] = data
        if len(self._cache) > _CACHE_TILES:
            self._cache.popitem(last=False)
        return data

    def _recompute(self, tile: Tile) -> bytes:
        """A full tile's data from the tiles (or, for leaf tiles, the records) below it."""
        first = tile.index * TILE_WIDTH
        if tile.level == 0:
            if self._read_leaves is None:
                raise InvalidArgumentError(f"tile {tile.path()} is missing and has no records")
            return b"".join(map(leaf_hash, self._read_leaves(first, first + TILE_WIDTH)))
        return b"".join(
            _tile_root(self._full_tile(Tile(tile.level - 1, first + i))) for i in range(TILE_WIDTH)
        )

    # -- growing and cutting ---------------------------------------------------------------

    def append(self, leaves: Iterable[bytes]) -> list[Tile]:
        """Add records' stored bytes as leaves and write the tiles that changed; returns the
        partial tiles written (full ones are written as they fill).

        If writing fails (OSError), the leaves stay in the tree and the next call writes their
        tiles too."""
        return self.append_hashes(map(leaf_hash, leaves))

    def append_hashes(self, hashes: Iterable[bytes], *, write: bool = True) -> list[Tile]:
        """``append`` for leaf hashes already computed. With ``write`` False nothing is
        written: the full tiles wait in memory (``unwritten``) for ``write_full`` or ``flush``,
        the partial ones for ``flush`` or a read (a reopened tree re-hashes from its last full
        leaf tile, so partial tiles are not needed to recover)."""
        self._extend(list(hashes))
        return self._write_pending() if write else []

    def unwritten(self) -> list[tuple[Tile, bytes]]:
        """The full tiles not yet on disk, in order."""
        return sorted(self._unwritten.items())

    def write_full(self, tile: Tile, data: bytes) -> None:
        """Write one of the ``unwritten`` tiles' files (safe without the tree's lock, as long
        as the tree is not cut meanwhile); ``mark_written`` then forgets it."""
        self.files.write(tile, data, in_place=True)
        self.files.remove_other_partials(tile)

    def mark_written(self, tiles: Iterable[tuple[Tile, bytes]]) -> None:
        """Forget the full tiles ``write_full`` wrote (unless the tree changed them since)."""
        for tile, data in tiles:
            if self._unwritten.get(tile) is data:
                del self._unwritten[tile]

    def flush(self) -> list[Tile]:
        """Write every tile not yet on disk (partial ones included); returns the partials."""
        return self._write_pending()

    def _extend(self, hashes: list[bytes]) -> None:
        """Add leaf hashes a tile's worth at a time (full tiles move up one level)."""
        done = 0
        edge = self._edge[0]
        while done < len(hashes):
            take = min(len(hashes) - done, TILE_WIDTH - len(edge))
            if take < TILE_WIDTH - len(edge):
                edge.extend(hashes[done : done + take])
                self._size += take
                return
            edge.extend(hashes[done : done + take - 1])
            self._size += take - 1
            self._push(0, hashes[done + take - 1])  # completes the tile
            self._size += 1
            done += take

    def _push(self, level: int, value: bytes) -> None:
        if level == len(self._edge):
            self._edge.append([])
        edge = self._edge[level]
        edge.append(value)
        if len(edge) == TILE_WIDTH:
            data = b"".join(edge)
            index = self._size >> (TILE_HEIGHT * (level + 1))  # the leaf being added's tile
            self._unwritten[Tile(level, index)] = data
            edge.clear()
            self._push(level + 1, _tile_root(data))

    def _write_pending(self, *, partials: bool = True) -> list[Tile]:
        for tile, data in sorted(self._unwritten.items()):
            self._write(tile, data)
            self.files.remove_other_partials(tile)
            del self._unwritten[tile]
        written: list[Tile] = []
        old = self._written_size
        if not partials:
            return written
        for level, edge in enumerate(self._edge):
            count = self._size >> (TILE_HEIGHT * level)
            if edge and (old < 0 or count != old >> (TILE_HEIGHT * level)):
                tile = Tile(level, count // TILE_WIDTH, len(edge))
                self._write(tile, b"".join(edge))
                self.files.remove_other_partials(tile)
                written.append(tile)
        self._written_size = self._size
        return written

    def _write(self, tile: Tile, data: bytes) -> None:
        if self._compare:
            if self.files.read(tile) == data:
                return
            self.rewritten.append(tile)
        self.files.write(tile, data)

    def truncate(self, size: int) -> None:
        """Cut the tree to its first ``size`` leaves (a replaced log suffix) and remove the
        tiles past the cut."""
        if not 0 <= size <= self._size:
            raise InvalidArgumentError(f"cannot cut a tree of {self._size} leaves to {size}")
        if size == self._size:
            return
        self._write_pending()
        old = self._size
        self._load_edge(size)
        self._remove_between(size, old)
        self._written_size = -1  # every partial is rewritten by the next write
        self._write_pending()

    def _load_edge(self, size: int) -> None:
        """Make the tree the first ``size`` leaves of what the tiles (and memory) hold."""
        edge: list[list[bytes]] = []
        level = 0
        while (count := size >> (TILE_HEIGHT * level)) > 0 or level == 0:
            rest = count % TILE_WIDTH
            data = self._edge_hashes(level, count // TILE_WIDTH, rest) if rest else b""
            edge.append([data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)])
            level += 1
            if count == 0:
                break
        self._edge, self._size = edge, size
        self._cache.clear()
        self._unwritten.clear()

    def _edge_hashes(self, level: int, index: int, width: int) -> bytes:
        count = self._size >> (TILE_HEIGHT * level)
        if index == count // TILE_WIDTH and level < len(self._edge):
            mine = b"".join(self._edge[level])
            if len(mine) >= width * HASH_SIZE:
                return mine[: width * HASH_SIZE]
        if Tile(level, index) in self._unwritten:
            return self._unwritten[Tile(level, index)][: width * HASH_SIZE]
        data = self.files.read_prefix(level, index, width)
        if len(data) < width * HASH_SIZE and level == 0:
            raise InvalidArgumentError(f"tile 0/{index} of width {width} is missing")
        first = index * TILE_WIDTH  # the rest: roots of the full tiles below
        done = len(data) // HASH_SIZE
        rest = [_tile_root(self._full_tile(Tile(level - 1, first + i))) for i in range(done, width)]
        return data + b"".join(rest)

    def _remove_between(self, size: int, old: int) -> None:
        level = 0
        while (old_count := old >> (TILE_HEIGHT * level)) > 0:
            count = size >> (TILE_HEIGHT * level)
            for index in range(count // TILE_WIDTH, -(-old_count // TILE_WIDTH)):
                self.files.remove_index(level, index)  # not in the cut tree (or only partial)
            level += 1

    # -- opening ---------------------------------------------------------------------------

    def _reusable_prefix(self, size: int) -> int | None:
        """The largest multiple of 256 leaves up to ``size`` the tiles can be trusted for, or
        None if the tiles must be rebuilt."""
        full = size // TILE_WIDTH
        while full > 0 and not self._intact(Tile(0, full - 1)):
            full -= 1  # missing, or torn by a crash while written
        if full == 0:
            return 0 if size < TILE_WIDTH or self._nothing_on_disk() else None
        last = Tile(0, full - 1)
        data = self.files.read(last)
        first = last.index * TILE_WIDTH
        assert self._read_leaves is not None
        leaves = self._read_leaves(first, first + TILE_WIDTH)
        if data != b"".join(map(leaf_hash, leaves)):
            return None
        start = full * TILE_WIDTH
        try:
            self._load_edge(start)
        except InvalidArgumentError:
            return None
        return start if self._edge_matches_below(start) else None

    def _intact(self, tile: Tile) -> bool:
        data = self.files.read(tile)
        return data is not None and len(data) == tile.data_size

    def _nothing_on_disk(self) -> bool:
        return not (self.directory / "tile").exists()

    def _edge_matches_below(self, size: int) -> bool:
        """Whether each upper level's rightmost hash is the root of the full tile below it."""
        for level in range(1, len(self._edge)):
            count = size >> (TILE_HEIGHT * level)
            if count == 0:
                break
            index = count // TILE_WIDTH
            top = self._edge[level][-1] if count % TILE_WIDTH else None
            if top is None:
                top = self._edge_hashes(level, index - 1, TILE_WIDTH)[-HASH_SIZE:]
            below = self.files.read(Tile(level - 1, count - 1))
            if below is None or len(below) != TILE_WIDTH * HASH_SIZE or _tile_root(below) != top:
                return False
        return True

    def _rehash(self, start: int, stop: int) -> None:
        assert self._read_leaves is not None
        for first in range(start, stop, _REHASH_CHUNK):
            leaves = self._read_leaves(first, min(stop, first + _REHASH_CHUNK))
            self._extend(list(map(leaf_hash, leaves)))
            self._check_damage(first)
            self._write_pending()
        self._write_pending()

    def _check_damage(self, first: int) -> None:
        if self.damage_at is not None:
            return
        for tile, data in sorted(self._unwritten.items()):
            if tile.level == 0:
                old = self.files.read(tile)
                if old is not None and len(old) == len(data) and old != data:
                    at = next(
                        i
                        for i in range(0, len(data), HASH_SIZE)
                        if old[i : i + HASH_SIZE] != data[i : i + HASH_SIZE]
                    )
                    self.damage_at = tile.index * TILE_WIDTH + at // HASH_SIZE
                    return

    def _rebuild(self, size: int) -> None:
        self._edge, self._size, self._written_size = [[]], 0, 0
        self._rehash(0, size)
        self.files.remove_strays({tile.path() for tile in tiles_for_size(size)})

    def _remove_beyond(self, size: int) -> None:
        """Remove the tiles of a longer tree left on disk (records lost after the tiles were
        written), level by level until a level has neither tree nor stray tiles."""
        level = 0
        while True:
            count = size >> (TILE_HEIGHT * level)
            index, rest = divmod(count, TILE_WIDTH)
            found = self.files.remove_full(level, index)  # at most a partial belongs there
            after = index + 1
            while self.files.remove_index(level, after):
                found, after = True, after + 1
            if rest:
                tile = Tile(level, index, rest)
                self.files.remove_other_partials(tile)
                self._write(tile, b"".join(self._edge[level]))
            elif self.files.remove_index(level, index):
                found = True
            if count == 0 and not found:
                return
            level += 1

    # -- serving ---------------------------------------------------------------------------

    def read_tile(self, tile: Tile) -> bytes:
        """The data of ``tile`` (a prefix of the wider or full tile of its index when the tree
        has grown past it); InvalidArgumentError if the tree has no such tile."""
        count = self._size >> (TILE_HEIGHT * tile.level)
        if tile.index * TILE_WIDTH + tile.width > count:
            raise InvalidArgumentError(f"the tree of {self.size} leaves has no tile {tile.path()}")
        data = self._hashes_of(tile.level, tile.index)
        if tile.index == count // TILE_WIDTH:
            partial = Tile(tile.level, tile.index, len(data) // HASH_SIZE)
            if self.files.read(partial) != data:
                self.files.write(partial, data)
        return data[: tile.data_size]

    def path_of(self, tile: Tile) -> Path:
        """Where ``tile``'s file is."""
        return self.files.path_of(tile)
