"""Every range proof replog makes verifies its leaves against the root, and no altered leaf,
proof hash, start, size or proof length does (hypothesis, trees of up to 600 leaves)."""

from __future__ import annotations

from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replog.errors import InvalidArgumentError, VerificationError
from replog.tlog.hashing import leaf_hash
from replog.tlog.proof import MAX_RANGE_PROOF_HASHES, range_proof, verify_range
from replog.tlog.tree import MerkleTree

MAX_SIZE = 600


@cache
def big_tree() -> MerkleTree:
    leaves = range(MAX_SIZE + 1)  # room for a size claimed one larger
    return MerkleTree.from_leaf_hashes(leaf_hash(i.to_bytes(4, "big")) for i in leaves)


def leaves(start: int, end: int) -> list[bytes]:
    tree = big_tree()
    return [tree.stored_hash(0, i) for i in range(start, end)]


@st.composite
def range_in_tree(draw: st.DrawFn) -> tuple[int, int, int]:
    size = draw(st.integers(1, MAX_SIZE))
    start = draw(st.integers(0, size - 1))
    return start, draw(st.integers(start + 1, size)), size


@settings(max_examples=150, deadline=None)
@given(range_in_tree())
def test_every_range_proof_verifies_and_stays_logarithmic(case: tuple[int, int, int]) -> None:
    start, end, size = case
    tree = big_tree()
    proof = range_proof(tree, start, end, size)
    assert len(proof) <= 2 * size.bit_length()
    verify_range(leaves(start, end), start, size, proof, tree.root(size))


@settings(max_examples=150, deadline=None)
@given(range_in_tree(), st.integers(0, 10_000), st.sampled_from(["leaf", "proof", "root"]))
def test_a_range_proof_with_any_byte_altered_fails(
    case: tuple[int, int, int], position: int, where: str
) -> None:
    start, end, size = case
    tree = big_tree()
    proof, hashes, root = range_proof(tree, start, end, size), leaves(start, end), tree.root(size)
    if where == "proof" and not proof:
        where = "leaf"  # the range is the whole tree: nothing to alter in the proof
    target = {"leaf": hashes, "proof": proof}.get(where)
    if target is None:
        root = flip(root, position)
    else:
        target[position % len(target)] = flip(target[position % len(target)], position // 7)
    with pytest.raises(VerificationError) as failed:
        verify_range(hashes, start, size, proof, root)
    assert failed.value.offset == start


@settings(max_examples=100, deadline=None)
@given(range_in_tree(), st.sampled_from(["start", "size", "short", "long", "fewer leaves"]))
def test_a_range_proof_for_another_shape_fails(case: tuple[int, int, int], change: str) -> None:
    """A size comes with its own root (a checkpoint states both)."""
    start, end, size = case
    tree = big_tree()
    proof, hashes, root = range_proof(tree, start, end, size), leaves(start, end), tree.root(size)
    if change == "start":
        start = start + 1 if end < size else start - 1
        if start < 0:
            return  # the whole tree: no other start
    elif change == "size":  # against the root of the size claimed, as a checkpoint states both
        size += 1
        root = tree.root(size)
    elif change == "short":
        if not proof:
            return
        proof = proof[:-1]
    elif change == "long":
        proof = [*proof, root]
    elif len(hashes) > 1:
        hashes = hashes[:-1]
    else:
        return
    with pytest.raises(VerificationError):
        verify_range(hashes, start, size, proof, root)


def test_range_proofs_refuse_impossible_ranges_and_overlong_proofs() -> None:
    tree = big_tree()
    for start, end, size in [(0, 0, 5), (3, 2, 5), (0, 6, 5), (-1, 1, 5)]:
        with pytest.raises(InvalidArgumentError):
            range_proof(tree, start, end, size)
    root = tree.root(10)
    with pytest.raises(VerificationError, match="cannot be proven"):
        verify_range(leaves(0, 1), 0, 10, [root] * (MAX_RANGE_PROOF_HASHES + 1), root)
    with pytest.raises(VerificationError, match="cannot be proven"):
        verify_range([], 0, 10, [], root)


def flip(value: bytes, position: int) -> bytes:
    position %= len(value)
    return value[:position] + bytes([value[position] ^ 0x01]) + value[position + 1 :]
