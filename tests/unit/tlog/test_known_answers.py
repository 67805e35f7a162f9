"""replog's Merkle tree gives the published RFC 6962 answers (the Certificate Transparency
reference vectors, as in transparency-dev/merkle's testonly data), so any other
implementation agrees with it."""

from __future__ import annotations

import pytest

from replog.errors import InvalidArgumentError
from replog.tlog.hashing import EMPTY_ROOT, leaf_hash, node_hash, split_point
from replog.tlog.proof import consistency_proof, inclusion_proof
from replog.tlog.tree import MerkleTree, stored_hash_count, stored_hash_index

LEAVES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
INCLUSION = [
    (0, 1, []),
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        2,
        8,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]


@pytest.fixture
def tree() -> MerkleTree:
    return MerkleTree.from_leaf_hashes(leaf_hash(leaf) for leaf in LEAVES)


def test_the_empty_tree_hash_is_sha256_of_nothing() -> None:
    assert EMPTY_ROOT.hex() == ROOTS[0]
    assert MerkleTree().root().hex() == ROOTS[0]


def test_an_empty_leaf_hashes_to_the_published_root_of_one_leaf() -> None:
    assert leaf_hash(b"").hex() == ROOTS[1]


def test_two_leaves_hash_as_one_interior_node() -> None:
    assert node_hash(leaf_hash(LEAVES[0]), leaf_hash(LEAVES[1])).hex() == ROOTS[2]


@pytest.mark.parametrize("size", range(9))
def test_the_root_of_every_size_is_the_published_one(tree: MerkleTree, size: int) -> None:
    assert tree.root(size).hex() == ROOTS[size]


@pytest.mark.parametrize(("index", "size", "expected"), INCLUSION)
def test_inclusion_proofs_are_the_published_ones(
    tree: MerkleTree, index: int, size: int, expected: list[str]
) -> None:
    assert [h.hex() for h in inclusion_proof(tree, index, size)] == expected


@pytest.mark.parametrize(("old", "new", "expected"), CONSISTENCY)
def test_consistency_proofs_are_the_published_ones(
    tree: MerkleTree, old: int, new: int, expected: list[str]
) -> None:
    assert [h.hex() for h in consistency_proof(tree, old, new)] == expected


def test_the_split_is_the_largest_power_of_two_below_the_size_not_the_midpoint() -> None:
    expected = {2: 1, 3: 2, 4: 2, 5: 4, 6: 4, 7: 4, 8: 4, 9: 8, 1000: 512, 2**40: 2**39}
    assert {n: split_point(n) for n in expected} == expected
    with pytest.raises(InvalidArgumentError):
        split_point(1)


def test_stored_hashes_are_laid_out_as_go_sumdb_tlog_lays_them_out() -> None:
    # Go's StoredHashIndex for the first 8 records: leaf, then the nodes it completes.
    layout = [(0, 0), (0, 1), (1, 0), (0, 2), (0, 3), (1, 1), (2, 0), (0, 4), (0, 5), (1, 2)]
    assert [stored_hash_index(level, index) for level, index in layout] == list(range(10))
    assert [stored_hash_count(n) for n in range(9)] == [0, 1, 3, 4, 7, 8, 10, 11, 15]


def test_appending_reports_the_leaf_and_every_node_it_completes(tree: MerkleTree) -> None:
    grown = MerkleTree.from_leaf_hashes(leaf_hash(leaf) for leaf in LEAVES[:7])
    added = grown.append(leaf_hash(LEAVES[7]))
    assert [(level, index) for level, index, _ in added] == [(0, 7), (1, 3), (2, 1), (3, 0)]
    assert added[-1][2].hex() == ROOTS[8]


def test_a_tree_refuses_what_it_cannot_hold_or_answer(tree: MerkleTree) -> None:
    with pytest.raises(InvalidArgumentError):
        tree.append(b"short")
    with pytest.raises(InvalidArgumentError):
        tree.root(9)
    with pytest.raises(InvalidArgumentError):
        tree.stored_hash(3, 1)  # leaves 8..15 are not there yet
    with pytest.raises(InvalidArgumentError):
        inclusion_proof(tree, 8, 8)
    with pytest.raises(InvalidArgumentError):
        consistency_proof(tree, 5, 3)
