"""Inclusion and consistency proofs (RFC 9162 section 2.1.3 and 2.1.4): made from a tree's
stored hashes, checked with nothing but the hashes a reader already trusts.

An inclusion proof shows that the leaf at ``index`` is in the tree of ``size`` leaves with a
given root; a consistency proof that the tree of ``old_size`` leaves is a prefix of the tree of
``new_size`` leaves, so history was only appended to. Both are lists of 32-byte hashes, lowest
first, exactly as RFC 9162 (and Go's ``sumdb/tlog``, Certificate Transparency) define them.

A range proof shows that the leaves ``[start, end)`` are leaves ``start`` on of a tree with a
given root: the hashes of the subtrees RFC 6962's recursion meets that lie wholly outside the
range, left to right (at most about ``2 * log2(size)``: the range's compact-range boundary),
so one proof of O(log n) hashes vouches for a whole batch of records.
"""

from __future__ import annotations

from collections.abc import Sequence

from replog.errors import InvalidArgumentError, VerificationError
from replog.tlog.hashing import EMPTY_ROOT, HASH_SIZE, node_hash, split_point
from replog.tlog.tree import HashSource, range_hash

__all__ = [
    "MAX_RANGE_PROOF_HASHES",
    "consistency_proof",
    "inclusion_proof",
    "range_proof",
    "verify_consistency",
    "verify_inclusion",
    "verify_range",
]

MAX_RANGE_PROOF_HASHES = 2 * 64
"""No range proof of a tree of up to 2**63 leaves holds more hashes (one or two a level)."""


def inclusion_proof(source: HashSource, index: int, size: int) -> list[bytes]:
    """The proof that leaf ``index`` is in the tree of the first ``size`` leaves."""
    if not 0 <= index < size:
        raise InvalidArgumentError(f"leaf {index} is not in a tree of {size} leaves")
    top_down: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        split = start + split_point(end - start)
        if index < split:
            top_down.append(range_hash(source, split, end))
            end = split
        else:
            top_down.append(range_hash(source, start, split))
            start = split
    return top_down[::-1]


def consistency_proof(source: HashSource, old_size: int, new_size: int) -> list[bytes]:
    """The proof that the tree of ``old_size`` leaves is a prefix of that of ``new_size``
    (empty when ``old_size`` is 0 or equals ``new_size``)."""
    if not 0 <= old_size <= new_size:
        raise InvalidArgumentError(f"no consistency proof from size {old_size} to {new_size}")
    if old_size in (0, new_size):
        return []
    return _subproof(source, old_size, 0, new_size, complete=True)


def _subproof(source: HashSource, old: int, start: int, end: int, *, complete: bool) -> list[bytes]:
    """RFC 9162's SUBPROOF(m, D[start:end], b): ``old`` leaves of the window are the old tree;
    ``complete`` says whether the old tree's hash of this window is known to the verifier."""
    if old == end - start:
        return [] if complete else [range_hash(source, start, end)]
    split = split_point(end - start)
    if old <= split:
        below = _subproof(source, old, start, start + split, complete=complete)
        return [*below, range_hash(source, start + split, end)]
    below = _subproof(source, old - split, start + split, end, complete=False)
    return [*below, range_hash(source, start, start + split)]


def _check_proof(proof: Sequence[bytes], offset: int | None) -> None:
    for position, value in enumerate(proof):
        if not isinstance(value, bytes | bytearray) or len(value) != HASH_SIZE:
            raise VerificationError(
                f"proof hash {position} is not a {HASH_SIZE}-byte hash", offset=offset
            )


def _check_hashes(offset: int | None, **hashes: bytes) -> None:
    for name, value in hashes.items():
        if not isinstance(value, bytes | bytearray) or len(value) != HASH_SIZE:
            raise VerificationError(f"the {name} is not a {HASH_SIZE}-byte hash", offset=offset)


