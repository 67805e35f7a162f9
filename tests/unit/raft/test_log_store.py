"""ReplogLogStore (the replog Log as Raft's log) behaves like MemoryRaftStorage, across reopen."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from replog.raft import CompactedError, Entry, EntryKind, HardState, Membership, MemoryRaftStorage
from replog.raft.log_store import ReplogLogStore
from replog.raft.messages import SnapshotMeta
from replog.storage import LogConfig
from replog.v1.record_pb2 import Record

CONFIG = LogConfig(max_store_bytes=400, max_record_bytes=200)


def _entry(term: int, index: int, kind: int = 0) -> Entry:
    if kind == EntryKind.DATA:
        data = Record(value=b"v%d" % index, offset=index, term=term, timestamp_ms=1)
        return Entry(term, index, kind, data.SerializeToString())
    return Entry(term, index, kind, b"" if kind == EntryKind.NOOP else b"conf %d" % index)


def _same(store: ReplogLogStore, mem: MemoryRaftStorage) -> None:
    assert store.last_index() == mem.last_index()
    first = store.first_index()
    assert first >= mem.first_index()
    for index in range(first - 1, store.last_index() + 2):
        assert store.term(index) == mem.term(index), index
    assert store.entries(first, store.last_index() + 1, 1 << 30) == mem.entries(
        first, mem.last_index() + 1, 1 << 30
    )


@pytest.mark.parametrize("seed", range(12))
def test_random_appends_truncations_compactions_and_reopens_match_memory_storage(
    tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    store = ReplogLogStore(tmp_path, CONFIG, commit_flush_s=0)
    mem = MemoryRaftStorage()
    term = 1
    try:
        for _ in range(60):
            op = rng.random()
            if op < 0.6:
                lo = rng.randint(
                    max(store.first_index(), store.last_index() - 3), store.last_index() + 1
                )
                term += rng.random() < 0.3
                batch = [
                    _entry(term, i, rng.choice((0, 0, 0, 1, 2)))
                    for i in range(lo, lo + rng.randint(1, 6))
                ]
                store.append(batch)
                mem.append(batch)
            elif op < 0.7 and store.last_index() > store.first_index():
                store.compact(rng.randint(store.first_index(), store.last_index()))
                mem.compact(store.first_index())
            elif op < 0.8:
                state = HardState(
                    term,
                    rng.choice((None, 1, 2)),
                    store.first_index() - 1,
                    Membership(frozenset({1})),
                )
                store.save_hard_state(state)
                mem.save_hard_state(state)
            else:
                store.close()
                store = ReplogLogStore(tmp_path, CONFIG, commit_flush_s=0)
                assert store.initial_state() == mem.initial_state()
            _same(store, mem)
    finally:
        store.close()


def test_entries_below_the_first_index_raise_compacted(tmp_path: Path) -> None:
    with_store = ReplogLogStore(tmp_path, CONFIG)
    try:
        with_store.append([_entry(1, i) for i in range(1, 40)])
        with_store.compact(30)
        assert 1 < with_store.first_index() <= 30
        with pytest.raises(CompactedError):
            with_store.entries(1, 5, 1 << 20)
    finally:
        with_store.close()


def test_snapshot_install_restarts_the_log_after_the_snapshot_index_and_survives_reopen(
    tmp_path: Path,
) -> None:
    store = ReplogLogStore(tmp_path, CONFIG)
    store.append([_entry(1, i) for i in range(1, 5)])
    store.apply_snapshot(SnapshotMeta(100, 3, Membership(frozenset({1, 2}))))
    assert (store.first_index(), store.last_index(), store.term(100)) == (101, 100, 3)
    store.append([_entry(3, 101)])
    store.close()
    store = ReplogLogStore(tmp_path, CONFIG)
    try:
        assert (store.first_index(), store.last_index(), store.term(100)) == (101, 101, 3)
        assert store.log.read(101).value == b"v101"
    finally:
        store.close()


def test_user_entries_are_stored_as_the_exact_record_bytes(tmp_path: Path) -> None:
    store = ReplogLogStore(tmp_path, CONFIG)
    try:
        entries = [_entry(1, 1, EntryKind.NOOP), _entry(1, 2), _entry(1, 3, EntryKind.CONFIG)]
        store.append(entries)
        payloads = store.log.read_payloads(1, max_records=10)
        assert payloads[1] == entries[1].data
        assert [Record.FromString(p).type for p in payloads] == [1, 0, 2]
    finally:
        store.close()
