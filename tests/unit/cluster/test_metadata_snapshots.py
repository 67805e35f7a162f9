"""Metadata over a compacted controller log: a restart starts from the newest valid
snapshot the retained records continue and folds the entries after it; with no such
snapshot it refuses to start; a follower that installs a leader's snapshot restores the
state from the snapshot file that came with the records."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from replog.cluster.controller_commands import (
    METADATA_RECORD_TYPE,
    AlterTopicConfig,
    CreateTopic,
    DeleteTopic,
    RegisterNode,
)
from replog.cluster.controller_snapshot import encode_state
from replog.cluster.log_store import ReplogLogStore
from replog.cluster.metadata import Metadata
from replog.cluster.raft_node import RaftNode
from replog.errors import StateLostError
from replog.raft.messages import Entry, EntryKind, HardState, Membership, SnapshotMeta
from replog.storage import LogConfig

SMALL = LogConfig(max_store_bytes=600, max_record_bytes=400)
ONE = Membership(frozenset({1}))
FILLER = b"x" * 120  # no-op entries between the commands fill segments


def _commands(start: int, count: int) -> list[bytes]:
    out = []
    for i in range(start, start + count):
        out.append(CreateTopic(f"t{i}", 2, 1, {"retention.ms": str(1000 + i)}).encode())
        if i % 3 == 0:
            out.append(AlterTopicConfig(f"t{i}", {"segment.bytes": "4096"}, ()).encode())
        if i % 4 == 0:
            out.append(DeleteTopic(f"t{i - 1}").encode())
    return out


def _append(store: ReplogLogStore, commands: list[bytes]) -> None:
    """Each command, then a no-op entry, all committed (term 1)."""
    index = store.last_index()
    entries = []
    for data in commands:
        entries.append(Entry(1, index + 1, METADATA_RECORD_TYPE, data))
        entries.append(Entry(1, index + 2, EntryKind.NOOP, FILLER))
        index += 2
    store.append(entries)
    store.save_hard_state(HardState(1, 1, index, ONE))
    store.flush()


def _metadata(store: ReplogLogStore) -> Metadata:
    return Metadata(RaftNode(store, 1, random.Random()), store, lambda node: None)


def _fresh(path: Path) -> ReplogLogStore:
    return ReplogLogStore(path, SMALL, bootstrap=ONE, commit_flush_s=0)


FIRST = [RegisterNode("n1", "127.0.0.1:1").encode(), *_commands(0, 6)]
LATER = _commands(6, 6)


def _replayed(path: Path) -> bytes:
    """The state a never-compacted log of the same commands folds to."""
    store = _fresh(path)
    _append(store, FIRST)
    _append(store, LATER)
    metadata = _metadata(store)
    metadata.rebuild()
    store.close()
    return encode_state(metadata.state)


def _compacted(path: Path, *, snapshot: bool = True) -> tuple[int, int]:
    """A log whose segments below a snapshot (after FIRST) were deleted; (snapshot index,
    lowest offset)."""
    store = _fresh(path)
    _append(store, FIRST)
    metadata = _metadata(store)
    metadata.rebuild()
    index = store.last_index()
    if snapshot:
        metadata.snapshots.write(index, 1, metadata.state)
    _append(store, LATER)
    store.compact(index + 1)
    lowest = store.log.lowest_offset
    store.close()
    assert lowest > 1, "the test wants the first segments gone"
    return index, lowest


def test_a_restart_after_compaction_folds_the_entries_after_the_snapshot(tmp_path: Path) -> None:
    index, lowest = _compacted(tmp_path / "n")
    store = _fresh(tmp_path / "n")
    metadata = _metadata(store)
    changes: list[int] = []
    metadata.listeners.append(lambda old, new: changes.append(new.version))
    metadata.rebuild()
    assert encode_state(metadata.state) == _replayed(tmp_path / "full")
    assert metadata.index == store.initial_state().commit - 1  # its last command
    assert changes[0] == metadata.snapshots.newest_version  # the snapshot, then each entry
    assert all(i > index for i in changes[1:]) and changes[-1] == metadata.state.version
    assert store.log.lowest_offset == lowest
    store.close()


def test_a_compacted_log_without_a_snapshot_refuses_to_start(tmp_path: Path) -> None:
    _compacted(tmp_path / "n", snapshot=False)
    store = _fresh(tmp_path / "n")
    with pytest.raises(StateLostError, match="cannot be rebuilt") as caught:
        _metadata(store).rebuild()
    assert "snapshot files: none" in str(caught.value)
    store.close()


def test_a_damaged_snapshot_falls_back_to_an_older_one_only_if_the_log_continues_it(
    tmp_path: Path,
) -> None:
    index, _ = _compacted(tmp_path / "n")
    store = _fresh(tmp_path / "n")
    metadata = _metadata(store)
    path = metadata.snapshots.path(index)
    path.write_bytes(path.read_bytes()[:-2])  # the only snapshot the log continues
    metadata.snapshots.write(1, 1, metadata.state)  # too old: its entries are gone
    with pytest.raises(StateLostError, match=f"files: {index}, 1"):
        metadata.rebuild()
    store.close()


def test_an_uncompacted_log_replays_in_full_when_its_snapshots_are_damaged(
    tmp_path: Path,
) -> None:
    store = _fresh(tmp_path / "n")
    _append(store, FIRST)
    _append(store, LATER)
    metadata = _metadata(store)
    metadata.snapshots.write(5, 1, metadata.state)  # the empty state, claimed as of 5
    path = metadata.snapshots.path(5)
    path.write_bytes(path.read_bytes().replace(b'"version"', b'"versiom"'))
    metadata.rebuild()
    assert encode_state(metadata.state) == _replayed(tmp_path / "full")
    store.close()


def _receive(tmp_path: Path) -> tuple[ReplogLogStore, Metadata, SnapshotMeta]:
    """A follower, behind a leader whose controller log was compacted, that received the
    leader's records and snapshot file (as ``receive_snapshot`` stages and keeps them) and
    installed the records (``apply_snapshot``), but not yet the state."""
    _, lowest = _compacted(tmp_path / "leader")
    leader = _fresh(tmp_path / "leader")
    sent = _metadata(leader).snapshots.outgoing(leader.last_index(), lowest)
    last, term = leader.last_index(), leader.term(leader.last_index())
    assert term is not None
    payloads: list[bytes] = []
    while lowest + len(payloads) <= last:  # one segment at a time, as a leader streams
        payloads += leader.log.read_payloads(lowest + len(payloads), max_records=1000)
    leader.close()
    follower = _fresh(tmp_path / "follower")
    _append(follower, FIRST[:3])  # behind: it applied a little before
    metadata = _metadata(follower)
    metadata.rebuild()
    staged = follower.stage_snapshot(lowest)
    staged.append_payloads(payloads)
    metadata.snapshots.accept(sent, lowest, last)
    follower.finish_staging(staged)
    meta = SnapshotMeta(last, term, ONE)
    follower.apply_snapshot(meta)
    return follower, metadata, meta


def test_a_follower_installing_a_snapshot_restores_the_state_at_its_index(
    tmp_path: Path,
) -> None:
    follower, metadata, meta = _receive(tmp_path)
    changes: list[int] = []
    metadata.listeners.append(lambda old, new: changes.append(new.version))
    metadata.installed(meta)
    expected = _replayed(tmp_path / "full")
    assert encode_state(metadata.state) == expected
    assert len(changes) == 1  # one jump, no state in between
    assert metadata.snapshots.newest_index == meta.index  # its own snapshot at the install
    follower.close()
    again = _fresh(tmp_path / "follower")
    restarted = _metadata(again)
    restarted.rebuild()
    assert encode_state(restarted.state) == expected
    again.close()


def test_a_crash_between_installing_the_records_and_the_state_restarts_from_the_leaders_file(
    tmp_path: Path,
) -> None:
    follower, _, _ = _receive(tmp_path)
    follower.close()  # stopped before `installed`: only the leader's file covers the log
    again = _fresh(tmp_path / "follower")
    restarted = _metadata(again)
    restarted.rebuild()
    assert encode_state(restarted.state) == _replayed(tmp_path / "full")
    again.close()


def test_an_install_older_than_the_state_a_restart_loaded_keeps_that_state(
    tmp_path: Path,
) -> None:
    follower, metadata, meta = _receive(tmp_path)
    # a snapshot newer than the install (its commit index was saved lazily before a restart)
    ahead = metadata.snapshots.write(meta.index + 5, 1, metadata.state).state
    fresh = _metadata(follower)
    fresh.rebuild()  # starts from the newest snapshot, as of meta.index + 5
    changes: list[int] = []
    fresh.listeners.append(lambda old, new: changes.append(new.version))
    fresh.installed(meta)
    assert encode_state(fresh.state) == encode_state(ahead)  # never moved back to meta.index
    assert changes == [] and fresh.index == meta.index + 5
    follower.close()
