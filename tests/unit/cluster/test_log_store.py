"""ReplogLogStore (the replog Log as Raft's log) behaves like MemoryRaftStorage, across reopen."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from replog.cluster.log_store import _CACHE_ENTRY_COST, MEMBER_RECORD_TYPE, ReplogLogStore
from replog.raft import (
    CONTINUES,
    CompactedError,
    Entry,
    EntryKind,
    HardState,
    Membership,
    MemoryRaftStorage,
)
from replog.raft.messages import SnapshotMeta
from replog.storage import LogConfig
from replog.v1.record_pb2 import Record

CONFIG = LogConfig(max_store_bytes=400, max_record_bytes=200)


def _entry(term: int, index: int, kind: int = 0, *, continues: bool = False) -> Entry:
    flag = CONTINUES if continues else 0
    if kind == EntryKind.DATA:
        data = Record(value=b"v%d" % index, offset=index, term=term, timestamp_ms=1)
        data.batch_continues = continues  # as the leader builds a batch's records
        return Entry(term, index, kind | flag, data.SerializeToString())
    return Entry(term, index, kind, b"" if kind == EntryKind.NOOP else b"conf %d" % index)


def _proposal(term: int, lo: int, size: int) -> list[Entry]:
    """A multi-record produce batch as the leader proposes it: all but the last continue."""
    return [_entry(term, i, continues=i < lo + size - 1) for i in range(lo, lo + size)]


def _same(store: ReplogLogStore, mem: MemoryRaftStorage) -> None:
    assert store.last_index() == mem.last_index()
    first = store.first_index()
    assert first >= mem.first_index()
    for index in range(first - 1, store.last_index() + 2):
        assert store.term(index) == mem.term(index), index
    assert store.entries(first, store.last_index() + 1, 1 << 30) == mem.entries(
        first, mem.last_index() + 1, 1 << 30
    )
    for index in range(first, store.last_index() + 2):
        assert store.continued_run_start(index) == mem.continued_run_start(index), index


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
                if rng.random() < 0.5:
                    batch = _proposal(term, lo, rng.randint(1, 6))
                    if rng.random() < 0.3:  # a follower got only part of the batch so far
                        batch = batch[: rng.randint(1, len(batch))]
                else:
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


def test_an_incomplete_batch_at_the_end_of_the_log_is_found_after_a_reopen(
    tmp_path: Path,
) -> None:
    store = ReplogLogStore(tmp_path, CONFIG)
    try:
        store.append([_entry(1, 1, EntryKind.NOOP), *_proposal(1, 2, 3)])
        store.append(_proposal(1, 5, 4)[:3])  # the batch 5..8 arrived up to 7
        assert store.continued_run_start(7) == 5
        assert store.continued_run_start(4) == 5  # 2..4 is whole: 4 ends it
    finally:
        store.close()
    store = ReplogLogStore(tmp_path, CONFIG)
    try:
        assert store.continued_run_start(7) == 5
        assert [e.kind for e in store.entries(2, 8, 1 << 20)] == [CONTINUES] * 2 + [0] + [
            CONTINUES
        ] * 3
        store.append([_entry(2, 5, EntryKind.NOOP)])  # a new leader replaced it
        assert store.continued_run_start(5) == 6
        assert store.continued_run_start(4) == 5
    finally:
        store.close()


def test_the_entry_cache_holds_a_big_batch_of_small_records(tmp_path: Path) -> None:
    # A 100k-record produce batch of small records: the followers' reads must come from
    # memory, not from the disk (the cache used to stop at 16,384 entries).
    store = ReplogLogStore(tmp_path, LogConfig())
    try:
        store.append(_proposal(1, 1, 100_000))
        assert store._cache_first == 1 and len(store._cache) == 100_000
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


def test_member_entries_are_control_records_kept_across_reopen(tmp_path: Path) -> None:
    member = Entry(1, 2, MEMBER_RECORD_TYPE, b'{"id": "n2", "addr": "127.0.0.1:1"}')
    store = ReplogLogStore(tmp_path, CONFIG)
    try:
        store.append([_entry(1, 1), member, _entry(1, 3)])
        assert store.control == [2]
        stored = Record.FromString(store.log.read_payloads(2, max_records=1)[0])
        assert (stored.type, stored.value, stored.offset) == (3, member.data, 2)
    finally:
        store.close()
    store = ReplogLogStore(tmp_path, CONFIG)
    try:
        assert store.control == [2]
        assert store.entries(2, 3, 1 << 20) == [member]  # the same entry comes back out
    finally:
        store.close()


def test_the_entry_cache_is_bounded_in_bytes_and_reads_fall_back_to_the_log(
    tmp_path: Path,
) -> None:
    big = LogConfig(max_store_bytes=16 << 20, max_record_bytes=2 << 20)
    store = ReplogLogStore(tmp_path, big)
    try:
        value = b"z" * (1 << 20)
        for index in range(1, 49):  # 48 MiB of entries, more than the cache keeps
            record = Record(value=value, offset=index, term=1).SerializeToString()
            store.append([Entry(1, index, 0, record)])
        assert store._cache_bytes <= 32 << 20
        cost = sum(len(e.data) + _CACHE_ENTRY_COST for e in store._cache)
        assert cost == store._cache_bytes
        assert store._cache_first > 1  # the oldest were dropped...
        first = store.entries(1, 3, 1 << 30)  # ...and are read back from the log
        assert [Record.FromString(e.data).offset for e in first] == [1, 2]
        last = store.entries(48, 49, 1 << 30)
        assert Record.FromString(last[0].data).value == value
    finally:
        store.close()


def _commit_ten_then_lose_the_tail(tmp_path: Path) -> None:
    """Commit entries 1..10 (saved commit 10), then lose the last records' bytes on disk, as
    media damage would after they were acknowledged."""
    store = ReplogLogStore(tmp_path, LogConfig(), commit_flush_s=0)
    try:
        store.append([_entry(1, i) for i in range(1, 11)])
        store.save_hard_state(HardState(1, 1, 10, Membership(frozenset({1, 2, 3}))))
        assert not store.recovery_cut and store.lost_commit == 0
    finally:
        store.close()
    (segment,) = sorted((tmp_path / "log").glob("*.store"))
    with segment.open("r+b") as f:
        f.truncate(segment.stat().st_size - 3 * 20)


def test_a_recovery_that_cut_committed_entries_is_reported_and_the_commit_clamped(
    tmp_path: Path,
) -> None:
    # Issue 11 defect 7: media damage took the tail of an acknowledged, committed log.
    _commit_ten_then_lose_the_tail(tmp_path)
    store = ReplogLogStore(tmp_path, LogConfig(), commit_flush_s=0)
    try:
        assert store.recovery_cut
        assert store.last_index() < 10
        assert store.lost_commit == 10  # it must not vote until it holds 10 again
        assert store.initial_state().commit == store.last_index()  # never acks what it lost
    finally:
        store.close()
    store = ReplogLogStore(tmp_path, LogConfig(), commit_flush_s=0)
    try:
        assert not store.recovery_cut  # a clean reopen finds nothing more to cut
    finally:
        store.close()


def _records(first: int, count: int, tag: bytes) -> list[bytes]:
    return [
        Record(value=b"%s%d" % (tag, i), offset=i, term=1).SerializeToString()
        for i in range(first, first + count)
    ]


def test_two_snapshot_streams_staged_at_once_do_not_destroy_each_other(tmp_path: Path) -> None:
    store = ReplogLogStore(tmp_path, CONFIG)
    try:
        first = store.stage_snapshot(1)
        first.append_payloads(_records(1, 5, b"a"))
        second = store.stage_snapshot(1)  # a retried stream, or another leader's
        second.append_payloads(_records(1, 3, b"b"))
        first.append_payloads(_records(6, 5, b"a"))  # more segments (400-byte stores)
        store.finish_staging(first)
        store.apply_snapshot(SnapshotMeta(10, 1, Membership(frozenset({1}))))
        assert [store.log.read(i).value for i in range(1, 11)] == [b"a%d" % i for i in range(1, 11)]
        second.append_payloads(_records(4, 2, b"b"))  # the other stream is intact too
        assert [second.read(i).value for i in range(1, 6)] == [b"b%d" % i for i in range(1, 6)]
        store.finish_staging(second)
    finally:
        store.close()


def test_stale_and_abandoned_staging_directories_are_removed(tmp_path: Path) -> None:
    store = ReplogLogStore(tmp_path, CONFIG)
    try:
        abandoned = store.stage_snapshot(1)  # the stream ended early
        abandoned.append_payloads(_records(1, 2, b"x"))
        store.discard_staging(abandoned)
        assert not [p for p in tmp_path.iterdir() if p.name.startswith("snapshot")]
        stale = store.stage_snapshot(1)  # the node crashed while this one was received
        stale.append_payloads(_records(1, 2, b"y"))
        stale.close()
    finally:
        store.close()
    ReplogLogStore(tmp_path, CONFIG).close()  # nothing is being received on open
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("snapshot")]


def test_a_crash_right_after_a_snapshot_install_leaves_the_snapshots_configuration(
    tmp_path: Path,
) -> None:
    store = ReplogLogStore(tmp_path, CONFIG, bootstrap=Membership(frozenset({1})))
    store.append([_entry(1, i) for i in range(1, 5)])
    store.save_hard_state(HardState(2, 1, 2, Membership(frozenset({1}))))
    new_config = Membership(frozenset({1, 2, 3}), frozenset({4}))
    store.apply_snapshot(SnapshotMeta(100, 3, new_config))
    store.log.close()  # crash: the Ready's hard state (saved next) never reaches the disk
    reopened = ReplogLogStore(tmp_path, CONFIG)
    try:
        assert reopened.snapshot_point == (100, 3)
        # The snapshot's configuration, and its term with no vote in it: never the old
        # configuration (nor a vote of term 2 carried into term 3) beside the new point.
        assert reopened.initial_state() == HardState(3, None, 100, new_config)
    finally:
        reopened.close()


def test_a_lost_commit_and_lost_entries_stay_known_across_restarts_until_cleared(
    tmp_path: Path,
) -> None:
    # Found in review: the gates were only in memory. A node that lost committed entries,
    # caught up part way, wrote its (lower) commit and restarted, voted again while missing
    # the rest.
    _commit_ten_then_lose_the_tail(tmp_path)
    store = ReplogLogStore(tmp_path, LogConfig(), commit_flush_s=0)
    try:
        assert store.lost_commit == 10 and store.log_lost
        last = store.last_index()
        store.save_hard_state(HardState(1, 1, last, Membership(frozenset({1, 2, 3}))))
    finally:
        store.close()
    store = ReplogLogStore(tmp_path, LogConfig(), commit_flush_s=0)  # a clean restart
    try:
        assert not store.recovery_cut
        assert store.lost_commit == 10 and store.log_lost  # still known
        store.clear_log_lost()
        store.clear_lost_commit()
    finally:
        store.close()
    store = ReplogLogStore(tmp_path, LogConfig(), commit_flush_s=0)
    try:
        assert store.lost_commit == 0 and not store.log_lost
    finally:
        store.close()
