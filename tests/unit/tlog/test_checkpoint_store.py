"""A partition's signed checkpoints on disk: one private file per tree size, the newest N
kept, never re-signed for a size already published, and consistent with each other."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from replog.errors import InvalidArgumentError
from replog.storage import Log
from replog.tlog.checkpoint import open_checkpoint
from replog.tlog.checkpoints import CheckpointStore, publish_checkpoint
from replog.tlog.keyfile import generate_signer
from replog.tlog.log_tree import attach_tree
from replog.tlog.proof import consistency_proof, verify_consistency


def test_checkpoints_are_kept_per_size_privately_and_the_oldest_dropped(tmp_path: Path) -> None:
    log_ = Log(tmp_path / "log")
    tree = attach_tree(log_, tmp_path / "tlog")
    signer = generate_signer("test")
    store = CheckpointStore(tmp_path / "tlog" / "checkpoints", keep=3)
    for count in (10, 300, 1, 700, 2):
        log_.append_batch([b"x"] * count)
        assert publish_checkpoint(tree, store, log_.next_offset, "n1/default/0", signer)
    assert store.sizes() == [311, 1011, 1013]
    for size in store.sizes():
        path = store.directory / str(size)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert publish_checkpoint(tree, store, 1011, "n1/default/0", signer) is None
    old = open_checkpoint(store.read(311), signer.verifier, origin="n1/default/0")
    new = open_checkpoint(store.read(), signer.verifier, origin="n1/default/0")
    proof = tree.read(lambda tiles: consistency_proof(tiles, old.size, new.size))
    verify_consistency(old.size, new.size, old.root, new.root, proof)
    with pytest.raises(InvalidArgumentError):
        store.read(10)
    log_.close()