def _shift_while_right_child(fn: int, sn: int) -> tuple[int, int]:
    """Right-shift both until ``fn``'s lowest bit is set or ``fn`` is 0."""
    while fn and not fn & 1:
        fn >>= 1
        sn >>= 1
    return fn, sn


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf`` (a leaf hash) is leaf ``index`` of the tree of ``size`` leaves whose
    root is ``root``; VerificationError (naming the index) if the proof does not show it."""
    _check_hashes(index, **{"leaf hash": leaf, "root hash": root})
    _check_proof(proof, index)
    if not 0 <= index < size:
        raise VerificationError(f"leaf {index} is not in a tree of {size} leaves", offset=index)
    fn, sn = index, size - 1
    result = bytes(leaf)
    for sibling in proof:
        if sn == 0:
            raise VerificationError(f"the proof of leaf {index} is too long", offset=index)
        if fn & 1 or fn == sn:
            result = node_hash(sibling, result)
            if not fn & 1:
                fn, sn = _shift_while_right_child(fn, sn)
        else:
            result = node_hash(result, sibling)
        fn >>= 1
        sn >>= 1
    if sn != 0 or result != root:
        raise VerificationError(
            f"leaf {index} is not in the tree of {size} leaves with that root", offset=index
        )


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree of ``old_size`` leaves with ``old_root`` is a prefix of the tree of
    ``new_size`` leaves with ``new_root``; VerificationError (naming ``old_size``, the first
    leaf the old tree does not vouch for) if the proof does not show it."""
    _check_hashes(old_size, **{"old root hash": old_root, "new root hash": new_root})
    _check_proof(proof, old_size)
    if not 0 <= old_size <= new_size:
        raise VerificationError(
            f"a tree of {new_size} leaves cannot extend one of {old_size}", offset=old_size
        )
    if old_size in (0, new_size):
        expected = EMPTY_ROOT if old_size == 0 else new_root
        if proof or old_root != expected:
            raise VerificationError(
                f"the trees of {old_size} and {new_size} leaves are not consistent",
                offset=old_size,
            )
        return
    _run_consistency(old_size, new_size, old_root, new_root, proof)


def _run_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 section 2.1.4.2, for 0 < old_size < new_size."""
    failed = VerificationError(
        f"the tree of {new_size} leaves does not extend the tree of {old_size} with that root",
        offset=old_size,
    )
    path = [bytes(h) for h in proof]
    if old_size & (old_size - 1) == 0:  # the old tree is a complete subtree: its root is known
        path.insert(0, bytes(old_root))
    if not path:
        raise failed
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for sibling in path[1:]:
        if sn == 0:
            raise failed
        if fn & 1 or fn == sn:
            fr = node_hash(sibling, fr)
            sr = node_hash(sibling, sr)
            if not fn & 1:
                fn, sn = _shift_while_right_child(fn, sn)
        else:
            sr = node_hash(sr, sibling)
        fn >>= 1
        sn >>= 1
    if sn != 0 or fr != old_root or sr != new_root:
        raise failed


def _check_range(start: int, end: int, size: int) -> None:
    if not 0 <= start < end <= size:
        raise InvalidArgumentError(f"leaves [{start}, {end}) are not in a tree of {size} leaves")


def range_proof(source: HashSource, start: int, end: int, size: int) -> list[bytes]:
    """The proof that leaves ``[start, end)`` are in the tree of the first ``size`` leaves:
    the hashes of the subtrees outside the range that RFC 6962's recursion meets, left to
    right."""
    _check_range(start, end, size)
    hashes: list[bytes] = []

    def walk(low: int, high: int) -> None:
        if high <= start or low >= end:
            hashes.append(range_hash(source, low, high))
        elif not (start <= low and high <= end):
            split = low + split_point(high - low)
            walk(low, split)
            walk(split, high)

    walk(0, size)
    return hashes


def _leaves_hash(leaves: Sequence[bytes], low: int, high: int) -> bytes:
    """RFC 6962's hash of ``leaves[low:high]`` (leaf hashes), split as the tree splits it."""
    if high - low == 1:
        return bytes(leaves[low])
    split = low + split_point(high - low)
    return node_hash(_leaves_hash(leaves, low, split), _leaves_hash(leaves, split, high))


def verify_range(
    leaves: Sequence[bytes], start: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaves`` (leaf hashes) are leaves ``start``, ``start + 1``, ... of the tree
    of ``size`` leaves whose root is ``root``; VerificationError (naming ``start``) if the
    proof does not show it. Which leaf of a failing range is wrong takes narrower ranges."""
    _check_hashes(start, **{"root hash": root})
    _check_proof(proof, start)
    if any(not isinstance(leaf, bytes | bytearray) or len(leaf) != HASH_SIZE for leaf in leaves):
        raise VerificationError(f"a leaf hash is not a {HASH_SIZE}-byte hash", offset=start)
    end = start + len(leaves)
    if not leaves or not 0 <= start < end <= size or len(proof) > MAX_RANGE_PROOF_HASHES:
        raise VerificationError(
            f"leaves [{start}, {end}) cannot be proven in a tree of {size} leaves", offset=start
        )
    failed = VerificationError(
        f"leaves [{start}, {end}) are not in the tree of {size} leaves with that root",
        offset=start,
    )
    given = iter(proof)

    def walk(low: int, high: int) -> bytes:
        if high <= start or low >= end:
            value = next(given, None)
            if value is None:
                raise failed  # the proof is too short
            return bytes(value)
        if start <= low and high <= end:
            return _leaves_hash(leaves, low - start, high - start)
        split = low + split_point(high - low)
        return node_hash(walk(low, split), walk(split, high))

    if walk(0, size) != root or next(given, None) is not None:
        raise failed
