"""Every inclusion and consistency proof replog makes verifies, and no altered byte, index or
size does (hypothesis, over trees of up to 600 leaves: three tile levels' worth of shapes)."""

from __future__ import annotations

from functools import cache

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from replog.errors import VerificationError
from replog.tlog.hashing import leaf_hash
from replog.tlog.proof import (
    consistency_proof,
    inclusion_proof,
    verify_consistency,
    verify_inclusion,
)
from replog.tlog.tree import MerkleTree

MAX_SIZE = 600


@cache
def big_tree() -> MerkleTree:
    leaves = range(MAX_SIZE + 3)  # room for a size claimed a little larger
    return MerkleTree.from_leaf_hashes(leaf_hash(i.to_bytes(4, "big")) for i in leaves)


@st.composite
def leaf_in_tree(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(st.integers(1, MAX_SIZE))
    return draw(st.integers(0, size - 1)), size


@st.composite
def two_sizes(draw: st.DrawFn) -> tuple[int, int]:
    new = draw(st.integers(1, MAX_SIZE))
    return draw(st.integers(1, new)), new


def flip(value: bytes, position: int) -> bytes:
    position %= len(value)
    return value[:position] + bytes([value[position] ^ 0x01]) + value[position + 1 :]


@settings(max_examples=300, deadline=None)
@given(leaf_in_tree())
def test_every_inclusion_proof_verifies(case: tuple[int, int]) -> None:
    index, size = case
    tree = big_tree()
    proof = inclusion_proof(tree, index, size)
    verify_inclusion(tree.stored_hash(0, index), index, size, proof, tree.root(size))


@settings(max_examples=300, deadline=None)
@given(leaf_in_tree(), st.integers(0, 10_000), st.sampled_from(["leaf", "proof", "root"]))
def test_an_inclusion_proof_with_any_byte_altered_fails(
    case: tuple[int, int], position: int, where: str
) -> None:
    index, size = case
    tree = big_tree()
    leaf, root = tree.stored_hash(0, index), tree.root(size)
    proof = inclusion_proof(tree, index, size)
    if where == "proof" and not proof:
        where = "leaf"  # a tree of one leaf has an empty proof
    if where == "leaf":
        leaf = flip(leaf, position)
    elif where == "root":
        root = flip(root, position)
    else:
        hash_at = position % len(proof)
        proof[hash_at] = flip(proof[hash_at], position // len(proof))
    with pytest.raises(VerificationError) as raised:
        verify_inclusion(leaf, index, size, proof, root)
    assert raised.value.offset == index


@settings(max_examples=300, deadline=None)
@given(leaf_in_tree(), st.integers(-3, 3).filter(bool), st.booleans())
def test_an_inclusion_proof_at_another_index_or_size_fails(
    case: tuple[int, int], delta: int, move_size: bool
) -> None:
    """Against the root of the size claimed: a size comes with its root, as in a checkpoint
    (a root of one size can pass for a tree of another shape, so the two are never taken
    apart)."""
    index, size = case
    tree = big_tree()
    proof = inclusion_proof(tree, index, size)
    claimed_index, claimed_size = (index, size + delta) if move_size else (index + delta, size)
    root = tree.root(max(claimed_size, 0))
    with pytest.raises(VerificationError):
        verify_inclusion(tree.stored_hash(0, index), claimed_index, claimed_size, proof, root)


@settings(max_examples=300, deadline=None)
@given(two_sizes())
def test_every_consistency_proof_verifies(sizes: tuple[int, int]) -> None:
    old, new = sizes
    tree = big_tree()
    proof = consistency_proof(tree, old, new)
    verify_consistency(old, new, tree.root(old), tree.root(new), proof)


@settings(max_examples=300, deadline=None)
@given(two_sizes(), st.integers(0, 10_000), st.sampled_from(["old", "new", "proof"]))
def test_a_consistency_proof_with_any_byte_altered_fails(
    sizes: tuple[int, int], position: int, where: str
) -> None:
    old, new = sizes
    tree = big_tree()
    proof, old_root, new_root = consistency_proof(tree, old, new), tree.root(old), tree.root(new)
    if where == "proof" and not proof:
        where = "old"  # equal sizes: the proof is empty
    if where == "old":
        old_root = flip(old_root, position)
    elif where == "new":
        new_root = flip(new_root, position)
    else:
        hash_at = position % len(proof)
        proof[hash_at] = flip(proof[hash_at], position // len(proof))
    with pytest.raises(VerificationError) as raised:
        verify_consistency(old, new, old_root, new_root, proof)
    assert raised.value.offset == old


@settings(max_examples=300, deadline=None)
@given(two_sizes(), st.integers(-3, 3).filter(bool), st.booleans())
def test_a_consistency_proof_for_other_sizes_fails(
    sizes: tuple[int, int], delta: int, move_old: bool
) -> None:
    """Against the roots of the sizes claimed (each size comes with its root)."""
    old, new = sizes
    tree = big_tree()
    proof = consistency_proof(tree, old, new)
    claimed_old, claimed_new = (old + delta, new) if move_old else (old, new + delta)
    old_root, new_root = tree.root(max(claimed_old, 0)), tree.root(max(claimed_new, 0))
    assume(claimed_old != 0 or proof)  # from the empty tree the empty proof is the right one
    with pytest.raises(VerificationError):
        verify_consistency(claimed_old, claimed_new, old_root, new_root, proof)


@settings(max_examples=200, deadline=None)
@given(leaf_in_tree(), st.integers(0, 2))
def test_an_inclusion_proof_cut_short_or_padded_fails(case: tuple[int, int], how: int) -> None:
    index, size = case
    tree = big_tree()
    proof = inclusion_proof(tree, index, size)
    if how == 0 and not proof:
        how = 1
    changed = [proof[:-1], [*proof, bytes(32)], [*proof, proof[-1]] if proof else [bytes(32)]][how]
    with pytest.raises(VerificationError):
        verify_inclusion(tree.stored_hash(0, index), index, size, changed, tree.root(size))
