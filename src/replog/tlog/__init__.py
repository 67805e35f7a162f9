"""The verifiable log: RFC 6962 Merkle trees over a partition's records, C2SP tiles, signed
checkpoints and the proofs any reader can check without trusting the server.

The modules re-exported here are pure (no clock, randomness, files or network):
``hashing``, ``tree``, ``proof``, ``tiles``, ``note`` and ``checkpoint``. The I/O edges are
imported by name: ``tlog.tile_files`` (a partition's tiles on disk) and ``tlog.keyfile``
(signing keys on disk).
"""

from replog.tlog.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from replog.tlog.hashing import EMPTY_ROOT, HASH_SIZE, leaf_hash, node_hash
from replog.tlog.note import Signer, Verifier, open_note, sign_note
from replog.tlog.proof import (
    consistency_proof,
    inclusion_proof,
    verify_consistency,
    verify_inclusion,
)
from replog.tlog.tiles import TILE_WIDTH, Tile, TileHashSource, parse_tile_path, tiles_for_size
from replog.tlog.tree import HashSource, MerkleTree, tree_hash

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "TILE_WIDTH",
    "Checkpoint",
    "HashSource",
    "MerkleTree",
    "Signer",
    "Tile",
    "TileHashSource",
    "Verifier",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "open_checkpoint",
    "open_note",
    "parse_tile_path",
    "sign_checkpoint",
    "sign_note",
    "tiles_for_size",
    "tree_hash",
    "verify_consistency",
    "verify_inclusion",
]
