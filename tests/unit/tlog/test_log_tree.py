"""A Log's tree kept from its appends: leaf i is the payload stored at offset i, cut with the
log, kept through retention, reused on reopen, and a tampered record named by the rebuild."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from replog.errors import UnavailableError
from replog.storage import Log, LogConfig
from replog.storage.codec import FRAME_HEADER, FRAME_HEADER_BYTES, crc32c
from replog.tlog.hashing import leaf_hash
from replog.tlog.log_tree import LogTree, attach_tree, tree_of
from replog.tlog.tiles import verify_tiles
from replog.tlog.tree import MerkleTree


def stored_payloads(log_: Log, start: int = 0) -> list[bytes]:
    payloads: list[bytes] = []
    offset = start
    while offset < log_.next_offset:
        chunk = log_.read_payloads(offset, max_records=10_000)
        payloads.extend(chunk)
        offset += len(chunk)
    return payloads


def expected_root(leaves: list[bytes]) -> bytes:
    return MerkleTree.from_leaf_hashes(map(leaf_hash, leaves)).root()


def root_of(tree: LogTree) -> bytes:
    return tree.read(lambda tiles: tiles.root())


def open_log(directory: Path, **config: object) -> tuple[Log, LogTree]:
    log_ = Log(directory / "log", LogConfig(**config))  # type: ignore[arg-type]
    return log_, attach_tree(log_, directory / "tlog")


def test_every_kind_of_append_adds_the_stored_payloads_as_leaves(tmp_path: Path) -> None:
    log_, tree = open_log(tmp_path, max_store_bytes=4096, max_record_bytes=1024)
    log_.append(b"one")
    log_.append(b"two", key=b"k")
    log_.append_batch([f"batch {i}".encode() for i in range(700)])
    copy, _ = open_log(tmp_path / "copy")
    copy.append_payloads(stored_payloads(log_))
    assert tree.size == log_.next_offset == 702
    assert root_of(tree) == expected_root(stored_payloads(log_))
    assert root_of(tree_of(copy) or tree) == root_of(tree)
    tree.flush()  # partial tiles are written on demand, full ones as they fill
    tiles = tmp_path / "tlog"
    verify_tiles(702, root_of(tree), lambda tile: (tiles / tile.path()).read_bytes())
    log_.close()
    copy.close()


def test_a_cut_log_cuts_its_tree_and_the_new_suffix_is_hashed(tmp_path: Path) -> None:
    log_, tree = open_log(tmp_path)
    log_.append_batch([f"first {i}".encode() for i in range(1_000)])
    log_.truncate_after(599)
    assert tree.size == 600
    log_.append_batch([f"second {i}".encode() for i in range(300)])
    assert root_of(tree) == expected_root(stored_payloads(log_))
    log_.close()


def test_offsets_below_the_first_offset_are_empty_leaves(tmp_path: Path) -> None:
    log_, tree = open_log(tmp_path, initial_offset=1)
    log_.append_batch([b"a", b"b"])
    assert tree.size == 3
    assert root_of(tree) == expected_root([b"", *stored_payloads(log_, 1)])
    log_.close()


def test_reopening_reuses_the_tiles_and_retention_keeps_them(tmp_path: Path) -> None:
    log_, tree = open_log(tmp_path, max_store_bytes=8192, max_record_bytes=1024)
    log_.append_batch([f"record {i}".encode() for i in range(2_000)])
    root = root_of(tree)
    log_.truncate(1_000)  # drop the front segments, as retention does
    assert root_of(tree) == root
    log_.close()
    log_, tree = open_log(tmp_path, max_store_bytes=8192, max_record_bytes=1024)
    assert tree.tiles is not None and tree.tiles.reused == 1_792
    assert root_of(tree) == root
    log_.close()


def test_a_reset_log_makes_its_tree_unavailable(tmp_path: Path) -> None:
    log_, tree = open_log(tmp_path, initial_offset=1)
    log_.append_batch([b"a"])
    log_.reset(50)
    with pytest.raises(UnavailableError, match="reset"):
        root_of(tree)
    log_.close()


def test_a_record_altered_in_a_sealed_segment_is_named_by_the_rebuild(tmp_path: Path) -> None:
    log_, _ = open_log(tmp_path, max_store_bytes=8192, max_record_bytes=1024)
    log_.append_batch([f"record {i:04}".encode() for i in range(1_000)])
    payload = stored_payloads(log_)[700]
    log_.close()
    for store in sorted((tmp_path / "log").glob("*.store")):
        data = bytearray(store.read_bytes())
        at = data.find(payload)
        if at < 0:
            continue
        altered = payload.replace(b"record 0700", b"record 07OO")
        data[at : at + len(payload)] = altered
        data[at - FRAME_HEADER_BYTES : at] = FRAME_HEADER.pack(len(altered), crc32c(altered))
        store.write_bytes(bytes(data))
        break
    else:
        raise AssertionError("record 700 not found")
    log_, tree = open_log(tmp_path, max_store_bytes=8192, max_record_bytes=1024)
    assert tree.tiles is not None and tree.tiles.damage_at == 700
    log_.close()


def test_full_tiles_reach_the_disk_without_a_flush(tmp_path: Path) -> None:
    log_, _ = open_log(tmp_path)
    log_.append_batch([f"record {i}".encode() for i in range(1_000)])
    deadline = time.monotonic() + 10
    wanted = [tmp_path / "tlog" / f"tile/0/00{i}" for i in range(3)]
    while not all(path.exists() for path in wanted):
        assert time.monotonic() < deadline, "the tile writer wrote nothing"
        time.sleep(0.01)
    log_.close()
