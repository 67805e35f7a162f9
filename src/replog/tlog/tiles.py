"""C2SP tlog-tiles: the tree's stored hashes cut into tiles of 256, named by path.

The tile at level ``L``, index ``N`` holds the hashes of tree level ``8 * L``, nodes
``N * 256`` to ``N * 256 + 255``, concatenated (32 bytes each); a tree whose size does not
fill the rightmost tile of a level has a *partial* tile there of width ``W`` (1..255). Paths
are ``tile/<L>/<N>`` and ``tile/<L>/<N>.p/<W>``, ``N`` written as 3-digit groups with every
group but the last prefixed by ``x`` (``1234067`` is ``x001/x234/067``).

The hashes of the levels between (``8L + 1`` to ``8L + 7``) are not stored: they are
recomputed from a tile's hashes. Tiles alone prove nothing: a reader checks the tree hash it
computes from them (or a proof made from them) against a root it trusts, and a root read
through the highest tiles does not vouch for the tiles below them: ``verify_tiles`` checks
every tile.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from replog.errors import InvalidArgumentError, VerificationError
from replog.tlog.hashing import HASH_SIZE, node_hash
from replog.tlog.tree import HashSource, MerkleTree

__all__ = [
    "TILE_HEIGHT",
    "TILE_WIDTH",
    "Tile",
    "TileHashSource",
    "changed_tiles",
    "parse_tile_path",
    "tile_data",
    "tiles_for_size",
    "verify_tiles",
]

TILE_HEIGHT = 8
"""Tree levels per tile level."""

TILE_WIDTH = 1 << TILE_HEIGHT
"""Hashes in a full tile (256)."""

_MAX_LEVEL = 63
_PATH = re.compile(r"tile/(0|[1-9][0-9]?)/((?:x[0-9]{3}/)*[0-9]{3})(?:\.p/([1-9][0-9]{0,2}))?")


@dataclass(frozen=True, order=True)
class Tile:
    """One tile's coordinates: ``level`` (tile level), ``index`` within it and ``width``
    (hashes it holds; 256 for a full tile)."""

    level: int
    index: int
    width: int = TILE_WIDTH

    def __post_init__(self) -> None:
        if not 0 <= self.level <= _MAX_LEVEL or self.index < 0:
            raise InvalidArgumentError(f"no tile at level {self.level}, index {self.index}")
        if not 1 <= self.width <= TILE_WIDTH:
            raise InvalidArgumentError(f"a tile holds 1..{TILE_WIDTH} hashes, not {self.width}")

    @property
    def partial(self) -> bool:
        """Whether the tile is not full."""
        return self.width < TILE_WIDTH

    @property
    def data_size(self) -> int:
        """How many bytes the tile's data is."""
        return self.width * HASH_SIZE

    def path(self) -> str:
        """The tile's C2SP path, ``tile/<L>/<N>[.p/<W>]``."""
        digits = f"{self.index:d}"
        digits = digits.zfill(-(-len(digits) // 3) * 3)
        groups = [digits[i : i + 3] for i in range(0, len(digits), 3)]
        encoded = "/".join([*(f"x{g}" for g in groups[:-1]), groups[-1]])
        suffix = f".p/{self.width}" if self.partial else ""
        return f"tile/{self.level}/{encoded}{suffix}"


def parse_tile_path(path: str) -> Tile:
    """The tile a C2SP path names; InvalidArgumentError if it is not one, exactly as written
    by ``Tile.path`` (no leading zeros in groups' places, no ``.p/256``)."""
    match = _PATH.fullmatch(path)
    if match is None:
        raise InvalidArgumentError(f"{path!r} is not a tile path")
    level_text, index_text, width_text = match.groups()
    groups = index_text.split("/")
    if len(groups) > 1 and groups[0] == "x000":
        raise InvalidArgumentError(f"{path!r} is not a tile path: its index has leading zeros")
    index = int("".join(g.removeprefix("x") for g in groups))
    width = int(width_text) if width_text is not None else TILE_WIDTH
    if width_text is not None and width >= TILE_WIDTH:
        raise InvalidArgumentError(f"{path!r} is not a tile path: a partial tile is under 256")
    return Tile(int(level_text), index, width)


def _level_count(size: int, level: int) -> int:
    """How many hashes of tree level ``TILE_HEIGHT * level`` a tree of ``size`` leaves has."""
    return size >> (TILE_HEIGHT * level)


def tiles_for_size(size: int) -> list[Tile]:
    """Every tile of the tree of ``size`` leaves, level by level, full tiles then the partial."""
    if size < 0:
        raise InvalidArgumentError(f"a tree cannot have {size} leaves")
    tiles: list[Tile] = []
    level = 0
    while (count := _level_count(size, level)) > 0:
        full, rest = divmod(count, TILE_WIDTH)
        tiles.extend(Tile(level, index) for index in range(full))
        if rest:
            tiles.append(Tile(level, full, rest))
        level += 1
    return tiles


def changed_tiles(old_size: int, new_size: int) -> list[Tile]:
    """The tiles of the tree of ``new_size`` leaves that the tree of ``old_size`` did not have
    (new, or wider than its partial tile was)."""
    if not 0 <= old_size <= new_size:
        raise InvalidArgumentError(f"a tree cannot grow from {old_size} to {new_size} leaves")
    changed: list[Tile] = []
    level = 0
    while (count := _level_count(new_size, level)) > 0:
        old_count = _level_count(old_size, level)
        for index in range(old_count // TILE_WIDTH, -(-count // TILE_WIDTH)):
            width = min(TILE_WIDTH, count - index * TILE_WIDTH)
            if width > old_count - index * TILE_WIDTH:
                changed.append(Tile(level, index, width))
        level += 1
    return changed


def tile_data(source: HashSource, tile: Tile) -> bytes:
    """The tile's bytes: its ``width`` hashes of tree level ``8 * level``, concatenated."""
    tree_level = TILE_HEIGHT * tile.level
    first = tile.index * TILE_WIDTH
    return b"".join(source.stored_hash(tree_level, first + i) for i in range(tile.width))


class TileHashSource:
    """A ``HashSource`` that reads a tree of ``size`` leaves from its tiles.

    ``read_tile`` returns a tile's data (from files, a server); each tile is read once. Data of
    the wrong length is a VerificationError; the hashes are otherwise taken as they are, so
    check what is computed from them against a trusted root.
    """

    def __init__(self, size: int, read_tile: Callable[[Tile], bytes]) -> None:
        self._size = size
        self._read_tile = read_tile
        self._tiles: dict[Tile, bytes] = {}

    @property
    def size(self) -> int:
        """The tree size the tiles are read at."""
        return self._size

    def tile(self, tile: Tile) -> bytes:
        """The data of ``tile`` (one of the tree's tiles at this size), checked for length."""
        data = self._tiles.get(tile)
        if data is None:
            data = bytes(self._read_tile(tile))
            if len(data) != tile.data_size:
                raise VerificationError(
                    f"tile {tile.path()} holds {len(data)} bytes, not {tile.data_size}",
                    offset=tile.index * TILE_WIDTH << (TILE_HEIGHT * tile.level),
                )
            self._tiles[tile] = data
        return data

    def stored_hash(self, level: int, index: int) -> bytes:
        """The hash of node ``(level, index)``, from the tile of its level (recomputed from
        that tile's hashes for a level between tile levels)."""
        if level < 0 or index < 0 or (index + 1) << level > self._size:
            raise InvalidArgumentError(
                f"a tree of {self._size} leaves has no complete node at level {level}, "
                f"index {index}"
            )
        tile_level, below = divmod(level, TILE_HEIGHT)
        first = index << below  # the node's first hash at the tile level
        tile_index, start = divmod(first, TILE_WIDTH)
        count = _level_count(self._size, tile_level)
        width = min(TILE_WIDTH, count - tile_index * TILE_WIDTH)
        data = self.tile(Tile(tile_level, tile_index, width))
        hashes = [
            data[(start + i) * HASH_SIZE : (start + i + 1) * HASH_SIZE] for i in range(1 << below)
        ]
        while len(hashes) > 1:
            hashes = [node_hash(hashes[i], hashes[i + 1]) for i in range(0, len(hashes), 2)]
        return hashes[0]


def verify_tiles(size: int, root: bytes, read_tile: Callable[[Tile], bytes]) -> MerkleTree:
    """Check every tile of the tree of ``size`` leaves against ``root`` (from a verified
    checkpoint) and return the tree they hold; VerificationError if any does not match, its
    ``offset`` the first leaf under a higher tile that differs from the leaf tiles, or 0 when
    the leaf tiles do not give ``root`` (which of them is wrong the tiles cannot tell).

    The tree is rebuilt from the level-0 tiles (every leaf hash) and each higher tile is
    compared with it: reading the root through the highest tiles alone would leave the tiles
    below them unchecked.
    """
    tree = MerkleTree()
    source = TileHashSource(size, read_tile)
    for tile in tiles_for_size(size):
        if tile.level == 0:
            data = source.tile(tile)
            for i in range(tile.width):
                tree.append(data[i * HASH_SIZE : (i + 1) * HASH_SIZE])
    if tree.root() != root:
        raise VerificationError(
            f"the leaf tiles of the tree of {size} leaves do not give its root", offset=0
        )
    for tile in tiles_for_size(size):
        if tile.level > 0 and source.tile(tile) != tile_data(tree, tile):
            first_leaf = tile.index * TILE_WIDTH << (TILE_HEIGHT * tile.level)
            raise VerificationError(
                f"tile {tile.path()} does not match the leaf tiles below it", offset=first_leaf
            )
    return tree
