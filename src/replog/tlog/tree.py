"""The Merkle tree of a log, kept incrementally as leaf hashes are appended.

Every complete subtree's hash is stored once, in the order it becomes known: leaf ``r``'s hash,
then the hashes of the subtrees leaf ``r`` completes, lowest first. This is the stored-hash
layout of Go's ``golang.org/x/mod/sumdb/tlog`` (``StoredHashIndex``), so a position means the
same thing to both, and a tree of ``n`` leaves keeps ``2n - popcount(n)`` hashes. Any tree
size's root and every proof are computed from stored hashes alone (see ``proof``).

A node is named by ``(level, index)``: level 0 holds the leaf hashes, and node ``(l, i)`` is the
root of the complete subtree over leaves ``[i * 2**l, (i + 1) * 2**l)``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from replog.errors import InvalidArgumentError
from replog.tlog.hashing import EMPTY_ROOT, HASH_SIZE, check_hash, node_hash, split_point

__all__ = [
    "HashSource",
    "MerkleTree",
    "range_hash",
    "stored_hash_count",
    "stored_hash_index",
    "tree_hash",
]


class HashSource(Protocol):
    """Where a tree's complete-subtree hashes are read from (memory, tiles, a server)."""

    def stored_hash(self, level: int, index: int) -> bytes:
        """The hash of node ``(level, index)``, a complete subtree the tree already holds."""


def _hashes_before_leaf(leaf: int) -> int:
    """How many hashes are stored before leaf ``leaf``'s own: every complete subtree of the
    first ``leaf`` leaves, ``sum(leaf >> l for l >= 0)``."""
    total = 0
    while leaf:
        total += leaf
        leaf >>= 1
    return total


def stored_hash_index(level: int, index: int) -> int:
    """The position of node ``(level, index)`` in the stored-hash layout.

    The node is completed by its last leaf, ``(index + 1) * 2**level - 1``; that leaf's hash is
    stored first, then its parents from level 1 up, so the node comes ``level`` places later.
    """
    if level < 0 or index < 0:
        raise InvalidArgumentError(f"no node at level {level}, index {index}")
    last_leaf = ((index + 1) << level) - 1
    return _hashes_before_leaf(last_leaf) + level


def stored_hash_count(size: int) -> int:
    """How many hashes a tree of ``size`` leaves stores (every complete subtree)."""
    if size < 0:
        raise InvalidArgumentError(f"a tree cannot have {size} leaves")
    return _hashes_before_leaf(size)


def range_hash(source: HashSource, start: int, end: int) -> bytes:
    """The RFC 6962 hash of leaves ``[start, end)``.

    ``start`` must be a multiple of the largest power of two below ``end - start`` (so the left
    part is a stored complete subtree), as in every range RFC 6962's recursion visits.
    """
    width = end - start
    if width <= 0:
        raise InvalidArgumentError(f"the leaf range [{start}, {end}) is empty")
    if width & (width - 1) == 0:
        if start % width:
            raise InvalidArgumentError(f"the leaf range [{start}, {end}) is not aligned")
        level = width.bit_length() - 1
        return source.stored_hash(level, start >> level)
    split = start + split_point(width)
    return node_hash(range_hash(source, start, split), range_hash(source, split, end))


def tree_hash(source: HashSource, size: int) -> bytes:
    """The root hash of the tree's first ``size`` leaves (the empty root for 0)."""
    if size < 0:
        raise InvalidArgumentError(f"a tree cannot have {size} leaves")
    return EMPTY_ROOT if size == 0 else range_hash(source, 0, size)


class MerkleTree:
    """An append-only Merkle tree held in memory: every stored hash, 32 bytes each.

    ``append`` takes leaf hashes (``hashing.leaf_hash`` of each record) and returns the stored
    hashes it added, in layout order, so a tile writer can persist exactly those.
    """

    def __init__(self) -> None:
        self._hashes = bytearray()
        self._size = 0

    @classmethod
    def from_leaf_hashes(cls, hashes: Iterable[bytes]) -> MerkleTree:
        """A tree built by appending ``hashes`` in order."""
        tree = cls()
        for value in hashes:
            tree.append(value)
        return tree

    @property
    def size(self) -> int:
        """How many leaves the tree holds."""
        return self._size

    def append(self, value: bytes) -> list[tuple[int, int, bytes]]:
        """Add one leaf hash; return ``(level, index, hash)`` of every node it completed, the
        leaf itself first."""
        current = check_hash(value, "a leaf hash")
        index = self._size
        added = [(0, index, current)]
        self._hashes += current
        level = 0
        while index & 1:  # a right child completes its parent
            left = self.stored_hash(level, index - 1)
            current = node_hash(left, current)
            level += 1
            index >>= 1
            added.append((level, index, current))
            self._hashes += current
        self._size += 1
        return added

    def stored_hash(self, level: int, index: int) -> bytes:
        """The hash of node ``(level, index)``; InvalidArgumentError if the tree does not hold
        that complete subtree yet."""
        if level < 0 or index < 0 or (index + 1) << level > self._size:
            raise InvalidArgumentError(
                f"a tree of {self._size} leaves has no complete node at level {level}, "
                f"index {index}"
            )
        start = stored_hash_index(level, index) * HASH_SIZE
        return bytes(self._hashes[start : start + HASH_SIZE])

    def root(self, size: int | None = None) -> bytes:
        """The root hash at ``size`` leaves (default: the whole tree)."""
        size = self._size if size is None else size
        if size > self._size:
            raise InvalidArgumentError(f"the tree holds {self._size} leaves, not {size}")
        return tree_hash(self, size)
