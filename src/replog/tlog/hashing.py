"""RFC 6962 / RFC 9162 Merkle tree hashing (SHA-256).

A leaf's hash is ``SHA-256(0x00 || leaf)`` and an interior node's ``SHA-256(0x01 || left ||
right)``; the domain-separating prefixes keep a leaf from ever passing for a node. The tree of
``n`` leaves splits at the largest power of two below ``n`` (RFC 9162 section 2.1.1).
"""

from __future__ import annotations

import hashlib

from replog.errors import InvalidArgumentError

__all__ = ["EMPTY_ROOT", "HASH_SIZE", "check_hash", "leaf_hash", "node_hash", "split_point"]

HASH_SIZE = 32
"""Bytes in every hash of the tree."""

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""The root hash of the empty tree: SHA-256 of the empty string."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


def leaf_hash(leaf: bytes) -> bytes:
    """The hash of one leaf (a record's stored bytes): ``SHA-256(0x00 || leaf)``."""
    return hashlib.sha256(_LEAF_PREFIX + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The hash of an interior node from its children's hashes: ``SHA-256(0x01 || l || r)``."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def split_point(size: int) -> int:
    """The largest power of two smaller than ``size`` (``size`` >= 2): where RFC 6962 splits."""
    if size < 2:
        raise InvalidArgumentError(f"a tree of {size} leaves has no split")
    return 1 << ((size - 1).bit_length() - 1)


def check_hash(value: bytes, what: str) -> bytes:
    """``value`` if it is a hash (32 bytes), else InvalidArgumentError naming ``what``."""
    if not isinstance(value, bytes | bytearray) or len(value) != HASH_SIZE:
        size = len(value) if isinstance(value, bytes | bytearray) else type(value).__name__
        raise InvalidArgumentError(f"{what} must be a {HASH_SIZE}-byte hash, not {size}")
    return bytes(value)
